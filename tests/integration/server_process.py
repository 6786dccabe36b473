"""A real `meshroute server` process on free loopback ports, as an operator starts it.

Every test that needs a server process uses this, so none depends on the default ports (another
server, e.g. `scripts/serve`, may hold them while the tests run).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

MESHROUTE = [sys.executable, "-m", "meshroute.cli.main"]
STARTUP_TIMEOUT = 60.0


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def clean_env(**extra: str) -> dict[str, str]:
    """This process's environment without MESHROUTE_* settings (SQLite, no stray server or token)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MESHROUTE_")}
    env.update(extra)
    return env


@dataclass
class ServerProcess:
    proc: subprocess.Popen[bytes]
    url: str
    sync: str
    data_dir: Path
    log: Path
    token: str = ""

    def log_text(self) -> str:
        try:
            return self.log.read_text(errors="replace")
        except OSError:
            return "(no log)"

    def wait_ready(self) -> str:
        """The owner's token, once the API answers with it."""
        token_file = self.data_dir / "admin-token"
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                pytest.fail(f"server exited with {self.proc.returncode} during start-up:\n{self.log_text()}")
            token = token_file.read_text().strip() if token_file.exists() else ""
            if token:
                try:
                    reply = httpx.get(
                        f"{self.url}/api/users/current",
                        headers={"Authorization": f"Token {token}"},
                        timeout=2,
                    )
                    if reply.status_code == 200:
                        self.token = token
                        return token
                except httpx.HTTPError:
                    pass
            time.sleep(0.1)
        pytest.fail(f"server not ready after {STARTUP_TIMEOUT}s:\n{self.log_text()[-4000:]}")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 20) -> int:
        """Send ``sig`` and wait; kills the process if it does not exit in time (and fails then)."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                return self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=15)
                pytest.fail(f"server did not stop within {timeout}s:\n{self.log_text()[-4000:]}")
        return self.proc.returncode


@contextmanager
def server_process(data_dir: Path, *args: str, log_level: str = "info") -> Iterator[ServerProcess]:
    """`meshroute server` on free ports with ``data_dir``, ready; stopped with SIGTERM afterwards."""
    api_port, sync_port = free_port(), free_port()
    log = data_dir.parent / f"{data_dir.name}-server.log"
    cmd = [
        *MESHROUTE,
        "server",
        "--data-dir",
        str(data_dir),
        "--listen",
        f"127.0.0.1:{api_port}",
        "--sync-listen",
        f"127.0.0.1:{sync_port}",
        "--log-level",
        log_level,
        *args,
    ]
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=clean_env())
    server = ServerProcess(proc, f"http://127.0.0.1:{api_port}", f"127.0.0.1:{sync_port}", data_dir, log)
    try:
        server.wait_ready()
        yield server
    finally:
        server.stop()
