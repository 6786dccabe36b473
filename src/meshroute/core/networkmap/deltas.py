"""Delta building: after a batch of changes, recompute only the peers it may have touched and
diff each against its cached part; peers with identical deltas share one `MapDelta`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple

from meshroute.core.networkmap.expansion import Expansions
from meshroute.core.networkmap.specs import (
    EMPTY,
    Expansion,
    Part,
    RuleBase,
    Selection,
    by_id,
    diff_entries,
    rules_of,
)
from meshroute.core.networkmap.types import MapDelta, MapPeer, MapRoute, RouteFirewallRule


@dataclass(slots=True)
class Batch:
    """What a sequence of changes touched; filled while the changes are applied."""

    all_peers: bool = False  # the peer table changed: every peer's map may change
    visit: set[str] = field(default_factory=set)  # peers whose map may change
    sel_dirty: set[str] = field(default_factory=set)  # peers whose own/recv selection may change
    rules_dirty: set[str] = field(default_factory=set)  # peers whose rules may change
    touched: set[str] = field(default_factory=set)  # routes whose expansion may change
    old_exp: dict[str, Expansion] = field(default_factory=dict)  # their expansion before the batch
    src_dirty: set[str] = field(default_factory=set)  # routes whose allowed sources may change
    old_views: dict[str, MapPeer | None] = field(default_factory=dict)  # peers before the batch


class _TableChanges(NamedTuple):
    ups: tuple[MapPeer, ...]  # sorted by ID
    rems: tuple[str, ...]  # sorted
    changed_ids: set[str]


@dataclass(slots=True)
class _Memo:
    """What one `_finish` pass computes once and reuses across peers."""

    selections: dict[tuple[tuple[str, ...], frozenset[str], bool], Selection] = field(default_factory=dict)
    bases: dict[frozenset[str], tuple[RuleBase, ...]] = field(default_factory=dict)
    recv_diffs: dict[tuple[str, bool], tuple[list[MapRoute], list[str]]] = field(default_factory=dict)
    touched_in: dict[frozenset[str], tuple[str, ...]] = field(default_factory=dict)
    combined: dict[tuple[tuple[str, ...], bool], tuple[tuple[MapRoute, ...], tuple[str, ...]]] = field(
        default_factory=dict
    )
    shared: dict[tuple[tuple[str, ...], bool], MapDelta | None] = field(default_factory=dict)


def _peer_delta(
    serial: int,
    pid: str,
    view: MapPeer,
    table: _TableChanges,
    r_ups: tuple[MapRoute, ...],
    r_rems: tuple[str, ...],
    rules: tuple[RouteFirewallRule, ...] | None,
) -> MapDelta | None:
    """A peer's own delta (not shared): the table changes (its own entry as `self_changed`), its
    route changes and rules; None when nothing changed for it."""
    changed_itself = pid in table.changed_ids
    delta = MapDelta(
        serial=serial,
        peers_upserted=tuple(p for p in table.ups if p.id != pid) if changed_itself else table.ups,
        peers_removed=table.rems,
        routes_upserted=r_ups,
        routes_removed=r_rems,
        rules=rules,
        self_changed=view if changed_itself else None,
    )
    return None if delta.is_empty else delta


class Deltas(Expansions):
    def _finish(self, b: Batch) -> dict[str, MapDelta]:
        """The delta of every visited peer whose map changed. The loop may run over every peer of
        the account, so the common cases (part unchanged; only received routes changed, shared
        with the peers of the same selection) stay inline and memoized."""
        table = self._table_changes(b)
        memo = _Memo()
        serial, touched, parts, peers = self.serial, b.touched, self._parts, self._peers
        single_touched = next(iter(touched)) if len(touched) == 1 else None
        sel_dirty, rules_dirty, rules_trigger = b.sel_dirty, b.rules_dirty, touched | b.src_dirty
        result: dict[str, MapDelta] = {}
        # Without a peer-table change no peer left, so every visited peer still exists.
        for pid in peers.keys() if b.all_peers else b.visit:
            view = peers[pid]
            old = parts.get(pid)
            rules: tuple[RouteFirewallRule, ...] | None = None  # set when the rules changed
            if (
                old is not None
                and pid not in sel_dirty
                and pid not in rules_dirty
                and (not old.own or old.own.isdisjoint(rules_trigger))
            ):
                own, recv, v6 = old.own, old.recv, old.v6  # most visited peers: the part stays
            else:
                own, recv, v6, rules = self._refresh_part(pid, view, old, pid in sel_dirty, memo)
                if old is None:  # joined: a delta relative to no map
                    result[pid] = self._join_delta(pid, view, parts[pid])
                    continue
            fast = own is old.own and recv is old.recv and v6 == old.v6
            if fast and touched and own.isdisjoint(touched):
                if single_touched is not None:
                    rk: tuple[str, ...] = (single_touched,) if single_touched in recv else ()
                else:
                    found = memo.touched_in.get(recv)
                    if found is None:
                        found = memo.touched_in[recv] = tuple(sorted(r for r in touched if r in recv))
                    rk = found
                key = (rk, v6)
                pair = memo.combined.get(key) or self._combined(key, b, memo)
                if pid not in table.changed_ids and rules is None:
                    if key in memo.shared:
                        common = memo.shared[key]
                    else:
                        made = MapDelta(serial, table.ups, table.rems, *pair)
                        common = memo.shared[key] = None if made.is_empty else made
                    if common is not None:
                        result[pid] = common
                    continue
                r_ups, r_rems = pair
            elif fast and not touched:
                r_ups, r_rems = (), ()
            else:
                r_ups, r_rems = self._general_diff(pid, old, own, recv, v6, b)
            delta = _peer_delta(serial, pid, view, table, r_ups, r_rems, rules)
            if delta is not None:
                result[pid] = delta
        return result

    def _table_changes(self, b: Batch) -> _TableChanges:
        """What changed in the peer table (shared by every peer); parts of peers that left go."""
        ups: list[MapPeer] = []
        rems: list[str] = []
        for pid, before in b.old_views.items():
            now = self._peers.get(pid)
            if now == before:
                continue
            if now is None:
                rems.append(pid)
                self._parts.pop(pid, None)
            else:
                ups.append(now)
        ups.sort(key=by_id)
        return _TableChanges(tuple(ups), tuple(sorted(rems)), {p.id for p in ups})

    def _refresh_part(
        self, pid: str, view: MapPeer, old: Part | None, reselect: bool, memo: _Memo
    ) -> tuple[frozenset[str], frozenset[str], bool, tuple[RouteFirewallRule, ...] | None]:
        """A peer's part recomputed (and stored if it changed): its selection, and its rules if
        they changed. Selections equal to the old ones keep the old (interned) objects, so the
        fast paths can compare by identity."""
        if old is None or reselect:
            own, recv, v6 = self._selection_memo(pid, view, memo.selections)
            if old is not None:
                own = old.own if own is old.own or own == old.own else own
                recv = old.recv if recv is old.recv or recv == old.recv else recv
        else:
            own, recv, v6 = old.own, old.recv, old.v6
        bases = self._bases(own, memo.bases)
        addr = view if bases else None
        rules = None if old is None else self._rules_if_changed(pid, old.addr, old.bases, addr, bases)
        if (
            old is None
            or own is not old.own
            or recv is not old.recv
            or v6 != old.v6
            or bases is not old.bases
            or addr is not old.addr
        ):
            self._parts[pid] = Part(own, recv, v6, bases, addr)
        return own, recv, v6, rules

    def _join_delta(self, pid: str, view: MapPeer, part: Part) -> MapDelta:
        return MapDelta(
            serial=self.serial,
            peers_upserted=self._table_without(pid),
            routes_upserted=self._route_entries(pid, part.own, part.recv, part.v6),
            rules=rules_of(pid, part.addr, part.bases) or None,
            self_changed=view,
        )

    def _combined(
        self, key: tuple[tuple[str, ...], bool], b: Batch, memo: _Memo
    ) -> tuple[tuple[MapRoute, ...], tuple[str, ...]]:
        """The received-route diff of every peer that receives exactly the routes `key[0]` of
        those the batch touched (with `key[1]`: IPv6-capable)."""
        ups: list[MapRoute] = []
        rems: list[str] = []
        for rid in key[0]:
            u, r = self._recv_diff(rid, key[1], b, memo.recv_diffs)
            ups.extend(u)
            rems.extend(r)
        pair = (tuple(sorted(ups, key=by_id)), tuple(sorted(rems)))
        memo.combined[key] = pair
        return pair

    def _old_expansion(self, rid: str, b: Batch) -> Expansion:
        exp = b.old_exp.get(rid)
        return exp if exp is not None else self._expansion(rid)

    def _recv_diff(
        self,
        rid: str,
        v6: bool,
        b: Batch,
        memo: dict[tuple[str, bool], tuple[list[MapRoute], list[str]]],
    ) -> tuple[list[MapRoute], list[str]]:
        """Diff of a route's entries for every peer that received it before and after the batch."""
        key = (rid, v6)
        found = memo.get(key)
        if found is None:
            sel = frozenset((rid,))
            before = self._entries_for("", rid, EMPTY, sel, v6, self._old_expansion(rid, b))
            after = self._entries_for("", rid, EMPTY, sel, v6, self._expansion(rid))
            found = diff_entries(before, after)
            memo[key] = found
        return found

    def _general_diff(
        self, pid: str, old: Part, own: frozenset[str], recv: frozenset[str], v6: bool, b: Batch
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
            u, r = diff_entries(before, after)
            ups.extend(u)
            rems.extend(r)
        return tuple(sorted(ups, key=by_id)), tuple(sorted(rems))
