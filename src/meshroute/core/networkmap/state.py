"""Incremental network-map engine: per-account indexes, affected peers and per-peer deltas.

The semantics are those of `oracle.compute_network_map`; this module only makes them cheap.

A map has two parts:
- the *peer table*, shared by every peer of the account (allow-all: T sees every peer but itself).
  It is stored once; a join, leave or change of one peer is one delta entry for everybody else;
- the *per-peer part*: which routes T serves (`own`) and receives (`recv`), whether T is
  IPv6-capable, and what T's firewall rules are made of. Route entries themselves are not stored
  per peer: every route's expansion (one `MapRoute` per routing peer, plus `::/0` twins for exit
  routes) is cached once and shared, so a per-peer part is two interned sets of route IDs and, for
  routing peers, a tuple of shared `_RuleBase`s.

Memory is dominated by firewall-rule sources in accounts where many routes are distributed to a
large group: a routing peer's rule lists every distribution member but itself, so materialized
rules would hold (routes served) x (distribution size) references per routing peer. Instead the
sources of a route are computed once per (distribution groups, access-control groups) pair,
referenced by every route and every routing peer with that pair, and a peer's rules are only
materialized when they are sent (a full map, a join, or a delta whose rules really changed).

`apply()` runs the changes against the indexes while recording what they touch (routes whose
expansion or sources may change, peers whose selection or rules may change, peers whose map may
change at all); then only those peers are recomputed and diffed against their cached part.
Overlay addresses are assumed unique within an account (the server allocates them).
"""

from __future__ import annotations

import ipaddress
from bisect import bisect_left
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from operator import attrgetter

from meshroute.core.model import DOMAIN_PLACEHOLDER, Group, NetworkType, Peer, Route
from meshroute.core.networkmap.types import (
    V4_DEFAULT_NETWORK,
    V6_DEFAULT_ID_SUFFIX,
    V6_DEFAULT_NETWORK,
    V6_NET_ID_SUFFIX,
    Change,
    GroupDeleted,
    GroupUpserted,
    MapDelta,
    MapPeer,
    MapRoute,
    NetworkMap,
    PeerDeleted,
    PeerUpserted,
    RouteDeleted,
    RouteFirewallRule,
    RouteUpserted,
)

_INVALID = 0
_V4 = int(NetworkType.IPV4)
_V6 = int(NetworkType.IPV6)
_DOMAIN = int(NetworkType.DOMAIN)
_PLACEHOLDER = str(DOMAIN_PLACEHOLDER)
_EMPTY: frozenset[str] = frozenset()
_ID = attrgetter("id")
# Sorted received-route tuples kept for full maps, counted in entries (8 bytes of reference each,
# so at most 16 MiB): a peer of the route-heavy benchmark account receives ~12,500 entries, shared
# by the ~50 peers with its selection; its ~100 distinct selections fit (an LRU smaller than the
# working set would miss on every map of a pass over all peers).
_RECV_CACHE_MAX_ENTRIES = 1 << 21

_Cidrs = tuple[str, ...]
_SrcKey = tuple[tuple[str, ...], tuple[str, ...]]  # sorted distribution groups, sorted ACGs
_Me = tuple[str, str | None]  # a peer's own /32 and /128 CIDRs, as they appear in sources
_NO_ME: _Me = ("", None)
_Selection = tuple[frozenset[str], frozenset[str], bool]  # own, recv, v6


@dataclass(frozen=True, slots=True)
class _Spec:
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
    src_key: _SrcKey  # who may use the route; routes with the same key share their sources

    @property
    def active(self) -> bool:
        return self.enabled and self.kind != _INVALID

    @property
    def is_exit(self) -> bool:
        return self.kind == _V4 and self.network == V4_DEFAULT_NETWORK

    def selection_key(self) -> tuple[object, ...]:
        """Everything that decides who serves or receives the route."""
        return (self.active, self.peer, self.peer_groups, self.groups, self.ha, self.kind == _V6)

    @classmethod
    def of(cls, r: Route) -> _Spec:
        if r.network_type == NetworkType.DOMAIN:
            kind, network = _DOMAIN, _PLACEHOLDER
        elif isinstance(r.network, ipaddress.IPv6Network):
            kind, network = _V6, str(r.network)
        elif isinstance(r.network, ipaddress.IPv4Network):
            kind, network = _V4, str(r.network)
        else:
            kind, network = _INVALID, ""
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
            src_key=(tuple(sorted(set(r.groups))), tuple(sorted(set(r.access_control_groups)))),
        )


@dataclass(frozen=True, slots=True, eq=False)
class _RuleBase:
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
    v4: _Cidrs  # sorted /32 sources, shared with every route of the same `src_key`
    v6: _Cidrs  # sorted /128 sources

    # No ":" and no twin suffix in the route ID: no rule ID of this route can equal one of
    # another route's (`<route>`, `<route>:<peer>`, either + `-v6-default`).
    plain_id: bool

    def same_head(self, other: _RuleBase) -> bool:
        """Same rule IDs, destinations and kinds; only the sources may differ."""
        return (self.route_id, self.single, self.kind, self.network, self.domains, self.is_exit) == (
            other.route_id,
            other.single,
            other.kind,
            other.network,
            other.domains,
            other.is_exit,
        )

    def same_sources(self, other: _RuleBase, me: _Me) -> bool:
        """With the same head: whether both give a peer with addresses `me` the same rules."""
        me4, me6 = me
        if self.kind != _V6 and not _same_without(self.v4, other.v4, me4):
            return False
        uses_v6 = self.kind == _V6 or (me6 is not None and (self.kind == _DOMAIN or self.is_exit))
        return not uses_v6 or _same_without(self.v6, other.v6, me6)


