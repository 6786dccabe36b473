"""What the server shows of the agents' status reports: which client peers receive a route, and for
each of them the routing peer it uses now (`GET /api/routes/{id}/status`). Pure functions over
plain objects; the server's view reads the store and calls them.

Who receives a route follows the network map's rules exactly (`networkmap/oracle.py`): an
enabled route with a destination and at least one routing peer goes to the peers of its
distribution groups, except its routing peers and the peers that serve a route of the same HA
group (enabled or not); an IPv6 route only to peers that use IPv6.

A client's state for a route is what its agent last reported for the HA group that holds the
route (`base_route_id` of the report's map route IDs; the IPv4 entry wins over an exit node's IPv6
twin): `unknown` when it reported nothing for that group, and `stale` while its agent is not
connected, which never shows a routing peer as current.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Final

from meshroute.core.model import NetworkType, Route
from meshroute.core.networkmap.types import V6_DEFAULT_ID_SUFFIX
from meshroute.core.status import RouteUse, StatusReport, base_route_id

UNKNOWN: Final = "unknown"  # the peer has not reported the route's HA group (yet)
STALE: Final = "stale"  # the peer's agent is not connected now: its report may be out of date


@dataclass(frozen=True, slots=True)
class PeerStatus:
    """A peer's last status report as the server keeps it. `updated_at`: when the stored report
    last changed (an agent repeating an unchanged report changes nothing)."""

    peer_id: str
    account_id: str
    report: StatusReport
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class ClientStatus:
    """One client peer of a route."""

    peer_id: str
    state: str  # a RouteState value, UNKNOWN or STALE
    routing_peer_id: str | None  # the routing peer carrying the route now; never for UNKNOWN or STALE
    last_routing_peer_id: str | None  # the routing peer in the last report (None: none, or no report)
    updated_at: datetime | None  # of the report (None: UNKNOWN)
    learned_addresses: int | None = None  # domain routes: addresses learned from DNS (last report)


def route_receivers(
    route: Route,
    routes: Iterable[Route],
    members: Mapping[str, Collection[str]],
    peers: Mapping[str, bool],
) -> set[str]:
    """The client peers whose network map holds `route`. `routes`: every route of the account;
    `members`: group ID -> member peer IDs; `peers`: every peer of the account, ID -> whether it
    uses IPv6 (IPv6-capable with an address)."""

    def routing_peers(r: Route) -> set[str]:
        if r.peer:
            return {r.peer} if r.peer in peers else set()
        return {p for gid in r.peer_groups for p in members.get(gid, ()) if p in peers}

    kind = route.kind
    if not route.enabled or kind is None:
        return set()
    if not routing_peers(route):  # a client receives one entry per routing peer: none here
        return set()
    ha = route.ha_unique_id()
    serving = {p for r in routes if r.ha_unique_id() == ha for p in routing_peers(r)}
    serving |= routing_peers(route)  # `routes` may be a list without the route itself
    receivers = {p for gid in route.groups for p in members.get(gid, ()) if p in peers} - serving
    if kind == NetworkType.IPV6:
        receivers = {p for p in receivers if peers[p]}
    return receivers


def use_of(report: StatusReport, route_id: str) -> RouteUse | None:
    """The HA group of the report that holds `route_id` (as a single-peer route `<id>` or a
    peer-group route `<id>:<peer>`); the IPv6 twin of an exit node only when nothing else does."""
    twin: RouteUse | None = None
    for use in report.routes:
        for map_id in use.route_ids:
            if base_route_id(map_id) != route_id:
                continue
            if not map_id.endswith(V6_DEFAULT_ID_SUFFIX):
                return use
            twin = twin or use
    return twin


def client_status(
    peer_id: str, connected: bool, status: PeerStatus | None, route_id: str, domain: bool = False
) -> ClientStatus:
    """`domain`: the route is a domain route (its clients report how many addresses they learned)."""
    use = use_of(status.report, route_id) if status is not None else None
    if status is None or use is None:
        return ClientStatus(peer_id, UNKNOWN, None, None, None)
    last = use.routing_peer_id or None
    learned = use.learned if domain else None
    if not connected:
        return ClientStatus(peer_id, STALE, None, last, status.updated_at, learned)
    return ClientStatus(peer_id, use.state.value, last, last, status.updated_at, learned)
