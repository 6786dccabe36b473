"""Agent protocol against a real server (REST + gRPC on one loop) on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import base64
import os
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest
import uvicorn
from sqlalchemy import Engine

from meshroute.agent.sim import _comparable
from meshroute.core.networkmap.types import NetworkMap
from meshroute.protocol import meshroute_pb2 as pb
from meshroute.protocol import meshroute_pb2_grpc as pb_grpc
from meshroute.protocol.client import Identity, Meta, PeerClient, open_channel
from meshroute.protocol.convert import map_json
from meshroute.server.assembly import Server, build
from meshroute.server.config import ServerConfig
from tests.integration.conftest import served_document
from tests.integration.openapi_check import ResponseLog


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Running:
    server: Server
    api: httpx.Client
    sync: str
    token: str

    def setup_key(self, **kw: Any) -> str:
        body = {
            "name": "k",
            "type": "reusable",
            "expires_in": 86400,
            "auto_groups": [],
            "usage_limit": 0,
            **kw,
        }
        resp = self.api.post("/api/setup-keys", json=body)
        assert resp.status_code == 200, resp.text
        return str(resp.json()["key"])

    def all_group(self) -> str:
        return str(self.api.get("/api/groups", params={"name": "All"}).json()[0]["id"])

    def view(self, peer_id: str) -> dict[str, Any]:
        resp = self.api.get(f"/api/peers/{peer_id}/network-map")
        assert resp.status_code == 200, resp.text
        return dict(resp.json())


def start_server(data_dir: Path, url: str | None, token: str | None = None, **kw: Any) -> Iterator[Running]:
    cfg = ServerConfig(data_dir=data_dir, sync_listen=f"127.0.0.1:{free_port()}", database_url=url, **kw)
    server = build(cfg)
    port = free_port()
    uv = uvicorn.Server(uvicorn.Config(server.app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=uv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not uv.started:
        assert time.monotonic() < deadline
        time.sleep(0.02)
    token = token or (data_dir / "admin-token").read_text().strip()
    api = httpx.Client(base_url=f"http://127.0.0.1:{port}", headers={"Authorization": f"Token {token}"})
    log = ResponseLog()
    log.install(api)
    try:
        yield Running(server, api, cfg.sync_listen, token)
    finally:
        api.close()
        uv.should_exit = True
        thread.join(timeout=15)
    log.check(served_document(server))


@pytest.fixture
def running(engine: Engine, tmp_path: Path) -> Iterator[Running]:
    url = engine.url.render_as_string(hide_password=False)
    yield from start_server(tmp_path, url)


def new_key() -> str:
    return base64.b64encode(os.urandom(32)).decode()


async def joined(r: Running, n: int, key: str | None = None) -> tuple[grpc.aio.Channel, list[PeerClient]]:
    channel = open_channel(r.sync)
    secret = key or r.setup_key()
    clients = [PeerClient(channel, Identity(new_key())) for _ in range(n)]
    for i, c in enumerate(clients):
        await c.login(Meta(hostname=f"peer-{i}", ipv6=i % 2 == 0), setup_key=secret)
    return channel, clients


class Follower:
    """Holds a sync stream in the background and records every map it reaches."""

    def __init__(self, client: PeerClient) -> None:
        self.client = client
        self.kinds: list[str] = []
        self.maps: list[NetworkMap] = []
        self.task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        async for update in self.client.maps():
            self.kinds.append("full" if update.full else "delta")
            self.maps.append(update.map)

    async def wait_for(self, pred: Any, timeout: float = 10) -> NetworkMap:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.maps and pred(self.maps[-1]):
                return self.maps[-1]
            if self.task.done():
                self.task.result()
            await asyncio.sleep(0.02)
        raise AssertionError(f"condition not reached; last map {self.maps[-1] if self.maps else None}")

    async def stop(self) -> None:
        self.task.cancel()
        await asyncio.gather(self.task, return_exceptions=True)


@pytest.fixture
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    lp = asyncio.new_event_loop()
    yield lp
    lp.close()


def test_login_sync_full_map_then_deltas_match_the_server(
    running: Running, loop: asyncio.AbstractEventLoop
) -> None:
    async def scenario() -> None:
        channel, clients = await joined(running, 3)
        followers = [Follower(c) for c in clients]
        for f in followers:
            await f.wait_for(lambda m: len(m.peers) == 2)
        assert all(f.kinds[0] == "full" for f in followers)
        route = running.api.post(
            "/api/routes",
            json={
                "network": "10.50.0.0/16",
                "network_id": "lan",
                "peer": clients[0].identity.peer_id,
                "groups": [running.all_group()],
                "metric": 10,
                "enabled": True,
            },
        )
        assert route.status_code == 200, route.text
        for f in followers:
            m = await f.wait_for(lambda m: len(m.routes) == 1)
            assert f.kinds[-1] == "delta"
            assert _comparable(map_json(m)) == _comparable(running.view(f.client.identity.peer_id))
        # the routing peer serves it: its rules allow exactly the other two peers
        served = followers[0].maps[-1]
        assert [r.route_id for r in served.rules] == [route.json()["id"]]
        others = sorted(f"{c.identity.ip.split('/')[0]}/32" for c in clients[1:])
        assert list(served.rules[0].sources) == others
        peers = {p["id"]: p for p in running.api.get("/api/peers").json()}
        assert all(peers[c.identity.peer_id]["connected"] for c in clients)
        for f in followers:
            await f.stop()
        await channel.close()
        deadline = time.monotonic() + 10
        while any(p["connected"] for p in running.api.get("/api/peers").json()):
            assert time.monotonic() < deadline, "peers still shown connected after their streams closed"
            await asyncio.sleep(0.05)

    loop.run_until_complete(scenario())


def test_bad_credentials_are_rejected(running: Running, loop: asyncio.AbstractEventLoop) -> None:
    async def scenario() -> None:
        channel, (client,) = await joined(running, 1)
        stub = pb_grpc.ManagementStub(channel)  # type: ignore[no-untyped-call]
        key = client.identity.wg_public_key
        cases: list[tuple[Any, tuple[tuple[str, str], ...] | None, grpc.StatusCode]] = [
            # a public key alone never authenticates
            (stub.Login(pb.LoginRequest(wg_public_key=key)), None, grpc.StatusCode.UNAUTHENTICATED),
            (
                stub.Login(
                    pb.LoginRequest(wg_public_key=key),
                    metadata=(("x-meshroute-peer-key", key), ("x-meshroute-credential", "wrong")),
                ),
                None,
                grpc.StatusCode.UNAUTHENTICATED,
            ),
            (
                stub.Login(
                    pb.LoginRequest(
                        wg_public_key=new_key(), setup_key="not-a-key", meta=pb.PeerMeta(hostname="x")
                    )
                ),
                None,
                grpc.StatusCode.PERMISSION_DENIED,
            ),
            (
                stub.Login(
                    pb.LoginRequest(
                        wg_public_key="short", setup_key=running.setup_key(), meta=pb.PeerMeta(hostname="x")
                    )
                ),
                None,
                grpc.StatusCode.INVALID_ARGUMENT,
            ),
            # the credential of one peer with another peer's key
            (
                stub.Login(
                    pb.LoginRequest(wg_public_key=new_key()),
                    metadata=(
                        ("x-meshroute-peer-key", new_key()),
                        ("x-meshroute-credential", client.identity.credential),
                    ),
                ),
                None,
                grpc.StatusCode.UNAUTHENTICATED,
            ),
        ]
        for call, _, code in cases:
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await call
            assert err.value.code() == code, err.value.details()
        sync = stub.Sync(pb.SyncRequest(), metadata=(("x-meshroute-peer-key", key),))
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await sync.read()
        assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
        # an already registered key cannot register again
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stub.Login(
                pb.LoginRequest(
                    wg_public_key=key, setup_key=running.setup_key(), meta=pb.PeerMeta(hostname="x")
                )
            )
        assert err.value.code() == grpc.StatusCode.ALREADY_EXISTS
        # and the right credential works, again and again
        await client.login(Meta(hostname="again"))
        await channel.close()

    loop.run_until_complete(scenario())


def test_reconnect_and_reload_resync_with_full_maps(
    running: Running, loop: asyncio.AbstractEventLoop
) -> None:
    async def scenario() -> None:
        channel, (a, b) = await joined(running, 2)
        fa = Follower(a)
        await fa.wait_for(lambda m: len(m.peers) == 1)
        await fa.stop()
        # a change while a is away
        group = running.api.post("/api/groups", json={"name": "gw", "peers": [b.identity.peer_id]}).json()[
            "id"
        ]
        resp = running.api.post(
            "/api/routes",
            json={
                "domains": ["example.com"],
                "network_id": "dns",
                "peer_groups": [group],
                "groups": [running.all_group()],
                "metric": 10,
                "enabled": True,
            },
        )
        assert resp.status_code == 200, resp.text
        fa = Follower(a)
        m = await fa.wait_for(lambda m: len(m.routes) == 1)
        assert fa.kinds == ["full"]
        assert m.routes[0].id == f"{resp.json()['id']}:{b.identity.peer_id}"
        assert m.routes[0].network == "192.0.2.0/32" and m.routes[0].domains == ("example.com",)
        # the server reloading an account (what a serial gap leads to) resyncs everyone
        running.server.engine.reload(_account(running))
        await fa.wait_for(lambda _m: fa.kinds.count("full") == 2)
        await fa.stop()
        await channel.close()

    loop.run_until_complete(scenario())


def _account(r: Running) -> str:
    return str(r.api.get("/api/accounts").json()[0]["id"])


def test_deleting_a_peer_ends_its_stream(running: Running, loop: asyncio.AbstractEventLoop) -> None:
    async def scenario() -> None:
        channel, (a, b) = await joined(running, 2)
        fa, fb = Follower(a), Follower(b)
        await fb.wait_for(lambda m: len(m.peers) == 1)
        await fa.wait_for(lambda m: len(m.peers) == 1)
        assert running.api.delete(f"/api/peers/{a.identity.peer_id}").status_code == 200
        await fb.wait_for(lambda m: len(m.peers) == 0)
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await asyncio.wait_for(fa.task, 10)
        assert err.value.code() in (grpc.StatusCode.NOT_FOUND, grpc.StatusCode.UNAUTHENTICATED)
        await fb.stop()
        await channel.close()

    loop.run_until_complete(scenario())


@pytest.fixture
def pg_replicas(pg_engine: Engine, tmp_path: Path) -> Iterator[tuple[Running, Running]]:
    from tests.conftest import _truncate

    _truncate(pg_engine)
    url = pg_engine.url.render_as_string(hide_password=False)
    gen_a = start_server(tmp_path / "a", url)
    a = next(gen_a)
    gen_b = start_server(tmp_path / "b", url, token=a.token)
    b = next(gen_b)
    assert a.server.services.accounts.bootstrap() is None and not (tmp_path / "b" / "admin-token").exists()
    yield a, b
    for gen in (gen_b, gen_a):
        with pytest.raises(StopIteration):
            next(gen)


def test_change_through_replica_a_reaches_agent_on_replica_b(
    pg_replicas: tuple[Running, Running], loop: asyncio.AbstractEventLoop
) -> None:
    a, b = pg_replicas

    async def scenario() -> None:
        channel, clients = await joined(b, 2, key=a.setup_key())
        followers = [Follower(c) for c in clients]
        for f in followers:
            await f.wait_for(lambda m: len(m.peers) == 1)
        resp = a.api.post(
            "/api/routes",
            json={
                "network": "10.60.0.0/16",
                "network_id": "vpc",
                "peer": clients[1].identity.peer_id,
                "groups": [a.all_group()],
                "metric": 10,
                "enabled": True,
            },
        )
        assert resp.status_code == 200, resp.text
        for f in followers:
            m = await f.wait_for(lambda m: len(m.routes) == 1)
            assert f.kinds[-1] == "delta"
            view = _comparable(map_json(m))
            assert view == _comparable(b.view(f.client.identity.peer_id))
            assert view == _comparable(a.view(f.client.identity.peer_id))
        # a peer joining through replica A appears on B's streams too
        other = open_channel(a.sync)
        late = PeerClient(other, Identity(new_key()))
        await late.login(Meta(hostname="late"), setup_key=a.setup_key())
        for f in followers:
            await f.wait_for(lambda m: len(m.peers) == 2)
        for f in followers:
            await f.stop()
        await channel.close()
        await other.close()

    loop.run_until_complete(scenario())


def test_tls_sync(engine: Engine, tmp_path: Path, loop: asyncio.AbstractEventLoop) -> None:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            str(key),
            "-out",
            str(cert),
            "-days",
            "1",
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=IP:127.0.0.1,DNS:localhost",
        ],
        check=True,
        capture_output=True,
    )
    url = engine.url.render_as_string(hide_password=False)
    gen = start_server(tmp_path / "d", url, tls_cert=cert, tls_key=key)
    r = next(gen)

    async def scenario() -> None:
        secure = open_channel(r.sync, root_ca=cert.read_bytes())
        c = PeerClient(secure, Identity(new_key()))
        await c.login(Meta(hostname="tls"), setup_key=r.setup_key())
        f = Follower(c)
        await f.wait_for(lambda m: m.self_config.id == c.identity.peer_id)
        await f.stop()
        await secure.close()
        plain = open_channel(r.sync)
        with pytest.raises(grpc.aio.AioRpcError):
            await PeerClient(plain, Identity(new_key())).login(Meta(hostname="x"), setup_key="x")
        await plain.close()

    try:
        loop.run_until_complete(scenario())
    finally:
        with pytest.raises(StopIteration):
            next(gen)


def test_plaintext_sync_off_loopback_needs_insecure(tmp_path: Path) -> None:
    from meshroute.server.config import check_transport

    cfg = ServerConfig(data_dir=tmp_path, sync_listen="0.0.0.0:33074")
    with pytest.raises(ValueError, match="--insecure"):
        check_transport(cfg)
    cfg.insecure = True
    assert check_transport(cfg) is None
    assert check_transport(ServerConfig(data_dir=tmp_path, sync_listen="127.0.0.1:1")) is None


def test_graceful_shutdown_marks_connected_peers_disconnected(
    engine: Engine, tmp_path: Path, loop: asyncio.AbstractEventLoop
) -> None:
    url = engine.url.render_as_string(hide_password=False)
    gen = start_server(tmp_path / "s", url)
    r = next(gen)

    async def connect() -> tuple[grpc.aio.Channel, list[Follower]]:
        channel, clients = await joined(r, 5)
        followers = [Follower(c) for c in clients]
        for f in followers:
            await f.wait_for(lambda m: len(m.peers) == 4)
        return channel, followers

    channel, followers = loop.run_until_complete(connect())
    assert all(p["connected"] for p in r.api.get("/api/peers").json())
    with pytest.raises(StopIteration):
        next(gen)  # uvicorn shuts down: lifespan end, gRPC stop

    async def close() -> None:
        for f in followers:
            await f.stop()
        await channel.close()

    loop.run_until_complete(close())
    from sqlalchemy import select

    from meshroute.server.store import tables as t

    with engine.connect() as conn:
        flags = [row.connected for row in conn.execute(select(t.peers.c.connected))]
    assert flags == [False] * 5
