"""`meshroute sim` against a server started the way the README says (a real process)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

MESHROUTE = [sys.executable, "-m", "meshroute.cli.main"]


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[str, str, str]]:
    api_port, sync_port = _port(), _port()
    log = (tmp_path / "server.log").open("w")
    proc = subprocess.Popen(
        [
            *MESHROUTE,
            "server",
            "--data-dir",
            str(tmp_path / "data"),
            "--listen",
            f"127.0.0.1:{api_port}",
            "--sync-listen",
            f"127.0.0.1:{sync_port}",
            "--log-level",
            "warning",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    api = f"http://127.0.0.1:{api_port}"
    token_file = tmp_path / "data" / "admin-token"
    try:
        deadline = time.monotonic() + 30
        while True:
            assert proc.poll() is None, (tmp_path / "server.log").read_text()
            if token_file.exists():
                token = token_file.read_text().strip()
                try:
                    if httpx.get(
                        f"{api}/api/users/current", headers={"Authorization": f"Token {token}"}
                    ).is_success:
                        break
                except httpx.TransportError:
                    pass
            assert time.monotonic() < deadline, "server did not come up"
            time.sleep(0.1)
        yield api, f"127.0.0.1:{sync_port}", token
    finally:
        proc.terminate()  # SIGTERM: clean shutdown
        code = proc.wait(timeout=20)
        log.close()
        text = (tmp_path / "server.log").read_text()
        # uvicorn shuts down gracefully, then re-raises the signal so the exit status tells of it
        assert code in (0, -15), text
        assert "Traceback" not in text, text


def test_sim_holds_streams_applies_deltas_and_matches_the_server(server: tuple[str, str, str]) -> None:
    api, sync, token = server
    key = httpx.post(
        f"{api}/api/setup-keys",
        headers={"Authorization": f"Token {token}"},
        json={"name": "sim", "type": "reusable", "expires_in": 86400, "auto_groups": [], "usage_limit": 0},
    ).json()["key"]
    out = subprocess.run(
        [
            *MESHROUTE,
            "sim",
            "--sync",
            sync,
            "--setup-key",
            key,
            "--peers",
            "25",
            "--duration",
            "2",
            "--change-interval",
            "0.4",
            "--api",
            api,
            "--token",
            token,
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "MESHROUTE_SERVER": ""},
    )
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert result["peers"] == 25
    assert result["mismatches"] == 0
    assert result["changes"] >= 3
    assert result["affected_per_change"] == 25
    assert result["updates_applied"] >= 25 * result["changes"]
    assert result["p99_ms"] is not None and result["p50_ms"] <= result["p99_ms"]
    assert result["serial_gaps"] == 0 and result["errors"] == []
    # the sim cleans up after itself
    peers = httpx.get(f"{api}/api/peers", headers={"Authorization": f"Token {token}"}).json()
    assert peers == []


def _sim(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("MESHROUTE_")}
    return subprocess.run(
        [*MESHROUTE, "sim", *args], capture_output=True, text=True, timeout=120, env={**clean, **(env or {})}
    )


def test_sim_without_a_token_refuses_unless_keep_and_keep_leaves_the_peers(
    server: tuple[str, str, str],
) -> None:
    api, sync, token = server
    headers = {"Authorization": f"Token {token}"}
    key = httpx.post(
        f"{api}/api/setup-keys",
        headers=headers,
        json={"name": "sim", "type": "reusable", "expires_in": 86400, "auto_groups": [], "usage_limit": 0},
    ).json()["key"]
    refused = _sim("--sync", sync, "--setup-key", key, "--peers", "2", "--duration", "0")
    assert refused.returncode == 2 and "needs an API token" in refused.stderr
    assert httpx.get(f"{api}/api/peers", headers=headers).json() == []  # nothing registered

    kept = _sim("--sync", sync, "--setup-key", key, "--peers", "3", "--duration", "0", "--keep", "--json")
    assert kept.returncode == 0, kept.stderr
    assert json.loads(kept.stdout)["peers"] == 3
    assert len(httpx.get(f"{api}/api/peers", headers=headers).json()) == 3


def test_sim_with_a_refused_setup_key_says_so_and_exits_1(server: tuple[str, str, str]) -> None:
    _, sync, _ = server
    out = _sim("--sync", sync, "--setup-key", "not-a-key", "--peers", "2", "--duration", "0", "--keep")
    assert out.returncode == 1
    assert out.stderr.strip() == "error: the management server refused the setup key: invalid setup key"
