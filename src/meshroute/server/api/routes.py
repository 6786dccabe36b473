"""`/api/routes`: NetBird's route endpoints, with its handler checks and their order."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Response

from meshroute.core.domains import validate_domains
from meshroute.core.errors import InvalidArgument
from meshroute.core.model import NetworkType, Route
from meshroute.core.routes import check_request_shape, parse_network
from meshroute.server.api import models
from meshroute.server.api.body import body_of, openapi_body
from meshroute.server.api.deps import Caller, Reads, Svc
from meshroute.server.api.render import json_response, route_json, route_status_json
from meshroute.server.api.render_routes import explanation_json, overlaps_json
from meshroute.server.api.schemas import RouteRequest
from meshroute.server.services.routes import RouteInput

router = APIRouter(prefix="/api/routes", tags=["Routes"])
Body = Annotated[RouteRequest, Depends(body_of(RouteRequest))]


def to_input(req: RouteRequest) -> RouteInput:
    net_id = req.network_id or ""
    check_request_shape(
        network=req.network is not None,
        domains=req.domains is not None,
        peer=req.peer is not None,
        peer_groups=req.peer_groups is not None,
        net_id=net_id,
    )
    data = RouteInput(
        net_id=net_id,
        network=None,
        network_type=NetworkType.DOMAIN,
        description=req.description or "",
        peer=req.peer or "",
        peer_groups=list(req.peer_groups or []),
        enabled=bool(req.enabled),
        masquerade=bool(req.masquerade),
        metric=req.metric or 0,
        keep_route=bool(req.keep_route),
        groups=list(req.groups or []),
        access_control_groups=list(req.access_control_groups or []),
        skip_auto_apply=bool(req.skip_auto_apply),
    )
    if req.domains is not None:
        try:
            data.domains = validate_domains(req.domains)
        except InvalidArgument as exc:
            raise InvalidArgument(f"invalid domains: {exc.message}") from None
    else:
        assert req.network is not None
        data.network_type, data.network = parse_network(req.network)
    return data


@router.get("", summary="List all routes", response_model=list[models.Route])
def list_routes(user: Caller, reads: Reads) -> Response:
    return json_response([route_json(r) for r in reads.routes(user.account_id, user.id)])


@router.post(
    "", summary="Create a route", openapi_extra=openapi_body(RouteRequest), response_model=models.Route
)
def create_route(user: Caller, body: Body, svc: Svc) -> Response:
    data = to_input(body)
    return json_response(route_json(svc.routes.create(user.account_id, user.id, data)))


@router.get(
    "/explain",
    summary="Which route a peer uses for a destination, and why (meshroute's own)",
    response_model=models.RouteExplanation,
)
def explain_route(
    user: Caller,
    reads: Reads,
    peer: Annotated[str | None, Query(description="the peer's ID")] = None,
    destination: Annotated[str | None, Query(description="an IP address or a domain name")] = None,
) -> Response:
    found = reads.explain(user.account_id, user.id, peer or "", destination or "")
    return json_response(explanation_json(found))


@router.get(
    "/overlaps",
    summary="Enabled routes whose destinations overlap, and what that means (meshroute's own)",
    response_model=list[models.RouteOverlap],
)
def route_overlaps(user: Caller, reads: Reads) -> Response:
    return json_response(overlaps_json(reads.overlaps(user.account_id, user.id)))


@router.get("/{route_id}", summary="Retrieve a route", response_model=models.Route)
def get_route(route_id: str, user: Caller, reads: Reads) -> Response:
    return json_response(route_json(reads.route(user.account_id, user.id, route_id)))


@router.get(
    "/{route_id}/status",
    summary="Which routing peer each client of the route uses now (meshroute's own)",
    response_model=list[models.RouteClientStatus],
)
def route_status(route_id: str, user: Caller, reads: Reads) -> Response:
    return json_response(route_status_json(reads.route_status(user.account_id, user.id, route_id)))


def existing_route(route_id: str, user: Caller, reads: Reads) -> Route:
    """PUT looks the route up (403/404) before it judges the body, as the reference does."""
    if not route_id.strip():
        raise InvalidArgument("invalid route ID")
    return reads.route(user.account_id, user.id, route_id)


@router.put(
    "/{route_id}",
    summary="Update a route (full replacement)",
    openapi_extra=openapi_body(RouteRequest),
    response_model=models.Route,
)
def update_route(
    route_id: str, user: Caller, _old: Annotated[Route, Depends(existing_route)], body: Body, svc: Svc
) -> Response:
    data = to_input(body)
    return json_response(route_json(svc.routes.save(user.account_id, user.id, route_id, data)))


@router.delete("/{route_id}", summary="Delete a route", response_model=models.Empty)
def delete_route(route_id: str, user: Caller, svc: Svc) -> Response:
    svc.routes.delete(user.account_id, user.id, route_id)
    return json_response({})
