"""The real programs of a world: `meshroute server` in the management node, `meshroute agent` in peers."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import httpx

from meshroute.lab.netns import CommandError, exec_argv, run
from meshroute.lab.process import Proc, clean_env
from meshroute.lab.proxy import TcpForwarder

# inside the management namespace every port is free: fixed ports keep the addresses predictable
API_PORT = 33073
SYNC_PORT = 33074
SERVER_START_TIMEOUT = 60.0


def meshroute_bin() -> str:
    """The `meshroute` entry point of the running interpreter's environment (the project's venv)."""
    path = Path(sys.executable).with_name("meshroute")
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing: install the project into this environment")
    return str(path)


class ManagementServer:
    """`meshroute server` in the management namespace, its REST API forwarded to the root namespace's
    loopback. Stop and start keep the data dir and the addresses, so the token stays valid."""

    def __init__(
        self,
        netns: str,
        sync_host: str,
        data_dir: Path,
        log: Path,
        *,
        extra_args: Sequence[str] = (),
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.netns = netns
        self.data_dir = data_dir
        self.sync_address = f"{sync_host}:{SYNC_PORT}"
        argv = [
            meshroute_bin(),
            "server",
            "--data-dir",
            str(data_dir),
            "--listen",
            f"127.0.0.1:{API_PORT}",
            "--sync-listen",
            self.sync_address,
            "--insecure",  # plaintext sync on the underlay address (a test bed, not a deployment)
            *extra_args,
        ]
        self.proc = Proc("server", netns, argv, log, env=env)
        self.forwarder = TcpForwarder(netns, ("127.0.0.1", API_PORT))
        self.token = ""
        self._api: httpx.Client | None = None
        self.start_seconds = 0.0  # how long the last start took until the API answered

    @property
    def url(self) -> str:
        """The REST API's base URL as seen from the root namespace (the forwarder)."""
        return self.forwarder.url

    @property
    def log(self) -> Path:
        return self.proc.log

    @property
    def running(self) -> bool:
        return self.proc.running

    def start(self, timeout: float = SERVER_START_TIMEOUT) -> None:
        """Start and wait until the API answers the owner's token (read from DATA_DIR/admin-token)."""
        t0 = time.monotonic()
        self.proc.start()
        token_file = self.data_dir / "admin-token"
        deadline = t0 + timeout
        with httpx.Client(base_url=self.url, timeout=2.0) as client:
            while True:
                if not self.proc.running:
                    code = self.proc.returncode
                    raise RuntimeError(
                        f"meshroute server exited with {code} during start-up:\n{self.proc.tail()}"
                    )
                if token_file.exists() and (token := token_file.read_text().strip()):
                    try:
                        reply = client.get("/api/users/current", headers={"Authorization": f"Token {token}"})
                        if reply.status_code == 200:
                            self.token = token
                            break
                    except httpx.TransportError:
                        pass
                if time.monotonic() > deadline:
                    self.proc.ensure_stopped()
                    raise TimeoutError(f"meshroute server not ready after {timeout} s:\n{self.proc.tail()}")
                time.sleep(0.05)
        self.start_seconds = time.monotonic() - t0

    @property
    def api(self) -> httpx.Client:
        """A client authenticated as the owner; it keeps working across restarts (same token)."""
        if self._api is None:
            if not self.token:
                raise RuntimeError("the server has not been started yet")
            self._api = httpx.Client(
                base_url=self.url, headers={"Authorization": f"Token {self.token}"}, timeout=10.0
            )
        return self._api

    def cli_env(self) -> dict[str, str]:
        """MESHROUTE_SERVER and MESHROUTE_TOKEN for `meshroute ...` admin commands run on the host."""
        return {"MESHROUTE_SERVER": self.url, "MESHROUTE_TOKEN": self.token}

    def cli(self, *args: str, check: bool = True, timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
        """Run the admin CLI (`meshroute ARGS`) in the root namespace against this server."""
        return run([meshroute_bin(), *args], timeout=timeout, check=check, env=clean_env(self.cli_env()))

    def setup_key(
        self,
        name: str = "lab",
        *,
        reusable: bool = True,
        auto_groups: Sequence[str] = (),
        usage_limit: int = 0,
        ephemeral: bool = False,
        expires_in: int = 86400,
    ) -> str:
        """Create a setup key through the API and return its secret."""
        body = {
            "name": name,
            "type": "reusable" if reusable else "one-off",
            "expires_in": expires_in,
            "auto_groups": list(auto_groups),
            "usage_limit": usage_limit,
            "ephemeral": ephemeral,
        }
        reply = self.api.post("/api/setup-keys", json=body)
        if reply.status_code != 200:
            raise RuntimeError(f"creating a setup key failed: {reply.status_code} {reply.text}")
        key: str = reply.json()["key"]
        return key

    def peer(self, hostname: str) -> dict[str, Any] | None:
        """The server's record of the peer with this hostname (None if no such peer has joined)."""
        reply = self.api.get("/api/peers")
        reply.raise_for_status()
        found = [p for p in reply.json() if p.get("hostname") == hostname]
        return found[0] if found else None

    def stop(self, timeout: float = 15.0, sig: int = signal.SIGTERM) -> int:
        """SIGTERM (or ``sig``) and wait; returns the exit status (uvicorn re-raises SIGTERM: -15)."""
        code = self.proc.stop(timeout, sig)
        self.forwarder.drop_connections()  # pooled client connections would point at the dead server
        return code

    def kill(self) -> int:
        return self.stop(sig=signal.SIGKILL)

    def restart(self, timeout: float = SERVER_START_TIMEOUT) -> None:
        if self.proc.running:
            self.stop()
        self.start(timeout)

    def close(self) -> None:
        if self._api is not None:
            self._api.close()
        self.proc.ensure_stopped()
        self.forwarder.close()


class Agent:
    """`meshroute agent run` in a peer's namespace, with its own state dir and log.

    The arguments are fixed at creation and reused by every start (the setup key is harmless on a
    restart: the agent logs in with its stored credential)."""

    def __init__(
        self,
        node: str,
        netns: str,
        server: str,
        state_dir: Path,
        log: Path,
        *,
        setup_key: str = "",
        hostname: str | None = None,
        interface: str | None = None,
        listen_port: int | None = None,
        endpoints: Sequence[str] = (),
        wireguard: str | None = None,
        probe_interval_ms: int | None = None,
        extra_args: Sequence[str] = (),
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.node = node
        self.netns = netns
        self.state_dir = state_dir
        argv = [meshroute_bin(), "agent", "run", "--server", server]
        if setup_key:  # through the environment: an argument shows in every `ps`
            env = {**(env or {}), "MESHROUTE_SETUP_KEY": setup_key}
        argv += ["--state-dir", str(state_dir), "--insecure", "--hostname", hostname or node]
        if interface is not None:
            argv += ["--interface", interface]
        if listen_port is not None:
            argv += ["--listen-port", str(listen_port)]
        for endpoint in endpoints:
            argv += ["--endpoint", endpoint]
        if wireguard is not None:
            argv += ["--wireguard", wireguard]
        if probe_interval_ms is not None:
            argv += ["--probe-interval", str(probe_interval_ms)]
        argv += list(extra_args)
        self.proc = Proc(f"agent {node}", netns, argv, log, env=env)

    @property
    def log(self) -> Path:
        return self.proc.log

    @property
    def running(self) -> bool:
        return self.proc.running

    @property
    def pid(self) -> int | None:
        return self.proc.pid

    def start(self) -> Agent:
        self.state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.proc.start()
        return self

    def stop(self, timeout: float = 10.0) -> int:
        """SIGTERM and wait: the agent removes what it installed and exits (0 when clean)."""
        return self.proc.stop(timeout, signal.SIGTERM)

    def kill(self) -> int:
        """SIGKILL: nothing cleaned up; its wireguard-go may stay behind (teardown kills it by PID)."""
        return self.proc.kill()

    def restart(self, timeout: float = 10.0) -> Agent:
        if self.proc.running:
            self.stop(timeout)
        return self.start()

    def status(self, timeout: float = 10.0) -> dict[str, Any]:
        """`meshroute agent status --json`, run in the agent's namespace."""
        argv = [meshroute_bin(), "agent", "status", "--state-dir", str(self.state_dir), "--json"]
        done = run(exec_argv(self.netns, argv), timeout=timeout, env=clean_env())
        try:
            value = json.loads(done.stdout)
        except ValueError:
            raise CommandError(argv, done.returncode, done.stdout, "not JSON") from None
        if not isinstance(value, dict):
            raise CommandError(argv, done.returncode, done.stdout, "not a JSON object")
        return value

    def tail(self, lines: int = 40) -> str:
        return self.proc.tail(lines)

    def close(self) -> None:
        self.proc.ensure_stopped()
