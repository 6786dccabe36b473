"""The REST API over a real store, with an owner and helpers to make the world a test needs."""

from __future__ import annotations

import base64
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from meshroute.core.model import Role, User
from meshroute.server.api.app import create_app
from meshroute.server.services import Services
from meshroute.server.services.peers import PeerRegistration
from meshroute.server.store.repo import utcnow


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
            tx.insert_user(
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
                u = tx.user(uid)
                assert u is not None
                u.blocked = True
                tx.update_user(u)
        return uid, token

    def _token_for_person(self, uid: str) -> tuple[Any, str]:
        # People manage their own tokens; the owner may not, so create it as that user would.
        with self.services.uow.write(self.account_id) as tx:
            u = tx.user(uid)
            assert u is not None
            role = u.role
            u.role = Role.OWNER
            tx.update_user(u)
        pat, token = self.services.users.create_token(self.account_id, uid, uid, "t", 30)
        with self.services.uow.write(self.account_id) as tx:
            u = tx.user(uid)
            assert u is not None
            u.role = role
            tx.update_user(u)
        return pat, token

    def serial(self) -> int:
        with self.services.uow.read(self.account_id) as tx:
            account = tx.account(self.account_id)
            assert account is not None
            return account.network_serial

    def events(self) -> list[dict[str, Any]]:
        return list(self.ok(self.get("/api/events/audit")))


@pytest.fixture
def world(engine: Engine) -> Iterator[World]:
    services = Services.create(engine)
    boot = services.accounts.bootstrap()
    assert boot is not None
    with TestClient(create_app(services), raise_server_exceptions=False) as client:
        yield World(services, client, boot.account.id, boot.owner.id, boot.token)


@pytest.fixture
def live_url(world: World) -> Iterator[str]:
    """The same app served by a real uvicorn on a free loopback port (for concurrent clients)."""
    import socket
    import threading
    import time

    import uvicorn

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(create_app(world.services), host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.02)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=10)
