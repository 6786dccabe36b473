"""Slow and greedy HTTP clients (issue 9, item 5) against a real uvicorn with the server's own
protocol options: headers and bodies have deadlines, one address holds a bounded number of
connections, a client that hangs up mid-body is no server error, and valid clients notice none
of it."""

from __future__ import annotations

import logging
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import uvicorn

from meshroute.server.http_guard import HttpLimits, uvicorn_options
from meshroute.server.store.db import make_engine, migrate
from tests.integration.conftest import assembled
from tests.integration.test_sync import free_port

LIMITS = HttpLimits(header_timeout=0.5, body_timeout=0.5, max_connections_per_client=4)


@dataclass
class Live:
    port: int
    token: str

    def connect(self) -> socket.socket:
        return socket.create_connection(("127.0.0.1", self.port), timeout=5)


@pytest.fixture
def live(tmp_path: Path) -> Iterator[Live]:
    engine = make_engine(f"sqlite:///{tmp_path / 'meshroute.db'}")
    migrate(engine)
    app_server = assembled(engine, tmp_path)
    boot = app_server.services.accounts.bootstrap()
    assert boot is not None
    port = free_port()
    config = uvicorn.Config(
        app_server.app, host="127.0.0.1", port=port, log_level="warning", **uvicorn_options(LIMITS)
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline
        time.sleep(0.02)
    yield Live(port, boot.token)
    server.should_exit = True
    thread.join(timeout=10)
    engine.dispose()


def read_until_closed(sock: socket.socket, limit: float = 5) -> tuple[bytes, float]:
    """Everything the server sends until it closes the connection, and how long that took."""
    start = time.monotonic()
    sock.settimeout(limit)
    data = b""
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            return data, time.monotonic() - start
        data += chunk


def test_headers_that_never_complete_are_cut_off_with_408(live: Live) -> None:
    with live.connect() as sock:
        sock.sendall(b"GET /api/routes HTTP/1.1\r\nHost: x\r\n")
        data, took = read_until_closed(sock)
    assert data.startswith(b"HTTP/1.1 408 ")
    assert data.endswith(b'{"message":"request not received in time","code":408}')
    assert took < 3


def test_an_idle_connection_is_closed_too(live: Live) -> None:
    with live.connect() as sock:
        data, took = read_until_closed(sock)
    assert data.startswith(b"HTTP/1.1 408 ") and took < 3


def test_a_body_that_never_completes_is_cut_off(live: Live, caplog: pytest.LogCaptureFixture) -> None:
    request = (
        f"POST /api/groups HTTP/1.1\r\nHost: x\r\nAuthorization: Token {live.token}\r\n"
        'Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{"name":'
    ).encode()
    with caplog.at_level(logging.DEBUG), live.connect() as sock:
        sock.sendall(request)
        data, took = read_until_closed(sock)
        time.sleep(0.2)
    assert data.startswith(b"HTTP/1.1 408 ") and took < 3
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], caplog.text


def test_a_client_hanging_up_mid_body_is_logged_at_debug_not_as_an_error(
    live: Live, caplog: pytest.LogCaptureFixture
) -> None:
    request = (
        f"POST /api/groups HTTP/1.1\r\nHost: x\r\nAuthorization: Token {live.token}\r\n"
        'Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{"name":'
    ).encode()
    with caplog.at_level(logging.DEBUG):
        for _ in range(5):
            with live.connect() as sock:
                sock.sendall(request)
                time.sleep(0.05)
        time.sleep(0.3)
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], caplog.text
    hung_up = [r for r in caplog.records if "disconnected before sending the whole body" in r.getMessage()]
    assert len(hung_up) == 5 and all(r.levelno == logging.DEBUG for r in hung_up)


def test_one_address_holds_a_bounded_number_of_connections(live: Live) -> None:
    held = [live.connect() for _ in range(LIMITS.max_connections_per_client)]
    try:
        time.sleep(0.1)
        with live.connect() as extra:
            data, _ = read_until_closed(extra)
        assert data.startswith(b"HTTP/1.1 429 ")
        assert data.endswith(b'{"message":"too many connections from this address","code":429}')
    finally:
        held.pop().close()
    try:  # a slot is free again, once the server has seen the close
        assert _answered_within(live, 15) == 200
    finally:
        for sock in held:
            sock.close()


