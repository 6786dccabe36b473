"""First start creates the account, owner and token file; later starts reuse the store."""

from __future__ import annotations

import logging
import stat
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from meshroute.server.main import ServerConfig, build


def test_first_start_bootstraps_and_later_starts_reuse_the_store(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    cfg = ServerConfig(data_dir=tmp_path / "data")
    with caplog.at_level(logging.INFO, logger="meshroute.server"):
        first = build(cfg)
    token_file = cfg.data_dir / "admin-token"
    token = token_file.read_text().strip()
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    assert token.startswith("nbp_") and len(token) == 40
    assert any(
        str(token_file) in r.getMessage() and "created account" in r.getMessage() for r in caplog.records
    )
    assert token not in caplog.text  # the secret itself is never logged
    with TestClient(first.app) as client:
        me = client.get("/api/users/current", headers={"Authorization": f"Token {token}"})
        assert me.status_code == 200 and me.json()["role"] == "owner"
        group = client.post("/api/groups", json={"name": "kept"}, headers={"Authorization": f"Token {token}"})
        assert group.status_code == 200
    first.services.uow.engine.dispose()

    caplog.clear()
    with caplog.at_level(logging.INFO, logger="meshroute.server"):
        second = build(cfg)
    assert token_file.read_text().strip() == token  # not rewritten
    assert "using the existing store" in caplog.text
    with TestClient(second.app) as client:
        groups = client.get("/api/groups", headers={"Authorization": f"Token {token}"}).json()
        assert sorted(g["name"] for g in groups) == ["All", "kept"]
        accounts = client.get("/api/accounts", headers={"Authorization": f"Token {token}"}).json()
        assert len(accounts) == 1
    second.services.uow.engine.dispose()


def test_admin_token_command_issues_a_working_owner_token(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from meshroute.cli.main import app

    data = tmp_path / "data"
    runner = CliRunner()
    missing = runner.invoke(app, ["admin-token", "--data-dir", str(data)])
    assert missing.exit_code == 1 and "start the server once first" in missing.output

    server = build(ServerConfig(data_dir=data))
    old = (data / "admin-token").read_text().strip()
    result = runner.invoke(app, ["admin-token", "--data-dir", str(data), "--days", "30"])
    assert result.exit_code == 0, result.output
    new = (data / "admin-token").read_text().strip()
    assert new != old and stat.S_IMODE((data / "admin-token").stat().st_mode) == 0o600
    assert new not in result.output  # written to the file, not to the terminal
    with TestClient(server.app) as client:
        for token in (old, new):  # the old one keeps working; nothing was taken away
            me = client.get("/api/users/current", headers={"Authorization": f"Token {token}"})
            assert me.status_code == 200 and me.json()["role"] == "owner"
        events = client.get("/api/events/audit", headers={"Authorization": f"Token {new}"}).json()
        assert events[0]["activity_code"] == "personal.access.token.create"
        assert events[0]["initiator_id"] == "sys"
    server.services.uow.engine.dispose()
