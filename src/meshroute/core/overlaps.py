"""The overlap report: enabled routes whose destinations overlap, and what that means for the peers
that receive both. Pure: the server's view reads the account and calls `overlaps`.

- the same network under two network IDs (two HA groups): a peer that receives both sends it
  through the one with a routing peer and the lower metric; the other is its standby (equal
  metrics: the smaller HA ID, which is rarely what was meant);
- one network inside another: the more specific one wins for its addresses, whatever the metrics;
- the same domain in two domain routes, or a wildcard covering another route's domain: the exact
  name (or the longer wildcard) wins, equal names are ambiguous.

Routes of one HA group (same network ID and destination) are its HA candidates, not an overlap;
exit nodes cover everything by design and are left out (route explain shows their part).
"""

from __future__ import annotations

from collections.abc import Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum

from meshroute.core.domains import to_unicode
from meshroute.core.explain_match import is_exit
from meshroute.core.model import IPNetwork, NetworkType, Route
from meshroute.core.route_status import route_receivers


class OverlapKind(StrEnum):
    SAME_NETWORK = "same_network"
    NESTED = "nested"
    SAME_DOMAIN = "same_domain"
    WILDCARD = "wildcard"


@dataclass(frozen=True, slots=True)
class Overlap:
    kind: OverlapKind
    first: Route  # the one a peer receiving both uses for the common part
    second: Route
    shared: str  # the common part: a prefix or a domain name
    receivers: tuple[str, ...]  # the peers that receive both, sorted
    effect: str


def overlaps(
    routes: Sequence[Route], members: Mapping[str, Collection[str]], uses_ipv6: Mapping[str, bool]
) -> list[Overlap]:
    """Every overlapping pair of enabled routes (each pair once), most specific first.
    `members`: group ID -> peer IDs; `uses_ipv6`: every peer of the account -> whether it uses
    IPv6 in the mesh."""
    enabled = [r for r in routes if r.enabled and not is_exit(r)]
    by_ha: dict[str, list[Route]] = {}
    for r in routes:
        by_ha.setdefault(r.ha_unique_id(), []).append(r)
    receivers: dict[str, set[str]] = {}

    def of(r: Route) -> set[str]:
        if r.id not in receivers:
            receivers[r.id] = route_receivers(r, by_ha[r.ha_unique_id()], members, uses_ipv6)
        return receivers[r.id]

    found = []
    for kind, a, b, shared in (*_network_pairs(enabled), *_domain_pairs(enabled)):
        first, second = _order(kind, a, b)
        both = tuple(sorted(of(first) & of(second)))
        found.append(Overlap(kind, first, second, shared, both, _effect(kind, first, second, shared)))
    return found


Pair = tuple[OverlapKind, Route, Route, str]


def _network_pairs(routes: Sequence[Route]) -> Iterator[Pair]:
    """Nested or equal prefixes, found in one sweep over the routes sorted by address: each
    prefix overlaps exactly the enclosing ones still open (CIDR blocks nest or are disjoint)."""
    nets = [r for r in routes if r.network_type != NetworkType.DOMAIN and r.network is not None]
    nets.sort(key=lambda r: _sort_key(r.network))
    open_: list[Route] = []
    for r in nets:
        net = r.network
        assert net is not None
        open_ = [o for o in open_ if _inside(net, o.network)]
        for o in open_:
            if o.ha_unique_id() == r.ha_unique_id():
                continue  # one HA group
            yield (OverlapKind.SAME_NETWORK if o.network == net else OverlapKind.NESTED), o, r, str(net)
        open_.append(r)


def _inside(inner: IPNetwork, outer: IPNetwork | None) -> bool:
    if outer is None or inner.version != outer.version:
        return False
    return int(outer.network_address) <= int(inner.network_address) <= int(outer.broadcast_address)


def _sort_key(net: IPNetwork | None) -> tuple[int, int, int]:
    assert net is not None
    return net.version, int(net.network_address), net.prefixlen


def _domain_pairs(routes: Sequence[Route]) -> Iterator[Pair]:
    """Domain routes with a name in common, or a wildcard covering another one's name."""
    exact: dict[str, list[Route]] = {}
    wild: dict[str, list[Route]] = {}  # the wildcard's base -> routes
    for r in (r for r in routes if r.network_type == NetworkType.DOMAIN):
        for d in dict.fromkeys(r.domains):
            (wild.setdefault(d[2:], []) if d.startswith("*.") else exact.setdefault(d, [])).append(r)
    seen: set[tuple[str, str]] = set()

    def pair(kind: OverlapKind, a: Route, b: Route, name: str) -> Iterator[Pair]:
        key = (min(a.id, b.id), max(a.id, b.id))
        if a.id != b.id and a.ha_unique_id() != b.ha_unique_id() and key not in seen:
            seen.add(key)
            yield kind, a, b, to_unicode(name)

    for table, prefix in ((exact, ""), (wild, "*.")):
        for name, owners in table.items():
            for i, a in enumerate(owners):
                for b in owners[i + 1 :]:
                    yield from pair(OverlapKind.SAME_DOMAIN, a, b, prefix + name)
    for table, prefix in ((exact, ""), (wild, "*.")):
        for name, owners in table.items():
            labels = name.split(".")
            for cut in range(1, len(labels)):  # every proper parent: `*.b.c` and `*.c` cover `a.b.c`
                for w in wild.get(".".join(labels[cut:]), ()):
                    for o in owners:
                        yield from pair(OverlapKind.WILDCARD, w, o, prefix + name)


def _order(kind: OverlapKind, a: Route, b: Route) -> tuple[Route, Route]:
    """(the one a peer receiving both uses for the overlapping part, the other)."""
    if kind == OverlapKind.NESTED:
        return (b, a) if _more_specific(b, a) else (a, b)
    if kind == OverlapKind.WILDCARD:
        return b, a  # `a` is the wildcard: the name it covers wins
    return (a, b) if (a.metric, a.ha_unique_id()) <= (b.metric, b.ha_unique_id()) else (b, a)


def _more_specific(a: Route, b: Route) -> bool:
    return a.network is not None and b.network is not None and a.network.prefixlen > b.network.prefixlen


def _effect(kind: OverlapKind, first: Route, second: Route, shared: str) -> str:
    one, other = f"{first.net_id} ({first.net_string()})", f"{second.net_id} ({second.net_string()})"
    if kind == OverlapKind.SAME_DOMAIN:
        return (
            f"{first.net_id} and {second.net_id} both route {shared}: which one a peer that receives "
            "both uses for it is not defined; keep each name in one route (one network ID with several "
            "routing peers for HA)"
        )
    if kind == OverlapKind.NESTED:
        return (
            f"{first.network} is inside {second.network}: a peer that receives both sends "
            f"{first.network} through {first.net_id} and the rest through {second.net_id} "
            "(the longest prefix wins, whatever the metrics)"
        )
    if kind == OverlapKind.WILDCARD:
        return (
            f"{shared} of {first.net_id} is also covered by {other}: a peer that receives both uses "
            f"{first.net_id} for it (the more specific name wins)"
        )
    if first.metric == second.metric:
        return (
            f"{one} and {other} have the same destination and the same metric {first.metric}: "
            f"a peer that receives both uses {first.net_id} (the smaller network ID) while it has a "
            "routing peer; give them different metrics, or one network ID for both (one HA group)"
        )
    return (
        f"{one} and {other} have the same destination: a peer that receives both uses "
        f"{first.net_id} (metric {first.metric}) while it has a routing peer, and {second.net_id} "
        f"(metric {second.metric}) only as its standby"
    )
