"""Long ID lists (issue 9, item 2): every ID-list field has a documented maximum (422 beyond it,
nothing changed), and the store looks IDs up with one bound parameter, never one per ID
(PostgreSQL refuses more than 65,535 parameters and drops the connection)."""

from __future__ import annotations

from typing import Any

import pytest

from meshroute.core.limits import MAX_GROUP_IDS, MAX_PEER_IDS
from tests.integration.conftest import World

OVER_POSTGRES_LIMIT = 70_000  # more than the 65,535 parameters PostgreSQL takes


def fake_ids(n: int) -> list[str]:
    # Short IDs: how an attacker fits the most of them into a 1 MiB body.
    return [f"{i:x}" for i in range(n)]


def expect_422(response: Any, message: str) -> None:
    assert response.status_code == 422, response.text[:300]
    assert response.json() == {"message": message, "code": 422}


def route_body(group: str, **over: Any) -> dict[str, Any]:
    return {
        "network": "10.40.0.0/24",
        "network_id": "long",
        "peer_groups": [group],
        "groups": [group],
        "metric": 10,
        **over,
    }


def test_every_id_list_over_its_maximum_is_422_and_changes_nothing(world: World) -> None:
    g = world.group("g")
    route = world.ok(world.post("/api/routes", route_body(g)))["id"]
    key = world.ok(world.post("/api/setup-keys", {"name": "k", "type": "reusable", "expires_in": 86400}))[
        "id"
    ]
    user = world.ok(world.post("/api/users", {"name": "s", "role": "user", "is_service_user": True}))["id"]
    serial = world.serial()
    new_key = {"name": "k2", "type": "reusable", "expires_in": 86400}
    new_user = {"name": "u", "role": "user", "is_service_user": True}
    cases: list[tuple[str, str, dict[str, Any], str]] = [
        ("POST", "/api/groups", {"name": "big"}, "peers"),
        ("PUT", f"/api/groups/{g}", {"name": "g"}, "peers"),
        ("POST", "/api/routes", route_body(g), "groups"),
        ("POST", "/api/routes", route_body(g), "peer_groups"),
        ("POST", "/api/routes", route_body(g), "access_control_groups"),
        ("PUT", f"/api/routes/{route}", route_body(g), "groups"),
        ("POST", "/api/setup-keys", new_key, "auto_groups"),
        ("PUT", f"/api/setup-keys/{key}", {"revoked": False}, "auto_groups"),
        ("POST", "/api/users", new_user, "auto_groups"),
        ("PUT", f"/api/users/{user}", {"role": "user"}, "auto_groups"),
    ]
    for method, path, body, field in cases:
        limit = MAX_PEER_IDS if field == "peers" else MAX_GROUP_IDS
        for count in (limit + 1, OVER_POSTGRES_LIMIT):
            sent = {**body, field: fake_ids(count)}
            response = world.client.request(method, path, json=sent, headers=world.headers())
            expect_422(response, f"{field} should not have more than {limit} entries")
    assert world.serial() == serial
    assert [x["name"] for x in world.ok(world.get("/api/groups"))] == ["All", "g"]
    assert world.ok(world.get(f"/api/routes/{route}"))["groups"] == [g]


def test_lists_at_the_maximum_are_judged_on_their_content_not_refused_for_size(world: World) -> None:
    g = world.group("g")
    at_max = fake_ids(MAX_GROUP_IDS)
    expect_422(world.post("/api/routes", route_body(g, groups=at_max)), f"group id {at_max[0]} not found")
    peers = fake_ids(MAX_PEER_IDS)
    expect_422(
        world.post("/api/groups", {"name": "big", "peers": peers}), f"peer with id {peers[0]} not found"
    )


def test_the_store_looks_up_more_ids_than_postgresql_takes_parameters(world: World) -> None:
    """Reads of a big account (the All group of 70,000 peers being rendered, say) use one
    parameter: the lookups answer instead of failing on PostgreSQL."""
    g = world.group("g")
    peer = world.peer("p")
    wanted = [*fake_ids(OVER_POSTGRES_LIMIT), g]
    with world.services.uow.read(world.account_id) as tx:
        assert list(tx.groups.by_ids(wanted)) == [g]
        assert list(tx.peers.by_ids([*fake_ids(OVER_POSTGRES_LIMIT), peer])) == [peer]
        assert tx.accounts.serials([world.account_id, *fake_ids(OVER_POSTGRES_LIMIT)]) == {
            world.account_id: world.serial()
        }


@pytest.mark.parametrize("n", [0, 1, 3])
def test_small_lookups_still_find_exactly_what_exists(world: World, n: int) -> None:
    groups = [world.group(f"g{i}") for i in range(n)]
    with world.services.uow.read(world.account_id) as tx:
        assert sorted(tx.groups.by_ids([*groups, "missing"])) == sorted(groups)
        found = tx.groups.by_ids(groups)
        assert all(found[gid].id == gid for gid in groups)
