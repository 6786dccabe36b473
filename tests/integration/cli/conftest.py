"""The admin CLI end to end: one real `meshroute server` process (SQLite, free loopback ports) for
all CLI tests, driven through the typer app in-process. Every test makes its own uniquely named
objects, so the tests do not depend on each other's order."""

from __future__ import annotations

import base64
import json
import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner, Result

from meshroute.cli.main import app
from tests.integration.server_process import server_process


@dataclass(frozen=True)
class Server:
    url: str
    sync: str
    token: str
    data_dir: Path

    def api(self, method: str, path: str, body: Any = None, token: str | None = None) -> httpx.Response:
        """A direct API call, to compare the CLI with what the server says."""
        headers = {"Authorization": f"Token {token if token is not None else self.token}"}
        return httpx.request(method, f"{self.url}/api/{path}", json=body, headers=headers, timeout=10)


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    data_dir = tmp_path_factory.mktemp("cli-server") / "data"
    with server_process(data_dir, log_level="warning") as proc:
        yield Server(url=proc.url, sync=proc.sync, token=proc.token, data_dir=data_dir)


class Cli:
    """Runs `meshroute ...` in-process with MESHROUTE_SERVER / MESHROUTE_TOKEN pointing at the server.

    Standard output is not a terminal here, so tables come out plain (no box, nothing cut).
    """

    def __init__(self, server: Server) -> None:
        self.server = server
        self.runner = CliRunner()

    def run(self, *args: str, env: dict[str, str | None] | None = None) -> Result:
        full_env: dict[str, str | None] = {
            "MESHROUTE_SERVER": self.server.url,
            "MESHROUTE_TOKEN": self.server.token,
            "COLUMNS": "80",  # plain output must not depend on the width
        }
        full_env.update(env or {})
        return self.runner.invoke(app, list(args), env=full_env)

    def ok(self, *args: str) -> str:
        result = self.run(*args)
        assert result.exit_code == 0, (
            f"meshroute {' '.join(args)} -> {result.exit_code}\n{result.output}\n{result.exception!r}"
        )
        return result.stdout

    def json(self, *args: str) -> Any:
        return json.loads(self.ok(*args, "--json"))

    def fails(self, *args: str, env: dict[str, str | None] | None = None, status: int = 1) -> Result:
        result = self.run(*args, env=env)
        assert result.exit_code == status, (
            f"meshroute {' '.join(args)} -> {result.exit_code}\n{result.output}"
        )
        assert isinstance(result.exception, SystemExit), repr(result.exception)  # no traceback
        assert "Traceback" not in result.output
        assert result.stdout == ""  # nothing half-done is printed
        return result

    def usage_error(self, *args: str) -> str:
        """A command line that cannot work: exit status 2, the reason on stderr."""
        return self.fails(*args, status=2).stderr


@pytest.fixture
def cli(server: Server) -> Cli:
    return Cli(server)


def uniq(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:6]}"


def register_peer(server: Server, setup_key: str, hostname: str, *, ipv6: bool = False) -> str:
    """Join a peer the way an agent does (the REST API cannot create peers).

    The service call goes to the server's own SQLite store from this process, as a second replica
    would; the running server sees the peer on its next request.
    """
    from meshroute.server.services import Services
    from meshroute.server.services.peers import PeerRegistration
    from meshroute.server.services.uow import UnitOfWork
    from meshroute.server.store.db import make_engine, sqlite_url
    from meshroute.server.store.sql import SqlStore

    engine = make_engine(sqlite_url(server.data_dir))
    try:
        wg_key = base64.b64encode(os.urandom(32)).decode()
        peer, _ = Services.create(UnitOfWork(SqlStore(engine))).peers.register(
            PeerRegistration(
                setup_key=setup_key, wg_public_key=wg_key, hostname=hostname, os="linux", ipv6_capable=ipv6
            )
        )
        return peer.id
    finally:
        engine.dispose()


def route_world(cli: Cli) -> tuple[str, str, str, str]:
    """A routing peer group (no members is fine) and a distribution group: (names..., ids...)."""
    routers, clients = uniq("routers"), uniq("clients")
    routers_id = cli.json("groups", "create", routers)["id"]
    clients_id = cli.json("groups", "create", clients)["id"]
    return routers, clients, routers_id, clients_id


def peers_in(cli: Cli, group: str, *hostnames: str) -> list[str]:
    """Peers joined with a setup key that puts them into ``group``: their IDs, in order."""
    key = cli.json("setup-keys", "create", uniq("agents"), "--reusable", "--auto-group", group)["key"]
    return [register_peer(cli.server, key, name) for name in hostnames]
