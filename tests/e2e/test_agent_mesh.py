"""Real agents make a real mesh: three peers join with a setup key and reach each other over the
overlay, IPv4 and IPv6, through userspace WireGuard in their own network namespaces (all three
with the same interface name), and WireGuard's own packets carry the control-plane mark."""

from __future__ import annotations

import subprocess

from meshroute.agent.desired import CONTROL_PLANE_MARK
from meshroute.lab import World
from tests.e2e.conftest import MakeWorld
from tests.e2e.mesh import joined, mesh_pings, nft_counters, wg_device

NODES = ["a", "b", "c"]
MARK_TABLE = f"""
table inet mrtest {{
  chain out {{
    type filter hook output priority 0; policy accept;
    udp sport 51820 meta mark {CONTROL_PLANE_MARK:#x} counter comment "marked"
    udp sport 51820 meta mark != {CONTROL_PLANE_MARK:#x} counter comment "unmarked"
  }}
}}
"""


def test_three_agents_join_and_ping_each_other_over_ipv4_and_ipv6(make_world: MakeWorld) -> None:
    world: World = make_world(peers=NODES)
    world.exec("a", ["nft", "-f", "-"], input=MARK_TABLE)
    key = world.server.setup_key("mesh")
    for node in NODES:
        world.start_agent(node, setup_key=key)
    peers = joined(world, *NODES)

    mesh_pings(world, NODES, peers, family=4)
    mesh_pings(world, NODES, peers, family=6)

    # Every other peer is a WireGuard peer with exactly its overlay /32 and /128, at its underlay.
    device, wg_peers = wg_device(world, "a")
    assert device["listen_port"] == "51820" and int(device["fwmark"]) == CONTROL_PLANE_MARK
    by_key = {p.public_key: p for p in wg_peers}
    assert set(by_key) == {_key_of(world, "b"), _key_of(world, "c")}
    for node in ("b", "c"):
        peer = peers[node]
        stats = by_key[_key_of(world, node)]
        assert stats.allowed_ips == tuple(sorted((f"{peer['ip']}/32", f"{peer['ipv6']}/128")))
        assert stats.endpoint is not None and stats.endpoint.startswith(world.node(node).ipv4 + ":")
        assert stats.last_handshake is not None

    # WireGuard's own UDP leaves marked, so policy routing can keep it out of the tunnel.
    counters = nft_counters(world, "a", "mrtest")
    assert counters["marked"] > 0 and counters["unmarked"] == 0, counters

    status = world.agents["a"].status()
    assert status["management"]["state"] == "connected"
    assert status["interface"]["backend"] == "userspace" and status["interface"]["name"] == "mr0"
    assert sorted(a.split("/")[0] for a in status["interface"]["addresses"]) == sorted(
        [peers["a"]["ip"], peers["a"]["ipv6"]]
    )
    assert f"{world.node('a').ipv4}:51820" in status["endpoints"]
    states = {p["name"]: p["state"] for p in status["peers"]}
    assert states == {"b": "connected", "c": "connected"}

    # The human form names every peer and its state on one line each.
    text = world.exec(
        "a", [_meshroute(), "agent", "status", "--state-dir", str(world.agents["a"].state_dir)]
    ).stdout
    assert "management" in text and "connected" in text
    lines = [line for line in text.splitlines() if line.startswith(("b ", "c "))]
    assert len(lines) == 2 and all("connected" in line for line in lines), text


def _key_of(world: World, node: str) -> str:
    return str(world.agents[node].status()["interface"]["public_key"])


def _meshroute() -> str:
    import sys
    from pathlib import Path

    return str(Path(sys.executable).with_name("meshroute"))


def test_agent_status_without_an_agent_says_so(make_world: MakeWorld) -> None:
    world: World = make_world(peers=["a"], server=False)
    done = world.exec(
        "a",
        [_meshroute(), "agent", "status", "--state-dir", str(world.workdir / "nothing")],
        check=False,
    )
    assert isinstance(done, subprocess.CompletedProcess)
    assert done.returncode == 1 and "no agent is running" in done.stderr
