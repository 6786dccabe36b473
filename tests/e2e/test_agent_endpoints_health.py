"""Endpoints and health with real packets: a peer whose first candidate is unreachable is found at
the next one; the routing peers a client depends on are probed over the overlay and seen down
after the missed probes, and up again after one answer."""

from __future__ import annotations

import os
import signal
import time

from meshroute.lab import World
from tests.e2e.conftest import MakeWorld
from tests.e2e.mesh import joined, mesh_pings, nft_counters, wg_device

# b may answer handshakes but never start one (WireGuard message type 1 = handshake initiation):
# only a's own search for b's endpoint can connect them.
NO_INITIATIONS = """
table inet mrtest {
  chain out {
    type filter hook output priority 0; policy accept;
    udp sport 51820 @th,64,8 1 counter drop comment "initiations"
  }
}
"""


def test_unreachable_candidates_are_skipped_until_one_handshakes(make_world: MakeWorld) -> None:
    world: World = make_world(peers=["a", "b"])
    world.exec("b", ["nft", "-f", "-"], input=NO_INITIATIONS)
    dead = "172.31.0.250:51820"  # on a's subnet, so a tries it first; nobody is there
    key = world.server.setup_key("mesh")
    world.start_agent("b", setup_key=key, endpoints=[dead])
    joined(world, "b")
    world.start_agent("a", setup_key=key)
    peers = joined(world, "a", "b")

    b_key = world.agents["b"].status()["interface"]["public_key"]
    status = world.agents["a"].status()
    b = next(p for p in status["peers"] if p["public_key"] == b_key)
    assert b["candidates"][0] == dead and f"{world.node('b').ipv4}:51820" in b["candidates"]

    real = f"{world.node('b').ipv4}:51820"

    def found() -> bool:
        stats = {p.public_key: p for p in wg_device(world, "a")[1]}[b_key]
        return stats.endpoint == real and stats.last_handshake is not None

    t0 = time.monotonic()
    world.wait_for(found, timeout=15, logs=["a", "b"])
    print(f"b found at its second candidate after {(time.monotonic() - t0) * 1000:.0f} ms")
    mesh_pings(world, ["a", "b"], peers)
    states = {p["name"]: p["state"] for p in world.agents["a"].status()["peers"]}
    assert states["b"] == "connected"
    assert f"peer b ({peers['b']['ip']}) reachable at {real}" in world.agents["a"].log.read_text()
    assert nft_counters(world, "b", "mrtest")["initiations"] > 0  # b did try, and could not


def test_routing_peers_are_probed_and_a_silent_one_is_down_after_three_misses(make_world: MakeWorld) -> None:
    world: World = make_world(peers=["a", "b", "c"])
    key = world.server.setup_key("mesh")
    for node in ("a", "b", "c"):
        world.start_agent(node, setup_key=key)
    peers = joined(world, "a", "b", "c")
    everyone = world.api.get("/api/groups", params={"name": "All"}).json()[0]["id"]
    reply = world.api.post(
        "/api/routes",
        json={
            "network": "10.99.0.0/24",
            "network_id": "office",
            "peer": peers["b"]["id"],
            "groups": [everyone],
            "metric": 100,
            "enabled": True,
        },
    )
    assert reply.status_code == 200, reply.text

    def peer_view(name: str) -> dict[str, object]:
        return next(p for p in world.agents["a"].status()["peers"] if p["name"] == name)

    world.wait_for(
        lambda: peer_view("b")["probed"] and peer_view("b")["latency_ms"] is not None, timeout=20, logs=["a"]
    )
    assert peer_view("b")["state"] == "connected"
    assert not peer_view("c")["probed"] and peer_view("c")["latency_ms"] is None

    # b's agent freezes: WireGuard (its own process) still carries packets, but nothing answers
    # the probes. Down after 3 misses at 200 ms (how fast is measured by bench/agent_mesh.py).
    b_pid = world.agents["b"].pid
    assert b_pid is not None
    os.kill(b_pid, signal.SIGSTOP)
    try:
        t0 = time.monotonic()
        world.wait_for(lambda: peer_view("b")["state"] == "connecting", timeout=20, interval=0.02, logs=["a"])
        down_after = time.monotonic() - t0
        assert world.ping("a", peers["b"]["ip"], timeout=10)  # the tunnel itself is fine
    finally:
        os.kill(b_pid, signal.SIGCONT)
    print(f"b seen down {down_after * 1000:.0f} ms after it stopped answering")
    log = world.agents["a"].log.read_text()
    assert "stopped answering probes (3 missed)" in log, log
    world.wait_for(lambda: peer_view("b")["state"] == "connected", timeout=20, logs=["a"])
    assert "answers probes" in world.agents["a"].log.read_text()
