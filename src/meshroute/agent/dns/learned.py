"""The addresses learned from DNS answers, per group (pure; the caller passes the time).

A *group* is an HA group (`MapRoute.ha_id`) on a client and a served route (its ID) on a routing
peer. Within a group, addresses are tracked per (question name, address family): an AAAA answer
never touches what A answers taught for the same name (the reference keyed by name only, so an
AAAA answer removed the A addresses: its QUIRK, fixed here).

Lifetime of an address (times in seconds, `now` from the caller's clock):

- **Without KeepRoute** an answer *replaces* the addresses of its (name, family): new ones are
  added, those that dropped out are removed (or, when the caller says they are in use, kept until
  a later `expire` finds them unused). Every address also expires `ttl + grace` after the last
  answer that contained it (`ttl` clamped to `max_ttl`; `grace` default 60 s, so a TTL of 0 still
  gives applications a minute to connect).
- **With KeepRoute** addresses are only ever added: those that drop out of later answers stay, and
  nothing expires; they go when the route goes (`forget`).
- **In use**: `expire(now, in_use)` never removes an address for which `in_use(address)` is true
  (the caller answers from conntrack: a connection to it exists); it looks again `recheck` seconds
  later (default 30 s). The same holds for addresses that drop out of an answer when `learn` is
  given `in_use`.
- **Cap**: at most `cap` (default 4,096) learned entries per group (an entry is one address of one
  name and family; the same address under two names is two entries). When an answer brings more,
  the non-kept entries that expire soonest make room (addresses already dropped from their answers
  first, since they are due now); entries of the answer being learned are never evicted for it. If
  nothing can be evicted (every entry is kept by KeepRoute), new addresses are refused and reported
  in `Learned.refused`: a flood of answers can fill a group but never grow it past the cap. Eviction
  does not ask `in_use`: the cap is the guard against a flood, and wins.
"""

from __future__ import annotations

import ipaddress
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from meshroute.agent.dns.answers import Address, Answer, Family, host_prefix

DEFAULT_GRACE_S = 60.0
DEFAULT_CAP = 4096
DEFAULT_MAX_TTL_S = 3600
DEFAULT_RECHECK_S = 30.0

InUse = Callable[[str], bool]


@dataclass(slots=True)
class _Entry:
    expires: float | None  # None: kept (KeepRoute)
    learned: float  # first answer that contained it
    current: bool = True  # in the latest answer for its name and family


@dataclass(frozen=True, slots=True)
class Learned:
    """What one `learn` changed in its group. `added`/`removed` are host prefixes (`/32`,
    `/128`) that entered or left the group as a whole (an address still held under another name
    stays); `refused` are addresses not learned because the group is at its cap."""

    added: frozenset[str] = frozenset()
    removed: frozenset[str] = frozenset()
    refused: tuple[str, ...] = ()

    @property
    def changed(self) -> bool:
        return bool(self.added or self.removed)


@dataclass(frozen=True, slots=True)
class AddressView:
    """One learned address for `meshroute agent routes list`."""

    prefix: str
    family: Family
    remaining: float | None  # seconds until it expires; None: kept (KeepRoute)
    current: bool  # in the latest answer (False: dropped out, kept or still in use)


_Key = tuple[str, Family]  # (question name, family)


@dataclass(slots=True)
class _Group:
    names: dict[_Key, dict[Address, _Entry]] = field(default_factory=dict)
    holding: dict[Address, int] = field(default_factory=dict)  # address -> entries that hold it
    size: int = 0  # entries, for the cap

    def holders(self, address: Address) -> int:
        return self.holding.get(address, 0)

    def add(self, key: _Key, address: Address, entry: _Entry) -> None:
        self.names.setdefault(key, {})[address] = entry
        self.holding[address] = self.holding.get(address, 0) + 1
        self.size += 1

    def remove(self, key: _Key, address: Address) -> None:
        entries = self.names[key]
        del entries[address]
        if not entries:
            del self.names[key]
        left = self.holding[address] - 1
        if left:
            self.holding[address] = left
        else:
            del self.holding[address]
        self.size -= 1


