"""Failed authentications are throttled per source address (issue 9, item 6): bad tokens on the
REST API (429 + Retry-After), bad setup keys and credentials on agent sync (RESOURCE_EXHAUSTED +
retry-after), while valid callers, however many and however fast, are never refused."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from meshroute.protocol.client import Identity, Meta, PeerClient, open_channel
from meshroute.server.throttle import ThrottleSettings
from tests.integration.conftest import assembled
from tests.integration.test_sync import Running, new_key, start_server

BAD_TOKEN = "nbp_" + "A" * 36  # well-formed, unknown


def run(coro: Any) -> Any:
    loop = asyncio.new_event_loop()
    try:
        return loop.run_until_complete(coro)
    finally:
        loop.close()


def client(app: Any, address: str) -> TestClient:
    return TestClient(app, raise_server_exceptions=False, client=(address, 40000))


def test_bad_tokens_from_one_address_get_429_with_retry_after(engine: Engine, tmp_path: Path) -> None:
    server = assembled(engine, tmp_path, throttle=ThrottleSettings(max_failures=5, window=60))
    boot = server.services.accounts.bootstrap()
    assert boot is not None
    app = server.app
    good = {"Authorization": f"Token {boot.token}"}
    with client(app, "203.0.113.7") as attacker:  # starts the app; the second client shares it
        other = client(app, "198.51.100.1")
        for token in (BAD_TOKEN, "nbp_short", "garbage", BAD_TOKEN, BAD_TOKEN):
            response = attacker.get("/api/routes", headers={"Authorization": f"Token {token}"})
            assert response.status_code == 401, response.text
        response = attacker.get("/api/routes", headers={"Authorization": f"Token {BAD_TOKEN}"})
        assert response.status_code == 429
        assert response.json() == {
            "message": "too many failed authentication attempts from this address: retry in 12 s",
            "code": 429,
        }
        assert response.headers["Retry-After"] == "12"
        # The address is refused whatever it sends, so guessing stops...
        assert attacker.get("/api/routes", headers=good).status_code == 429
        # ...while everyone else goes on as before.
        assert other.get("/api/routes", headers=good).status_code == 200
        # A missing or malformed header guesses nothing and is not counted.
        for _ in range(20):
            assert other.get("/api/routes").status_code == 401
        assert other.get("/api/routes", headers=good).status_code == 200


def test_valid_callers_are_never_throttled(engine: Engine, tmp_path: Path) -> None:
    server = assembled(engine, tmp_path, throttle=ThrottleSettings(max_failures=1, window=3600))
    boot = server.services.accounts.bootstrap()
    assert boot is not None
    with client(server.app, "203.0.113.8") as c:
        for _ in range(300):
            assert (
                c.get("/api/users/current", headers={"Authorization": f"Token {boot.token}"}).status_code
                == 200
            )


@pytest.fixture
def strict(engine: Engine, tmp_path: Path) -> Iterator[Running]:
    url = engine.url.render_as_string(hide_password=False)
    yield from start_server(tmp_path, url, throttle=ThrottleSettings(max_failures=3, window=60))


def test_bad_setup_keys_and_credentials_over_grpc_get_resource_exhausted(strict: Running) -> None:
    async def scenario() -> None:
        async with open_channel(strict.sync) as channel:
            key = strict.setup_key()
            # Valid callers first: many logins and re-logins in quick succession, none refused.
            clients = [PeerClient(channel, Identity(new_key())) for _ in range(30)]
            for i, c in enumerate(clients):
                await c.login(Meta(hostname=f"p{i}"), setup_key=key)
                await c.login(Meta(hostname=f"p{i}"))
            # Three failures of any kind...
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await PeerClient(channel, Identity(new_key())).login(Meta(hostname="x"), setup_key="nope")
            assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
            impostor = PeerClient(channel, Identity(clients[0].identity.wg_public_key, credential="wrong"))
            for _ in range(2):
                with pytest.raises(grpc.aio.AioRpcError) as err:
                    await impostor.login(Meta(hostname="x"))
                assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
            # ...and the address is refused, on every method, valid or not.
            for attempt in (
                PeerClient(channel, Identity(new_key())).login(Meta(hostname="x"), setup_key="nope"),
                PeerClient(channel, Identity(new_key())).login(Meta(hostname="x"), setup_key=key),
                clients[1].login(Meta(hostname="p1")),
                anext(clients[1].maps()),
            ):
                with pytest.raises(grpc.aio.AioRpcError) as err:
                    await attempt
                assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, err.value.details()
                assert "too many failed authentication attempts" in (err.value.details() or "")
                trailing = dict(err.value.trailing_metadata() or ())
                assert trailing["retry-after"] == "20"  # 60 s / 3 failures

    account = strict.server.services.accounts.bootstrap()
    run(scenario())
    # The count is per address across both transports: the REST API refuses it too.
    assert strict.api.get("/api/peers").status_code == 429
    # Nothing was registered while refused.
    with strict.server.services.uow.read() as tx:
        first = tx.accounts.first()
        assert account is None and first is not None
        assert len(tx.peers.all(first.id)) == 30


def test_invalid_input_is_no_authentication_failure(strict: Running) -> None:
    """Only guesses count: ten logins refused for their input leave the address free."""

    async def scenario() -> None:
        async with open_channel(strict.sync) as channel:
            key = strict.setup_key()
            for _ in range(10):
                with pytest.raises(grpc.aio.AioRpcError) as err:
                    await PeerClient(channel, Identity(new_key())).login(Meta(hostname="\x00"), setup_key=key)
                assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            await PeerClient(channel, Identity(new_key())).login(Meta(hostname="ok"), setup_key=key)

    run(scenario())
    assert strict.api.get("/api/peers").status_code == 200
