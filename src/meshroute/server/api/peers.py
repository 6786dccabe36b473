"""`/api/peers`."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request

from meshroute.core.errors import InvalidArgument, NotFound
from meshroute.protocol.convert import map_json
from meshroute.server.api.body import body_of, openapi_body
from meshroute.server.api.deps import Caller, Svc
from meshroute.server.api.schemas import PeerRequest, peer_json
from meshroute.server.services import Services
from meshroute.server.services.peers import PeerUpdate
from meshroute.server.sync.engine import MapEngine

router = APIRouter(prefix="/api/peers", tags=["Peers"])
Body = Annotated[PeerRequest, Depends(body_of(PeerRequest))]


def _context(svc: Services, account_id: str) -> tuple[dict[str, int], str]:
    with svc.uow.read(account_id) as tx:
        sizes = {g.id: len(g.peers) for g in tx.groups(account_id)}
        account = tx.account(account_id)
    return sizes, account.domain if account else ""


@router.get("", summary="List all peers")
def list_peers(
    user: Caller,
    svc: Svc,
    name: Annotated[str | None, Query()] = None,
    ip: Annotated[str | None, Query()] = None,
) -> list[dict[str, Any]]:
    peers, groups = svc.peers.list_all(user.account_id, user.id)
    sizes, domain = _context(svc, user.account_id)
    out = []
    for p in peers:
        # NetBird filters with `LIKE %x%`, and only on non-empty values.
        if (name and name not in p.name) or (ip and ip not in str(p.ip)):
            continue
        item = peer_json(p, groups.get(p.id, []), sizes, domain)
        item["accessible_peers_count"] = len(peers) - 1
        out.append(item)
    return out


@router.get("/{peer_id}", summary="Retrieve a peer")
def get_peer(peer_id: str, user: Caller, svc: Svc) -> dict[str, Any]:
    peer, groups = svc.peers.get(user.account_id, user.id, peer_id)
    sizes, domain = _context(svc, user.account_id)
    return peer_json(peer, groups, sizes, domain)


@router.get("/{peer_id}/network-map", summary="The network map this peer receives (what it will install)")
def peer_network_map(
    peer_id: str,
    user: Caller,
    svc: Svc,
    request: Request,
    fresh: Annotated[bool, Query(description="compute from the store instead of the live state")] = False,
) -> dict[str, Any]:
    svc.peers.get(user.account_id, user.id, peer_id)  # permission and existence
    engine: MapEngine = request.app.state.map_engine
    snapshot = (engine.fresh_map if fresh else engine.full_map)(user.account_id, peer_id)
    if snapshot is None:
        raise NotFound(f"peer: {peer_id} not found")
    m, account = snapshot
    view = map_json(m)
    view["self"]["network"] = str(account.network_v4)
    view["self"]["network_v6"] = str(account.network_v6)
    view["routes_received"] = [r["id"] for r in view["routes"] if r["peer_id"] != peer_id]
    view["routes_served"] = [r["id"] for r in view["routes"] if r["peer_id"] == peer_id]
    return view


@router.put("/{peer_id}", summary="Update a peer", openapi_extra=openapi_body(PeerRequest))
def update_peer(peer_id: str, user: Caller, body: Body, svc: Svc) -> dict[str, Any]:
    if body.name is None:
        raise InvalidArgument("peer name shouldn't be empty")
    upd = PeerUpdate(
        name=body.name,
        ssh_enabled=bool(body.ssh_enabled),
        login_expiration_enabled=bool(body.login_expiration_enabled),
        inactivity_expiration_enabled=bool(body.inactivity_expiration_enabled),
    )
    svc.peers.update(user.account_id, user.id, peer_id, upd)
    return get_peer(peer_id, user, svc)


@router.delete("/{peer_id}", summary="Delete a peer")
def delete_peer(peer_id: str, user: Caller, svc: Svc) -> dict[str, Any]:
    svc.peers.delete(user.account_id, user.id, peer_id)
    return {}
