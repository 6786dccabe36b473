"""`/api/routes`: NetBird's route endpoints, with its handler checks and their order."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends

from meshroute.core.domains import validate_domains
from meshroute.core.errors import InvalidArgument
from meshroute.core.model import NetworkType, Route
from meshroute.core.routes import check_request_shape, parse_network
from meshroute.server.api.body import body_of, openapi_body
from meshroute.server.api.deps import Caller, Svc
from meshroute.server.api.schemas import RouteRequest, route_json
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


@router.get("", summary="List all routes")
def list_routes(user: Caller, svc: Svc) -> list[dict[str, Any]]:
    return [route_json(r) for r in svc.routes.list_all(user.account_id, user.id)]


@router.post("", summary="Create a route", openapi_extra=openapi_body(RouteRequest))
def create_route(user: Caller, body: Body, svc: Svc) -> dict[str, Any]:
    data = to_input(body)
    return route_json(svc.routes.create(user.account_id, user.id, data))


@router.get("/{route_id}", summary="Retrieve a route")
def get_route(route_id: str, user: Caller, svc: Svc) -> dict[str, Any]:
    return route_json(svc.routes.get(user.account_id, user.id, route_id))


def existing_route(route_id: str, user: Caller, svc: Svc) -> Route:
    """PUT looks the route up (403/404) before it judges the body, as the reference does."""
    if not route_id.strip():
        raise InvalidArgument("invalid route ID")
    return svc.routes.get(user.account_id, user.id, route_id)


@router.put(
    "/{route_id}", summary="Update a route (full replacement)", openapi_extra=openapi_body(RouteRequest)
)
def update_route(
    route_id: str, user: Caller, _old: Annotated[Route, Depends(existing_route)], body: Body, svc: Svc
) -> dict[str, Any]:
    data = to_input(body)
    return route_json(svc.routes.save(user.account_id, user.id, route_id, data))


@router.delete("/{route_id}", summary="Delete a route")
def delete_route(route_id: str, user: Caller, svc: Svc) -> dict[str, Any]:
    svc.routes.delete(user.account_id, user.id, route_id)
    return {}