@dataclass(frozen=True, slots=True)
class _Expansion:
    """A route's entries, one per routing peer (`twin`: the `::/0` copies of an exit route)."""

    base: dict[str, MapRoute]
    twin: dict[str, MapRoute]


_NO_EXPANSION = _Expansion({}, {})


@dataclass(frozen=True, slots=True)
class _Part:
    """The per-peer part of a map, as last sent."""

    own: frozenset[str]  # enabled routes T serves and receives (after the IPv6 filter); interned
    recv: frozenset[str]  # routes T receives through other routing peers; interned
    v6: bool
    bases: tuple[_RuleBase, ...]  # what T's last sent rules were made of, by route ID
    addr: MapPeer | None  # T as it was then (for its addresses); None when T has no rules


@dataclass(slots=True)
class _Batch:
    """What a sequence of changes touched; filled while the changes are applied."""

    dry: bool = False
    all_peers: bool = False  # the peer table changed: every peer's map may change
    visit: set[str] = field(default_factory=set)  # peers whose map may change
    sel_dirty: set[str] = field(default_factory=set)  # peers whose own/recv selection may change
    rules_dirty: set[str] = field(default_factory=set)  # peers whose rules may change
    touched: set[str] = field(default_factory=set)  # routes whose expansion may change
    old_exp: dict[str, _Expansion] = field(default_factory=dict)  # their expansion before the batch
    src_dirty: set[str] = field(default_factory=set)  # routes whose allowed sources may change
    old_views: dict[str, MapPeer | None] = field(default_factory=dict)  # peers before the batch
    undo: list[tuple[str, str, object]] = field(default_factory=list)


def _twin(e: MapRoute) -> MapRoute:
    return MapRoute(
        id=e.id + V6_DEFAULT_ID_SUFFIX,
        net_id=e.net_id + V6_NET_ID_SUFFIX,
        network=V6_DEFAULT_NETWORK,
        domains=e.domains,
        network_type=_V6,
        peer_key=e.peer_key,
        peer_id=e.peer_id,
        metric=e.metric,
        masquerade=e.masquerade,
        keep_route=e.keep_route,
        skip_auto_apply=e.skip_auto_apply,
    )


def _without(items: tuple[str, ...], item: str | None) -> tuple[str, ...]:
    """`items` (sorted) without `item`."""
    if item is None:
        return items
    i = bisect_left(items, item)
    if i < len(items) and items[i] == item:
        return items[:i] + items[i + 1 :]
    return items


def _contains(items: tuple[str, ...], item: str) -> bool:
    i = bisect_left(items, item)
    return i < len(items) and items[i] == item


def _same_without(a: _Cidrs, b: _Cidrs, me: str | None) -> bool:
    """Whether sorted `a` and `b` are equal once `me` is removed from both, without copying them."""
    if a is b:
        return True
    if me is None or _contains(a, me) == _contains(b, me):
        return a == b
    return _without(a, me) == _without(b, me)


def _me(view: MapPeer | None) -> _Me:
    if view is None:
        return _NO_ME
    return view.ip + "/32", (None if view.ipv6 is None else view.ipv6 + "/128")


def _rules_of(pid: str, view: MapPeer | None, bases: Sequence[_RuleBase]) -> tuple[RouteFirewallRule, ...]:
    """The firewall rules of routing peer `pid` (as `view`) serving the routes of `bases`."""
    if not bases:
        return ()
    me4, me6 = _me(view)
    rules: list[RouteFirewallRule] = []
    for b in bases:
        eid = b.route_id if b.single else f"{b.route_id}:{pid}"
        if b.kind == _V6:
            rules.append(RouteFirewallRule(eid, b.network, _without(b.v6, me6)))
            continue
        if b.kind == _DOMAIN:
            rules.append(RouteFirewallRule(eid, b.network, _without(b.v4, me4), b.domains, True))
            if me6 is not None and (v6 := _without(b.v6, me6)):
                rules.append(RouteFirewallRule(eid, b.network, v6, b.domains, True))
            continue
        rules.append(RouteFirewallRule(eid, b.network, _without(b.v4, me4)))
        if b.is_exit and me6 is not None and (v6 := _without(b.v6, me6)):
            rules.append(RouteFirewallRule(eid + V6_DEFAULT_ID_SUFFIX, V6_DEFAULT_NETWORK, v6))
    rules.sort()
    return tuple(rules)


def _last_per_id(entries: list[MapRoute]) -> tuple[MapRoute, ...]:
    """Entries stably sorted by ID, one per ID: the last, as a dict keyed by ID would keep."""
    ids = list(map(_ID, entries))
    if len(set(ids)) == len(ids):
        return tuple(entries)
    last = len(ids) - 1
    return tuple(e for i, e in enumerate(entries) if i == last or ids[i + 1] != ids[i])