class LearnedAddresses:
    def __init__(
        self,
        *,
        grace: float = DEFAULT_GRACE_S,
        cap: int = DEFAULT_CAP,
        max_ttl: int = DEFAULT_MAX_TTL_S,
        recheck: float = DEFAULT_RECHECK_S,
    ) -> None:
        if cap < 1:
            raise ValueError("the cap must be at least 1")
        self.grace = grace
        self.cap = cap
        self.max_ttl = max_ttl
        self.recheck = recheck
        self._groups: dict[str, _Group] = {}

    # -- learning ----------------------------------------------------------------------------
    def learn(
        self,
        ha_id: str,
        name: str,
        family: Family,
        addresses: Iterable[Address | str],
        ttl: int,
        now: float,
        keep_route: bool,
        in_use: InUse | None = None,
    ) -> Learned:
        """One answer's addresses of one family for `name` (normalized by the caller: the
        question name). An empty answer changes nothing (the addresses expire by themselves)."""
        wanted = _addresses(addresses, family)
        if not wanted:
            return Learned()
        group = self._groups.setdefault(ha_id, _Group())
        key: _Key = (name, family)
        entries = group.names.get(key, {})
        before = self._present(group, wanted | set(entries))
        expires = None if keep_route else now + min(max(ttl, 0), self.max_ttl) + self.grace
        dropped: list[Address] = []
        for address, old in entries.items():
            if address in wanted:
                continue
            old.current = False
            if keep_route:
                continue
            if in_use is not None and in_use(str(address)):
                old.expires = now + self.recheck
            else:
                dropped.append(address)
        for address in dropped:
            group.remove(key, address)
        refused: list[str] = []
        evicted: set[Address] = set()
        for address in sorted(wanted, key=_order):
            entry = group.names.get(key, {}).get(address)
            if entry is not None:
                entry.current, entry.expires = True, expires
                continue
            if group.size >= self.cap:
                out = self._evict(group, protect=(key, wanted))
                if out is None:
                    refused.append(str(address))
                    continue
                evicted.add(out)
            group.add(key, address, _Entry(expires=expires, learned=now))
        before.update({a: True for a in evicted if a not in before})  # held before its eviction
        after = self._present(group, before.keys())
        added = {host_prefix(a) for a, held in after.items() if held and not before.get(a)}
        removed = {host_prefix(a) for a, held in after.items() if not held and before.get(a)}
        self._drop_empty(ha_id)
        return Learned(frozenset(added), frozenset(removed), tuple(refused))

    def learn_answer(
        self, ha_id: str, answer: Answer, now: float, keep_route: bool, in_use: InUse | None = None
    ) -> Learned:
        """Every family of an `answers.Answer` (what the interceptor's `on_answer` receives)."""
        if answer.ttl is None:
            return Learned()
        added: set[str] = set()
        removed: set[str] = set()
        refused: list[str] = []
        for family, addresses in sorted(answer.addresses.items()):
            one = self.learn(ha_id, answer.name, family, addresses, answer.ttl, now, keep_route, in_use)
            added |= one.added
            removed |= one.removed
            refused += one.refused
        return Learned(frozenset(added - removed), frozenset(removed - added), tuple(refused))

    def dropping(self, ha_id: str, answer: Answer) -> list[str]:
        """The addresses `learn_answer` would drop from the answer's names (without KeepRoute):
        the caller asks conntrack about these, and only when there are any."""
        group = self._groups.get(ha_id)
        if group is None or answer.ttl is None:
            return []
        out: set[str] = set()
        for family, addresses in answer.addresses.items():
            entries = group.names.get((answer.name, family), {})
            out |= {str(a) for a in entries if a not in addresses}
        return sorted(out)

    def _evict(self, group: _Group, protect: tuple[_Key, set[Address]]) -> Address | None:
        """Remove the non-kept entry that expires soonest (not one of the answer being learned)."""
        key, wanted = protect
        best: tuple[float, _Key, Address] | None = None
        for other, entries in group.names.items():
            for address, entry in entries.items():
                if entry.expires is None or (other == key and address in wanted):
                    continue
                if best is None or (entry.expires, other, address) < best:
                    best = (entry.expires, other, address)
        if best is None:
            return None
        group.remove(best[1], best[2])
        return best[2]

    # -- expiry ------------------------------------------------------------------------------
    def next_expiry(self) -> float | None:
        """When `expire` next has something to do (None: nothing expires)."""
        deadlines = [
            e.expires
            for g in self._groups.values()
            for entries in g.names.values()
            for e in entries.values()
            if e.expires is not None
        ]
        return min(deadlines) if deadlines else None

    def due(self, now: float) -> list[str]:
        """The addresses `expire(now, ...)` would ask `in_use` about (to fetch conntrack only
        when needed, and only for these)."""
        return sorted(
            {
                str(a)
                for g in self._groups.values()
                for entries in g.names.values()
                for a, e in entries.items()
                if e.expires is not None and e.expires <= now
            }
        )

    def expire(self, now: float, in_use: InUse) -> dict[str, frozenset[str]]:
        """Remove what is due and not in use; postpone what is in use by `recheck`. Returns the
        host prefixes that left each group (groups with no change are left out)."""
        out: dict[str, frozenset[str]] = {}
        verdicts: dict[Address, bool] = {}
        for ha_id in list(self._groups):
            group = self._groups[ha_id]
            gone: set[Address] = set()
            for key in list(group.names):
                for address, entry in list(group.names[key].items()):
                    if entry.expires is None or entry.expires > now:
                        continue
                    if address not in verdicts:
                        verdicts[address] = in_use(str(address))
                    if verdicts[address]:
                        entry.expires = now + self.recheck
                        continue
                    group.remove(key, address)
                    gone.add(address)
            removed = {host_prefix(a) for a in gone if not group.holders(a)}
            if removed:
                out[ha_id] = frozenset(removed)
            self._drop_empty(ha_id)
        return out

    # -- the route's life --------------------------------------------------------------------
    def set_keep_route(self, ha_id: str, keep_route: bool, now: float) -> None:
        """The route's KeepRoute changed: with it, nothing of the group expires any more; without
        it, what was kept expires after the grace period (its TTL is not known any more), and
        addresses that had dropped out of their answers at the next `expire`."""
        group = self._groups.get(ha_id)
        if group is None:
            return
        for entries in group.names.values():
            for entry in entries.values():
                if keep_route:
                    entry.expires = None
                elif entry.expires is None:
                    entry.expires = now + self.grace if entry.current else now

    def forget(self, ha_id: str) -> frozenset[str]:
        """The route went away (or was deselected): everything of the group, as host prefixes."""
        prefixes = self.addresses(ha_id)
        self._groups.pop(ha_id, None)
        return prefixes

    # -- reading -----------------------------------------------------------------------------
    def groups(self) -> list[str]:
        return sorted(self._groups)

    def questions(self, ha_id: str) -> list[tuple[str, Family]]:
        """The (name, family) pairs the group learned from: what a client asks the new routing
        peer's forwarder again after a failover (`Interceptor.replay`)."""
        group = self._groups.get(ha_id)
        return sorted(group.names) if group else []

    def addresses(self, ha_id: str) -> frozenset[str]:
        """Host prefixes (`/32`, `/128`) of every address the group holds: its kernel routes and
        the AllowedIPs of its routing peer on a client, its nftables set on a routing peer."""
        group = self._groups.get(ha_id)
        if group is None:
            return frozenset()
        return frozenset(host_prefix(a) for entries in group.names.values() for a in entries)

    def count(self, ha_id: str) -> int:
        """Distinct addresses of a group (the server's route status shows it per client)."""
        group = self._groups.get(ha_id)
        if group is None:
            return 0
        return len({a for entries in group.names.values() for a in entries})

    def snapshot(self, ha_id: str, now: float) -> dict[str, list[AddressView]]:
        """Name -> its addresses with the seconds left (None: kept), for status."""
        group = self._groups.get(ha_id)
        out: dict[str, list[AddressView]] = {}
        if group is None:
            return out
        for (name, family), entries in sorted(group.names.items()):
            views = out.setdefault(name, [])
            for address, entry in sorted(entries.items(), key=lambda item: _order(item[0])):
                remaining = None if entry.expires is None else max(0.0, round(entry.expires - now, 1))
                views.append(AddressView(host_prefix(address), family, remaining, entry.current))
        return out

    # -- a record across restarts ------------------------------------------------------------
    def dump(self, ha_id: str, now: float, wall: float) -> list[list[Any]]:
        """The group's entries as JSON rows `[name, family, address, expires, current]`, with
        `expires` on the wall clock `wall` (None: kept): this clock does not survive a restart."""
        group = self._groups.get(ha_id)
        if group is None:
            return []
        return [
            [
                name,
                family,
                str(address),
                None if e.expires is None else round(wall + e.expires - now, 3),
                e.current,
            ]
            for (name, family), entries in sorted(group.names.items())
            for address, e in sorted(entries.items(), key=lambda item: _order(item[0]))
        ]

    def restore(self, ha_id: str, rows: Iterable[Any], now: float, wall: float) -> int:
        """Entries of an earlier `dump` that are still valid at `wall`, their expiry moved onto
        this clock (never past `max_ttl` + grace from now), up to the cap. A malformed row is
        skipped. Returns how many were restored."""
        group = self._groups.setdefault(ha_id, _Group())
        restored = 0
        for row in rows:
            try:
                name, family, text, expires, current = row
                address = ipaddress.ip_address(text)
                if family not in (4, 6) or address.version != family or not isinstance(name, str):
                    continue
                left = None if expires is None else min(float(expires) - wall, self.max_ttl + self.grace)
            except (TypeError, ValueError):
                continue
            if left is not None and not math.isfinite(left):
                continue  # NaN or infinity: JSON takes them, a lifetime cannot be one
            key: _Key = (name, family)
            if (
                (left is not None and left <= 0)
                or group.size >= self.cap
                or address in group.names.get(key, {})
            ):
                continue
            group.add(key, address, _Entry(None if left is None else now + left, now, bool(current)))
            restored += 1
        self._drop_empty(ha_id)
        return restored

    # -- helpers -----------------------------------------------------------------------------
    @staticmethod
    def _present(group: _Group, addresses: Iterable[Address]) -> dict[Address, bool]:
        return {a: group.holders(a) > 0 for a in addresses}

    def _drop_empty(self, ha_id: str) -> None:
        group = self._groups.get(ha_id)
        if group is not None and not group.names:
            del self._groups[ha_id]


def _addresses(values: Iterable[Address | str], family: Family) -> set[Address]:
    out: set[Address] = set()
    for value in values:
        address = ipaddress.ip_address(value) if isinstance(value, str) else value
        if address.version != family:
            raise ValueError(f"{address} is not an IPv{family} address")
        out.add(address)
    return out


def _order(address: Address) -> tuple[int, int]:
    return (address.version, int(address))
