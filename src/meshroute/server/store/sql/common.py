"""What the SQL repositories share: their transaction, and ID lists as one bound parameter."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from sqlalchemy import ColumnElement, Connection, String, any_, bindparam, func, literal_column, select
from sqlalchemy.dialects.postgresql import ARRAY


class SqlRepository:
    """One aggregate's queries over one transaction, scoped to `account_id` where it says so."""

    def __init__(self, conn: Connection, account_id: str = "") -> None:
        self.conn = conn
        self.account_id = account_id


def one_of(conn: Connection, column: Any, values: Sequence[str]) -> ColumnElement[bool]:
    """`column IN values` with a single bound parameter however many values there are: an
    expanded IN list takes one parameter per value, and PostgreSQL refuses statements with more
    than 65,535 of them (and drops the connection). PostgreSQL gets an array, SQLite a JSON text."""
    if len(values) == 1:  # the common lookup of one object: the cheapest form
        return column == bindparam(None, values[0], type_=String())  # type: ignore[no-any-return]
    if conn.dialect.name == "postgresql":
        return column == any_(bindparam(None, list(values), type_=ARRAY(String())))  # type: ignore[no-any-return]
    # (A table-valued function construct costs half again as much to build per call.)
    listed = func.json_each(bindparam(None, json.dumps(list(values)), type_=String()))
    return column.in_(select(literal_column("value")).select_from(listed))  # type: ignore[no-any-return]
