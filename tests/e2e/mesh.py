"""What the mesh tests look at: a node's real WireGuard device, overlay addresses, nft counters."""

from __future__ import annotations

import json
import time
from typing import Any

from meshroute.agent.ledger import LEDGER_FILE
from meshroute.agent.wireguard import uapi
from meshroute.agent.wireguard.model import PeerStats
from meshroute.lab import World


def wg_pid(world: World, node: str) -> int:
    """The wireguard-go the node's agent recorded (the device is the agent's, not the test's)."""
    record = json.loads((world.agents[node].state_dir / LEDGER_FILE).read_text())
    return int(record["wireguard"]["pid"])


def wg_device(world: World, node: str, interface: str = "mr0") -> tuple[dict[str, str], list[PeerStats]]:
    """The device as WireGuard itself reports it (UAPI `get`), not as the agent believes it is."""
    return uapi.get(f"/proc/{wg_pid(world, node)}/root/run/wireguard/{interface}.sock")


def wg_keys(world: World, node: str) -> set[str]:
    return {p.public_key for p in wg_device(world, node)[1]}


def joined(world: World, *nodes: str, timeout: float = 20.0) -> dict[str, dict[str, Any]]:
    """Wait until every node's peer is connected to management and has its interface up."""

    def ready() -> dict[str, dict[str, Any]] | None:
        peers = {n: world.server.peer(n) for n in nodes}
        if not all(p and p.get("connected") for p in peers.values()):
            return None
        for n in nodes:
            try:
                status = world.agents[n].status()
            except Exception:
                return None
            if not status["interface"]["up"]:
                return None
        return {n: p for n, p in peers.items() if p is not None}

    return world.wait_for(ready, timeout=timeout, message=f"{nodes} did not join", logs=list(nodes))


def overlay(peer: dict[str, Any], family: int = 4) -> str:
    address = peer["ip"] if family == 4 else peer.get("ipv6")
    assert address, f"peer {peer['name']} has no IPv{family} overlay address: {peer}"
    return str(address)


def mesh_pings(world: World, nodes: list[str], peers: dict[str, dict[str, Any]], family: int = 4) -> None:
    for src in nodes:
        for dst in nodes:
            if src != dst:
                target = overlay(peers[dst], family)
                assert world.ping(src, target, count=1, timeout=10), (
                    f"{src} cannot ping {dst} at {target}\n"
                    f"{devices(world, [src, dst])}\n{world.logs([src, dst])}"
                )


def devices(world: World, nodes: list[str]) -> str:
    """Each node's WireGuard peers as the device sees them (for a failure message)."""
    now, lines = time.time(), []
    for node in nodes:
        try:
            peers = wg_device(world, node)[1]
        except (OSError, ValueError, KeyError) as exc:
            lines.append(f"--- device of {node}: unreadable ({exc})")
            continue
        lines.append(f"--- device of {node}:")
        for p in peers:
            age = f"{now - p.last_handshake:.2f} s ago" if p.last_handshake else "never"
            lines.append(
                f"  {p.public_key[:8]} endpoint {p.endpoint} handshake {age} rx {p.rx_bytes} tx {p.tx_bytes}"
            )
    return "\n".join(lines)


def peer_views(world: World, nodes: list[str]) -> str:
    """Each node's agent view of its peers: state, probe latency, handshake (for a failure message)."""
    lines = []
    for node in nodes:
        try:
            peers = world.agents[node].status(timeout=3)["peers"]
        except Exception as exc:  # a stopped or stuck agent is itself the finding
            lines.append(f"--- agent view of {node}: unavailable ({exc})")
            continue
        lines.append(f"--- agent view of {node}:")
        lines += [
            f"  {p['name']}: {p['state']} probed={p['probed']} latency_ms={p['latency_ms']} "
            f"endpoint={p['endpoint']} rx={p['rx_bytes']} tx={p['tx_bytes']}"
            for p in peers
        ]
    return "\n".join(lines)


def diagnosis(world: World) -> str:
    """Devices and agent views of every running agent: what a timing failure needs explained."""
    running = [n for n, a in world.agents.items() if a.running]
    return f"{devices(world, running)}\n{peer_views(world, running)}"


def nft_counters(world: World, node: str, table: str) -> dict[str, int]:
    """Packets counted by each commented rule of a test-owned `inet` table."""
    out = world.exec(node, ["nft", "-j", "list", "table", "inet", table]).stdout
    counters: dict[str, int] = {}
    for item in json.loads(out)["nftables"]:
        rule = item.get("rule")
        if rule and rule.get("comment"):
            packets = next(e["counter"]["packets"] for e in rule["expr"] if "counter" in e)
            counters[rule["comment"]] = packets
    return counters


def wait_gone(world: World, node: str, key: str, deadline_s: float) -> float:
    """Seconds until `key` left the node's WireGuard; fails after `deadline_s`."""
    t0 = time.monotonic()
    world.wait_for(lambda: key not in wg_keys(world, node), timeout=deadline_s, interval=0.02, logs=[node])
    return time.monotonic() - t0
