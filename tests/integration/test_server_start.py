"""Start-up and shutdown: the first start creates the account, owner and token file, later starts
reuse the store; a server that cannot listen creates nothing; SIGTERM closes the agent streams,
checkpoints the SQLite WAL and exits 0."""

from __future__ import annotations

import asyncio
import base64
import logging
import os
import socket
import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path

import grpc
import httpx
import pytest
from fastapi.testclient import TestClient

from meshroute.protocol.client import Identity, Meta, PeerClient, open_channel
from meshroute.server.assembly import build
from meshroute.server.config import ServerConfig
from tests.integration.server_process import MESHROUTE, clean_env, free_port, server_process


def config(data_dir: Path) -> ServerConfig:
    """Free ports: the defaults may be held by a server running on this machine."""
    return ServerConfig(
        data_dir=data_dir, listen=f"127.0.0.1:{free_port()}", sync_listen=f"127.0.0.1:{free_port()}"
    )


def test_first_start_bootstraps_and_later_starts_reuse_the_store(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    cfg = config(tmp_path / "data")
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
    first.db.dispose()

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
    second.db.dispose()


def test_admin_token_command_issues_a_working_owner_token(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from meshroute.cli.main import app

    data = tmp_path / "data"
    runner = CliRunner()
    missing = runner.invoke(app, ["admin-token", "--data-dir", str(data)])
    assert missing.exit_code == 1 and "start the server once first" in missing.output

    server = build(config(data))
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
    server.db.dispose()


# -- a server that cannot listen ---------------------------------------------------------------


@pytest.fixture
def taken_port() -> Iterator[int]:
    """A loopback port some other process listens on."""
    with socket.create_server(("127.0.0.1", 0)) as sock:
        yield sock.getsockname()[1]


@pytest.mark.parametrize("which", ["--listen", "--sync-listen"])
def test_a_port_in_use_is_one_line_and_creates_nothing(tmp_path: Path, taken_port: int, which: str) -> None:
    data = tmp_path / "data"
    ports = {"--listen": f"127.0.0.1:{free_port()}", "--sync-listen": f"127.0.0.1:{free_port()}"}
    ports[which] = f"127.0.0.1:{taken_port}"
    args = [arg for pair in ports.items() for arg in pair]
    done = subprocess.run(
        [*MESHROUTE, "server", "--data-dir", str(data), *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=clean_env(),
        check=False,
    )
    what = "the REST API" if which == "--listen" else "agent sync"
    assert done.returncode == 1, done.stderr
    assert (
        done.stderr == f"error: cannot listen for {what} on 127.0.0.1:{taken_port}: address already in use\n"
    )
    assert not data.exists()  # no account, no token, no store


def test_an_unresolvable_address_is_one_line(tmp_path: Path) -> None:
    done = subprocess.run(
        [*MESHROUTE, "server", "--data-dir", str(tmp_path / "d"), "--listen", "no-such-host.invalid:8080"],
        capture_output=True,
        text=True,
        timeout=60,
        env=clean_env(),
        check=False,
    )
    assert done.returncode == 1
    assert done.stderr.splitlines() == [
        "error: cannot listen for the REST API on no-such-host.invalid:8080: the host name cannot be resolved"
    ]
    assert not (tmp_path / "d").exists()


# -- shutdown ------------------------------------------------------------------------------------


async def _hold_stream(sync: str, setup_key: str) -> tuple[grpc.aio.Channel, asyncio.Task[str]]:
    """A registered agent with an open sync stream (it has received its first map); the task ends
    with the status the stream ended with."""
    channel = open_channel(sync)
    client = PeerClient(channel, Identity(base64.b64encode(os.urandom(32)).decode()))
    await client.login(Meta(hostname="agent-1"), setup_key=setup_key)
    first = asyncio.get_running_loop().create_future()

    async def follow() -> str:
        try:
            async for _ in client.maps():
                if not first.done():
                    first.set_result(None)
        except grpc.aio.AioRpcError as exc:
            return str(exc.code().name)
        return "OK"

    task = asyncio.create_task(follow())
    await asyncio.wait_for(first, 30)
    return channel, task


def test_sigterm_closes_agent_streams_checkpoints_the_wal_and_exits_0(tmp_path: Path) -> None:
    data = tmp_path / "data"
    with server_process(data) as server:
        headers = {"Authorization": f"Token {server.token}"}
        body = {"name": "k", "type": "reusable", "expires_in": 86400, "auto_groups": [], "usage_limit": 0}
        key = httpx.post(f"{server.url}/api/setup-keys", json=body, headers=headers).json()["key"]

        async def scenario() -> int:
            channel, follower = await _hold_stream(server.sync, key)
            peers = httpx.get(f"{server.url}/api/peers", headers=headers).json()
            assert [p["connected"] for p in peers] == [True]
            assert (data / "meshroute.db-wal").stat().st_size > 0  # the changes are in the WAL
            code = await asyncio.to_thread(server.stop)
            # the server ended the stream the way agents take as "reconnect later"
            assert await asyncio.wait_for(follower, 10) == "UNAVAILABLE"
            await channel.close()
            return code

        code = asyncio.run(scenario())
        log = server.log_text()
    assert code == 0, log
    assert "closed 1 agent stream" in log
    assert "checkpointed the SQLite WAL" in log
    assert "Traceback" not in log
    wal = data / "meshroute.db-wal"
    assert not wal.exists() or wal.stat().st_size == 0  # the database file alone is complete


# -- files (issue 9, item 7) --------------------------------------------------------------------
def test_write_secret_replaces_an_existing_open_file_instead_of_writing_into_it(tmp_path: Path) -> None:
    from meshroute.server.files import write_secret

    path = tmp_path / "admin-token"
    path.write_text("old\n")
    path.chmod(0o644)
    before = path.stat().st_ino
    with path.open() as reader:  # someone who could read the old, world-readable file
        write_secret(path, "nbp_secret")
        assert reader.read() == "old\n"  # never sees the secret
    assert path.read_text() == "nbp_secret\n"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.stat().st_ino != before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["admin-token"]  # no temporary left


def modes(data: Path) -> dict[str, int]:
    return {p.name: stat.S_IMODE(p.stat().st_mode) for p in [data, *data.iterdir()]}


def test_the_data_directory_and_the_store_are_owner_only(tmp_path: Path) -> None:
    """From the first start on (SQLite creates the WAL and shared-memory files with the mode of
    the database file), and an open directory or store left by an earlier start is tightened."""
    import os

    data = tmp_path / "data"
    old_umask = os.umask(0o022)
    try:
        server = build(config(data))
        with TestClient(server.app) as client:
            token = (data / "admin-token").read_text().strip()
            client.post("/api/groups", json={"name": "x"}, headers={"Authorization": f"Token {token}"})
            found = modes(data)
            assert {"meshroute.db", "meshroute.db-wal", "meshroute.db-shm", "admin-token"} <= set(found)
            assert found == {name: 0o700 if name == "data" else 0o600 for name in found}, found
        server.db.dispose()

        # An earlier version (or an administrator) left everything open.
        data.chmod(0o755)
        for p in data.iterdir():
            p.chmod(0o644)
        server = build(config(data))
        found = modes(data)
        assert found == {name: 0o700 if name == "data" else 0o600 for name in found}, found
        server.db.dispose()
    finally:
        os.umask(old_umask)
