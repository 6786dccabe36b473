"""The store over SQLAlchemy (SQLite and PostgreSQL): one repository per aggregate, all on the
connection of one transaction."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Connection, Engine

from meshroute.server.store.db import transaction
from meshroute.server.store.sql.accounts import SqlAccounts
from meshroute.server.store.sql.events import SqlEvents
from meshroute.server.store.sql.groups import SqlGroups
from meshroute.server.store.sql.peers import SqlPeers
from meshroute.server.store.sql.routes import SqlRoutes
from meshroute.server.store.sql.setup_keys import SqlSetupKeys
from meshroute.server.store.sql.status_reports import SqlStatusReports
from meshroute.server.store.sql.users import SqlTokens, SqlUsers
from meshroute.server.store.sql.web_sessions import SqlWebSessions


class SqlRepositories:
    """Implements `ports.Repositories`."""

    def __init__(self, conn: Connection, account_id: str = "") -> None:
        self.conn = conn  # for the replica fan-out's NOTIFY, which must be part of the transaction
        self.account_id = account_id
        self.accounts = SqlAccounts(conn, account_id)
        self.users = SqlUsers(conn, account_id)
        self.tokens = SqlTokens(conn, account_id)
        self.peers = SqlPeers(conn, account_id)
        self.groups = SqlGroups(conn, account_id)
        self.setup_keys = SqlSetupKeys(conn, account_id)
        self.routes = SqlRoutes(conn, account_id)
        self.status_reports = SqlStatusReports(conn, account_id)
        self.web_sessions = SqlWebSessions(conn, account_id)
        self.events = SqlEvents(conn, account_id)


class SqlStore:
    """Implements `ports.Store`."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    @contextmanager
    def transaction(self, *, write: bool, account_id: str = "") -> Iterator[SqlRepositories]:
        with transaction(self.engine, write=write) as conn:
            yield SqlRepositories(conn, account_id)
