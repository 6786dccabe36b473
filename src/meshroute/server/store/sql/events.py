"""The audit log in SQL."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import insert, select

from meshroute.core.model import Event
from meshroute.server.store import tables as t
from meshroute.server.store.sql.common import SqlRepository

_e = t.events


class SqlEvents(SqlRepository):
    def add(
        self, account_id: str, activity: int, initiator_id: str, target_id: str, meta: dict[str, Any]
    ) -> None:
        self.conn.execute(
            insert(_e).values(
                account_id=account_id,
                timestamp=datetime.now(UTC),
                activity=int(activity),
                initiator_id=initiator_id,
                target_id=target_id,
                meta=meta,
            )
        )

    def all(self, account_id: str, limit: int = 10000) -> list[Event]:
        rows = self.conn.execute(
            select(_e)
            .where(_e.c.account_id == account_id)
            .order_by(_e.c.timestamp.desc(), _e.c.id.desc())
            .limit(limit)
        )
        return [
            Event(
                id=r.id,
                timestamp=r.timestamp,
                activity=r.activity,
                initiator_id=r.initiator_id,
                target_id=r.target_id,
                account_id=r.account_id,
                meta=dict(r.meta),
            )
            for r in rows
        ]
