"""What the network-map engine keeps per route and per peer, and the pure functions over it.

- `RouteSpec`: a route as the engine needs it (frozen); `RuleBase`: the peer-independent half of a
  served route's firewall rules; `Expansion`: a route's entries, one per routing peer; `Part`:
  the per-peer part of a map as last sent;
- the helpers that turn them into wire objects (`rules_of`, `twin`) and compare sorted CIDR tuples
  without copying them.
"""

from __future__ import annotations

import ipaddress
from bisect import bisect_left
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from operator import attrgetter
from typing import NamedTuple

from meshroute.core.model import DOMAIN_PLACEHOLDER, NetworkType, Route
from meshroute.core.networkmap.types import (
    V4_DEFAULT_NETWORK,
    V6_DEFAULT_ID_SUFFIX,
    V6_DEFAULT_NETWORK,
    V6_NET_ID_SUFFIX,
    MapPeer,
    MapRoute,
    RouteFirewallRule,
)

INVALID = 0
V4 = int(NetworkType.IPV4)
V6 = int(NetworkType.IPV6)
DOMAIN = int(NetworkType.DOMAIN)
PLACEHOLDER = str(DOMAIN_PLACEHOLDER)
EMPTY: frozenset[str] = frozenset()
ENTRY_ID = attrgetter("id")

Cidrs = tuple[str, ...]


class SourceKey(NamedTuple):
    """Who may use a route: routes with the same key share their sources."""

    groups: tuple[str, ...]  # sorted distribution groups
    acgs: tuple[str, ...]  # sorted access-control groups


class OwnCidrs(NamedTuple):
    """A peer's own addresses as they appear in firewall-rule sources."""

    v4: str  # /32
    v6: str | None  # /128, None unless the peer is IPv6-capable


NO_CIDRS = OwnCidrs("", None)


class Selection(NamedTuple):
    """Which routes a peer serves and receives."""

    own: frozenset[str]  # enabled routes it serves and receives (after the IPv6 filter)
    recv: frozenset[str]  # routes it receives through other routing peers
    v6: bool  # IPv6-capable


@dataclass(frozen=True, slots=True)
class RouteSpec:
    """A route as the engine needs it (a frozen copy; `Route` itself is mutable)."""

    id: str
    net_id: str
    kind: int  # NetworkType value; 0 when the route has no usable prefix
    network: str
    domains: tuple[str, ...]
    peer: str
    peer_groups: tuple[str, ...]  # empty for single-peer routes
    groups: tuple[str, ...]
    acgs: tuple[str, ...]
    enabled: bool
    ha: str
    metric: int
    masquerade: bool
    keep_route: bool
    skip_auto_apply: bool
    src_key: SourceKey  # who may use the route; routes with the same key share their sources

    @property
    def active(self) -> bool:
        return self.enabled and self.kind != INVALID

    @property
    def is_exit(self) -> bool:
        return self.kind == V4 and self.network == V4_DEFAULT_NETWORK

    def selection_key(self) -> tuple[object, ...]:
        """Everything that decides who serves or receives the route."""
        return (self.active, self.peer, self.peer_groups, self.groups, self.ha, self.kind == V6)

    @classmethod
    def of(cls, r: Route) -> RouteSpec:
        if r.network_type == NetworkType.DOMAIN:
            kind, network = DOMAIN, PLACEHOLDER
        elif isinstance(r.network, ipaddress.IPv6Network):
            kind, network = V6, str(r.network)
        elif isinstance(r.network, ipaddress.IPv4Network):
            kind, network = V4, str(r.network)
        else:
            kind, network = INVALID, ""
        return cls(
            id=r.id,
            net_id=r.net_id,
            kind=kind,
            network=network,
            domains=tuple(r.domains),
            peer=r.peer,
            peer_groups=() if r.peer else tuple(r.peer_groups),
            groups=tuple(r.groups),
            acgs=tuple(r.access_control_groups),
            enabled=r.enabled,
            ha=r.ha_unique_id(),
            metric=r.metric,
            masquerade=r.masquerade,
            keep_route=r.keep_route,
            skip_auto_apply=r.skip_auto_apply,
            src_key=SourceKey(tuple(sorted(set(r.groups))), tuple(sorted(set(r.access_control_groups)))),
        )


@dataclass(frozen=True, slots=True, eq=False)
class RuleBase:
    """The peer-independent half of a served route's firewall rules, shared by its routing peers.

    A routing peer's rule is this minus the peer itself (its ID in the rule ID of a peer-group
    route, its address out of the sources); `_rules_of` materializes it only when it is sent.
    """

    route_id: str
    single: bool  # single-peer route: the rule ID is the route ID
    kind: int
    network: str
    domains: tuple[str, ...]
    is_exit: bool
    v4: Cidrs  # sorted /32 sources, shared with every route of the same `src_key`
    v6: Cidrs  # sorted /128 sources

    # No ":" and no twin suffix in the route ID: no rule ID of this route can equal one of
    # another route's (`<route>`, `<route>:<peer>`, either + `-v6-default`).
    plain_id: bool

    def same_head(self, other: RuleBase) -> bool:
        """Same rule IDs, destinations and kinds; only the sources may differ."""
        return (self.route_id, self.single, self.kind, self.network, self.domains, self.is_exit) == (
            other.route_id,
            other.single,
            other.kind,
            other.network,
            other.domains,
            other.is_exit,
        )

    def same_sources(self, other: RuleBase, me: OwnCidrs) -> bool:
        """With the same head: whether both give a peer with addresses `me` the same rules."""
        me4, me6 = me
        if self.kind != V6 and not same_without(self.v4, other.v4, me4):
            return False
        uses_v6 = self.kind == V6 or (me6 is not None and (self.kind == DOMAIN or self.is_exit))
        return not uses_v6 or same_without(self.v6, other.v6, me6)


