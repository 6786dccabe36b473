"""The route plan: from the routes this peer receives, the user's selection and the candidates'
health, what table 7120 holds and which routing peer carries each prefix in WireGuard.

Per HA group (the routes sharing `MapRoute.ha_id`), as in the reference (§1.2):
- a **handler** owns the group's kernel route(s). They are there as long as the group is
  selected, whatever the routing peers' state: traffic for the prefix always enters the tunnel,
  and with no usable routing peer it is dropped there, never leaked to the underlay;
- a **watcher** owns which candidate's routing peer holds the prefix in its AllowedIPs (scoring
  and stickiness in `scoring.best_route`), and hands it over on failover.

KeepRoute (the seed's meaning): when no candidate is usable, a route *without* KeepRoute becomes
`unreachable` in table 7120 (applications fail at once, nothing leaks) and its AllowedIPs are
withdrawn; a route *with* KeepRoute stays pointed into the tunnel at the last routing peer, so
traffic resumes by itself when that peer is back. Among groups with the same prefix (different
NetIDs) the lowest metric of the chosen routes holds the prefix; the kernel itself gives the
longest prefix precedence. Pure: the engine applies the plan.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from meshroute.agent.routes.scoring import CandidateHealth, best_route
from meshroute.agent.routing.rtnl import TableRoute
from meshroute.core.model import NetworkType
from meshroute.core.networkmap.types import V6_DEFAULT_NETWORK, MapRoute, NetworkMap
from meshroute.core.prefixes import route_refusal
from meshroute.core.status import RouteState, RouteUse

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
__all__ = ["GroupView", "RouteManager", "RoutePlan", "Watcher", "client_groups", "route_refusal"]


def client_groups(m: NetworkMap) -> dict[str, tuple[MapRoute, ...]]:
    """The HA groups this peer is a client of: every received route not served by this peer
    (the server already leaves out the groups it serves), in route-ID order."""
    groups: dict[str, list[MapRoute]] = {}
    for route in m.routes:
        if route.peer_key != m.self_config.key:
            groups.setdefault(route.ha_id, []).append(route)
    return {ha: tuple(sorted(routes, key=lambda r: r.id)) for ha, routes in sorted(groups.items())}


@dataclass(slots=True)
class Watcher:
    """Which candidate carries one HA group; remembers its choice for stickiness and KeepRoute.

    As in the reference (§1.3), the choice is made again only when the candidates or their states
    change, never for a latency change alone: under load the carrying peer's latency rises, and
    moving a prefix then would cut every masqueraded connection through it for nothing."""

    current: str | None = None  # route ID
    last_peer: str | None = None  # the routing peer that carried it last (KeepRoute)
    # the candidates (their metric and routing peer too) and their states at the last choice
    seen: tuple[tuple[MapRoute, str | None], ...] | None = None

    def decide(
        self, candidates: Sequence[MapRoute], health: Mapping[str, CandidateHealth]
    ) -> MapRoute | None:
        now = tuple((r, health[r.id].status.value if r.id in health else None) for r in candidates)
        if now == self.seen:
            return next((r for r in candidates if r.id == self.current), None)
        self.seen = now
        chosen_id = best_route(candidates, health, self.current)
        self.current = chosen_id
        chosen = next((r for r in candidates if r.id == chosen_id), None)
        if chosen is not None:
            self.last_peer = chosen.peer_key
        return chosen


@dataclass(frozen=True, slots=True)
class GroupView:
    """One HA group as `meshroute agent routes list` shows it."""

    ha_id: str
    net_id: str
    network: str
    domains: tuple[str, ...]
    candidates: tuple[MapRoute, ...]
    selected: bool
    installed: bool  # its kernel route is in table 7120
    chosen: str | None  # route ID whose routing peer carries it now
    note: str = ""  # why it is not installed or not carried
    kept: str | None = None  # with no usable candidate: the routing peer (key) KeepRoute holds it on

    @property
    def use(self) -> RouteUse:
        """What the agent reports to the server about this group."""
        ids = tuple(r.id for r in self.candidates)
        if not self.selected:
            return RouteUse(self.ha_id, ids, "", RouteState.DESELECTED)
        if not self.installed:
            return RouteUse(self.ha_id, ids, "", RouteState.NOT_ROUTED)
        by_id = {r.id: r for r in self.candidates}
        if self.chosen in by_id:
            return RouteUse(self.ha_id, ids, by_id[self.chosen].peer_id, RouteState.ROUTING)
        kept = next((r.peer_id for r in self.candidates if r.peer_key == self.kept), None)
        if kept is not None:
            return RouteUse(self.ha_id, ids, kept, RouteState.KEPT)
        return RouteUse(self.ha_id, ids, "", RouteState.NO_ROUTING_PEER)


@dataclass(frozen=True, slots=True)
class RoutePlan:
    table: frozenset[TableRoute]
    allowed: Mapping[str, tuple[str, ...]]  # routing peer key -> routed prefixes it holds
    groups: tuple[GroupView, ...]
    probe_peers: frozenset[str] = field(default_factory=frozenset)  # candidates of selected groups


class RouteManager:
    def __init__(self) -> None:
        self.watchers: dict[str, Watcher] = {}

    def plan(
        self,
        m: NetworkMap,
        selected: Mapping[str, Sequence[MapRoute]],
        health: Mapping[str, CandidateHealth],
        overlay: Sequence[Network],
        learned: Callable[[str], Iterable[str]] = lambda _: (),
    ) -> RoutePlan:
        """`selected`: the client groups that pass the user's selection (exit nodes filtered to
        their auto-applicable candidates); `health` by route ID; `learned`: the host prefixes a
        domain group learned from DNS answers (its HA ID -> /32 and /128 prefixes)."""
        groups = client_groups(m)
        self.watchers = {ha: w for ha, w in self.watchers.items() if ha in selected}
        has_v6 = any(n.version == 6 for n in overlay)
        v6_exit_served = any(r.network == V6_DEFAULT_NETWORK for rs in selected.values() for r in rs)
        routed: dict[str, bool] = {}  # prefix -> some group of it has a routing peer to hold it
        extra: set[TableRoute] = set()
        # prefix -> (kept only by KeepRoute, metric, ha_id, peer key): the smallest claim holds it
        holders: dict[str, tuple[bool, int, str, str]] = {}
        views: list[GroupView] = []
        probe: set[str] = set()
        for ha, routes in groups.items():
            first = routes[0]
            candidates = tuple(selected.get(ha, ()))
            if not candidates:
                views.append(_view(routes, selected=False))
                continue
            dead: list[str] = []  # learned /128s without an overlay IPv6: refused at once
            if first.network_type == NetworkType.DOMAIN:
                # each learned address is routed like a network (never one inside the mesh)
                prefixes = sorted(p for p in learned(ha) if route_refusal(p, overlay) is None)
                if not has_v6:
                    dead = [p for p in prefixes if ":" in p]
                    prefixes = [p for p in prefixes if ":" not in p]
            else:
                refusal = route_refusal(first.network, overlay)
                if refusal is not None:
                    views.append(_view(routes, note=f"not routed: {refusal}"))
                    continue
                prefixes = [first.network]
            probe |= {r.peer_key for r in candidates}
            watcher = self.watchers.setdefault(ha, Watcher())
            chosen = watcher.decide(candidates, health)
            holder = chosen.peer_key if chosen else (watcher.last_peer if first.keep_route else None)
            if holder is not None and holder not in {r.peer_key for r in routes}:
                holder = None  # the last routing peer left the group
            for prefix in prefixes:
                # Several groups (NetIDs) may share a prefix: one kernel route for it, into the
                # tunnel when any of them has a routing peer to hold it.
                routed[prefix] = routed.get(prefix, False) or holder is not None
                if holder is not None:
                    # A group that really chose beats one that only keeps its last peer (KeepRoute).
                    claim = (chosen is None, chosen.metric if chosen else first.metric, ha, holder)
                    if prefix not in holders or claim < holders[prefix]:
                        holders[prefix] = claim
            for prefix in dead:
                # No IPv6 in the tunnel: applications fail over to IPv4 at once, as for an exit
                # node's missing ::/0, rather than send underlay IPv6 the routing peer would drop.
                routed.setdefault(prefix, False)
            if first.network == "0.0.0.0/0" and not has_v6 and not v6_exit_served:
                extra.add(TableRoute(V6_DEFAULT_NETWORK, unreachable=True))  # no IPv6 around the exit
            if chosen is not None:
                note = ""
            elif holder is not None:
                note = "no usable routing peer: kept on the last one (KeepRoute)"
            else:
                note = "no usable routing peer: unreachable until one is back"
            views.append(
                _view(
                    routes,
                    installed=True,
                    chosen=chosen.id if chosen else None,
                    note=note,
                    kept=holder if chosen is None else None,
                )
            )
        allowed: dict[str, list[str]] = {}
        for prefix, (_, _, _, peer) in sorted(holders.items()):
            allowed.setdefault(peer, []).append(prefix)
        table = {TableRoute(prefix, unreachable=not ok) for prefix, ok in routed.items()}
        table |= {r for r in extra if r.prefix not in routed}
        return RoutePlan(
            table=frozenset(table),
            allowed={k: tuple(v) for k, v in allowed.items()},
            groups=tuple(views),
            probe_peers=frozenset(probe),
        )


def _view(
    routes: tuple[MapRoute, ...],
    *,
    selected: bool = True,
    installed: bool = False,
    chosen: str | None = None,
    note: str = "",
    kept: str | None = None,
) -> GroupView:
    first = routes[0]
    return GroupView(
        ha_id=first.ha_id,
        net_id=first.net_id,
        network=first.network,
        domains=first.domains,
        candidates=routes,
        selected=selected,
        installed=installed,
        chosen=chosen,
        note=note,
        kept=kept,
    )
