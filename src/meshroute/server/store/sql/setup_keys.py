"""Setup keys in SQL."""

from __future__ import annotations

from sqlalchemy import delete, insert, select, update

from meshroute.core.model import SetupKey
from meshroute.server.store import tables as t
from meshroute.server.store.mapping import SETUP_KEYS
from meshroute.server.store.sql.common import SqlRepository

_k = t.setup_keys


class SqlSetupKeys(SqlRepository):
    def get(self, key_id: str) -> SetupKey | None:
        row = self.conn.execute(
            select(_k).where(_k.c.id == key_id, _k.c.account_id == self.account_id)
        ).first()
        return SETUP_KEYS.load(row) if row else None

    def by_hash(self, key_hash: str) -> SetupKey | None:
        row = self.conn.execute(select(_k).where(_k.c.key_hash == key_hash)).first()
        return SETUP_KEYS.load(row) if row else None

    def all(self, account_id: str) -> list[SetupKey]:
        rows = self.conn.execute(
            select(_k).where(_k.c.account_id == account_id).order_by(_k.c.created_at, _k.c.id)
        )
        return [SETUP_KEYS.load(r) for r in rows]

    def add(self, key: SetupKey) -> None:
        self.conn.execute(insert(_k).values(**SETUP_KEYS.dump(key)))

    def update(self, key: SetupKey) -> None:
        self.conn.execute(update(_k).where(_k.c.id == key.id).values(**SETUP_KEYS.dump(key, exclude=("id",))))

    def delete(self, key_id: str) -> None:
        self.conn.execute(delete(_k).where(_k.c.id == key_id))
