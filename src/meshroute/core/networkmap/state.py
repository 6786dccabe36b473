"""Incremental network-map engine: per-account indexes, affected peers and per-peer deltas.

The semantics are those of `oracle.compute_network_map`; this module only makes them cheap.

A map has two parts:
- the *peer table*, shared by every peer of the account (allow-all: T sees every peer but itself).
  It is stored once; a join, leave or change of one peer is one delta entry for everybody else;
- the *per-peer part*: which routes T serves (`own`) and receives (`recv`), whether T is
  IPv6-capable, and what T's firewall rules are made of. Route entries themselves are not stored
  per peer: every route's expansion (one `MapRoute` per routing peer, plus `::/0` twins for exit
  routes) is cached once and shared, so a per-peer part is two interned sets of route IDs and, for
  routing peers, a tuple of shared `RuleBase`s.

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

The parts: `specs` (what is kept per route and per peer), `indexes` (who is where), `expansion`
(route entries and rule sources), `deltas` (recomputing and diffing the touched peers); this
module applies changes and answers full maps.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from meshroute.core import changes as ch
from meshroute.core.changes import MAP_CHANGES, MapChange
from meshroute.core.model import Group, Peer, Route
from meshroute.core.networkmap.deltas import Batch, Deltas
from meshroute.core.networkmap.specs import EMPTY, Part, RouteSpec, RuleBase, Selection, rules_of
from meshroute.core.networkmap.types import MapDelta, MapPeer, NetworkMap


class AccountState(Deltas):
    """The network-map state of one account: indexes, per-route caches and per-peer parts."""

    def __init__(
        self,
        account_id: str,
        serial: int,
        peers: Iterable[Peer],
        groups: Iterable[Group],
        routes: Iterable[Route],
    ) -> None:
        super().__init__(account_id, serial)
        self._last_visit: tuple[bool, set[str]] = (False, set())  # see `recomputed`
        for p in peers:
            self._set_peer(p.id, MapPeer.from_peer(p))
        for g in groups:
            self._set_group(g.id, frozenset(g.peers))
        for r in routes:
            self._set_route(r.id, RouteSpec.of(r))
        sel_memo: dict[tuple[tuple[str, ...], frozenset[str], bool], Selection] = {}
        bases_memo: dict[frozenset[str], tuple[RuleBase, ...]] = {}
        for pid, view in self._peers.items():
            own, recv, v6 = self._selection_memo(pid, view, sel_memo)
            bases = self._bases(own, bases_memo)
            self._parts[pid] = Part(own, recv, v6, bases, view if bases else None)

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
            rules=rules_of(peer_id, view, self._bases(own, None)),
        )

    def apply(self, changes: Sequence[MapChange], serial: int) -> dict[str, MapDelta]:
        """Apply the changes; returns the non-empty delta of every peer whose map changed.

        A peer that joined gets a delta relative to no map (`apply_delta(None, delta)`); a peer
        that left gets nothing. Peers with identical deltas share one `MapDelta` object.
        """
        _check(changes)
        batch = Batch()
        for c in changes:
            self._change(c, batch)
        self.serial = serial
        self._last_visit = (batch.all_peers, batch.visit)
        return self._finish(batch)

    def recomputed(self) -> set[str]:
        """The peers the last `apply` looked at (a superset of those with a delta): a change costs
        work for these only, which is what keeps a change cheap in a large account (DESIGN rule 6)."""
        every, visit = self._last_visit
        return set(self._peers) if every else {p for p in visit if p in self._peers}

    # --- changes ---------------------------------------------------------------------------------

    def _change(self, c: MapChange, b: Batch) -> None:
        if isinstance(c, ch.RouteUpserted):
            self._route_change(c.route.id, RouteSpec.of(c.route), b)
        elif isinstance(c, ch.RouteDeleted):
            self._route_change(c.route_id, None, b)
        elif isinstance(c, ch.GroupUpserted):
            self._group_change(c.group.id, frozenset(c.group.peers), b)
        elif isinstance(c, ch.GroupDeleted):
            self._group_change(c.group_id, None, b)
        elif isinstance(c, ch.PeerUpserted):
            self._peer_change(c.peer.id, MapPeer.from_peer(c.peer), b)
        elif isinstance(c, ch.PeerDeleted):
            self._peer_change(c.peer_id, None, b)
        else:  # pragma: no cover - `_check` ran first
            raise TypeError(f"unknown change {c!r}")

    def _touch(self, rid: str, b: Batch) -> None:
        """A route's expansion may change: keep the one from before the batch, drop the cache."""
        b.touched.add(rid)
        if rid not in b.old_exp:
            b.old_exp[rid] = self._expansion(rid)
        self._exp.pop(rid, None)
        self._forget_recv(rid)

    def _sources_changed(self, rid: str, b: Batch) -> None:
        b.src_dirty.add(rid)
        self._rb.pop(rid, None)
        s = self._routes[rid]
        if s.active:  # its routing peers' rules follow (`rules_trigger` in `_finish`)
            b.visit |= self._routing(s)

    def _route_change(self, rid: str, new: RouteSpec | None, b: Batch) -> None:
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
        self._set_route(rid, new)

    def _group_change(self, gid: str, new: frozenset[str] | None, b: Batch) -> None:
        """Affected: the peers that joined or left, plus the opposite side of the group's routes."""
        old = self._members.get(gid)
        if old == new:
            return
        peers = self._peers
        moved = {p for p in (old or EMPTY) ^ (new or EMPTY) if p in peers}
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
        self._set_group(gid, new)

    def _peer_change(self, pid: str, new: MapPeer | None, b: Batch) -> None:
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
        self._set_peer(pid, new)


def _check(changes: Sequence[MapChange]) -> None:
    """Refuse a batch with an unknown change before any of it is applied."""
    for c in changes:
        if not isinstance(c, MAP_CHANGES):
            raise TypeError(f"unknown change {c!r}")
