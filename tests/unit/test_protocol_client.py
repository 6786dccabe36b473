"""The agent side of the protocol: full maps, deltas, and gap detection via prev_serial."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from meshroute.core.networkmap.types import MapDelta, MapPeer, MapRoute, NetworkMap
from meshroute.protocol import convert
from meshroute.protocol import meshroute_pb2 as pb
from meshroute.protocol.client import Identity, PeerClient, SerialGap

ME = MapPeer("me", "a2V5", "100.64.0.1", None, "me", "me")
OTHER = MapPeer("p2", "a2V6", "100.64.0.2", "fd00::2", "p2", "p2", ("192.0.2.10:51820",))
ROUTE = MapRoute("r1", "office", "10.0.0.0/24", (), 1, "a2V6", "p2", 100, True, False, False)


class _Call:
    def __init__(self, messages: list[Any]) -> None:
        self.messages = messages
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True

    def __aiter__(self) -> AsyncIterator[Any]:
        async def gen() -> AsyncIterator[Any]:
            for m in self.messages:
                yield m

        return gen()


class _Stub:
    """Stands in for the generated stub: replays server messages (these are the client's own
    decoding and gap rules under test; the server side is exercised in tests/integration)."""

    def __init__(self, messages: list[Any]) -> None:
        self.call = _Call(messages)

    def Sync(self, request: Any, metadata: Any) -> _Call:
        return self.call


def _client(messages: list[Any]) -> PeerClient:
    client = PeerClient.__new__(PeerClient)
    client.stub = _Stub(messages)
    client.identity = Identity("a2V5", "me", "secret")
    client.map = None
    return client


def _full(serial: int) -> Any:
    m = NetworkMap(serial, ME, (OTHER,), (), ())
    return pb.SyncResponse.FromString(convert.full_response_bytes(m))


def _delta(serial: int, prev: int, **kw: Any) -> Any:
    return pb.SyncResponse(delta=convert.delta_to_pb(MapDelta(serial=serial, **kw), prev))


async def _collect(client: PeerClient) -> list[NetworkMap]:
    return [u.map async for u in client.maps()]


def test_full_map_then_deltas_build_the_map() -> None:
    client = _client([_full(5), _delta(6, 5, routes_upserted=(ROUTE,)), _delta(7, 6, peers_removed=("p2",))])
    maps = asyncio.run(_collect(client))
    assert [m.serial for m in maps] == [5, 6, 7]
    assert maps[0].peers == (OTHER,)
    assert maps[1].routes == (ROUTE,)
    assert maps[2].peers == () and maps[2].routes == (ROUTE,)


def test_a_delta_that_does_not_follow_the_held_map_is_a_gap() -> None:
    client = _client([_full(5), _delta(8, 7, routes_upserted=(ROUTE,))])
    with pytest.raises(SerialGap):
        asyncio.run(_collect(client))
    assert client.stub.call.cancelled  # type: ignore[attr-defined]
    assert client.map is not None and client.map.serial == 5 and client.map.routes == ()


def test_a_delta_before_any_full_map_is_a_gap() -> None:
    with pytest.raises(SerialGap):
        asyncio.run(_collect(_client([_delta(2, 1)])))


def test_encoded_full_map_equals_the_message_built_field_by_field() -> None:
    m = NetworkMap(9, ME, (OTHER,), (ROUTE,), ())
    assert pb.SyncResponse.FromString(convert.full_response_bytes(m, "100.64.0.0/16", "fd00::/64")) == (
        pb.SyncResponse(full=convert.map_to_pb(m, "100.64.0.0/16", "fd00::/64"))
    )
    assert convert.map_from_pb(pb.SyncResponse.FromString(convert.full_response_bytes(m)).full) == m
