"""Route expansion and rule sources: every route's entries (one per routing peer, plus `::/0`
twins of exit routes), the firewall-rule sources shared by routes with the same audience, and a
peer's route entries and rules assembled from them, each cached until a change touches it."""

from __future__ import annotations

from bisect import bisect_left

from meshroute.core.networkmap.indexes import Indexes
from meshroute.core.networkmap.specs import (
    ENTRY_ID,
    NO_EXPANSION,
    Cidrs,
    Expansion,
    RouteSpec,
    RuleBase,
    last_per_id,
    own_cidrs,
    rules_of,
    v6_twin,
)
from meshroute.core.networkmap.types import V6_DEFAULT_ID_SUFFIX, MapPeer, MapRoute, RouteFirewallRule

# Sorted received-route tuples kept for full maps, counted in entries (8 bytes of reference each,
# so at most 16 MiB): a peer of the route-heavy benchmark account receives ~12,500 entries, shared
# by the ~50 peers with its selection; its ~100 distinct selections fit (an LRU smaller than the
# working set would miss on every map of a pass over all peers).
RECV_CACHE_MAX_ENTRIES = 1 << 21


class Expansions(Indexes):
    def _expansion(self, rid: str) -> Expansion:
        exp = self._exp.get(rid)
        if exp is None:
            exp = self._build_expansion(rid)
            self._exp[rid] = exp
        return exp

    def _build_expansion(self, rid: str) -> Expansion:
        s = self._routes.get(rid)
        if s is None or not s.active:
            return NO_EXPANSION
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
                twin[pid] = v6_twin(e)
        return Expansion(base, twin)

    def _sources(self, s: RouteSpec) -> tuple[Cidrs, Cidrs]:
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

    def _rule_base(self, rid: str) -> RuleBase:
        rb = self._rb.get(rid)
        if rb is None:
            s = self._routes[rid]
            v4, v6 = self._sources(s)
            plain = ":" not in s.id and not s.id.endswith(V6_DEFAULT_ID_SUFFIX)
            rb = RuleBase(s.id, bool(s.peer), s.kind, s.network, s.domains, s.is_exit, v4, v6, plain)
            self._rb[rid] = rb
        return rb

    def _bases(
        self, own: frozenset[str], memo: dict[frozenset[str], tuple[RuleBase, ...]] | None
    ) -> tuple[RuleBase, ...]:
        """The rule bases of the routes a peer serves, by route ID (one tuple per interned `own`)."""
        if not own:
            return ()
        found = memo.get(own) if memo is not None else None
        if found is None:
            found = tuple(self._rule_base(rid) for rid in sorted(own))
            if memo is not None:
                memo[own] = found
        return found

    def _rules_if_changed(
        self,
        pid: str,
        old_addr: MapPeer | None,
        old: tuple[RuleBase, ...],
        addr: MapPeer | None,
        new: tuple[RuleBase, ...],
    ) -> tuple[RouteFirewallRule, ...] | None:
        """The peer's new rules, or None when they equal the ones built from `old_addr` and `old`.

        Usually decided route by route on the shared sources, without materializing the old side.
        """
        if not old and not new:
            return None
        me = own_cidrs(addr)
        if len(old) == len(new) and own_cidrs(old_addr) == me:
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
                    return rules_of(pid, addr, new)
        rules = rules_of(pid, addr, new)
        return None if rules == rules_of(pid, old_addr, old) else rules

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
        for e in sorted(mine.values(), key=ENTRY_ID):
            i = bisect_left(out, e.id, key=ENTRY_ID)
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
            collected.sort(key=ENTRY_ID)
            found = last_per_id(collected)
            self._recv_cache_size += len(found)
            while cache and self._recv_cache_size > RECV_CACHE_MAX_ENTRIES:
                self._recv_cache_size -= len(cache.pop(next(iter(cache))))
        cache[key] = found  # most recently used last
        return found

    def _forget_recv(self, rid: str) -> None:
        """Drop the cached received entries that include a route whose expansion may change."""
        cache = self._recv_cache
        if cache:
            for key in [k for k in cache if rid in k[0]]:
                self._recv_cache_size -= len(cache.pop(key))

    @staticmethod
    def _entries_for(
        pid: str, rid: str, own: frozenset[str], recv: frozenset[str], v6: bool, exp: Expansion
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
