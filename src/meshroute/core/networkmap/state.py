"""Incremental network-map engine: per-account indexes, affected peers and per-peer deltas.

The semantics are those of `oracle.compute_network_map`; this module only makes them cheap.

A map has two parts:
- the *peer table*, shared by every peer of the account (allow-all: T sees every peer but itself).
  It is stored once; a join, leave or change of one peer is one delta entry for everybody else;
- the *per-peer part*: which routes T serves (`own`) and receives (`recv`), whether T is
  IPv6-capable, and T's firewall rules. Route entries themselves are not stored per peer: every
  route's expansion (one `MapRoute` per routing peer, plus `::/0` twins for exit routes) is cached
  once and shared, so a per-peer part is two small sets of route IDs and, for routing peers, rules.

`apply()` runs the changes against the indexes while recording what they touch (routes whose
expansion or sources may change, peers whose selection or rules may change, peers whose map may
change at all); then only those peers are recomputed and diffed against their cached part.
Overlay addresses are assumed unique within an account (the server allocates them).
"""

from __future__ import annotations

import ipaddress
from bisect import bisect_left
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, field

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
        )


@dataclass(frozen=True, slots=True)
class _Expansion:
    """A route's entries, one per routing peer (`twin`: the `::/0` copies of an exit route)."""

    base: dict[str, MapRoute]
    twin: dict[str, MapRoute]


_NO_EXPANSION = _Expansion({}, {})


