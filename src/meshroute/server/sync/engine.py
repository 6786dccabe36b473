"""Keeps one in-memory `AccountState` per account in step with the store.

Committed change sets arrive from this replica's unit of work or, on PostgreSQL, from other
replicas (NOTIFY). They carry the changed objects themselves (`core.changes`), so applying one
reads nothing from the store. They are applied strictly in serial order by one worker thread; the
resulting per-peer deltas go to the sync hub. A gap that does not fill in time reloads the account.
"""

from __future__ import annotations

import dataclasses
import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from meshroute.core.changes import AccountUpdated, ChangeSet, PeerDeleted
from meshroute.core.model import Account
from meshroute.core.networkmap import AccountState
from meshroute.core.networkmap.types import MapDelta, NetworkMap
from meshroute.server.services.uow import Reader

log = logging.getLogger(__name__)
GAP_TIMEOUT_S = 2.0
GAP_CHECK_S = 0.5
AUDIT_S = 5.0
# How long a reader asking for a map at a given serial waits for the engine to get there. A reader
# ahead of the engine starts the gap clock (the serial may come from a change this replica never
# hears of, e.g. an offline tool's), so a reload comes within GAP_TIMEOUT_S + GAP_CHECK_S.
CATCH_UP_S = GAP_TIMEOUT_S + 2 * GAP_CHECK_S + 1.0

# (account_id, deltas) or (account_id, None): None means "resync everyone of this account";
# a None delta for one peer means "send that peer a full map" (or end its stream if it is gone).
Publisher = Callable[[str, dict[str, MapDelta | None] | None], None]


@dataclass(slots=True)
class _Account:
    state: AccountState
    account: Account
    applied: int
    pending: dict[int, ChangeSet] = field(default_factory=dict)
    gap_since: float | None = None


