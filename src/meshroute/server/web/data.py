"""What the dashboard's pages show of an account, read through the views (the same permission
rules as the API): its routes, groups and peers, and the questions the pages ask of them."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from meshroute.core.model import Group, Route
from meshroute.core.route_status import route_receivers
from meshroute.server.store.summaries import PeerSummary
from meshroute.server.views import Views
from meshroute.server.web.session import Visitor


@dataclass(slots=True)
class Picture:
    routes: list[Route]
    groups: dict[str, Group]  # in creation order
    peers: dict[str, PeerSummary]  # in creation order
    _receivers: dict[str, set[str]] = field(default_factory=dict)

    def group_name(self, gid: str) -> str:
        group = self.groups.get(gid)
        return group.name if group is not None else gid

    def peer_name(self, pid: str | None) -> str:
        if not pid:
            return "-"
        peer = self.peers.get(pid)
        return peer.name if peer is not None else pid

    def members(self, gid: str) -> list[PeerSummary]:
        group = self.groups.get(gid)
        return [self.peers[p] for p in group.peers if p in self.peers] if group is not None else []

    def up(self, gid: str) -> int:
        return sum(1 for p in self.members(gid) if p.connected)

    def routing_peers(self, route: Route) -> list[PeerSummary]:
        if route.peer:
            return [self.peers[route.peer]] if route.peer in self.peers else []
        seen: dict[str, PeerSummary] = {}
        for gid in route.peer_groups:
            for p in self.members(gid):
                seen.setdefault(p.id, p)
        return list(seen.values())

    def ha_group(self, route: Route) -> list[Route]:
        """The routes of the route's HA group (itself first)."""
        ha = route.ha_unique_id()
        return [route, *(r for r in self.routes if r.id != route.id and r.ha_unique_id() == ha)]

    def receivers(self, route: Route) -> set[str]:
        if route.id not in self._receivers:
            members = {gid: g.peers for gid, g in self.groups.items()}
            uses_ipv6 = {p.id: bool(p.ipv6_capable and p.ipv6) for p in self.peers.values()}
            self._receivers[route.id] = route_receivers(route, self.ha_group(route), members, uses_ipv6)
        return self._receivers[route.id]

    def routes_using(self, gid: str) -> list[tuple[Route, str]]:
        """The routes that name a group, and as what."""
        out = []
        for r in self.routes:
            roles = [
                what
                for what, ids in (
                    ("distribution", r.groups),
                    ("routing peers", r.peer_groups),
                    ("access control", r.access_control_groups),
                )
                if gid in ids
            ]
            if roles:
                out.append((r, ", ".join(roles)))
        return out

    def names(self, ids: Iterable[str]) -> str:
        return ", ".join(self.group_name(g) for g in ids) or "-"


def picture(views: Views, who: Visitor) -> Picture:
    """The account as the visitor may see it (PermissionDenied as the API would answer)."""
    user = who.user
    routes = views.routes(user.account_id, user.id)
    groups = views.groups(user.account_id, user.id).groups
    peers = views.peers(user.account_id, user.id).peers
    return Picture(routes, {g.id: g for g in groups}, {p.id: p for p in peers})


def net_id_blocks(routes: list[Route]) -> list[tuple[str, list[Route]]]:
    """Routes grouped by network ID (NetBird's "Network Routes"), each block by destination and metric."""
    blocks: dict[str, list[Route]] = {}
    for r in sorted(routes, key=lambda r: (r.net_id.casefold(), r.net_id, r.net_string(), r.metric, r.id)):
        blocks.setdefault(r.net_id, []).append(r)
    return list(blocks.items())
