"""Status reports in SQL: the last report of each peer, replaced by the next one.

Agents report on every change and every minute, so a report is one statement: an upsert whose
row comes from the peer's own row (its account; nothing when the peer is gone) and that leaves an
unchanged report alone (no new row version on PostgreSQL, no page written on SQLite).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import Text, literal, select
from sqlalchemy.dialects import postgresql, sqlite

from meshroute.core.route_status import PeerStatus
from meshroute.core.status import StatusReport
from meshroute.server.store import tables as t
from meshroute.server.store.mapping import STATUS_REPORTS
from meshroute.server.store.sql.common import SqlRepository, one_of

_s = t.status_reports


class SqlStatusReports(SqlRepository):
    def get(self, peer_id: str) -> PeerStatus | None:
        row = self.conn.execute(
            select(_s).where(_s.c.peer_id == peer_id, _s.c.account_id == self.account_id)
        ).first()
        return STATUS_REPORTS.load(row) if row else None

    def for_peers(self, peer_ids: Iterable[str]) -> dict[str, PeerStatus]:
        wanted = sorted(set(peer_ids))
        if not wanted:
            return {}
        rows = self.conn.execute(
            select(_s).where(_s.c.account_id == self.account_id, one_of(self.conn, _s.c.peer_id, wanted))
        )
        return {r.peer_id: STATUS_REPORTS.load(r) for r in rows}

    def save(self, peer_id: str, report: StatusReport, when: datetime) -> None:
        values = STATUS_REPORTS.dump(PeerStatus(peer_id, "", report, when), exclude=("peer_id", "account_id"))
        p = t.peers.c
        text, stamp = literal(values["report"], Text()), literal(values["updated_at"], _s.c.updated_at.type)
        row = select(p.id, p.account_id, text, stamp).where(p.id == peer_id)
        insert: Any = (postgresql if self.conn.dialect.name == "postgresql" else sqlite).insert(_s)
        stmt = insert.from_select(["peer_id", "account_id", "report", "updated_at"], row)
        self.conn.execute(
            stmt.on_conflict_do_update(
                index_elements=[_s.c.peer_id],
                set_={"report": stmt.excluded.report, "updated_at": stmt.excluded.updated_at},
                where=_s.c.report != stmt.excluded.report,
            )
        )
