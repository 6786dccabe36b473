"""Accounts in SQL."""

from __future__ import annotations

from sqlalchemy import insert, select, text, update

from meshroute.core.model import Account
from meshroute.server.store import tables as t
from meshroute.server.store.mapping import ACCOUNTS
from meshroute.server.store.sql.common import SqlRepository, one_of

_SETTINGS = (
    "peer_login_expiration_enabled",
    "peer_login_expiration",
    "peer_inactivity_expiration_enabled",
    "peer_inactivity_expiration",
    "regular_users_view_blocked",
)


class SqlAccounts(SqlRepository):
    def get(self, account_id: str) -> Account | None:
        row = self.conn.execute(select(t.accounts).where(t.accounts.c.id == account_id)).first()
        return ACCOUNTS.load(row) if row else None

    def lock(self, account_id: str) -> Account | None:
        """Row lock on PostgreSQL; SQLite's BEGIN IMMEDIATE already serializes writers."""
        q = select(t.accounts).where(t.accounts.c.id == account_id)
        if self.conn.dialect.name == "postgresql":
            q = q.with_for_update()
        row = self.conn.execute(q).first()
        return ACCOUNTS.load(row) if row else None

    def first(self) -> Account | None:
        row = self.conn.execute(select(t.accounts).order_by(t.accounts.c.created_at).limit(1)).first()
        return ACCOUNTS.load(row) if row else None

    def lock_bootstrap(self) -> None:
        """A transaction-scoped advisory lock on PostgreSQL (SQLite's BEGIN IMMEDIATE already does)."""
        if self.conn.dialect.name == "postgresql":
            self.conn.execute(text("SELECT pg_advisory_xact_lock(7263546)"))

    def add(self, account: Account) -> None:
        self.conn.execute(insert(t.accounts).values(**ACCOUNTS.dump(account)))

    def update_settings(self, account: Account) -> None:
        values = {f: getattr(account, f) for f in _SETTINGS}
        self.conn.execute(update(t.accounts).where(t.accounts.c.id == account.id).values(**values))

    def serials(self, account_ids: list[str]) -> dict[str, int]:
        rows = self.conn.execute(
            select(t.accounts.c.id, t.accounts.c.network_serial).where(
                one_of(self.conn, t.accounts.c.id, account_ids)
            )
        )
        return {r.id: int(r.network_serial) for r in rows}

    def bump_serial(self, account_id: str) -> int:
        self.conn.execute(
            update(t.accounts)
            .where(t.accounts.c.id == account_id)
            .values(network_serial=t.accounts.c.network_serial + 1)
        )
        serial = self.conn.execute(
            select(t.accounts.c.network_serial).where(t.accounts.c.id == account_id)
        ).scalar_one()
        return int(serial)