@dataclass(frozen=True, slots=True)
class Expansion:
    """A route's entries, one per routing peer (`twin`: the `::/0` copies of an exit route)."""

    base: dict[str, MapRoute]
    twin: dict[str, MapRoute]


NO_EXPANSION = Expansion({}, {})


@dataclass(frozen=True, slots=True)
class Part:
    """The per-peer part of a map, as last sent."""

    own: frozenset[str]  # enabled routes T serves and receives (after the IPv6 filter); interned
    recv: frozenset[str]  # routes T receives through other routing peers; interned
    v6: bool
    bases: tuple[RuleBase, ...]  # what T's last sent rules were made of, by route ID
    addr: MapPeer | None  # T as it was then (for its addresses); None when T has no rules


def v6_twin(e: MapRoute) -> MapRoute:
    return MapRoute(
        id=e.id + V6_DEFAULT_ID_SUFFIX,
        net_id=e.net_id + V6_NET_ID_SUFFIX,
        network=V6_DEFAULT_NETWORK,
        domains=e.domains,
        network_type=V6,
        peer_key=e.peer_key,
        peer_id=e.peer_id,
        metric=e.metric,
        masquerade=e.masquerade,
        keep_route=e.keep_route,
        skip_auto_apply=e.skip_auto_apply,
    )


def without(items: tuple[str, ...], item: str | None) -> tuple[str, ...]:
    """`items` (sorted) without `item`."""
    if item is None:
        return items
    i = bisect_left(items, item)
    if i < len(items) and items[i] == item:
        return items[:i] + items[i + 1 :]
    return items


def contains(items: tuple[str, ...], item: str) -> bool:
    i = bisect_left(items, item)
    return i < len(items) and items[i] == item


def same_without(a: Cidrs, b: Cidrs, me: str | None) -> bool:
    """Whether sorted `a` and `b` are equal once `me` is removed from both, without copying them."""
    if a is b:
        return True
    if me is None or contains(a, me) == contains(b, me):
        return a == b
    return without(a, me) == without(b, me)


def own_cidrs(view: MapPeer | None) -> OwnCidrs:
    if view is None:
        return NO_CIDRS
    return OwnCidrs(view.ip + "/32", None if view.ipv6 is None else view.ipv6 + "/128")


def rules_of(pid: str, view: MapPeer | None, bases: Sequence[RuleBase]) -> tuple[RouteFirewallRule, ...]:
    """The firewall rules of routing peer `pid` (as `view`) serving the routes of `bases`."""
    if not bases:
        return ()
    me4, me6 = own_cidrs(view)
    rules: list[RouteFirewallRule] = []
    for b in bases:
        eid = b.route_id if b.single else f"{b.route_id}:{pid}"
        if b.kind == V6:
            rules.append(RouteFirewallRule(eid, b.network, without(b.v6, me6)))
            continue
        if b.kind == DOMAIN:
            rules.append(RouteFirewallRule(eid, b.network, without(b.v4, me4), b.domains, True))
            if me6 is not None and (v6 := without(b.v6, me6)):
                rules.append(RouteFirewallRule(eid, b.network, v6, b.domains, True))
            continue
        rules.append(RouteFirewallRule(eid, b.network, without(b.v4, me4)))
        if b.is_exit and me6 is not None and (v6 := without(b.v6, me6)):
            rules.append(RouteFirewallRule(eid + V6_DEFAULT_ID_SUFFIX, V6_DEFAULT_NETWORK, v6))
    rules.sort()
    return tuple(rules)


def last_per_id(entries: list[MapRoute]) -> tuple[MapRoute, ...]:
    """Entries stably sorted by ID, one per ID: the last, as a dict keyed by ID would keep."""
    ids = list(map(ENTRY_ID, entries))
    if len(set(ids)) == len(ids):
        return tuple(entries)
    last = len(ids) - 1
    return tuple(e for i, e in enumerate(entries) if i == last or ids[i + 1] != ids[i])


def by_id(item: MapPeer | MapRoute) -> str:
    return item.id


def index_add(index: dict[str, set[str]], keys: Iterable[str], value: str) -> None:
    for k in keys:
        index.setdefault(k, set()).add(value)


def index_remove(index: dict[str, set[str]], keys: Iterable[str], value: str) -> None:
    for k in keys:
        s = index.get(k)
        if s is not None:
            s.discard(value)
            if not s:
                del index[k]


def diff_entries(before: dict[str, MapRoute], after: dict[str, MapRoute]) -> tuple[list[MapRoute], list[str]]:
    ups = [e for eid, e in after.items() if (o := before.get(eid)) is not e and o != e]
    rems = [eid for eid in before if eid not in after]
    return ups, rems
