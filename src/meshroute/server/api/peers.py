"""`/api/peers`."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Response

from meshroute.core.errors import InvalidArgument
from meshroute.protocol.convert import map_json
from meshroute.server.api import models
from meshroute.server.api.body import body_of, openapi_body
from meshroute.server.api.deps import Caller, Reads, Svc
from meshroute.server.api.render import JSON_MEDIA_TYPE, json_response, peer_detail_json, peer_list
from meshroute.server.api.schemas import PeerRequest
from meshroute.server.services.peers import PeerUpdate

router = APIRouter(prefix="/api/peers", tags=["Peers"])
Body = Annotated[PeerRequest, Depends(body_of(PeerRequest))]


@router.get("", summary="List all peers", response_model=list[models.PeerBatch])
def list_peers(
    user: Caller,
    reads: Reads,
    name: Annotated[str | None, Query(description="peers whose name contains this")] = None,
    ip: Annotated[str | None, Query(description="peers whose IP contains this")] = None,
) -> Response:
    found = reads.peers(user.account_id, user.id, name or "", ip or "")
    return Response(peer_list(found), media_type=JSON_MEDIA_TYPE)


@router.get("/{peer_id}", summary="Retrieve a peer", response_model=models.Peer)
def get_peer(peer_id: str, user: Caller, reads: Reads) -> Response:
    return json_response(peer_detail_json(reads.peer(user.account_id, user.id, peer_id)))


@router.get(
    "/{peer_id}/network-map",
    summary="The network map this peer receives (what it will install)",
    response_model=models.NetworkMap,
)
def peer_network_map(
    peer_id: str,
    user: Caller,
    reads: Reads,
    fresh: Annotated[bool, Query(description="compute from the store instead of the live state")] = False,
) -> Response:
    found = reads.network_map(user.account_id, user.id, peer_id, fresh)
    view = map_json(found.map)
    view["self"]["network"] = str(found.account.network_v4)
    view["self"]["network_v6"] = str(found.account.network_v6)
    view["routes_received"] = [r["id"] for r in view["routes"] if r["peer_id"] != peer_id]
    view["routes_served"] = [r["id"] for r in view["routes"] if r["peer_id"] == peer_id]
    return json_response(view)


@router.put(
    "/{peer_id}", summary="Update a peer", openapi_extra=openapi_body(PeerRequest), response_model=models.Peer
)
def update_peer(peer_id: str, user: Caller, body: Body, svc: Svc, reads: Reads) -> Response:
    if body.name is None:
        raise InvalidArgument("peer name shouldn't be empty")
    upd = PeerUpdate(
        name=body.name,
        ssh_enabled=bool(body.ssh_enabled),
        login_expiration_enabled=bool(body.login_expiration_enabled),
        inactivity_expiration_enabled=bool(body.inactivity_expiration_enabled),
    )
    svc.peers.update(user.account_id, user.id, peer_id, upd)
    return get_peer(peer_id, user, reads)


@router.delete("/{peer_id}", summary="Delete a peer", response_model=models.Empty)
def delete_peer(peer_id: str, user: Caller, svc: Svc) -> Response:
    svc.peers.delete(user.account_id, user.id, peer_id)
    return json_response({})
