"""The REST API over a real store, with an owner and helpers to make the world a test needs."""

from __future__ import annotations

import base64
import os
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from meshroute.core.changes import ChangeSet
from meshroute.core.model import Role, User
from meshroute.core.routes import parse_network
from meshroute.server.assembly import Server, assemble
from meshroute.server.clock import utcnow
from meshroute.server.config import ServerConfig
from meshroute.server.services import Services
from meshroute.server.services.peers import PeerRegistration
from meshroute.server.services.routes import RouteInput
from meshroute.server.services.uow import Reader, UnitOfWork
from meshroute.server.store.sql import SqlStore
from meshroute.server.sync.engine import MapEngine
from tests.integration.openapi_check import Document, ResponseLog


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def assembled(engine: Engine, data_dir: Path, **config: Any) -> Server:
    """The server as `meshroute server` assembles it, over a test's store, agent sync on a free port."""
    cfg = ServerConfig(data_dir=data_dir, sync_listen=f"127.0.0.1:{free_port()}", **config)
    return assemble(cfg, db=engine)


def wg_key() -> str:
    return base64.b64encode(os.urandom(32)).decode()


@dataclass
class World:
    """An account reached through the API as its owner, plus shortcuts to build fixtures."""

    services: Services
    client: TestClient
    account_id: str
    owner_id: str
    token: str
    engine: MapEngine  # the server's network-map engine, fed after each commit

    def headers(self, token: str | None = None) -> dict[str, str]:
        return {"Authorization": f"Token {token or self.token}"}

    def get(self, path: str, token: str | None = None, **kw: Any) -> Any:
        return self.client.get(path, headers=self.headers(token), **kw)

    def post(self, path: str, body: Any, token: str | None = None) -> Any:
        return self.client.post(path, json=body, headers=self.headers(token))

    def put(self, path: str, body: Any, token: str | None = None) -> Any:
        return self.client.put(path, json=body, headers=self.headers(token))

    def delete(self, path: str, token: str | None = None) -> Any:
        return self.client.delete(path, headers=self.headers(token))

    def ok(self, response: Any) -> Any:
        assert response.status_code == 200, response.text
        return response.json()

    def group(self, name: str, peers: list[str] | None = None) -> str:
        return str(self.ok(self.post("/api/groups", {"name": name, "peers": peers or []}))["id"])

    def setup_key(self, auto_groups: list[str] | None = None, **kw: Any) -> str:
        body = {
            "name": "k",
            "type": "reusable",
            "expires_in": 86400,
            "auto_groups": auto_groups or [],
            "usage_limit": 0,
            **kw,
        }
        return str(self.ok(self.post("/api/setup-keys", body))["key"])

    def peer(self, hostname: str, key: str | None = None, ipv6: bool = False) -> str:
        """Registers a peer the way an agent does (service call: the agent protocol uses it)."""
        secret = key or self.setup_key()
        peer, _ = self.services.peers.register(
            PeerRegistration(setup_key=secret, wg_public_key=wg_key(), hostname=hostname, ipv6_capable=ipv6)
        )
        return peer.id

    def user(self, role: Role, *, service: bool = True, blocked: bool = False) -> tuple[str, str]:
        """A user of `role` and a token for it (created directly: API rules forbid some of these)."""
        from meshroute.core.ids import new_id

        uid = new_id()
        with self.services.uow.write(self.account_id) as tx:
            tx.users.add(
                User(
                    uid,
                    self.account_id,
                    role,
                    name=f"{role.value}-{uid[-4:]}",
                    is_service_user=service,
                    blocked=False,
                    created_at=utcnow(),
                )
            )
        _, token = (
            self.services.users.create_token(self.account_id, self.owner_id, uid, "t", 30)
            if service
            else self._token_for_person(uid)
        )
        if blocked:
            with self.services.uow.write(self.account_id) as tx:
                u = tx.users.get(uid)
                assert u is not None
                u.blocked = True
                tx.users.update(u)
        return uid, token

    def _token_for_person(self, uid: str) -> tuple[Any, str]:
        # People manage their own tokens; the owner may not, so create it as that user would.
        with self.services.uow.write(self.account_id) as tx:
            u = tx.users.get(uid)
            assert u is not None
            role = u.role
            u.role = Role.OWNER
            tx.users.update(u)
        pat, token = self.services.users.create_token(self.account_id, uid, uid, "t", 30)
        with self.services.uow.write(self.account_id) as tx:
            u = tx.users.get(uid)
            assert u is not None
            u.role = role
            tx.users.update(u)
        return pat, token

    def serial(self) -> int:
        with self.services.uow.read(self.account_id) as tx:
            account = tx.accounts.get(self.account_id)
            assert account is not None
            return account.network_serial

    def events(self) -> list[dict[str, Any]]:
        return list(self.ok(self.get("/api/events/audit")))