@dataclass(frozen=True, slots=True)
class _Part:
    """The per-peer part of a map, as last sent."""

    own: frozenset[str]  # enabled routes T serves and receives (after the IPv6 filter)
    recv: frozenset[str]  # routes T receives through other routing peers
    v6: bool
    rules: tuple[RouteFirewallRule, ...]


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
        self._groups_of: dict[str, set[str]] = {}  # peer ID -> groups listing it
        self._routes: dict[str, _Spec] = {}
        self._by_single: dict[str, set[str]] = {}  # routing peer -> single-peer routes
        self._by_peer_group: dict[str, set[str]] = {}  # group -> routes it serves (PeerGroups)
        self._by_dist_group: dict[str, set[str]] = {}  # group -> routes it receives (Groups)
        self._by_acg: dict[str, set[str]] = {}  # group -> routes it may use (ACGs)
        self._exp: dict[str, _Expansion] = {}
        self._src: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {}
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
        for pid, view in self._peers.items():
            own, recv, v6 = self._selection(pid, view)
            own, recv = self._interned(own), self._interned(recv)
            self._parts[pid] = _Part(own, recv, v6, self._rules(pid, view, own))

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
        entries: dict[str, MapRoute] = {}
        for rid in own:
            entries.update(self._entries_for(peer_id, rid, own, recv, v6, self._expansion(rid)))
        for rid in recv:
            entries.update(self._entries_for(peer_id, rid, own, recv, v6, self._expansion(rid)))
        return NetworkMap(
            serial=self.serial,
            self_config=view,
            peers=self._table_without(peer_id),
            routes=tuple(sorted(entries.values(), key=_by_id)),
            rules=self._rules(peer_id, view, own),
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
                self._src.pop(rid, None)

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
        self._table = None
        return old

    def _set_group(self, gid: str, members: frozenset[str] | None) -> frozenset[str] | None:
        old = self._members.get(gid)
        before = old or _EMPTY
        after = members or _EMPTY
        for pid in before - after:
            gs = self._groups_of.get(pid)
            if gs is not None:
                gs.discard(gid)
                if not gs:
                    del self._groups_of[pid]
        for pid in after - before:
            self._groups_of.setdefault(pid, set()).add(gid)
        if members is None:
            self._members.pop(gid, None)
        else:
            self._members[gid] = members
        return old

    def _set_route(self, rid: str, spec: _Spec | None) -> _Spec | None:
        old = self._routes.pop(rid, None)
        if old is not None:
            if old.peer:
                _remove(self._by_single, (old.peer,), rid)
            _remove(self._by_peer_group, old.peer_groups, rid)
            _remove(self._by_dist_group, old.groups, rid)
            _remove(self._by_acg, old.acgs, rid)
        if spec is not None:
            self._routes[rid] = spec
            if spec.peer:
                _add(self._by_single, (spec.peer,), rid)
            _add(self._by_peer_group, spec.peer_groups, rid)
            _add(self._by_dist_group, spec.groups, rid)
            _add(self._by_acg, spec.acgs, rid)
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

    def _sources(self, rid: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """Sorted v4 (/32) and v6 (/128) CIDRs of the peers allowed to use a route."""
        src = self._src.get(rid)
        if src is None:
            s = self._routes[rid]
            allowed = self._union(s.groups)
            if s.acgs:
                allowed &= self._union(s.acgs)
            views = [self._peers[p] for p in allowed]
            v4 = tuple(sorted({v.ip + "/32" for v in views}))
            v6 = tuple(sorted({v.ipv6 + "/128" for v in views if v.ipv6 is not None}))
            src = (v4, v6)
            self._src[rid] = src
        return src

    def _selection(self, pid: str, view: MapPeer) -> tuple[frozenset[str], frozenset[str], bool]:
        """(own, recv, v6) of a peer, from the indexes."""
        v6 = view.ipv6 is not None
        gids = self._groups_of.get(pid, ())
        routes = self._routes
        own_all: set[str] = set(self._by_single.get(pid, ()))
        for g in gids:
            rs = self._by_peer_group.get(g)
            if rs:
                own_all |= rs
        own: list[str] = []
        ha: set[str] = set()
        for rid in own_all:
            s = routes[rid]
            ha.add(s.ha)
            if s.active and (v6 or s.kind != _V6):
                own.append(rid)
        recv: list[str] = []
        for g in gids:
            rs = self._by_dist_group.get(g)
            if not rs:
                continue
            for rid in rs:
                if rid in own_all:
                    continue
                s = routes[rid]
                if s.active and (v6 or s.kind != _V6) and s.ha not in ha:
                    recv.append(rid)
        return (frozenset(own) if own else _EMPTY), (frozenset(recv) if recv else _EMPTY), v6

    def _rules(self, pid: str, view: MapPeer, own: Collection[str]) -> tuple[RouteFirewallRule, ...]:
        if not own:
            return ()
        me4 = view.ip + "/32"
        me6 = view.ipv6 + "/128" if view.ipv6 is not None else None
        rules: list[RouteFirewallRule] = []
        for rid in own:
            s = self._routes[rid]
            eid = s.id if s.peer else f"{s.id}:{pid}"
            v4, v6 = self._sources(rid)
            if s.kind == _V6:
                rules.append(RouteFirewallRule(eid, s.network, _without(v6, me6)))
                continue
            if s.kind == _DOMAIN:
                rules.append(RouteFirewallRule(eid, s.network, _without(v4, me4), s.domains, True))
                if me6 is not None and (v6 := _without(v6, me6)):
                    rules.append(RouteFirewallRule(eid, s.network, v6, s.domains, True))
                continue
            rules.append(RouteFirewallRule(eid, s.network, _without(v4, me4)))
            if s.is_exit and me6 is not None and (v6 := _without(v6, me6)):
                rules.append(RouteFirewallRule(eid + V6_DEFAULT_ID_SUFFIX, V6_DEFAULT_NETWORK, v6))
        rules.sort()
        return tuple(rules)

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

    def _sources_changed(self, rid: str, b: _Batch) -> None:
        b.src_dirty.add(rid)
        self._src.pop(rid, None)
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
        self._src.pop(rid, None)
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
        gids = self._groups_of.get(pid, set())
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

        for pid in visit:
            view = peers[pid]
            old = parts.get(pid)
            if old is None or pid in sel_dirty:
                own, recv, v6 = self._selection(pid, view)
                if old is not None:
                    own = old.own if own == old.own else self._interned(own)
                    recv = old.recv if recv == old.recv else self._interned(recv)
                else:
                    own, recv = self._interned(own), self._interned(recv)
            else:
                own, recv, v6 = old.own, old.recv, old.v6
            if (
                old is None
                or pid in rules_dirty
                or pid in sel_dirty
                or (own and not own.isdisjoint(rules_trigger))
            ):
                rules = self._rules(pid, view, own)
                if old is not None and rules == old.rules:
                    rules = old.rules
            else:
                rules = old.rules
            if (
                old is None
                or own is not old.own
                or recv is not old.recv
                or v6 != old.v6
                or rules is not old.rules
            ):
                parts[pid] = _Part(own, recv, v6, rules)

            if old is None:
                entries: dict[str, MapRoute] = {}
                for rid in own | recv:
                    entries.update(self._entries_for(pid, rid, own, recv, v6, self._expansion(rid)))
                result[pid] = MapDelta(
                    serial=serial,
                    peers_upserted=self._table_without(pid),
                    routes_upserted=tuple(sorted(entries.values(), key=_by_id)),
                    rules=rules or None,
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
                if pid not in changed_ids and rules is old.rules:
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
                rules=None if rules is old.rules else rules,
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
