"""Unit of work: one transaction per service call; after commit, listeners hear what changed."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from sqlalchemy import Engine

from meshroute.core.errors import NotFound
from meshroute.core.model import Account
from meshroute.server.store.db import transaction
from meshroute.server.store.repo import Tx


@dataclass(frozen=True, slots=True)
class Change:
    """One committed change, for the network-map engine (kind: route, group, peer, setup_key...)."""

    kind: str
    id: str
    deleted: bool = False


@dataclass(slots=True)
class ChangeSet:
    account_id: str
    serial: int
    changes: list[Change] = field(default_factory=list)


Listener = Callable[[ChangeSet], None]


class WriteTx(Tx):
    """A write transaction on a locked account: bumps the serial once and records changes."""

    def __init__(self, tx: Tx, account: Account) -> None:
        super().__init__(tx.conn, account.id)
        self.account_obj = account
        self.changeset = ChangeSet(account.id, account.network_serial)

    def changed(self, kind: str, obj_id: str, *, deleted: bool = False) -> None:
        if not self.changeset.changes:
            self.changeset.serial = self.bump_serial(self.account_id)
        self.changeset.changes.append(Change(kind, obj_id, deleted))


class UnitOfWork:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.listeners: list[Listener] = []
        # Set by the replica fan-out on PostgreSQL: runs inside the transaction, so that other
        # replicas hear of a change exactly when (and only if) it commits.
        self.before_commit: Callable[[WriteTx], None] | None = None

    @contextmanager
    def read(self, account_id: str = "") -> Iterator[Tx]:
        with transaction(self.engine, write=False) as conn:
            yield Tx(conn, account_id)

    @contextmanager
    def write_unlocked(self) -> Iterator[Tx]:
        """A write that is no user change (status, last-used stamps): no lock, no serial."""
        with transaction(self.engine, write=True) as conn:
            yield Tx(conn)

    @contextmanager
    def write(self, account_id: str) -> Iterator[WriteTx]:
        """Serializes writers of one account (row lock on PostgreSQL, BEGIN IMMEDIATE on SQLite)."""
        with transaction(self.engine, write=True) as conn:
            base = Tx(conn, account_id)
            account = base.lock_account(account_id)
            if account is None:
                raise NotFound(f"account: {account_id} not found")
            wtx = WriteTx(base, account)
            yield wtx
            if wtx.changeset.changes and self.before_commit is not None:
                self.before_commit(wtx)
        if wtx.changeset.changes:
            for listener in list(self.listeners):
                listener(wtx.changeset)
