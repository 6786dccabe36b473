"""The per-account indexes of the network-map engine and what they answer directly: who is in
which group, which routes a group serves, receives or may use, and each peer's selection of
routes. Kept in step by `_set_peer`, `_set_group` and `_set_route`."""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterable

from meshroute.core.networkmap.specs import (
    EMPTY,
    V6,
    Cidrs,
    Expansion,
    Part,
    RouteSpec,
    RuleBase,
    Selection,
    SourceKey,
    by_id,
    index_add,
    index_remove,
)
from meshroute.core.networkmap.types import MapPeer, MapRoute


class Indexes:
    """Indexes, caches and per-peer parts of one account; the subclasses use and extend them."""

    def __init__(self, account_id: str, serial: int) -> None:
        self.account_id = account_id
        self.serial = serial
        self._peers: dict[str, MapPeer] = {}
        self._members: dict[str, frozenset[str]] = {}  # group -> member IDs as stored
        # peer ID -> sorted groups listing it; interned, as most peers share theirs with others
        self._groups_of: dict[str, tuple[str, ...]] = {}
        self._group_sets: dict[tuple[str, ...], tuple[str, ...]] = {}
        self._routes: dict[str, RouteSpec] = {}
        self._by_single: dict[str, set[str]] = {}  # routing peer -> single-peer routes
        self._by_peer_group: dict[str, set[str]] = {}  # group -> routes it serves (PeerGroups)
        self._by_dist_group: dict[str, set[str]] = {}  # group -> routes it receives (Groups)
        self._by_acg: dict[str, set[str]] = {}  # group -> routes it may use (ACGs)
        self._by_ha: dict[str, set[str]] = {}  # HA unique ID -> routes
        self._inactive: set[str] = set()  # disabled routes and routes without a usable prefix
        self._active_v6: set[str] = set()  # active IPv6 routes (not sent to v4-only peers)
        self._gver: dict[str, int] = {}  # group -> tick of its last membership or member-address change
        self._tick = 0
        self._exp: dict[str, Expansion] = {}
        self._rb: dict[str, RuleBase] = {}  # route -> its rule base (dropped when sources may change)
        # (groups, ACGs) -> (group ticks when computed, (v4, v6) sources): one tuple for all routes
        # of the same audience, validated by the ticks because it outlives any single route.
        self._src_by_key: dict[SourceKey, tuple[tuple[int, ...], tuple[Cidrs, Cidrs]]] = {}
        self._recv_cache: dict[tuple[frozenset[str], bool], tuple[MapRoute, ...]] = {}  # LRU order
        self._recv_cache_size = 0
        self._parts: dict[str, Part] = {}
        self._intern: dict[frozenset[str], frozenset[str]] = {}
        self._table: tuple[MapPeer, ...] | None = None
        self._table_ids: list[str] = []

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
        before = old or EMPTY
        after = members or EMPTY
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

    def _set_route(self, rid: str, spec: RouteSpec | None) -> RouteSpec | None:
        old = self._routes.pop(rid, None)
        if old is not None:
            if old.peer:
                index_remove(self._by_single, (old.peer,), rid)
            index_remove(self._by_peer_group, old.peer_groups, rid)
            index_remove(self._by_dist_group, old.groups, rid)
            index_remove(self._by_acg, old.acgs, rid)
            index_remove(self._by_ha, (old.ha,), rid)
            self._inactive.discard(rid)
            self._active_v6.discard(rid)
        if spec is not None:
            self._routes[rid] = spec
            if spec.peer:
                index_add(self._by_single, (spec.peer,), rid)
            index_add(self._by_peer_group, spec.peer_groups, rid)
            index_add(self._by_dist_group, spec.groups, rid)
            index_add(self._by_acg, spec.acgs, rid)
            index_add(self._by_ha, (spec.ha,), rid)
            if not spec.active:
                self._inactive.add(rid)
            elif spec.kind == V6:
                self._active_v6.add(rid)
        return old

    # --- derived data ----------------------------------------------------------------------------

    def _union(self, gids: Iterable[str]) -> set[str]:
        """Members of the groups that are peers of the account."""
        peers = self._peers
        return {p for p in self._members_of(gids) if p in peers}

    def _members_of(self, gids: Iterable[str]) -> set[str]:
        """Members listed by the groups, peers of the account or not."""
        out: set[str] = set()
        for gid in gids:
            m = self._members.get(gid)
            if m:
                out |= m
        return out

    def _routing(self, s: RouteSpec) -> set[str]:
        if s.peer:
            return {s.peer} if s.peer in self._peers else set()
        return self._union(s.peer_groups)

    def _selection(self, pid: str, view: MapPeer) -> Selection:
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
        return Selection(frozenset(own_all) if own_all else EMPTY, frozenset(recv) if recv else EMPTY, v6)

    def _selection_memo(
        self, pid: str, view: MapPeer, memo: dict[tuple[tuple[str, ...], frozenset[str], bool], Selection]
    ) -> Selection:
        """`_selection`, interned and shared by peers with the same groups, single routes and v6.

        Most peers share that signature with the rest of their group, and interning a selection
        hashes all its route IDs (~500 for a member of an "All" group of a route-heavy account).
        """
        single = self._by_single.get(pid)
        key = (
            self._groups_of.get(pid, ()),
            frozenset(single) if single else EMPTY,
            view.ipv6 is not None,
        )
        found = memo.get(key)
        if found is None:
            own, recv, v6 = self._selection(pid, view)
            found = Selection(self._interned(own), self._interned(recv), v6)
            memo[key] = found
        return found

    def _interned(self, sel: frozenset[str]) -> frozenset[str]:
        """One shared object per distinct route selection: less memory, identity comparisons."""
        if not sel:
            return EMPTY
        found = self._intern.get(sel)
        if found is not None:
            return found
        if len(self._intern) > 2 * len(self._parts) + 64:
            live = [x for p in self._parts.values() for x in (p.own, p.recv)]
            self._intern = {x: x for x in live}
        self._intern[sel] = sel
        return sel

    def _peer_table(self) -> tuple[MapPeer, ...]:
        if self._table is None:
            table = tuple(sorted(self._peers.values(), key=by_id))
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
