"""Unit of work: one transaction per service call; after commit, the change set goes on.

The store is anything that implements `store.ports.Store` (SQL in production, memory in the
unit tests' fake). The hooks are given once, by the composition root (`server.assembly`):
`before_commit` runs inside a writing transaction that changed something (the replica fan-out
sends its NOTIFY there, so other replicas hear of a change exactly when it commits),
`after_commit` receives the committed change set (the network-map engine's inbox).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from meshroute.core.changes import Change, ChangeSet
from meshroute.core.errors import NotFound
from meshroute.core.model import Account
from meshroute.server.store.ports import Repositories, Store

AfterCommit = Callable[[ChangeSet], None]


class WriteTx:
    """A write transaction on a locked account: its repositories, the account as locked, and the
    changes recorded (the first one moves the account's serial)."""

    def __init__(self, repos: Repositories, account: Account) -> None:
        self.repos = repos
        self.account = account
        self.account_id = account.id
        self.changeset = ChangeSet(account.id, account.network_serial)
        self.accounts = repos.accounts
        self.users = repos.users
        self.tokens = repos.tokens
        self.peers = repos.peers
        self.groups = repos.groups
        self.setup_keys = repos.setup_keys
        self.routes = repos.routes
        self.status_reports = repos.status_reports
        self.web_sessions = repos.web_sessions
        self.events = repos.events

    def record(self, change: Change) -> None:
        """One object created, changed or deleted."""
        if not self.changeset.changes:
            self.changeset.serial = self.accounts.bump_serial(self.account_id)
        self.changeset.changes.append(change)


BeforeCommit = Callable[[WriteTx], None]


class Reader:
    """Read transactions only: what the network-map engine and the read side need."""

    def __init__(self, store: Store) -> None:
        self.store = store

    @contextmanager
    def read(self, account_id: str = "") -> Iterator[Repositories]:
        with self.store.transaction(write=False, account_id=account_id) as repos:
            yield repos


class UnitOfWork(Reader):
    def __init__(
        self,
        store: Store,
        *,
        after_commit: AfterCommit | None = None,
        before_commit: BeforeCommit | None = None,
    ) -> None:
        super().__init__(store)
        self._after_commit = after_commit
        self._before_commit = before_commit

    @contextmanager
    def write_unlocked(self) -> Iterator[Repositories]:
        """A write that is no user change (status, last-used stamps): no lock, no serial."""
        with self.store.transaction(write=True) as repos:
            yield repos

    @contextmanager
    def write(self, account_id: str) -> Iterator[WriteTx]:
        """Serializes writers of one account (row lock on PostgreSQL, BEGIN IMMEDIATE on SQLite)."""
        with self.store.transaction(write=True, account_id=account_id) as repos:
            account = repos.accounts.lock(account_id)
            if account is None:
                raise NotFound(f"account: {account_id} not found")
            wtx = WriteTx(repos, account)
            yield wtx
            if wtx.changeset.changes and self._before_commit is not None:
                self._before_commit(wtx)
        if wtx.changeset.changes and self._after_commit is not None:
            self._after_commit(wtx.changeset)
