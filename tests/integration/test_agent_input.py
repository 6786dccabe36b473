"""What agents send (issue 9, items 3, 4 and 8): every field of Login is bounded and checked
(INVALID_ARGUMENT, nothing stored), undecodable payloads are INVALID_ARGUMENT and logged once
without a traceback, and no status detail ever carries SQL, parameters or a traceback. Against a
real server, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from sqlalchemy import Engine, text

from meshroute.core.agent_input import MAX_ENDPOINTS
from meshroute.protocol import meshroute_pb2 as pb
from meshroute.protocol import meshroute_pb2_grpc as pb_grpc
from meshroute.protocol.client import Identity, Meta, PeerClient, open_channel
from tests.integration.test_sync import Running, new_key, start_server

GOOD_ENDPOINTS = ["172.31.0.3:51820", "[fd00::1]:51820", "[fe80::1%eth0]:51820", "vpn.example.com:51820"]


@pytest.fixture
def running(engine: Engine, tmp_path: Path) -> Iterator[Running]:
    yield from start_server(tmp_path, engine.url.render_as_string(hide_password=False))


def run(coro: Any) -> Any:
    loop = asyncio.new_event_loop()
    try:
        return loop.run_until_complete(coro)
    finally:
        loop.close()


def peers(r: Running) -> list[dict[str, Any]]:
    return list(r.api.get("/api/peers").json())


async def login_error(r: Running, request: Any, metadata: Any = None) -> grpc.aio.AioRpcError:
    async with open_channel(r.sync) as channel:
        stub = pb_grpc.ManagementStub(channel)  # type: ignore[no-untyped-call]
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stub.Login(request, metadata=metadata)
    return err.value


BAD_META: list[tuple[dict[str, Any], str]] = [
    ({"endpoints": ["10.0.0.1:1"] * (MAX_ENDPOINTS + 1)}, "endpoints should not have more than 32 entries"),
    ({"endpoints": ["x" * 100]}, "is not HOST:PORT"),
    ({"endpoints": ["10.0.0.1"]}, "is not HOST:PORT"),
    ({"endpoints": ["10.0.0.1:0"]}, "is not HOST:PORT"),
    ({"endpoints": ["10.0.0.1:65536"]}, "is not HOST:PORT"),
    ({"endpoints": ["fd00::1:51820"]}, "is not HOST:PORT"),  # IPv6 without brackets
    ({"endpoints": ["300.1.1.1:5"]}, "is not HOST:PORT"),
    ({"endpoints": ["a" * 300 + ":1"]}, "endpoint should not be longer than 259 characters"),
    ({"endpoints": ["10.0.0.1:1\x00"]}, "endpoint must not contain control characters"),
    ({"hostname": "a\x00b"}, "hostname must not contain control characters"),
    ({"hostname": "line\nbreak"}, "hostname must not contain control characters"),
    ({"hostname": "h" * 256}, "hostname should not be longer than 255 characters"),
    ({"os": "linux\x00"}, "os must not contain control characters"),
    ({"kernel_version": "\x00"}, "kernel version must not contain control characters"),
    ({"agent_version": "v" * 65}, "agent version should not be longer than 64 characters"),
    ({"agent_version": "1.0\x7f"}, "agent version must not contain control characters"),
]


@pytest.mark.parametrize(("meta", "message"), BAD_META, ids=[m for _, m in BAD_META])
def test_bad_meta_at_registration_is_invalid_argument_and_stores_nothing(
    running: Running, meta: dict[str, Any], message: str
) -> None:
    key = running.setup_key()
    fields = {"hostname": "h", **meta}
    err = run(
        login_error(
            running, pb.LoginRequest(wg_public_key=new_key(), setup_key=key, meta=pb.PeerMeta(**fields))
        )
    )
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT, err.details()
    assert message in (err.details() or "")
    assert peers(running) == []
    assert running.api.get("/api/setup-keys").json()[0]["used_times"] == 0


def test_bad_meta_at_a_later_login_is_refused_and_the_stored_meta_kept(running: Running) -> None:
    async def scenario() -> None:
        async with open_channel(running.sync) as channel:
            client = PeerClient(channel, Identity(new_key()))
            await client.login(
                Meta(hostname="good", kernel_version="6.1", endpoints=GOOD_ENDPOINTS),
                setup_key=running.setup_key(),
            )
            for meta, message in BAD_META:
                with pytest.raises(grpc.aio.AioRpcError) as err:
                    await client.login(Meta(**{"hostname": "good", **meta}))
                assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
                assert message in (err.value.details() or "")

    run(scenario())
    (peer,) = peers(running)
    assert (peer["hostname"], peer["kernel_version"], peer["os"]) == ("good", "6.1", "linux")
    view = running.view(peer["id"])
    assert view["self"]["id"] == peer["id"]


def test_what_a_real_agent_reports_is_accepted_and_reaches_other_peers(running: Running) -> None:
    async def scenario() -> list[str]:
        async with open_channel(running.sync) as channel:
            key = running.setup_key()
            a, b = PeerClient(channel, Identity(new_key())), PeerClient(channel, Identity(new_key()))
            many = [f"10.0.{i}.1:51820" for i in range(MAX_ENDPOINTS - len(GOOD_ENDPOINTS))]
            await a.login(Meta(hostname="a", endpoints=[*GOOD_ENDPOINTS, *many]), setup_key=key)
            await b.login(
                Meta(hostname="b.example", kernel_version="6.1.0-18-amd64", agent_version="0.1.0"),
                setup_key=key,
            )
            return [a.identity.peer_id, b.identity.peer_id]

    a_id, b_id = run(scenario())
    seen = {p["id"]: p for p in running.view(b_id)["peers"]}
    assert seen[a_id]["endpoints"][: len(GOOD_ENDPOINTS)] == GOOD_ENDPOINTS
    assert len(seen[a_id]["endpoints"]) == MAX_ENDPOINTS


# -- undecodable payloads -----------------------------------------------------------------------
UNDECODABLE = [
    ("Login", "LoginRequest", b"\xff\xff\xff"),  # corrupt wire format
    ("Login", "LoginRequest", b"\x12\x02\xed\xa0"),  # a string field that is no UTF-8
    ("Login", "LoginRequest", b"\x0a\x80"),  # a truncated length
    ("Sync", "SyncRequest", b"\xff\xff\xff"),
    ("Sync", "SyncRequest", b"\x08\x80"),  # a truncated varint
]


@pytest.mark.parametrize(("method", "message_type", "payload"), UNDECODABLE)
def test_undecodable_payloads_are_invalid_argument_logged_once_without_traceback(
    running: Running, method: str, message_type: str, payload: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    async def scenario() -> grpc.aio.AioRpcError:
        async with open_channel(running.sync) as channel:
            with pytest.raises(grpc.aio.AioRpcError) as err:
                if method == "Login":
                    await channel.unary_unary(f"/meshroute.v1.Management/{method}")(payload)
                else:
                    await channel.unary_stream(f"/meshroute.v1.Management/{method}")(payload).read()
        return err.value

    with caplog.at_level(logging.DEBUG):
        err = run(scenario())
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT, err.details()
    assert (err.details() or "").startswith(f"malformed {message_type}: ")
    records = [
        r for r in caplog.records if r.name.startswith(("meshroute", "grpc")) and r.levelno >= logging.INFO
    ]
    assert [r.getMessage().split(" from ")[0] for r in records] == [f"undecodable {message_type}"]
    assert records[0].exc_info is None and records[0].levelno == logging.WARNING


# -- no internals in status details -------------------------------------------------------------
def refuse_writes(engine: Engine, table: str, when: str) -> str:
    """A trigger that makes the store itself fail a statement: a real database error, whose text
    (statement, parameters) is what must never reach a client."""
    name = f"refuse_{table}_{when.lower()}"
    with engine.begin() as conn:
        if engine.dialect.name == "sqlite":
            conn.execute(
                text(
                    f"CREATE TRIGGER {name} BEFORE {when} ON {table} "
                    "BEGIN SELECT RAISE(ABORT, 'trigger-says-no'); END"
                )
            )
        else:
            conn.execute(
                text(
                    f"CREATE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS "
                    "$$ BEGIN RAISE EXCEPTION 'trigger-says-no'; END $$"
                )
            )
            conn.execute(
                text(f"CREATE TRIGGER {name} BEFORE {when} ON {table} FOR EACH ROW EXECUTE FUNCTION {name}()")
            )
    return name


def drop_trigger(engine: Engine, table: str, name: str) -> None:
    with engine.begin() as conn:
        if engine.dialect.name == "sqlite":
            conn.execute(text(f"DROP TRIGGER {name}"))
        else:
            conn.execute(text(f"DROP TRIGGER {name} ON {table}"))
            conn.execute(text(f"DROP FUNCTION {name}()"))


LEAKS = (
    "INSERT",
    "UPDATE",
    "peers",
    "SQL",
    "Traceback",
    "psycopg",
    "sqlite",
    "trigger-says-no",
    "credential_hash",
)


def test_a_store_failure_during_login_or_sync_reaches_the_agent_as_a_bare_internal_error(
    running: Running, engine: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    key = running.setup_key()
    key_id = running.api.get("/api/setup-keys").json()[0]["id"]

    async def scenario() -> tuple[grpc.aio.AioRpcError, grpc.aio.AioRpcError]:
        async with open_channel(running.sync) as channel:
            joined = PeerClient(channel, Identity(new_key()))
            await joined.login(Meta(hostname="joined"), setup_key=key)
            insert = refuse_writes(engine, "peers", "INSERT")
            try:
                with pytest.raises(grpc.aio.AioRpcError) as login:
                    await PeerClient(channel, Identity(new_key())).login(Meta(hostname="x"), setup_key=key)
            finally:
                drop_trigger(engine, "peers", insert)
            update = refuse_writes(engine, "peers", "UPDATE")
            try:
                with pytest.raises(grpc.aio.AioRpcError) as sync:
                    async for _ in joined.maps():
                        pass
            finally:
                drop_trigger(engine, "peers", update)
            return login.value, sync.value

    with caplog.at_level(logging.ERROR):
        login_err, sync_err = run(scenario())
    for err in (login_err, sync_err):
        assert err.code() == grpc.StatusCode.INTERNAL, err.details()
        assert err.details() == "internal error"
        assert not any(leak in str(err.debug_error_string()) for leak in (key_id, "INSERT", "UPDATE peers"))
        assert not any(leak in (err.details() or "") for leak in (*LEAKS, key_id))
    # the log keeps the detail
    logged = "\n".join(r.getMessage() + str(r.exc_info) for r in caplog.records if r.levelno >= logging.ERROR)
    assert "Login from" in logged and "Sync stream of" in logged
    assert "trigger-says-no" in logged


# -- WireGuard keys across accounts -------------------------------------------------------------
def test_a_key_in_use_is_refused_alike_whichever_account_holds_it(running: Running) -> None:
    """Keys are unique in the whole store (NetBird's rule); a caller of another account learns
    nothing about where or whose: the same answer as in its own account, naming no one."""
    from tests.integration.conftest import World
    from tests.integration.test_api_permissions import second_account

    services = running.server.services
    with services.uow.read() as tx:
        first = tx.accounts.first()
    assert first is not None
    world = World(services, None, first.id, "", running.token, running.server.engine)  # type: ignore[arg-type]
    other = second_account(world)
    _, other_secret = services.setup_keys.create(
        other["account"],
        other["owner"],
        name="k",
        key_type="reusable",
        expires_in=0,
        auto_groups=[],
        usage_limit=0,
    )

    async def scenario() -> tuple[grpc.aio.AioRpcError, grpc.aio.AioRpcError]:
        async with open_channel(running.sync) as channel:
            wg = new_key()
            await PeerClient(channel, Identity(wg)).login(
                Meta(hostname="holder"), setup_key=running.setup_key()
            )
            errors = []
            for key in (running.setup_key(), other_secret):
                with pytest.raises(grpc.aio.AioRpcError) as err:
                    await PeerClient(channel, Identity(wg)).login(Meta(hostname="again"), setup_key=key)
                errors.append(err.value)
            return errors[0], errors[1]

    same, other_account = run(scenario())
    for err in (same, other_account):
        assert err.code() == grpc.StatusCode.ALREADY_EXISTS
        assert err.details() == "this WireGuard public key is already in use: generate a new key pair"
