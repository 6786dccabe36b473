"""A first end-to-end pass over the API on both stores."""

from __future__ import annotations

from tests.integration.conftest import World


def test_create_route_and_read_it_back(world: World) -> None:
    g = world.group("routers")
    created = world.ok(
        world.post(
            "/api/routes",
            {
                "network": "10.1.0.0/16",
                "network_id": "office",
                "peer_groups": [g],
                "groups": [g],
                "metric": 10,
            },
        )
    )
    assert world.ok(world.get(f"/api/routes/{created['id']}")) == created
    assert [r["id"] for r in world.ok(world.get("/api/routes"))] == [created["id"]]
    assert world.serial() == 2
