"""Conflicting writes are serialized: concurrent creates can never both pass the duplicate check."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx

from tests.integration.conftest import World

WRITERS = 12


def _race(url: str, token: str, bodies: list[dict[str, Any]]) -> list[httpx.Response]:
    barrier = threading.Barrier(len(bodies))

    def send(body: dict[str, Any]) -> httpx.Response:
        with httpx.Client(base_url=url, headers={"Authorization": f"Token {token}"}, timeout=60) as c:
            barrier.wait()
            return c.post("/api/routes", json=body)

    with ThreadPoolExecutor(len(bodies)) as pool:
        return list(pool.map(send, bodies))


def test_concurrent_creates_for_one_peer_admit_exactly_one(world: World, live_url: str) -> None:
    peer = world.peer("gw")
    dist = world.group("clients")
    bodies = [
        {"network": "10.9.0.0/16", "network_id": f"net{i}", "peer": peer, "groups": [dist], "metric": 10}
        for i in range(WRITERS)
    ]
    serial = world.serial()
    responses = _race(live_url, world.token, bodies)
    codes = sorted(r.status_code for r in responses)
    assert codes == [200] + [409] * (WRITERS - 1), [r.text for r in responses]
    assert len(world.ok(world.get("/api/routes"))) == 1
    assert world.serial() == serial + 1


def test_concurrent_creates_through_overlapping_peer_groups_admit_exactly_one(
    world: World, live_url: str
) -> None:
    peers = [world.peer(f"gw{i}") for i in range(3)]
    dist = world.group("clients")
    groups = [world.group(f"ha{i}", [peers[i], peers[(i + 1) % 3]]) for i in range(3)]
    bodies = [
        {
            "domains": ["Example.COM"],
            "network_id": f"d{i}",
            "peer_groups": [groups[i % 3]],
            "groups": [dist],
            "metric": 10,
        }
        for i in range(WRITERS)
    ]
    responses = _race(live_url, world.token, bodies)
    assert sorted(r.status_code for r in responses) == [200] + [409] * (WRITERS - 1)
    routes = world.ok(world.get("/api/routes"))
    assert len(routes) == 1 and routes[0]["domains"] == ["example.com"]
    assert sum(e["activity_code"] == "route.add" for e in world.events()) == 1


def test_concurrent_creates_on_distinct_peers_all_succeed(world: World, live_url: str) -> None:
    dist = world.group("clients")
    peers = [world.peer(f"gw{i}") for i in range(6)]
    bodies = [
        {"network": "10.9.0.0/16", "network_id": "ha", "peer": p, "groups": [dist], "metric": 10}
        for p in peers
    ]
    serial = world.serial()
    responses = _race(live_url, world.token, bodies)
    assert [r.status_code for r in responses] == [200] * len(peers)
    assert world.serial() == serial + len(peers)
