"""The duplicate rule (no peer serves one destination through two routes) holds through every
door that changes who is in a group, not only when a route is saved (issue 9, item 1)."""

from __future__ import annotations

from typing import Any

import pytest

from meshroute.core.errors import AlreadyExists
from meshroute.server.services.peers import PeerRegistration
from tests.integration.conftest import World, wg_key


def route(
    world: World, net_id: str, *, peer: str = "", peer_groups: list[str] | None = None, **kw: Any
) -> Any:
    dist = world.group(f"dist-{net_id}")
    body: dict[str, Any] = {"network_id": net_id, "groups": [dist], "metric": 10, "enabled": True, **kw}
    if "domains" not in kw:
        body.setdefault("network", "10.55.0.0/24")
    body.update({"peer": peer} if peer else {"peer_groups": peer_groups})
    return world.ok(world.post("/api/routes", body))


def all_group(world: World) -> str:
    return str(world.ok(world.get("/api/groups", params={"name": "All"}))[0]["id"])


def test_a_group_update_may_not_make_a_peer_serve_a_prefix_twice(world: World) -> None:
    p = world.peer("p")
    h = world.group("h")
    a = route(world, "a", peer=p)
    b = route(world, "b", peer_groups=[h])  # accepted: h is empty
    serial = world.serial()
    response = world.put(f"/api/groups/{h}", {"name": "h", "peers": [p]})
    assert response.status_code == 409, response.text
    assert response.json()["message"] == (
        f"failed to update group h - peer p would serve prefix 10.55.0.0/24 twice: "
        f"through route a ({a['id']}) and route b ({b['id']})"
    )
    assert world.ok(world.get(f"/api/groups/{h}"))["peers"] == []
    assert world.serial() == serial
    # the routing peer's map serves the prefix once
    served = world.ok(world.get(f"/api/peers/{p}/network-map"))["routes_served"]
    assert len(served) == 1


def test_same_through_two_peer_groups_and_for_domain_routes(world: World) -> None:
    p, q = world.peer("p"), world.peer("q")
    g1 = world.group("g1", [p])
    g2 = world.group("g2", [q])
    a = route(world, "a", peer_groups=[g1], domains=["Example.com"])
    b = route(world, "b", peer_groups=[g2], domains=["example.com"])
    response = world.put(f"/api/groups/{g2}", {"name": "g2", "peers": [q, p]})
    assert response.status_code == 409, response.text
    assert response.json()["message"] == (
        f"failed to update group g2 - peer p would serve domains [example.com] twice: "
        f"through route a ({a['id']}) and route b ({b['id']})"
    )
    assert [x["id"] for x in world.ok(world.get(f"/api/groups/{g2}"))["peers"]] == [q]


def test_updates_that_keep_one_route_per_destination_pass(world: World) -> None:
    p, q = world.peer("p"), world.peer("q")
    g1, h = world.group("g1", [p]), world.group("h")
    route(world, "a", peer_groups=[g1, h])  # one route through two of p's groups: served once
    route(world, "b", peer_groups=[h], network="10.56.0.0/24")  # another prefix
    route(world, "c", peer=q, network="10.57.0.0/24")
    world.ok(world.put(f"/api/groups/{h}", {"name": "h", "peers": [p, q]}))
    # renaming or dropping members of a group never adds a duplicate
    world.ok(world.put(f"/api/groups/{h}", {"name": "h2", "peers": [q]}))
    world.ok(world.put(f"/api/groups/{g1}", {"name": "g1", "peers": [p, q]}))


def register(world: World, key: str, hostname: str) -> str:
    peer, _ = world.services.peers.register(
        PeerRegistration(setup_key=key, wg_public_key=wg_key(), hostname=hostname)
    )
    return peer.id


def test_a_peer_may_not_join_the_peer_groups_of_two_routes_for_one_prefix(world: World) -> None:
    g1, g2 = world.group("g1"), world.group("g2")
    a = route(world, "a", peer_groups=[g1])
    b = route(world, "b", peer_groups=[g2])
    key = world.setup_key([g1, g2])
    peers_before = len(world.ok(world.get("/api/peers")))
    serial = world.serial()
    with pytest.raises(AlreadyExists) as exc:
        register(world, key, "joiner")
    assert exc.value.message == (
        f"failed to add peer joiner - peer joiner would serve prefix 10.55.0.0/24 twice: "
        f"through route a ({a['id']}) and route b ({b['id']})"
    )
    assert len(world.ok(world.get("/api/peers"))) == peers_before
    assert world.serial() == serial
    assert world.ok(world.get("/api/setup-keys"))[-1]["used_times"] == 0
    # a key naming only one of the groups works
    register(world, world.setup_key([g1]), "fine")


def test_the_all_group_counts_too(world: World) -> None:
    """Every peer joins All: a route served by All and one served by a key's auto-group collide."""
    p = world.peer("p")
    g = world.group("g")
    route(world, "everyone", peer_groups=[all_group(world)])
    route(world, "some", peer_groups=[g])  # accepted: g is empty
    with pytest.raises(AlreadyExists):
        register(world, world.setup_key([g]), "joiner")
    response = world.put(f"/api/groups/{g}", {"name": "g", "peers": [p]})
    assert response.status_code == 409, response.text
    register(world, world.setup_key(), "plain")  # All alone is fine
