"""Wire-form objects of a network map, the changes that move it, and `apply_delta`.

A peer's network map lists its own overlay config, every other peer of the account (allow-all
connectivity), the routes it receives and, on a routing peer, the firewall rules of the routes it
serves. Everything here is frozen and ordered (peers and routes by ID, rules by their fields) so two
maps compare exactly.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from meshroute.core.model import NetworkType, Peer, ha_unique_id, net_string

# §1.6: the synthetic IPv6 twin of an IPv4 exit route, sent to IPv6-capable peers.
V6_DEFAULT_ID_SUFFIX = "-v6-default"
V6_NET_ID_SUFFIX = "-v6"
V4_DEFAULT_NETWORK = "0.0.0.0/0"
V6_DEFAULT_NETWORK = "::/0"
RULE_ACTION_ACCEPT = "accept"
RULE_PROTOCOL_ALL = "all"


def effective_ipv6(peer: Peer) -> str | None:
    """The overlay IPv6 address a peer really uses: only when it is IPv6-capable and has one."""
    if peer.ipv6_capable and peer.ipv6 is not None:
        return str(peer.ipv6)
    return None


@dataclass(frozen=True, slots=True)
class MapPeer:
    """A peer as others (and itself) see it. `ipv6` is None unless the peer is IPv6-capable."""

    id: str
    key: str
    ip: str
    ipv6: str | None
    name: str
    dns_label: str
    endpoints: tuple[str, ...] = ()

    @classmethod
    def from_peer(cls, peer: Peer) -> MapPeer:
        return cls(
            id=peer.id,
            key=peer.key,
            ip=str(peer.ip),
            ipv6=effective_ipv6(peer),
            name=peer.name,
            dns_label=peer.dns_label,
            endpoints=tuple(peer.endpoints),
        )

    @property
    def ipv6_capable(self) -> bool:
        return self.ipv6 is not None


@dataclass(frozen=True, slots=True)
class MapRoute:
    """One route entry as a peer receives it (reference §3.3 item 5, plus the routing peer's ID).

    `id` is the route ID for single-peer routes and `<routeID>:<peerID>` for peer-group routes;
    the IPv6 twin of an exit route has `id` + `-v6-default`.
    """

    id: str
    net_id: str
    network: str  # placeholder 192.0.2.0/32 for domain routes
    domains: tuple[str, ...]  # punycode
    network_type: int  # NetworkType value
    peer_key: str  # routing peer's WireGuard key
    peer_id: str  # routing peer's ID
    metric: int
    masquerade: bool
    keep_route: bool
    skip_auto_apply: bool
    ha: str = field(default="", compare=False)  # as the server sent it (empty: computed here)

    @property
    def ha_id(self) -> str:
        """The HA group this route belongs to on a client: the server's `Route.ha_unique_id`, as it
        sent it, else computed by the same core function."""
        return self.ha or ha_unique_id(self.net_id, net_string(self.network_type, self.network, self.domains))

    @property
    def is_exit_node(self) -> bool:
        return self.network_type != NetworkType.DOMAIN and self.network in (
            V4_DEFAULT_NETWORK,
            V6_DEFAULT_NETWORK,
        )


@dataclass(frozen=True, slots=True, order=True)
class RouteFirewallRule:
    """Who may use a route the peer serves: traffic from `sources` to `destination` is accepted.

    Nobody outside `sources` may use the route (an empty tuple means nobody).
    """

    route_id: str  # expanded route ID, as in the peer's MapRoute list
    destination: str
    sources: tuple[str, ...]  # sorted CIDRs: /32 (v4 and domain routes) or /128 (v6)
    domains: tuple[str, ...] = ()
    is_dynamic: bool = False
    action: str = RULE_ACTION_ACCEPT
    protocol: str = RULE_PROTOCOL_ALL


@dataclass(frozen=True, slots=True)
class NetworkMap:
    serial: int
    self_config: MapPeer
    peers: tuple[MapPeer, ...]  # every other peer, sorted by ID
    routes: tuple[MapRoute, ...]  # sorted by ID
    rules: tuple[RouteFirewallRule, ...]  # sorted


@dataclass(frozen=True, slots=True)
class MapDelta:
    """What changed in one peer's map. `rules` is the full new rule list, or None if unchanged.

    A delta for a peer that just joined is relative to no map at all (`apply_delta(None, d)`); it
    then always carries `self_changed`.
    """

    serial: int
    peers_upserted: tuple[MapPeer, ...] = ()  # sorted by ID
    peers_removed: tuple[str, ...] = ()  # sorted
    routes_upserted: tuple[MapRoute, ...] = ()  # sorted by ID
    routes_removed: tuple[str, ...] = ()  # sorted
    rules: tuple[RouteFirewallRule, ...] | None = None
    self_changed: MapPeer | None = None

    @property
    def is_empty(self) -> bool:
        return not (
            self.peers_upserted
            or self.peers_removed
            or self.routes_upserted
            or self.routes_removed
            or self.rules is not None
            or self.self_changed is not None
        )


def _by_id(item: MapPeer | MapRoute) -> str:
    return item.id


def apply_delta(m: NetworkMap | None, d: MapDelta) -> NetworkMap:
    """The map after `d`; `m` None means the peer had no map yet (it just joined)."""
    if m is None:
        if d.self_changed is None:
            raise ValueError("a delta applied to no map must carry the peer's own config")
        m = NetworkMap(serial=d.serial, self_config=d.self_changed, peers=(), routes=(), rules=())
    peers = m.peers
    if d.peers_upserted or d.peers_removed:
        by_peer = {p.id: p for p in peers}
        for pid in d.peers_removed:
            by_peer.pop(pid, None)
        for p in d.peers_upserted:
            by_peer[p.id] = p
        peers = tuple(sorted(by_peer.values(), key=_by_id))
    routes = m.routes
    if d.routes_upserted or d.routes_removed:
        by_route = {r.id: r for r in routes}
        for rid in d.routes_removed:
            by_route.pop(rid, None)
        for r in d.routes_upserted:
            by_route[r.id] = r
        routes = tuple(sorted(by_route.values(), key=_by_id))
    return NetworkMap(
        serial=d.serial,
        self_config=d.self_changed if d.self_changed is not None else m.self_config,
        peers=peers,
        routes=routes,
        rules=d.rules if d.rules is not None else m.rules,
    )