def _by_id(item: MapPeer | MapRoute) -> str:
    return item.id


def _add(index: dict[str, set[str]], keys: Iterable[str], value: str) -> None:
    for k in keys:
        index.setdefault(k, set()).add(value)


def _remove(index: dict[str, set[str]], keys: Iterable[str], value: str) -> None:
    for k in keys:
        s = index.get(k)
        if s is not None:
            s.discard(value)
            if not s:
                del index[k]


class AccountState:
    """The network-map state of one account: indexes, per-route caches and per-peer parts."""

    def __init__(
        self,
        account_id: str,
        serial: int,
        peers: Iterable[Peer],
        groups: Iterable[Group],
        routes: Iterable[Route],
    ) -> None:
        self.account_id = account_id
        self.serial = serial
        self._peers: dict[str, MapPeer] = {}
        self._members: dict[str, frozenset[str]] = {}  # group -> member IDs as stored
        # peer ID -> sorted groups listing it; interned, as most peers share theirs with others
        self._groups_of: dict[str, tuple[str, ...]] = {}
        self._group_sets: dict[tuple[str, ...], tuple[str, ...]] = {}
        self._routes: dict[str, _Spec] = {}
        self._by_single: dict[str, set[str]] = {}  # routing peer -> single-peer routes
        self._by_peer_group: dict[str, set[str]] = {}  # group -> routes it serves (PeerGroups)
        self._by_dist_group: dict[str, set[str]] = {}  # group -> routes it receives (Groups)
        self._by_acg: dict[str, set[str]] = {}  # group -> routes it may use (ACGs)
        self._by_ha: dict[str, set[str]] = {}  # HA unique ID -> routes
        self._inactive: set[str] = set()  # disabled routes and routes without a usable prefix
        self._active_v6: set[str] = set()  # active IPv6 routes (not sent to v4-only peers)
        self._gver: dict[str, int] = {}  # group -> tick of its last membership or member-address change
        self._tick = 0
        self._exp: dict[str, _Expansion] = {}
        self._rb: dict[str, _RuleBase] = {}  # route -> its rule base (dropped when sources may change)
        # (groups, ACGs) -> (group ticks when computed, (v4, v6) sources): one tuple for all routes
        # of the same audience, validated by the ticks because it outlives any single route.
        self._src_by_key: dict[_SrcKey, tuple[tuple[int, ...], tuple[_Cidrs, _Cidrs]]] = {}
        self._recv_cache: dict[tuple[frozenset[str], bool], tuple[MapRoute, ...]] = {}  # LRU order
        self._recv_cache_size = 0
        self._parts: dict[str, _Part] = {}
        self._intern: dict[frozenset[str], frozenset[str]] = {}
        self._table: tuple[MapPeer, ...] | None = None
        self._table_ids: list[str] = []
        for p in peers:
            self._set_peer(p.id, MapPeer.from_peer(p))
        for g in groups:
            self._set_group(g.id, frozenset(g.peers))
        for r in routes:
            self._set_route(r.id, _Spec.of(r))
        sel_memo: dict[tuple[tuple[str, ...], frozenset[str], bool], _Selection] = {}
        bases_memo: dict[frozenset[str], tuple[_RuleBase, ...]] = {}
        for pid, view in self._peers.items():
            own, recv, v6 = self._selection_memo(pid, view, sel_memo)
            bases = self._bases(own, bases_memo)
            self._parts[pid] = _Part(own, recv, v6, bases, view if bases else None)

    # --- public API ------------------------------------------------------------------------------

    def peer_ids(self) -> list[str]:
        return sorted(self._peers)

    def has_peer(self, peer_id: str) -> bool:
        return peer_id in self._peers

    def network_map(self, peer_id: str) -> NetworkMap:
        """The full map of a peer, computed from the indexes (not from its cached part)."""
        view = self._peers.get(peer_id)
        if view is None:
            raise KeyError(f"peer {peer_id} not found")
        own, recv, v6 = self._selection(peer_id, view)
        # Interned, the selection is the object the peer's part and the received-entries cache hold.
        own, recv = self._interned(own), self._interned(recv)
        return NetworkMap(
            serial=self.serial,
            self_config=view,
            peers=self._table_without(peer_id),
            routes=self._route_entries(peer_id, own, recv, v6),
            rules=_rules_of(peer_id, view, self._bases(own, None)),
        )

    def affected_peers(self, changes: Sequence[Change]) -> set[str]:
        """Peers (existing after the changes) whose map the changes may alter; state is unchanged.

        Under allow-all every peer sees every other, so any change of a peer's wire form (join,
        leave, key, IP, name, endpoints, IPv6 capability) affects everybody.
        """
        _check(changes)
        batch = _Batch(dry=True)
        try:
            for c in changes:
                self._change(c, batch)
            return set(self._peers) if batch.all_peers else {p for p in batch.visit if p in self._peers}
        finally:
            for kind, key, old in reversed(batch.undo):
                if kind == "route":
                    self._set_route(key, old if isinstance(old, _Spec) else None)
                elif kind == "group":
                    self._set_group(key, old if isinstance(old, frozenset) else None)
                else:
                    self._set_peer(key, old if isinstance(old, MapPeer) else None)
            for rid in batch.touched:
                self._exp.pop(rid, None)
            for rid in batch.src_dirty:
                self._rb.pop(rid, None)

    def apply(self, changes: Sequence[Change], serial: int) -> dict[str, MapDelta]:
        """Apply the changes; returns the non-empty delta of every peer whose map changed.

        A peer that joined gets a delta relative to no map (`apply_delta(None, delta)`); a peer
        that left gets nothing. Peers with identical deltas share one `MapDelta` object.
        """
        _check(changes)
        batch = _Batch()
        for c in changes:
            self._change(c, batch)
        self.serial = serial
        return self._finish(batch)

    # --- index maintenance -----------------------------------------------------------------------

    def _set_peer(self, pid: str, view: MapPeer | None) -> MapPeer | None:
        old = self._peers.get(pid)
        if view is None:
            self._peers.pop(pid, None)
        else:
            self._peers[pid] = view
        if old is None or view is None or (old.ip, old.ipv6) != (view.ip, view.ipv6):
            # joined, left or readdressed: the sources of its groups change
            self._bump(self._groups_of.get(pid, ()))
        self._table = None
        return old

    def _bump(self, gids: Iterable[str]) -> None:
        """Invalidate the cached sources of every audience that includes one of these groups."""
        self._tick += 1
        for g in gids:
            self._gver[g] = self._tick

    def _set_group(self, gid: str, members: frozenset[str] | None) -> frozenset[str] | None:
        old = self._members.get(gid)
        before = old or _EMPTY
        after = members or _EMPTY
        groups_of = self._groups_of
        for pid in before - after:
            rest = tuple(g for g in groups_of.get(pid, ()) if g != gid)
            if rest:
                groups_of[pid] = self._group_set(rest)
            else:
                groups_of.pop(pid, None)
        for pid in after - before:
            gs = groups_of.get(pid, ())
            i = bisect_left(gs, gid)
            groups_of[pid] = self._group_set((*gs[:i], gid, *gs[i:]))
        if members is None:
            self._members.pop(gid, None)
            # Safe to forget: a cached version of this group (a tick, never 0) no longer matches.
            self._gver.pop(gid, None)
        else:
            self._members[gid] = members
            self._bump((gid,))
        return old

    def _group_set(self, gids: tuple[str, ...]) -> tuple[str, ...]:
        """One shared tuple per distinct sorted group list (`_interned`, for `_groups_of`)."""
        found = self._group_sets.get(gids)
        if found is not None:
            return found
        if len(self._group_sets) > 2 * len(self._groups_of) + 64:
            self._group_sets = {gs: gs for gs in self._groups_of.values()}
        self._group_sets[gids] = gids
        return gids

    def _set_route(self, rid: str, spec: _Spec | None) -> _Spec | None:
        old = self._routes.pop(rid, None)
        if old is not None:
            if old.peer:
                _remove(self._by_single, (old.peer,), rid)
            _remove(self._by_peer_group, old.peer_groups, rid)
            _remove(self._by_dist_group, old.groups, rid)
            _remove(self._by_acg, old.acgs, rid)
            _remove(self._by_ha, (old.ha,), rid)
            self._inactive.discard(rid)
            self._active_v6.discard(rid)
        if spec is not None:
            self._routes[rid] = spec
            if spec.peer:
                _add(self._by_single, (spec.peer,), rid)
            _add(self._by_peer_group, spec.peer_groups, rid)
            _add(self._by_dist_group, spec.groups, rid)
            _add(self._by_acg, spec.acgs, rid)
            _add(self._by_ha, (spec.ha,), rid)
            if not spec.active:
                self._inactive.add(rid)
            elif spec.kind == _V6:
                self._active_v6.add(rid)
        return old

    # --- derived data ----------------------------------------------------------------------------

    def _union(self, gids: Iterable[str]) -> set[str]:
        """Members of the groups that are peers of the account."""
        out: set[str] = set()
        for gid in gids:
            m = self._members.get(gid)
            if m:
                out |= m
        peers = self._peers
        return {p for p in out if p in peers}

    def _members_of(self, gids: Iterable[str]) -> set[str]:
        """Members listed by the groups, peers of the account or not."""
        out: set[str] = set()
        for gid in gids:
            m = self._members.get(gid)
            if m:
                out |= m
        return out

    def _routing(self, s: _Spec) -> set[str]:
        if s.peer:
            return {s.peer} if s.peer in self._peers else set()
        return self._union(s.peer_groups)

    def _expansion(self, rid: str) -> _Expansion:
        exp = self._exp.get(rid)
        if exp is None:
            exp = self._build_expansion(rid)
            self._exp[rid] = exp
        return exp

    def _build_expansion(self, rid: str) -> _Expansion:
        s = self._routes.get(rid)
        if s is None or not s.active:
            return _NO_EXPANSION
        base: dict[str, MapRoute] = {}
        twin: dict[str, MapRoute] = {}
        for pid in self._routing(s):
            e = MapRoute(
                id=s.id if s.peer else f"{s.id}:{pid}",
                net_id=s.net_id,
                network=s.network,
                domains=s.domains,
                network_type=s.kind,
                peer_key=self._peers[pid].key,
                peer_id=pid,
                metric=s.metric,
                masquerade=s.masquerade,
                keep_route=s.keep_route,
                skip_auto_apply=s.skip_auto_apply,
            )
            base[pid] = e
            if s.is_exit:
                twin[pid] = _twin(e)
        return _Expansion(base, twin)

    def _sources(self, s: _Spec) -> tuple[_Cidrs, _Cidrs]:
        """Sorted v4 (/32) and v6 (/128) CIDRs of the peers allowed to use a route."""
        key = s.src_key
        gver = self._gver
        stamp = tuple(gver.get(g, 0) for g in key[0]) + tuple(gver.get(g, 0) for g in key[1])
        hit = self._src_by_key.get(key)
        if hit is not None and hit[0] == stamp:
            return hit[1]
        # Narrow by the ACGs on the raw member sets (in C) before looking at each member: the
        # distribution group is often "All", the ACG a small team.
        allowed = self._members_of(key[0])
        if key[1]:
            allowed &= self._members_of(key[1])
        peers = self._peers
        views = [v for p in allowed if (v := peers.get(p)) is not None]
        v4 = tuple(sorted({v.ip + "/32" for v in views}))
        v6 = tuple(sorted({v.ipv6 + "/128" for v in views if v.ipv6 is not None}))
        if len(self._src_by_key) > 2 * len(self._routes) + 64:  # forget keys no route uses anymore
            live = {r.src_key for r in self._routes.values()}
            self._src_by_key = {k: v for k, v in self._src_by_key.items() if k in live}
        self._src_by_key[key] = (stamp, (v4, v6))
        return v4, v6

    def _rule_base(self, rid: str) -> _RuleBase:
        rb = self._rb.get(rid)
        if rb is None:
            s = self._routes[rid]
            v4, v6 = self._sources(s)
            plain = ":" not in s.id and not s.id.endswith(V6_DEFAULT_ID_SUFFIX)
            rb = _RuleBase(s.id, bool(s.peer), s.kind, s.network, s.domains, s.is_exit, v4, v6, plain)
            self._rb[rid] = rb
        return rb

    def _bases(
        self, own: frozenset[str], memo: dict[frozenset[str], tuple[_RuleBase, ...]] | None
    ) -> tuple[_RuleBase, ...]:
        """The rule bases of the routes a peer serves, by route ID (one tuple per interned `own`)."""
        if not own:
            return ()
        found = memo.get(own) if memo is not None else None
        if found is None:
            found = tuple(self._rule_base(rid) for rid in sorted(own))
            if memo is not None:
                memo[own] = found
        return found

    def _selection(self, pid: str, view: MapPeer) -> _Selection:
        """(own, recv, v6) of a peer, from the indexes.

        Set algebra rather than a loop over routes: a member of an "All" group may receive
        hundreds of routes, and this runs for every full map.
        """
        v6 = view.ipv6 is not None
        gids = self._groups_of.get(pid, ())
        own_all: set[str] = set(self._by_single.get(pid, ()))
        recv: set[str] = set()
        for g in gids:
            rs = self._by_peer_group.get(g)
            if rs:
                own_all |= rs
            rs = self._by_dist_group.get(g)
            if rs:
                recv |= rs
        unsent = self._inactive if v6 else self._inactive | self._active_v6
        recv -= own_all
        recv -= unsent
        if own_all:
            routes = self._routes
            # HA: T serves this network itself (even through a disabled route), so it receives
            # none of the routes of the same HA group.
            for ha in {routes[rid].ha for rid in own_all}:
                recv -= self._by_ha[ha]
            own_all -= unsent
        return (frozenset(own_all) if own_all else _EMPTY), (frozenset(recv) if recv else _EMPTY), v6

    def _selection_memo(
        self, pid: str, view: MapPeer, memo: dict[tuple[tuple[str, ...], frozenset[str], bool], _Selection]
    ) -> _Selection:
        """`_selection`, interned and shared by peers with the same groups, single routes and v6.

        Most peers share that signature with the rest of their group, and interning a selection
        hashes all its route IDs (~500 for a member of an "All" group of a route-heavy account).
        """
        single = self._by_single.get(pid)
        key = (
            self._groups_of.get(pid, ()),
            frozenset(single) if single else _EMPTY,
            view.ipv6 is not None,
        )
        found = memo.get(key)
        if found is None:
            own, recv, v6 = self._selection(pid, view)
            found = (self._interned(own), self._interned(recv), v6)
            memo[key] = found
        return found

    def _rules_if_changed(
        self,
        pid: str,
        old_addr: MapPeer | None,
        old: tuple[_RuleBase, ...],
        addr: MapPeer | None,
        new: tuple[_RuleBase, ...],
    ) -> tuple[RouteFirewallRule, ...] | None:
        """The peer's new rules, or None when they equal the ones built from `old_addr` and `old`.

        Usually decided route by route on the shared sources, without materializing the old side.
        """
        if not old and not new:
            return None
        me = _me(addr)
        if len(old) == len(new) and _me(old_addr) == me:
            changed = False
            for ob, nb in zip(old, new, strict=True):
                if ob is nb:
                    continue
                if not nb.same_head(ob):
                    break
                changed = changed or not nb.same_sources(ob, me)
            else:
                if not changed:
                    return None
                # One route's rules differ; when no rule ID can clash across routes, no other
                # route's rules can make up for it, so the new rules differ as a whole.
                if all(b.plain_id for b in new):
                    return _rules_of(pid, addr, new)
        rules = _rules_of(pid, addr, new)
        return None if rules == _rules_of(pid, old_addr, old) else rules

    def _route_entries(
        self, pid: str, own: frozenset[str], recv: frozenset[str], v6: bool
    ) -> tuple[MapRoute, ...]:
        """A peer's route entries, sorted by ID: the shared received ones plus its own few."""
        received = self._recv_entries(recv, v6)
        mine: dict[str, MapRoute] = {}
        for rid in own:
            mine.update(self._entries_for(pid, rid, own, recv, v6, self._expansion(rid)))
        if not mine:
            return received
        out = list(received)
        for e in sorted(mine.values(), key=_ID):
            i = bisect_left(out, e.id, key=_ID)
            if i == len(out) or out[i].id != e.id:  # on an ID clash the received entry wins
                out.insert(i, e)
        return tuple(out)

    def _recv_entries(self, recv: frozenset[str], v6: bool) -> tuple[MapRoute, ...]:
        """The entries of the routes in `recv`, sorted by ID; cached per (selection, v6).

        Every member of a group shares its selection, so a full map (sent on every connect)
        costs a copy instead of collecting and sorting thousands of entries.
        """
        if not recv:
            return ()
        key = (recv, v6)
        cache = self._recv_cache
        found = cache.pop(key, None)
        if found is None:
            collected: list[MapRoute] = []
            for rid in recv:
                exp = self._expansion(rid)
                collected.extend(exp.base.values())
                if v6:
                    collected.extend(exp.twin.values())
            collected.sort(key=_ID)
            found = _last_per_id(collected)
            self._recv_cache_size += len(found)
            while cache and self._recv_cache_size > _RECV_CACHE_MAX_ENTRIES:
                self._recv_cache_size -= len(cache.pop(next(iter(cache))))
        cache[key] = found  # most recently used last
        return found

    def _forget_recv(self, rid: str) -> None:
        """Drop the cached received entries that include a route whose expansion may change."""
        cache = self._recv_cache
        if cache:
            for key in [k for k in cache if rid in k[0]]:
                self._recv_cache_size -= len(cache.pop(key))

    def _peer_table(self) -> tuple[MapPeer, ...]:
        if self._table is None:
            table = tuple(sorted(self._peers.values(), key=_by_id))
            self._table = table
            self._table_ids = [p.id for p in table]
            return table
        return self._table

    def _table_without(self, pid: str) -> tuple[MapPeer, ...]:
        table = self._peer_table()
        i = bisect_left(self._table_ids, pid)
        if i < len(table) and table[i].id == pid:
            return table[:i] + table[i + 1 :]
        return table

    def _interned(self, sel: frozenset[str]) -> frozenset[str]:
        """One shared object per distinct route selection: less memory, identity comparisons."""
        if not sel:
            return _EMPTY
        found = self._intern.get(sel)
        if found is not None:
            return found
        if len(self._intern) > 2 * len(self._parts) + 64:
            live = [x for p in self._parts.values() for x in (p.own, p.recv)]
            self._intern = {x: x for x in live}
        self._intern[sel] = sel
        return sel

    @staticmethod
    def _entries_for(
        pid: str, rid: str, own: frozenset[str], recv: frozenset[str], v6: bool, exp: _Expansion
    ) -> dict[str, MapRoute]:
        """The entries of one route in a peer's map, given the peer's selection."""
        out: dict[str, MapRoute] = {}
        if rid in own:
            e = exp.base.get(pid)
            if e is not None:
                out[e.id] = e
                t = exp.twin.get(pid) if v6 else None
                if t is not None:
                    out[t.id] = t
        elif rid in recv:
            for e in exp.base.values():
                out[e.id] = e
            if v6:
                for e in exp.twin.values():
                    out[e.id] = e
        return out

    # --- changes ---------------------------------------------------------------------------------

    def _change(self, c: Change, b: _Batch) -> None:
        if isinstance(c, RouteUpserted):
            self._route_change(c.route.id, _Spec.of(c.route), b)
        elif isinstance(c, RouteDeleted):
            self._route_change(c.route_id, None, b)
        elif isinstance(c, GroupUpserted):
            self._group_change(c.group.id, frozenset(c.group.peers), b)
        elif isinstance(c, GroupDeleted):
            self._group_change(c.group_id, None, b)
        elif isinstance(c, PeerUpserted):
            self._peer_change(c.peer.id, MapPeer.from_peer(c.peer), b)
        elif isinstance(c, PeerDeleted):
            self._peer_change(c.peer_id, None, b)
        else:  # pragma: no cover - `_check` ran first
            raise TypeError(f"unknown change {c!r}")

    def _touch(self, rid: str, b: _Batch) -> None:
        """A route's expansion may change: keep the one from before the batch, drop the cache."""
        b.touched.add(rid)
        if not b.dry and rid not in b.old_exp:
            b.old_exp[rid] = self._expansion(rid)
        self._exp.pop(rid, None)
        self._forget_recv(rid)

    def _sources_changed(self, rid: str, b: _Batch) -> None:
        b.src_dirty.add(rid)
        self._rb.pop(rid, None)
        s = self._routes[rid]
        if s.active:  # its routing peers' rules follow (`rules_trigger` in `_finish`)
            b.visit |= self._routing(s)

    def _route_change(self, rid: str, new: _Spec | None, b: _Batch) -> None:
        """Affected: distribution, routing and access-control members, before and after (§2.7)."""
        old = self._routes.get(rid)
        if old == new:
            return
        specs = [s for s in (old, new) if s is not None]
        routing: set[str] = set()
        for s in specs:
            routing |= self._routing(s)
        dist = self._union({g for s in specs for g in s.groups})
        b.visit |= dist
        b.visit |= routing
        b.visit |= self._union({g for s in specs for g in s.acgs})
        if old is None or new is None or old.selection_key() != new.selection_key():
            b.sel_dirty |= dist
            b.sel_dirty |= routing
        self._touch(rid, b)
        b.src_dirty.add(rid)
        self._rb.pop(rid, None)
        b.undo.append(("route", rid, old))
        self._set_route(rid, new)

    def _group_change(self, gid: str, new: frozenset[str] | None, b: _Batch) -> None:
        """Affected: the peers that joined or left, plus the opposite side of the group's routes."""
        old = self._members.get(gid)
        if old == new:
            return
        peers = self._peers
        moved = {p for p in (old or _EMPTY) ^ (new or _EMPTY) if p in peers}
        if moved:
            b.visit |= moved
            b.sel_dirty |= moved
            b.rules_dirty |= moved
            for rid in self._by_peer_group.get(gid, ()):
                self._touch(rid, b)
                s = self._routes[rid]
                if s.active:
                    b.visit |= self._union(s.groups)
            for rid in self._by_dist_group.get(gid, set()) | self._by_acg.get(gid, set()):
                self._sources_changed(rid, b)
        b.undo.append(("group", gid, old))
        self._set_group(gid, new)

    def _peer_change(self, pid: str, new: MapPeer | None, b: _Batch) -> None:
        """A peer's wire form changed: everybody sees it; routes it serves or may use follow."""
        old = self._peers.get(pid)
        if old == new:
            return
        if pid not in b.old_views:
            b.old_views[pid] = old
        b.all_peers = True
        gids = self._groups_of.get(pid, ())
        presence = old is None or new is None
        if presence or (old is not None and new is not None and old.key != new.key):
            for rid in self._by_single.get(pid, ()):
                self._touch(rid, b)
            for g in gids:
                for rid in self._by_peer_group.get(g, ()):
                    self._touch(rid, b)
        if presence or (old is not None and new is not None and (old.ip, old.ipv6) != (new.ip, new.ipv6)):
            b.sel_dirty.add(pid)
            b.rules_dirty.add(pid)
            for g in gids:
                for rid in self._by_dist_group.get(g, set()) | self._by_acg.get(g, set()):
                    self._sources_changed(rid, b)
        b.undo.append(("peer", pid, old))
        self._set_peer(pid, new)

    # --- deltas ----------------------------------------------------------------------------------

    def _finish(self, b: _Batch) -> dict[str, MapDelta]:
        serial = self.serial
        peers = self._peers
        table_ups: list[MapPeer] = []
        table_rem: list[str] = []
        for pid, before in b.old_views.items():
            now = peers.get(pid)
            if now == before:
                continue
            if now is None:
                table_rem.append(pid)
                self._parts.pop(pid, None)
            else:
                table_ups.append(now)
        table_ups.sort(key=_by_id)
        table_rem.sort()
        ups_t = tuple(table_ups)
        rem_t = tuple(table_rem)
        changed_ids = {p.id for p in table_ups}
        # Without a peer-table change no peer left, so every visited peer still exists.
        visit: Iterable[str] = peers.keys() if b.all_peers else b.visit

        touched = b.touched
        single_touched = next(iter(touched)) if len(touched) == 1 else None
        sel_dirty = b.sel_dirty
        rules_dirty = b.rules_dirty
        rules_trigger = touched | b.src_dirty
        parts = self._parts
        recv_diffs: dict[tuple[str, bool], tuple[list[MapRoute], list[str]]] = {}
        touched_in: dict[frozenset[str], tuple[str, ...]] = {}
        combined: dict[tuple[tuple[str, ...], bool], tuple[tuple[MapRoute, ...], tuple[str, ...]]] = {}
        shared: dict[tuple[tuple[str, ...], bool], MapDelta | None] = {}
        result: dict[str, MapDelta] = {}
        sel_memo: dict[tuple[tuple[str, ...], frozenset[str], bool], _Selection] = {}
        bases_memo: dict[frozenset[str], tuple[_RuleBase, ...]] = {}

        for pid in visit:
            view = peers[pid]
            old = parts.get(pid)
            rules: tuple[RouteFirewallRule, ...] | None = None  # set when the rules changed
            # A new peer always takes the second branch, which sets `bases` and `addr`.
            if (
                old is not None
                and pid not in sel_dirty
                and pid not in rules_dirty
                and (not old.own or old.own.isdisjoint(rules_trigger))
            ):
                # Most visited peers: the part stays as is (this loop may run over every peer).
                own, recv, v6 = old.own, old.recv, old.v6
            else:
                if old is None or pid in sel_dirty:
                    own, recv, v6 = self._selection_memo(pid, view, sel_memo)
                    if old is not None:
                        own = old.own if own is old.own or own == old.own else own
                        recv = old.recv if recv is old.recv or recv == old.recv else recv
                else:
                    own, recv, v6 = old.own, old.recv, old.v6
                bases = self._bases(own, bases_memo)
                addr = view if bases else None
                if old is not None:
                    rules = self._rules_if_changed(pid, old.addr, old.bases, addr, bases)
                if (
                    old is None
                    or own is not old.own
                    or recv is not old.recv
                    or v6 != old.v6
                    or bases is not old.bases
                    or addr is not old.addr
                ):
                    parts[pid] = _Part(own, recv, v6, bases, addr)

            if old is None:
                result[pid] = MapDelta(
                    serial=serial,
                    peers_upserted=self._table_without(pid),
                    routes_upserted=self._route_entries(pid, own, recv, v6),
                    rules=_rules_of(pid, addr, bases) or None,
                    self_changed=view,
                )
                continue

            fast = own is old.own and recv is old.recv and v6 == old.v6
            if fast and touched and own.isdisjoint(touched):
                if single_touched is not None:
                    rk: tuple[str, ...] = (single_touched,) if single_touched in recv else ()
                else:
                    found = touched_in.get(recv)
                    if found is None:
                        found = tuple(sorted(r for r in touched if r in recv))
                        touched_in[recv] = found
                    rk = found
                key = (rk, v6)
                pair = combined.get(key)
                if pair is None:
                    ups: list[MapRoute] = []
                    rems: list[str] = []
                    for rid in key[0]:
                        u, r = self._recv_diff(rid, v6, b, recv_diffs)
                        ups.extend(u)
                        rems.extend(r)
                    pair = (tuple(sorted(ups, key=_by_id)), tuple(sorted(rems)))
                    combined[key] = pair
                r_ups, r_rems = pair
                if pid not in changed_ids and rules is None:
                    if key in shared:
                        common = shared[key]
                    else:
                        common = MapDelta(serial, ups_t, rem_t, r_ups, r_rems)
                        common = None if common.is_empty else common
                        shared[key] = common
                    if common is not None:
                        result[pid] = common
                    continue
            elif fast and not touched:
                r_ups, r_rems = (), ()
            else:
                r_ups, r_rems = self._general_diff(pid, old, own, recv, v6, b)

            if pid in changed_ids:
                p_ups = tuple(p for p in ups_t if p.id != pid)
                self_changed: MapPeer | None = view
            else:
                p_ups = ups_t
                self_changed = None
            delta = MapDelta(
                serial=serial,
                peers_upserted=p_ups,
                peers_removed=rem_t,
                routes_upserted=r_ups,
                routes_removed=r_rems,
                rules=rules,
                self_changed=self_changed,
            )
            if not delta.is_empty:
                result[pid] = delta
        return result

    def _old_expansion(self, rid: str, b: _Batch) -> _Expansion:
        exp = b.old_exp.get(rid)
        return exp if exp is not None else self._expansion(rid)

    def _recv_diff(
        self,
        rid: str,
        v6: bool,
        b: _Batch,
        memo: dict[tuple[str, bool], tuple[list[MapRoute], list[str]]],
    ) -> tuple[list[MapRoute], list[str]]:
        """Diff of a route's entries for every peer that received it before and after the batch."""
        key = (rid, v6)
        found = memo.get(key)
        if found is None:
            sel = frozenset((rid,))
            before = self._entries_for("", rid, _EMPTY, sel, v6, self._old_expansion(rid, b))
            after = self._entries_for("", rid, _EMPTY, sel, v6, self._expansion(rid))
            found = _diff(before, after)
            memo[key] = found
        return found

    def _general_diff(
        self, pid: str, old: _Part, own: frozenset[str], recv: frozenset[str], v6: bool, b: _Batch
    ) -> tuple[tuple[MapRoute, ...], tuple[str, ...]]:
        ups: list[MapRoute] = []
        rems: list[str] = []
        same_v6 = v6 == old.v6
        for rid in old.own | old.recv | own | recv:
            unchanged = (rid in old.own) == (rid in own) and (rid in old.recv) == (rid in recv)
            if unchanged and same_v6 and rid not in b.touched:
                continue
            before = self._entries_for(pid, rid, old.own, old.recv, old.v6, self._old_expansion(rid, b))
            after = self._entries_for(pid, rid, own, recv, v6, self._expansion(rid))
            u, r = _diff(before, after)
            ups.extend(u)
            rems.extend(r)
        return tuple(sorted(ups, key=_by_id)), tuple(sorted(rems))


_CHANGE_TYPES = (RouteUpserted, RouteDeleted, GroupUpserted, GroupDeleted, PeerUpserted, PeerDeleted)


def _check(changes: Sequence[Change]) -> None:
    """Refuse a batch with an unknown change before any of it is applied."""
    for c in changes:
        if not isinstance(c, _CHANGE_TYPES):
            raise TypeError(f"unknown change {c!r}")


def _diff(before: dict[str, MapRoute], after: dict[str, MapRoute]) -> tuple[list[MapRoute], list[str]]:
    ups = [e for eid, e in after.items() if (o := before.get(eid)) is not e and o != e]
    rems = [eid for eid in before if eid not in after]
    return ups, rems
