"""Peers: connected or not, overlay IPs, groups, the routes each serves and receives, a routing
peer's requirement checks (from its agent's last report) and when it was last seen."""

from __future__ import annotations

from fastapi import Request, Response

from meshroute.server.web.data import picture
from meshroute.server.web.render import page
from meshroute.server.web.routing import page_router
from meshroute.server.web.session import Viewer, views

router = page_router()


@router.get("/peers")
def peers_page(request: Request, who: Viewer) -> Response:
    reads = views(request)
    found = reads.peers(who.user.account_id, who.user.id)
    pic = picture(reads, who)
    served = {p: [r for r in pic.routes if p in {x.id for x in pic.routing_peers(r)}] for p in pic.peers}
    return page(request, "peers.html", who, found=found, pic=pic, served=served)


@router.get("/peers/{peer_id}")
def peer_page(request: Request, peer_id: str, who: Viewer) -> Response:
    reads = views(request)
    found = reads.peer(who.user.account_id, who.user.id, peer_id)
    pic = picture(reads, who)
    served = [r for r in pic.routes if peer_id in {x.id for x in pic.routing_peers(r)}]
    received = [r for r in pic.routes if peer_id in pic.receivers(r)]
    return page(
        request,
        "peer.html",
        who,
        p=found.peers[0],
        groups=found.groups_of.get(peer_id, ()),
        status=found.status,
        domain=found.domain,
        pic=pic,
        served=served,
        received=received,
    )