class MapEngine:
    def __init__(self, reader: Reader, publish: Publisher | None = None) -> None:
        self.reader = reader
        self.publish: Publisher = publish or (lambda _a, _d: None)
        self._accounts: dict[str, _Account] = {}
        self._lock = threading.RLock()
        self._moved = threading.Condition(self._lock)  # notified whenever an account's serial moves
        self._inbox: queue.Queue[ChangeSet | None] = queue.Queue()
        self._worker: threading.Thread | None = None
        self._next_audit = 0.0

    # -- lifecycle ------------------------------------------------------------------------------
    def start(self) -> None:
        self._worker = threading.Thread(target=self._run, name="map-engine", daemon=True)
        self._worker.start()

    def stop(self) -> None:
        if self._worker is not None:
            self._inbox.put(None)
            self._worker.join(timeout=5)
            self._worker = None

    def submit(self, cs: ChangeSet) -> None:
        """Thread-safe; called after commit (unit-of-work listener) or by the replica listener."""
        self._inbox.put(cs)

    def _run(self) -> None:
        """Never lets an exception out: a dead worker would silently freeze every agent's map."""
        next_check = time.monotonic() + GAP_CHECK_S
        while True:
            try:
                cs = self._inbox.get(timeout=GAP_CHECK_S)
                if cs is None:
                    return
            except queue.Empty:
                cs = None
            if cs is not None:
                try:
                    self.process(cs)
                except Exception:  # a change set that cannot be applied costs a reload, not the engine
                    log.exception("applying change set %s/%s failed; reloading", cs.account_id, cs.serial)
                    self.reload(cs.account_id)
            if time.monotonic() >= next_check:  # on a timer: steady traffic must not starve it
                next_check = time.monotonic() + GAP_CHECK_S
                try:
                    self._check_gaps()
                except Exception:
                    log.exception("checking for serial gaps failed")

    # -- state ----------------------------------------------------------------------------------
    def _load(self, account_id: str) -> _Account | None:
        with self.reader.read(account_id) as tx:
            account = tx.accounts.get(account_id)
            if account is None:
                return None
            state = AccountState(
                account_id,
                account.network_serial,
                tx.peers.all(account_id),
                tx.groups.all(account_id),
                tx.routes.all(),
            )
        return _Account(state, account, account.network_serial)

    def _entry(self, account_id: str) -> _Account | None:
        with self._lock:
            entry = self._accounts.get(account_id)
            if entry is None:
                entry = self._load(account_id)
                if entry is not None:
                    self._accounts[account_id] = entry
            return entry

    def full_map(self, account_id: str, peer_id: str, at_least: int = 0) -> tuple[NetworkMap, Account] | None:
        """A consistent snapshot: no change set is applied while it is computed. With `at_least`,
        once the engine has applied that serial (what a reader just saw committed), waiting at
        most CATCH_UP_S for it."""
        deadline = time.monotonic() + CATCH_UP_S
        with self._lock:
            entry = self._entry(account_id)
            while entry is not None and entry.applied < at_least:
                if entry.gap_since is None:
                    entry.gap_since = time.monotonic()
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    log.warning(
                        "map of %s requested at serial %d, engine at %d", peer_id, at_least, entry.applied
                    )
                    break
                self._moved.wait(remaining)
                entry = self._entry(account_id)  # reloaded meanwhile, perhaps
            if entry is None or not entry.state.has_peer(peer_id):
                return None
            return entry.state.network_map(peer_id), entry.account

    def fresh_map(self, account_id: str, peer_id: str) -> tuple[NetworkMap, Account] | None:
        """Computed from the store, bypassing the engine's state: a check that the state the
        deltas come from has not drifted from the truth."""
        entry = self._load(account_id)
        if entry is None or not entry.state.has_peer(peer_id):
            return None
        return entry.state.network_map(peer_id), entry.account

    def serial(self, account_id: str) -> int:
        with self._lock:
            entry = self._entry(account_id)
            return entry.applied if entry else 0

    def reload(self, account_id: str) -> None:
        """Forget the account (it loads afresh on the next use, so this needs no database and
        cannot fail) and resync its agents with full maps. The resync marker is published under
        the lock, so no delta computed on the new state can overtake it."""
        with self._lock:
            self._accounts.pop(account_id, None)
            self.publish(account_id, None)
            self._moved.notify_all()

    def reload_all(self) -> None:
        with self._lock:
            for account_id in list(self._accounts):
                self.reload(account_id)

    # -- change sets ----------------------------------------------------------------------------
    def process(self, cs: ChangeSet) -> None:
        with self._lock:
            entry = self._accounts.get(cs.account_id)
            if entry is None:
                return  # nobody asked for this account yet; it loads fresh when they do
            if cs.serial <= entry.applied:
                return
            entry.pending[cs.serial] = cs
            while entry.applied + 1 in entry.pending:
                nxt = entry.pending.pop(entry.applied + 1)
                self._apply(entry, nxt)
                self._moved.notify_all()
            if not entry.pending:
                entry.gap_since = None
            elif entry.gap_since is None:  # the clock starts when the gap opens, not at each arrival
                entry.gap_since = time.monotonic()

    def _apply(self, entry: _Account, cs: ChangeSet) -> None:
        changes = cs.map_changes()
        for change in cs.changes:
            if isinstance(change, AccountUpdated):  # a copy: the engine moves its serial below
                entry.account = dataclasses.replace(change.account)
        deltas: dict[str, MapDelta | None] = dict(entry.state.apply(changes, cs.serial)) if changes else {}
        for change in changes:
            if isinstance(change, PeerDeleted):
                deltas[change.peer_id] = None
        entry.applied = cs.serial
        entry.account.network_serial = cs.serial
        if deltas:
            self.publish(cs.account_id, deltas)

    def _check_gaps(self) -> None:
        now = time.monotonic()
        if now >= self._next_audit:
            # A change set lost after the last one (nothing behind it to reveal the gap) would
            # leave an account stale for good: compare with the store now and then.
            self._next_audit = now + AUDIT_S
            with self._lock:
                loaded = {a: e.applied for a, e in self._accounts.items()}
            if loaded:
                with self.reader.read() as tx:
                    stored = tx.accounts.serials(list(loaded))
                with self._lock:
                    for account_id, serial in stored.items():
                        entry = self._accounts.get(account_id)
                        if entry is not None and serial > entry.applied and entry.gap_since is None:
                            entry.gap_since = now
        stale = []
        with self._lock:
            for account_id, entry in self._accounts.items():
                if entry.gap_since is not None and time.monotonic() - entry.gap_since > GAP_TIMEOUT_S:
                    stale.append(account_id)
        for account_id in stale:
            log.warning("serial gap in account %s did not fill; reloading it", account_id)
            self.reload(account_id)