@pytest.fixture
def app_server(engine: Engine, tmp_path: Path) -> Server:
    return assembled(engine, tmp_path)


@pytest.fixture
def world(app_server: Server) -> Iterator[World]:
    """Every response the world's client receives must match the served OpenAPI document."""
    server = app_server
    boot = server.services.accounts.bootstrap()
    assert boot is not None
    log = ResponseLog()
    with TestClient(server.app, raise_server_exceptions=False) as client:  # runs the lifespan
        log.install(client)
        yield World(server.services, client, boot.account.id, boot.owner.id, boot.token, server.engine)
    log.check(served_document(server))


def served_document(server: Server) -> Document:
    """The document the server serves (the same for every server this code assembles: built once,
    it is the slowest part of checking a test's responses)."""
    global _DOCUMENT
    if _DOCUMENT is None:
        _DOCUMENT = Document(server.app.openapi())
    return _DOCUMENT


_DOCUMENT: Document | None = None


@pytest.fixture
def live_url(app_server: Server, world: World) -> Iterator[str]:
    """The world's app also served by a real uvicorn on a free loopback port (for concurrent
    clients); the world's client has started its parts already."""
    import threading
    import time

    import uvicorn

    port = free_port()
    config = uvicorn.Config(app_server.app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    uv = uvicorn.Server(config)
    thread = threading.Thread(target=uv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not uv.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.02)
    yield f"http://127.0.0.1:{port}"
    uv.should_exit = True
    thread.join(timeout=10)


@dataclass
class HeldBack:
    """Services over the world's store whose change sets are held back, and an engine (not
    started) that the test feeds them to by hand, in whatever order it likes."""

    world: World
    services: Services
    engine: MapEngine
    changesets: list[ChangeSet]
    published: list[tuple[str, Any]]

    def peer(self, hostname: str) -> str:
        secret = self.world.setup_key()
        peer, _ = self.services.peers.register(
            PeerRegistration(setup_key=secret, wg_public_key=wg_key(), hostname=hostname)
        )
        return peer.id

    def group(self, name: str, peers: list[str] | None = None) -> str:
        return self.services.groups.create(self.world.account_id, self.world.owner_id, name, peers or []).id

    def rename_group(self, group_id: str, name: str) -> None:
        self.services.groups.update(self.world.account_id, self.world.owner_id, group_id, name, [])

    def route(self, peer: str, group: str, net: str) -> str:
        kind, network = parse_network(net)
        data = RouteInput(net, network, kind, peer=peer, groups=[group], metric=10, enabled=True)
        return self.services.routes.create(self.world.account_id, self.world.owner_id, data).id


@pytest.fixture
def held(app_server: Server, world: World) -> HeldBack:
    store = SqlStore(app_server.db)
    changesets: list[ChangeSet] = []
    published: list[tuple[str, Any]] = []
    services = Services.create(UnitOfWork(store, after_commit=changesets.append))
    engine = MapEngine(Reader(store), lambda account, deltas: published.append((account, deltas)))
    return HeldBack(world, services, engine, changesets, published)
