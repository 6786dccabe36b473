"""The Alembic migrations build exactly the schema of `store/tables.py`, and a store made by an
older version is brought forward with its data (and back again), on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Engine, inspect, text

from meshroute.server.store.db import alembic_config, make_engine, make_test_engine, migrate
from meshroute.server.store.tables import metadata
from tests.conftest import _pg_database


def test_the_migrations_build_exactly_the_schema_of_tables_py(engine: Engine) -> None:
    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        assert compare_metadata(context, metadata) == []


@pytest.fixture(params=["sqlite", "postgres"])
def empty_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    """A store with nothing in it yet, not even a schema."""
    if request.param == "sqlite":
        engine = make_engine(f"sqlite:///{tmp_path / 'old.db'}")
        yield engine
        engine.dispose()
        return
    for url in _pg_database():
        engine = make_test_engine(url)
        yield engine
        engine.dispose()


def _to(engine: Engine, revision: str, *, down: bool = False) -> None:
    with engine.connect() as conn:
        cfg = alembic_config(engine.url.render_as_string(hide_password=False))
        cfg.attributes["connection"] = conn
        (command.downgrade if down else command.upgrade)(cfg, revision)
        conn.commit()


def test_a_store_of_revision_0001_gets_status_reports_and_keeps_its_peers(empty_store: Engine) -> None:
    _to(empty_store, "0001")
    with empty_store.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO accounts (id, domain, network_v4, network_v6, network_serial, created_at, "
                "created_by, peer_login_expiration_enabled, peer_login_expiration, "
                "peer_inactivity_expiration_enabled, peer_inactivity_expiration, regular_users_view_blocked) "
                "VALUES ('a', 'mesh', '100.64.0.0/10', 'fd00::/64', 3, '2026-01-01 00:00:00', 'u', "
                "false, 86400, false, 600, true)"
            )
        )
    assert "status_reports" not in inspect(empty_store).get_table_names()
    migrate(empty_store)  # what a newer server does at start
    assert "status_reports" in inspect(empty_store).get_table_names()
    with empty_store.connect() as conn:
        assert conn.execute(text("SELECT network_serial FROM accounts")).scalar() == 3
        assert conn.execute(text("SELECT version_num FROM alembic_version")).scalar() == "0003"
    _to(empty_store, "0001", down=True)
    assert "status_reports" not in inspect(empty_store).get_table_names()


def test_a_store_of_revision_0002_gets_web_sessions_and_gives_them_back(empty_store: Engine) -> None:
    _to(empty_store, "0002")
    assert "web_sessions" not in inspect(empty_store).get_table_names()
    migrate(empty_store)
    assert "web_sessions" in inspect(empty_store).get_table_names()
    _to(empty_store, "0002", down=True)
    assert "web_sessions" not in inspect(empty_store).get_table_names()
    assert "status_reports" in inspect(empty_store).get_table_names()
