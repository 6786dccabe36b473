"""Failover and routed throughput, with real agents in network namespaces (root):

- failover: the lab's HA route (two routing peers in one peer group); a client pings a LAN host
  every 10 ms; the routing peer carrying the route dies, either killed (its agent and its
  WireGuard process) or cut off the network (its underlay link goes down). The gap is the time
  between the last reply before and the first reply after. N runs each way, the dead peer brought
  back between runs.
- throughput: TCP through a routing peer to a LAN host, as a ratio of TCP to the routing peer's
  own overlay address, side by side in one run (iperf3, one stream).

    .venv/bin/python -m bench.route_failover [--runs 20] [--seconds 5]
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import statistics
import time
from pathlib import Path
from typing import Any

from bench.common import write
from meshroute.lab import demo


def _office(d: demo.Demo) -> dict[str, Any]:
    done = d.world.exec(
        "client",
        [
            _meshroute(),
            "agent",
            "routes",
            "list",
            "--json",
            "--state-dir",
            str(d.world.agents["client"].state_dir),
        ],
    )
    return next(r for r in json.loads(done.stdout) if r["network_id"] == "office")


def _carrier(d: demo.Demo) -> str | None:
    """The routing peer carrying the office route now (r1/r2)."""
    peer = _office(d)["routing_peer"]
    return str(peer) if peer else None


def _meshroute() -> str:
    import sys

    return str(Path(sys.executable).with_name("meshroute"))


def _both_up(d: demo.Demo) -> bool:
    office = _office(d)
    return all(c["state"] == "connected" for c in office["candidates"]) and office["routing_peer"] is not None


def _gap(out: str, t_event: float) -> tuple[float, int]:
    """(the longest silence from the event on, in ms; replies lost). Replies are 10 ms apart, so
    the longest interval between two replies after the last one before the event is the gap."""
    replies = [
        (float(m.group(1)), int(m.group(2)))
        for m in (
            re.match(r"\[(\d+\.\d+)\] \d+ bytes from .* icmp_seq=(\d+)", line) for line in out.splitlines()
        )
        if m
    ]
    times = [t for t, _ in replies]
    start = max(i for i, t in enumerate(times) if t <= t_event)
    gap = max(b - a for a, b in zip(times[start:], times[start + 1 :], strict=False))
    seqs = [s for _, s in replies]
    lost = len(set(range(min(seqs), max(seqs) + 1)) - set(seqs))
    return gap * 1000, lost


def failover(d: demo.Demo, how: str, log: Path) -> tuple[float, int]:
    world = d.world
    world.wait_for(lambda: _both_up(d), timeout=30, message="both routing peers up")
    time.sleep(1.0)  # the returning peer may take the route back (stickiness permitting): settle first
    victim = _carrier(d)
    assert victim in demo.ROUTERS, victim
    lan = world.node(d.lan_host).ipv4
    ping = world.popen("client", ["ping", "-D", "-O", "-i", "0.01", "-W", "1", "-w", "6", lan], name="fping")
    time.sleep(1.5)
    t_event = time.time()
    if how == "killed":
        world.kill_processes(victim)
    else:
        world.cut(victim)
    ping.wait(15)
    result = _gap(ping.log.read_text(), t_event)
    log.write_text(ping.log.read_text())
    ping.log.unlink()
    if how == "killed":
        world.agents[victim].start()
    else:
        world.mend(victim)
    return result


def throughput(d: demo.Demo, seconds: int, rounds: int) -> dict[str, Any]:
    world = d.world
    carrier = _carrier(d)
    assert carrier is not None
    overlay = d.peer(carrier)["ip"]
    lan = world.node(d.lan_host).ipv4

    def iperf(server_node: str, address: str) -> float:
        last = ""
        for _ in range(3):  # the server may not listen yet, the path may still be settling
            server = world.popen(server_node, ["iperf3", "-s", "-1", "-B", address], name="iperf3-s")
            world.wait_for(lambda: world.ping("client", address, timeout=1), timeout=10)
            time.sleep(0.5)
            try:
                done = world.exec(
                    "client",
                    ["iperf3", "-c", address, "-t", str(seconds), "-J"],
                    timeout=seconds + 30,
                    check=False,
                )
            finally:
                server.stop(5)
            result = json.loads(done.stdout or "{}")
            if "sum_received" in result.get("end", {}):
                return float(result["end"]["sum_received"]["bits_per_second"]) / 1e6
            last = str(result.get("error", done.stderr))
        raise RuntimeError(f"iperf3 to {address} failed: {last}")

    # Alternated rounds, medians: on 2 cores one 5 s stream swings by 10% from run to run, and
    # drift must hit both paths alike.
    direct, routed = [], []
    for _ in range(rounds):
        direct.append(iperf(carrier, overlay))
        routed.append(iperf(d.lan_host, lan))
        print(f"throughput: direct {direct[-1]:.0f} Mbit/s, routed {routed[-1]:.0f} Mbit/s", flush=True)
    mid_direct, mid_routed = statistics.median(direct), statistics.median(routed)
    return {
        "rounds": rounds,
        "direct_overlay_mbit_s": round(mid_direct, 1),
        "routed_mbit_s": round(mid_routed, 1),
        "ratio": round(mid_routed / mid_direct, 3),
        "direct_all": [round(v, 1) for v in direct],
        "routed_all": [round(v, 1) for v in routed],
    }


def _summary(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    return {
        "p50": round(statistics.median(ordered), 1),
        "p99": round(ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))], 1),
        "max": round(ordered[-1], 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=5, help="alternated iperf3 rounds per path")
    args = parser.parse_args()
    d = demo.build(prefix="mrbench", exit_node=False)
    try:
        world = d.world
        # Warm the LAN's neighbour tables (the first ARP on a fresh bridge is slow).
        for node in ("r1", "r2"):
            world.ping(node, world.node(d.lan_host).ipv4, timeout=2)
        results: dict[str, Any] = {"runs": args.runs, "probe_interval_ms": 200, "down_after": 3}
        for how in ("killed", "cut"):
            gaps, lost = [], []
            for _ in range(args.runs):
                gap, n = failover(d, how, world.workdir / f"failover-{how}.txt")
                gaps.append(gap)
                lost.append(n)
                print(f"{how}: gap {gap:.0f} ms, {n} replies lost", flush=True)
            results[f"gap_ms_{how}"] = _summary(gaps)
            results[f"gaps_{how}"] = [round(g) for g in gaps]
        if shutil.which("iperf3"):
            world.wait_for(lambda: _both_up(d), timeout=30)
            results["throughput"] = throughput(d, args.seconds, args.rounds)
    finally:
        d.world.close()
    print(json.dumps(results, indent=2))
    print("wrote", write("route_failover", results))


if __name__ == "__main__":
    main()
