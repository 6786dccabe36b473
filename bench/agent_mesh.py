"""The agent end to end, in network namespaces built by meshroute.lab (root only):

- join: from starting three `meshroute agent run` to every overlay ping between them answered,
  over several fresh worlds;
- detect: how long after a probed routing peer stops answering the client sees it down;
- idle: one real agent whose map holds 1,000 peers (999 registered by `meshroute sim`): the time
  until WireGuard holds them all, then its CPU and memory at rest, and its wireguard-go's.

    .venv/bin/python -m bench.agent_mesh [--runs 5] [--peers 1000] [--idle-seconds 30]
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from bench.common import rss_mib, write
from meshroute.lab import World

TICKS = os.sysconf("SC_CLK_TCK")


def _cpu_seconds(pid: int) -> float:
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def _wait(condition: Any, timeout: float, what: str, interval: float = 0.01) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(what)
        time.sleep(interval)


def join_once() -> dict[str, float]:
    nodes = ["a", "b", "c"]
    with World.build(nodes) as world:
        key = world.server.setup_key("bench")
        t0 = time.monotonic()
        for node in nodes:
            world.start_agent(node, setup_key=key)
        ips: dict[str, str] = {}

        def registered() -> bool:
            for node in nodes:
                peer = world.server.peer(node)
                if peer:
                    ips[node] = peer["ip"]
            return len(ips) == 3

        _wait(registered, 20, "agents did not register", 0.02)
        t_registered = time.monotonic() - t0
        pending = {(s, d) for s in nodes for d in nodes if s != d}
        first = 0.0
        while pending:
            for pair in sorted(pending):
                if world.ping(pair[0], ips[pair[1]], count=1, timeout=0.2, interval=0.2):
                    pending.discard(pair)
                    first = first or time.monotonic() - t0
            if time.monotonic() - t0 > 30:
                raise TimeoutError(f"no overlay ping between {sorted(pending)}")
        return {
            "registered_s": round(t_registered, 3),
            "first_ping_s": round(first, 3),
            "full_mesh_s": round(time.monotonic() - t0, 3),
        }


def detect_once() -> float:
    with World.build(["a", "b"]) as world:
        key = world.server.setup_key("bench")
        for node in ("a", "b"):
            world.start_agent(node, setup_key=key)
        _wait(lambda: all((world.server.peer(n) or {}).get("connected") for n in ("a", "b")), 20, "join")
        everyone = world.api.get("/api/groups", params={"name": "All"}).json()[0]["id"]
        b = world.server.peer("b")
        assert b is not None
        world.api.post(
            "/api/routes",
            json={
                "network": "10.99.0.0/24",
                "network_id": "x",
                "peer": b["id"],
                "groups": [everyone],
                "metric": 100,
                "enabled": True,
            },
        ).raise_for_status()

        def b_state() -> str:
            return str(next(p for p in world.agents["a"].status()["peers"] if p["name"] == "b")["state"])

        _wait(
            lambda: b_state() == "connected" and "answers probes" in world.agents["a"].log.read_text(),
            10,
            "probe",
        )
        pid = world.agents["b"].pid
        assert pid is not None
        os.kill(pid, signal.SIGSTOP)
        t0 = time.monotonic()
        try:
            _wait(lambda: "stopped answering probes" in world.agents["a"].log.read_text(), 10, "down", 0.005)
            return time.monotonic() - t0
        finally:
            os.kill(pid, signal.SIGCONT)


def idle(peers: int, seconds: float) -> dict[str, Any]:
    with World.build(["a", "sim"]) as world:
        key = world.server.setup_key("bench", usage_limit=0)
        sim = world.exec(
            "sim",
            [
                str(Path(sys.executable).with_name("meshroute")),
                "sim",
                "--sync",
                world.server.sync_address,
                "--setup-key",
                key,
                "--peers",
                str(peers - 1),
                "--duration",
                "0",
                "--keep",
                "--json",
            ],
            timeout=600,
        )
        assert sim.returncode == 0, sim.stderr
        t0 = time.monotonic()
        agent = world.start_agent("a", setup_key=key)
        _wait(lambda: len(_safe_status(agent).get("peers", [])) == peers - 1, 120, "agent map", 0.05)
        ready = time.monotonic() - t0
        time.sleep(5)  # let the first round of work settle
        pid = agent.pid
        assert pid is not None
        record = (agent.state_dir / "installed.json").read_text()
        import json

        wg = int(json.loads(record)["wireguard"]["pid"])
        a0, w0, t1 = _cpu_seconds(pid), _cpu_seconds(wg), time.monotonic()
        time.sleep(seconds)
        a1, w1, t2 = _cpu_seconds(pid), _cpu_seconds(wg), time.monotonic()
        return {
            "peers_in_map": peers - 1,
            "start_to_all_peers_in_wireguard_s": round(ready, 2),
            "idle_seconds": seconds,
            "agent_cpu_percent": round(100 * (a1 - a0) / (t2 - t1), 2),
            "agent_rss_mib": rss_mib(pid)[0],
            "wireguard_go_cpu_percent": round(100 * (w1 - w0) / (t2 - t1), 2),
            "wireguard_go_rss_mib": rss_mib(wg)[0],
        }


def _safe_status(agent: Any) -> dict[str, Any]:
    try:
        return dict(agent.status())
    except Exception:
        return {}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--peers", type=int, default=1000)
    parser.add_argument("--idle-seconds", type=float, default=30.0)
    args = parser.parse_args()
    joins = [join_once() for _ in range(args.runs)]
    detects = [detect_once() for _ in range(args.runs)]
    result: dict[str, Any] = {
        "join_runs": joins,
        "join": {
            k: {"median": round(statistics.median(j[k] for j in joins), 3), "max": max(j[k] for j in joins)}
            for k in joins[0]
        },
        "down_detection_ms": {
            "probe_interval_ms": 200,
            "down_after": 3,
            "median": round(statistics.median(detects) * 1000),
            "max": round(max(detects) * 1000),
        },
        "idle": idle(args.peers, args.idle_seconds),
    }
    import json

    print(json.dumps(result, indent=2))
    print("wrote", write("agent_mesh", result))


if __name__ == "__main__":
    main()
