"""What route explain (`core.explain`) needs before it orders anything: the destination as the
user gave it, which routes cover it and how, and why a route does not reach a peer.

Who receives a route follows the network map's rules (`networkmap/oracle.py`): an enabled route
with a destination and a routing peer goes to the peers of its distribution groups, except its
routing peers and the peers that serve a route of the same HA group; an IPv6 route only to peers
that use IPv6; an IPv4 exit node also as its `::/0` twin to the peers that use IPv6.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass

from meshroute.core.domains import to_punycode, validate_domains
from meshroute.core.errors import InvalidArgument
from meshroute.core.model import NetworkType, Route, ha_unique_id
from meshroute.core.networkmap.types import V4_DEFAULT_NETWORK, V6_DEFAULT_NETWORK, V6_NET_ID_SUFFIX

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
EXACT_NAME = 10_000  # specificity of a domain route naming the destination exactly
WILDCARD = 1_000  # plus the labels of the wildcard's base: `*.a.b` beats `*.b`
MAX_DESTINATION_CHARS = 253


@dataclass(frozen=True, slots=True)
class PeerFacts:
    """What explain needs of a peer of the account."""

    id: str
    name: str
    connected: bool  # its agent is connected to the management server now
    uses_ipv6: bool  # IPv6-capable with an overlay IPv6 address


@dataclass(frozen=True, slots=True)
class Destination:
    text: str  # as given
    address: IPAddress | None = None
    name: str | None = None  # lower-case punycode

    @property
    def kind(self) -> str:
        return "address" if self.address is not None else "name"


def parse_destination(text: str) -> Destination:
    """An IP address or a domain name (no wildcard), else InvalidArgument."""
    given = text.strip()
    bad = InvalidArgument(f"destination should be an IP address or a domain name: {text!r}")
    if not given or len(given) > MAX_DESTINATION_CHARS:
        raise bad
    try:
        return Destination(given, address=ipaddress.ip_address(given))
    except ValueError:
        pass
    if given.startswith("*") or ":" in given or "/" in given:
        raise bad
    try:
        (name,) = validate_domains([given.removesuffix(".")])
    except InvalidArgument:
        raise bad from None
    return Destination(given, name=name)


@dataclass(frozen=True, slots=True)
class Match:
    """How a route covers the destination."""

    network: str  # what the client installs: the prefix, `::/0` for a twin, or the domains
    ha_id: str  # the HA group on the client
    specificity: int  # prefix length; for names EXACT_NAME or WILDCARD + labels; exit nodes 0
    how: str  # said to people
    twin: bool = False  # the IPv6 twin of an IPv4 exit node


def is_exit(route: Route) -> bool:
    return route.network_type != NetworkType.DOMAIN and str(route.network) in (
        V4_DEFAULT_NETWORK,
        V6_DEFAULT_NETWORK,
    )


def match(route: Route, dest: Destination, peer_uses_ipv6: bool) -> Match | None:
    """How `route` covers `dest` on a peer, or None. Names are matched against domain routes
    (exactly, or a wildcard's proper subdomains, as the agent's DNS does) and exit nodes; addresses
    against network routes (an IPv4 exit node covers IPv6 addresses through its twin)."""
    if route.network_type == NetworkType.DOMAIN:
        return _match_name(route, dest.name) if dest.name is not None else None
    if route.network is None:
        return None
    net = route.network
    if dest.address is None:  # a name: only an exit node is sure to cover what it resolves to
        if is_exit(route):
            return Match(str(net), route.ha_unique_id(), 0, f"exit node {net}: any address the name has")
        return None
    if dest.address.version == net.version and dest.address in net:
        what = f"exit node {net}" if is_exit(route) else str(net)
        return Match(str(net), route.ha_unique_id(), net.prefixlen, f"{what} contains {dest.address}")
    if dest.address.version == 6 and str(net) == V4_DEFAULT_NETWORK and peer_uses_ipv6:
        ha = ha_unique_id(route.net_id + V6_NET_ID_SUFFIX, V6_DEFAULT_NETWORK)
        return Match(V6_DEFAULT_NETWORK, ha, 0, "the ::/0 twin of the IPv4 exit node", twin=True)
    return None


def _match_name(route: Route, name: str | None) -> Match | None:
    if name is None:
        return None
    best: tuple[int, str] | None = None
    for pattern in route.domains:
        puny = to_punycode(pattern)
        if puny == name:
            found = (EXACT_NAME, f"the domain route names {name}")
        elif puny.startswith("*.") and name.endswith(puny[1:]):
            found = (WILDCARD + puny.count("."), f"{puny} covers {name}")
        else:
            continue
        if best is None or found[0] > best[0]:
            best = found
    if best is None:
        return None
    return Match(route.net_string(), route.ha_unique_id(), best[0], best[1])


class Receiving:
    """Who receives which route, for one account (the oracle's rules)."""

    def __init__(
        self,
        routes: Sequence[Route],
        members: Mapping[str, Collection[str]],
        peers: Mapping[str, PeerFacts],
        group_names: Mapping[str, str],
    ) -> None:
        self.members = members
        self.peers = peers
        self.group_names = group_names
        self.routing: dict[str, set[str]] = {r.id: self._routing_peers(r) for r in routes}
        self.serving: dict[str, dict[str, Route]] = {}  # HA ID -> routing peer -> a route it serves
        for r in routes:
            for pid in sorted(self.routing[r.id]):
                self.serving.setdefault(r.ha_unique_id(), {}).setdefault(pid, r)

    def _routing_peers(self, r: Route) -> set[str]:
        if r.peer:
            return {r.peer} if r.peer in self.peers else set()
        return {p for gid in r.peer_groups for p in self.members.get(gid, ()) if p in self.peers}

    def in_groups(self, peer_id: str, group_ids: Sequence[str]) -> bool:
        return any(peer_id in self.members.get(gid, ()) for gid in group_ids)

    def names(self, group_ids: Sequence[str]) -> str:
        return ", ".join(self.group_names.get(g, g) for g in group_ids) or "none"

    def why_not(self, route: Route, peer: PeerFacts, twin: bool = False) -> tuple[str, ...]:
        """Why `peer` does not receive `route` (every reason that applies), or () when it does."""
        reasons: list[str] = []
        if not route.enabled:
            reasons.append("the route is disabled")
        if route.kind is None:
            reasons.append("the route has no network")
        routing = self.routing.get(route.id, set())
        if not routing:
            reasons.append(
                "the route has no routing peer: its peer groups have no members"
                if route.peer_groups
                else "the route has no routing peer: its peer is gone"
            )
        other = self.serving.get(route.ha_unique_id(), {}).get(peer.id)
        if peer.id in routing:
            reasons.append(
                "this peer is a routing peer of the route: it serves the route, it does not use it"
            )
        elif other is not None:
            reasons.append(
                f"this peer serves route {other.net_id} ({other.id}) of the same HA group, "
                "so it does not use this one"
            )
        if not self.in_groups(peer.id, route.groups):
            reasons.append(f"this peer is not in its distribution groups ({self.names(route.groups)})")
        if (route.kind == NetworkType.IPV6 or twin) and not peer.uses_ipv6:
            reasons.append("an IPv6 route, and this peer does not use IPv6 in the mesh")
        return tuple(reasons)

    def allowed(self, route: Route, peer_id: str) -> bool:
        """Whether the route's routing peers accept this peer's traffic (its access-control
        groups narrow the distribution groups; none: every receiver)."""
        return not route.access_control_groups or self.in_groups(peer_id, route.access_control_groups)
