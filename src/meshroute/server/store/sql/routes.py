"""Routes in SQL, with the two questions a peer join asks without loading every route."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Select,
    String,
    Text,
    bindparam,
    cast,
    delete,
    exists,
    func,
    insert,
    literal_column,
    select,
    update,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB

from meshroute.core.model import Route
from meshroute.server.store import tables as t
from meshroute.server.store.mapping import ROUTES
from meshroute.server.store.sql.common import SqlRepository, one_of

_r = t.routes


def _served_twice_statement(dialect: str) -> Select[Any]:
    if dialect == "postgresql":
        wanted = bindparam("group_ids", type_=ARRAY(String()))
        served: ColumnElement[bool] = cast(_r.c.peer_groups, JSONB).has_any(wanted)
    else:
        own = func.json_each(_r.c.peer_groups).table_valued("value").alias("own")
        listed: Select[Any] = select(literal_column("value")).select_from(
            func.json_each(bindparam("group_ids", type_=String()))
        )
        served = exists(select(own.c.value).where(own.c.value.in_(listed)))
    # Domain routes all have the placeholder prefix, network routes an empty domain list.
    destination = (_r.c.network_type, _r.c.network, cast(_r.c.domains, Text))
    return (
        select(func.count())
        .where(_r.c.account_id == bindparam("account_id"), served)
        .group_by(*destination)
        .having(func.count() > 1)
        .limit(1)
    )


_SERVED_TWICE = {dialect: _served_twice_statement(dialect) for dialect in ("postgresql", "sqlite")}


class SqlRoutes(SqlRepository):
    def get(self, route_id: str) -> Route | None:
        row = self.conn.execute(
            select(_r).where(_r.c.id == route_id, _r.c.account_id == self.account_id)
        ).first()
        return ROUTES.load(row) if row else None

    def all(self) -> list[Route]:
        rows = self.conn.execute(
            select(_r).where(_r.c.account_id == self.account_id).order_by(_r.c.created_at, _r.c.id)
        )
        return [ROUTES.load(r) for r in rows]

    def served_by(self, group_ids: Sequence[str]) -> list[Route]:
        """Filtered in the store: a peer joining must not load every route of a route-heavy account."""
        if not group_ids:
            return []
        rows = self.conn.execute(
            select(_r)
            .where(_r.c.account_id == self.account_id, self._served_by(group_ids))
            .order_by(_r.c.created_at, _r.c.id)
        )
        return [ROUTES.load(r) for r in rows]

    def served_twice(self, group_ids: Sequence[str]) -> bool:
        """(The same prefix, or the same domain list.) Asked at every peer join: the statement is
        built once and the common answer, no, costs no route objects."""
        if not group_ids:
            return False
        if self.conn.dialect.name == "postgresql":
            groups: Any = list(group_ids)
            statement = _SERVED_TWICE["postgresql"]
        else:
            groups, statement = json.dumps(list(group_ids)), _SERVED_TWICE["sqlite"]
        row = self.conn.execute(statement, {"account_id": self.account_id, "group_ids": groups}).first()
        return row is not None

    def add(self, route: Route) -> None:
        self.conn.execute(insert(_r).values(created_at=datetime.now(UTC), **ROUTES.dump(route)))

    def update(self, route: Route) -> None:
        self.conn.execute(update(_r).where(_r.c.id == route.id).values(**ROUTES.dump(route, exclude=("id",))))

    def delete(self, route_id: str) -> int:
        res = self.conn.execute(delete(_r).where(_r.c.id == route_id, _r.c.account_id == self.account_id))
        return int(res.rowcount)

    def _served_by(self, group_ids: Sequence[str]) -> ColumnElement[bool]:
        if self.conn.dialect.name == "postgresql":
            wanted = bindparam(None, list(group_ids), type_=ARRAY(String()))
            served: ColumnElement[bool] = cast(_r.c.peer_groups, JSONB).has_any(wanted)
            return served
        own = func.json_each(_r.c.peer_groups).table_valued("value").alias("own")
        return exists(select(own.c.value).where(one_of(self.conn, own.c.value, group_ids)))
