"""A peer's network map computed from plain lists, with no index and no cache.

This is the specification the incremental engine (`state.py`) is tested against: simple, slow
(O(routes x peers) per map) and written independently of the engine.

Decisions (reference §3 under an allow-all policy):
- every peer reaches every other peer;
- T receives its own enabled routes (single-peer routes keep their ID, peer-group routes become
  `<routeID>:<T>`), plus every enabled route whose distribution groups contain T, once per routing
  peer, unless T itself serves a route (enabled or not) with the same HA unique ID;
- IPv6 routes are dropped for peers that are not IPv6-capable; an IPv4 exit route gets a `::/0`
  twin for IPv6-capable peers (§1.6);
- the routing peer gets one firewall rule per route entry it serves; sources are the members of the
  distribution groups, narrowed to the access-control groups when set, minus itself;
- group members that are not peers of the account are ignored.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

from meshroute.core.model import DOMAIN_PLACEHOLDER, Group, NetworkType, Peer, Route
from meshroute.core.networkmap.types import (
    V4_DEFAULT_NETWORK,
    V6_DEFAULT_ID_SUFFIX,
    V6_DEFAULT_NETWORK,
    V6_NET_ID_SUFFIX,
    MapPeer,
    MapRoute,
    NetworkMap,
    RouteFirewallRule,
    effective_ipv6,
)


def _kind(route: Route) -> NetworkType | None:
    """The route's effective network type, or None when it cannot be sent (no prefix). The oracle
    keeps its own copy of `Route.kind`: it re-derives every rule independently of the engine."""
    if route.network_type == NetworkType.DOMAIN:
        return NetworkType.DOMAIN
    if isinstance(route.network, ipaddress.IPv6Network):
        return NetworkType.IPV6
    if isinstance(route.network, ipaddress.IPv4Network):
        return NetworkType.IPV4
    return None


def _entry(route: Route, kind: NetworkType, routing_peer: Peer) -> MapRoute:
    return MapRoute(
        id=route.id if route.peer else f"{route.id}:{routing_peer.id}",
        net_id=route.net_id,
        network=str(DOMAIN_PLACEHOLDER) if kind == NetworkType.DOMAIN else str(route.network),
        domains=tuple(route.domains),
        network_type=int(kind),
        peer_key=routing_peer.key,
        peer_id=routing_peer.id,
        metric=route.metric,
        masquerade=route.masquerade,
        keep_route=route.keep_route,
        skip_auto_apply=route.skip_auto_apply,
    )


def _twin(e: MapRoute) -> MapRoute:
    return MapRoute(
        id=e.id + V6_DEFAULT_ID_SUFFIX,
        net_id=e.net_id + V6_NET_ID_SUFFIX,
        network=V6_DEFAULT_NETWORK,
        domains=e.domains,
        network_type=int(NetworkType.IPV6),
        peer_key=e.peer_key,
        peer_id=e.peer_id,
        metric=e.metric,
        masquerade=e.masquerade,
        keep_route=e.keep_route,
        skip_auto_apply=e.skip_auto_apply,
    )


def compute_network_map(
    peer_id: str,
    peers: Iterable[Peer],
    groups: Iterable[Group],
    routes: Iterable[Route],
    serial: int,
) -> NetworkMap:
    """The full map of `peer_id` (KeyError if it is not a peer of the account)."""
    by_id = {p.id: p for p in peers}
    target = by_id[peer_id]
    members = {g.id: {m for m in g.peers if m in by_id} for g in groups}
    route_list = list(routes)

    def union(gids: Iterable[str]) -> set[str]:
        out: set[str] = set()
        for gid in gids:
            out |= members.get(gid, set())
        return out

    def routing_peers(r: Route) -> set[str]:
        if r.peer:
            return {r.peer} if r.peer in by_id else set()
        return union(r.peer_groups)

    target_v6 = effective_ipv6(target) is not None
    own = [r for r in route_list if peer_id in routing_peers(r)]
    own_ha = {r.ha_unique_id() for r in own}

    entries: list[MapRoute] = []
    served: list[tuple[Route, NetworkType, MapRoute]] = []
    for r in own:
        kind = _kind(r)
        if r.enabled and kind is not None:
            e = _entry(r, kind, target)
            entries.append(e)
            served.append((r, kind, e))
    for r in route_list:
        kind = _kind(r)
        if not r.enabled or kind is None or peer_id in routing_peers(r):
            continue
        if peer_id not in union(r.groups) or r.ha_unique_id() in own_ha:
            continue
        entries.extend(_entry(r, kind, by_id[pid]) for pid in routing_peers(r))

    final: list[MapRoute] = []
    for e in entries:
        if e.network_type == NetworkType.IPV6 and not target_v6:
            continue
        final.append(e)
        if target_v6 and e.network == V4_DEFAULT_NETWORK:
            final.append(_twin(e))

    rules: list[RouteFirewallRule] = []
    for r, kind, e in served:
        if kind == NetworkType.IPV6 and not target_v6:
            continue
        allowed = union(r.groups)
        if r.access_control_groups:
            allowed &= union(r.access_control_groups)
        allowed.discard(peer_id)
        v4 = tuple(sorted({f"{by_id[p].ip}/32" for p in allowed}))
        v6 = tuple(sorted({f"{a}/128" for p in allowed if (a := effective_ipv6(by_id[p])) is not None}))
        domains = tuple(r.domains)
        if kind == NetworkType.IPV6:
            rules.append(RouteFirewallRule(e.id, e.network, v6))
        elif kind == NetworkType.DOMAIN:
            rules.append(RouteFirewallRule(e.id, e.network, v4, domains, True))
            if target_v6 and v6:
                rules.append(RouteFirewallRule(e.id, e.network, v6, domains, True))
        else:
            rules.append(RouteFirewallRule(e.id, e.network, v4))
            if target_v6 and v6 and e.network == V4_DEFAULT_NETWORK:
                rules.append(RouteFirewallRule(e.id + V6_DEFAULT_ID_SUFFIX, V6_DEFAULT_NETWORK, v6))

    others = sorted((MapPeer.from_peer(p) for p in by_id.values() if p.id != peer_id), key=lambda p: p.id)
    return NetworkMap(
        serial=serial,
        self_config=MapPeer.from_peer(target),
        peers=tuple(others),
        routes=tuple(sorted(final, key=lambda e: e.id)),
        rules=tuple(sorted(rules)),
    )