def _answered_within(live: Live, seconds: float) -> int:
    """The status of the first answered request; a 429 (the close not seen yet) or an attempt
    that times out on a loaded machine is tried again until `seconds` have passed."""
    deadline, attempts = time.monotonic() + seconds, []
    while time.monotonic() < deadline:
        try:
            response = httpx.get(
                f"http://127.0.0.1:{live.port}/api/users/current",
                headers={"Authorization": f"Token {live.token}"},
                timeout=3,
            )
        except httpx.TimeoutException as exc:
            attempts.append(repr(exc))
            continue
        if response.status_code != 429:
            return response.status_code
        attempts.append("429")
        time.sleep(0.05)
    raise AssertionError(f"no answer but 429 or a timeout within {seconds} s: {Counter(attempts)}")


def test_valid_clients_do_not_notice(live: Live) -> None:
    """Keep-alive requests with pauses shorter than the deadlines, uploads that arrive in time,
    and more sequential connections than the cap: all answered."""
    headers = {"Authorization": f"Token {live.token}"}
    with httpx.Client(base_url=f"http://127.0.0.1:{live.port}", headers=headers) as c:
        for i in range(10):
            assert c.get("/api/users/current").status_code == 200
            assert c.post("/api/groups", json={"name": f"g{i}", "peers": []}).status_code == 200
            time.sleep(0.1)
    for _ in range(3 * LIMITS.max_connections_per_client):
        with httpx.Client(base_url=f"http://127.0.0.1:{live.port}", headers=headers) as c:
            assert c.get("/api/routes").status_code == 200
    # A body sent in pieces, each well within the deadline.
    body = b'{"name": "slow-but-fine", "peers": []}'
    with live.connect() as sock:
        sock.sendall(
            f"POST /api/groups HTTP/1.1\r\nHost: x\r\nAuthorization: Token {live.token}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
            "Connection: close\r\n\r\n".encode()
        )
        for i in range(0, len(body), 10):
            time.sleep(0.05)
            sock.sendall(body[i : i + 10])
        data, _ = read_until_closed(sock)
    assert data.startswith(b"HTTP/1.1 200 ")


def test_the_server_command_applies_its_options(tmp_path: Path) -> None:
    """`meshroute server` options reach both guards (a real server process)."""
    port, sync = free_port(), free_port()
    cmd = [
        sys.executable,
        "-m",
        "meshroute.cli.main",
        "server",
        "--data-dir",
        str(tmp_path / "data"),
        "--listen",
        f"127.0.0.1:{port}",
        "--sync-listen",
        f"127.0.0.1:{sync}",
        "--auth-max-failures",
        "2",
        "--auth-failure-window",
        "100",
        "--http-header-timeout",
        "0.5",
        "--http-max-connections-per-client",
        "2",
    ]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while True:
            assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
            try:
                httpx.get(f"{base}/api/routes", timeout=1)
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, "the server did not start"
                time.sleep(0.1)
        bad = {"Authorization": "Token nbp_" + "A" * 36}
        assert [httpx.get(f"{base}/api/routes", headers=bad).status_code for _ in range(3)] == [401, 401, 429]
        assert httpx.get(f"{base}/api/routes", headers=bad).headers["retry-after"] == "50"
        with socket.create_connection(("127.0.0.1", port)) as idle:
            data, took = read_until_closed(idle)
            assert data.startswith(b"HTTP/1.1 408 ") and took < 3
        held = [socket.create_connection(("127.0.0.1", port)) for _ in range(2)]
        try:
            time.sleep(0.1)
            with socket.create_connection(("127.0.0.1", port)) as extra:
                assert read_until_closed(extra)[0].startswith(b"HTTP/1.1 429 ")
        finally:
            for sock in held:
                sock.close()
    finally:
        proc.terminate()
        proc.wait(timeout=20)
