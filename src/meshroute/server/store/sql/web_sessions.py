"""Dashboard sessions in SQL: looked up by the hash of the cookie's value."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, insert, select, update

from meshroute.core.model import WebSession
from meshroute.server.store import tables as t
from meshroute.server.store.mapping import WEB_SESSIONS
from meshroute.server.store.sql.common import SqlRepository

_w = t.web_sessions


class SqlWebSessions(SqlRepository):
    def get(self, id_hash: str) -> WebSession | None:
        row = self.conn.execute(select(_w).where(_w.c.id_hash == id_hash)).first()
        return WEB_SESSIONS.load(row) if row else None

    def add(self, session: WebSession) -> None:
        self.conn.execute(insert(_w).values(**WEB_SESSIONS.dump(session)))

    def touch(self, id_hash: str, when: datetime) -> None:
        self.conn.execute(update(_w).where(_w.c.id_hash == id_hash).values(last_seen=when))

    def delete(self, id_hash: str) -> None:
        self.conn.execute(delete(_w).where(_w.c.id_hash == id_hash))

    def delete_expired(self, now: datetime, idle_since: datetime) -> int:
        result = self.conn.execute(
            delete(_w).where((_w.c.expires_at <= now) | (_w.c.last_seen <= idle_since))
        )
        return int(result.rowcount or 0)
