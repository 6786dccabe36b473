"""The mesh follows the server: a deleted peer leaves everyone's WireGuard (and stops), a new one
appears, a rename changes nothing on the data plane, and a management outage changes nothing
either: the agents come back to the latest serial, including one that was away."""

from __future__ import annotations

import time

from meshroute.lab import World
from tests.e2e.conftest import MakeWorld
from tests.e2e.mesh import joined, mesh_pings, overlay, wait_gone, wg_device, wg_keys


def _key(world: World, node: str) -> str:
    return str(world.agents[node].status()["interface"]["public_key"])


def test_deleted_peer_leaves_new_peer_joins_renamed_peer_changes_nothing(make_world: MakeWorld) -> None:
    world: World = make_world(peers=["a", "b", "c", "d"])
    before_c = world.snapshot("c")
    key = world.server.setup_key("mesh")
    for node in ("a", "b", "c"):
        world.start_agent(node, setup_key=key)
    peers = joined(world, "a", "b", "c")
    mesh_pings(world, ["a", "b", "c"], peers)
    c_key = _key(world, "c")

    # Deleted through the API: gone from the others' WireGuard.
    reply = world.api.delete(f"/api/peers/{peers['c']['id']}")
    assert reply.status_code == 200, reply.text
    took = [wait_gone(world, node, c_key, deadline_s=20.0) for node in ("a", "b")]
    print(f"deleted peer left the others' WireGuard after {max(took) * 1000:.0f} ms")
    # ... and the deleted peer's agent stops with a clear error and removes what it installed.
    code = world.agents["c"].proc.wait(10)
    log = world.agents["c"].log.read_text()
    assert code == 2, log
    assert "this peer was deleted on the management server" in log
    assert "Traceback" not in log
    assert not before_c.diff(world.snapshot("c")), before_c.diff(world.snapshot("c"))

    # A new peer appears in everyone's WireGuard and is reachable.
    world.start_agent("d", setup_key=key)
    peers.update(joined(world, "d"))
    d_key = _key(world, "d")
    world.wait_for(lambda: all(d_key in wg_keys(world, n) for n in ("a", "b")), timeout=20, logs=["a", "b"])
    mesh_pings(world, ["a", "b", "d"], peers)

    # A rename moves the serial but changes nothing in WireGuard: same peers, same AllowedIPs,
    # same endpoints, and the live sessions are kept (no peer was recreated).
    device_before = {p.public_key: p for p in wg_device(world, "a")[1]}
    serial_before = world.agents["a"].status()["management"]["serial"]
    reply = world.api.put(f"/api/peers/{peers['b']['id']}", json={"name": "b-renamed"})
    assert reply.status_code == 200, reply.text
    world.wait_for(
        lambda: world.agents["a"].status()["management"]["serial"] > serial_before, timeout=20, logs=["a"]
    )
    assert {p["name"] for p in world.agents["a"].status()["peers"]} == {"b-renamed", "d"}
    device_after = {p.public_key: p for p in wg_device(world, "a")[1]}
    assert device_after.keys() == device_before.keys()
    for k, before in device_before.items():
        after = device_after[k]
        assert (after.allowed_ips, after.endpoint) == (before.allowed_ips, before.endpoint)
        assert after.last_handshake == before.last_handshake  # not recreated
    assert world.ping("a", overlay(peers["b"]), timeout=10)


def test_management_outage_keeps_the_mesh_and_agents_converge_after_it(make_world: MakeWorld) -> None:
    world: World = make_world(peers=["a", "b", "c", "d"])
    key = world.server.setup_key("mesh")
    for node in ("a", "b", "c"):
        world.start_agent(node, setup_key=key)
    peers = joined(world, "a", "b", "c")

    world.server.stop()
    world.wait_for(
        lambda: world.agents["a"].status()["management"]["state"] == "reconnecting", timeout=10, logs=["a"]
    )
    # The data plane does not depend on management.
    mesh_pings(world, ["a", "b", "c"], peers)
    time.sleep(2)  # a few reconnect attempts
    mesh_pings(world, ["a", "b", "c"], peers)
    lost = world.agents["a"].log.read_text().count("lost the management connection")
    assert lost == 1, world.agents["a"].tail()

    # c goes away; management comes back; a peer joins while c is away.
    assert world.agents["c"].stop() == 0
    world.server.start()
    world.start_agent("d", setup_key=key)
    peers.update(joined(world, "d"))
    d_key = _key(world, "d")
    world.wait_for(lambda: all(d_key in wg_keys(world, n) for n in ("a", "b")), timeout=20, logs=["a", "b"])

    # c comes back and catches up: it knows d and holds the serial the server has for it.
    world.agents["c"].start()
    peers.update(joined(world, "c"))
    world.wait_for(lambda: d_key in wg_keys(world, "c"), timeout=10, logs=["c"])
    mesh_pings(world, ["a", "b", "c", "d"], peers)
    for node in ("a", "b", "c", "d"):
        view = world.api.get(f"/api/peers/{peers[node]['id']}/network-map").json()
        world.wait_for(
            lambda node=node, view=view: (
                world.agents[node].status()["management"]["serial"] == view["serial"]
            ),
            timeout=10,
            message=f"{node} did not reach serial {view['serial']}",
            logs=[node],
        )
    log = world.agents["a"].log.read_text()
    assert log.count("connected to management") == 2, world.agents["a"].tail()  # once, and once back
