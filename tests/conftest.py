"""Shared fixtures: a real store on SQLite and on PostgreSQL, and the app over it."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.pool import NullPool

from meshroute.server.store import tables
from meshroute.server.store.db import make_engine, migrate

PG_ADMIN_URL = os.environ.get("MESHROUTE_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


def _pg_database() -> Iterator[str]:
    """A throw-away database on the local PostgreSQL, migrated once per test session."""
    name = f"meshroute_test_{uuid.uuid4().hex[:10]}"
    admin = create_engine(PG_ADMIN_URL, poolclass=NullPool, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + name
    try:
        yield url
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    yield from _pg_database()


@pytest.fixture(scope="session")
def pg_engine(pg_url: str) -> Iterator[Engine]:
    engine = make_engine(pg_url)
    migrate(engine)
    yield engine
    engine.dispose()


def _truncate(engine: Engine) -> None:
    names = ", ".join(f'"{t.name}"' for t in tables.metadata.sorted_tables)
    with engine.begin() as conn:
        conn.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))


@pytest.fixture(params=["sqlite", "postgres"])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    """The same tests run on both stores."""
    if request.param == "sqlite":
        eng = make_engine(f"sqlite:///{tmp_path / 'meshroute.db'}")
        migrate(eng)
        yield eng
        eng.dispose()
    else:
        eng = request.getfixturevalue("pg_engine")
        _truncate(eng)
        yield eng
