"""Kernel routes on an agent: table 7120 filled with N routes (default 10,000) by the agent's
policy-routing reconciler (batched rtnetlink), side by side with `ip -batch` of the same routes in
the same run, then one-route deltas, and pyroute2 one call per route for scale. Everything runs in
a private network namespace (root).

    .venv/bin/python -m bench.agent_routes [--routes 10000] [--deltas 200]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.common import write

NETNS = f"mrb{os.getpid()}"


def _prefixes(n: int) -> list[str]:
    return [f"10.{100 + i // 65536}.{(i // 256) % 256}.{i % 256}/32" for i in range(n)]


async def _inner(n: int, deltas: int) -> dict[str, Any]:
    from pyroute2 import AsyncIPRoute

    from meshroute.agent.ledger import Ledger
    from meshroute.agent.routing.policy import TABLE, PolicyRouting, flush_table
    from meshroute.agent.routing.rtnl import TableRoute

    subprocess.run(["ip", "link", "add", "name", "mr0", "type", "veth", "peer", "name", "mr0p"], check=True)
    subprocess.run(["ip", "link", "set", "mr0", "up"], check=True)
    prefixes = _prefixes(n)
    routes = {TableRoute(p) for p in prefixes}
    policy = PolicyRouting("mr0", Ledger(Path(tempfile.mkdtemp(prefix="mrbench"))))
    await policy.setup()
    t0 = time.perf_counter()
    await policy.apply(routes)
    agent_full = time.perf_counter() - t0
    assert _count() == n

    agent_delta = []
    for j in range(deltas):
        extra = TableRoute(f"10.250.{j // 256}.{j % 256}/32")
        t0 = time.perf_counter()
        await policy.apply(routes | {extra})
        agent_delta.append(time.perf_counter() - t0)
        await policy.apply(routes)
    await flush_table()

    batch = Path(tempfile.mkdtemp(prefix="mrbench")) / "routes.batch"
    batch.write_text("".join(f"route add {p} dev mr0 table {TABLE}\n" for p in prefixes))
    t0 = time.perf_counter()
    subprocess.run(["ip", "-batch", str(batch)], check=True)
    ip_full = time.perf_counter() - t0
    assert _count() == n
    ip_delta = []
    for j in range(deltas):
        t0 = time.perf_counter()
        subprocess.run(
            ["ip", "route", "add", f"10.250.{j // 256}.{j % 256}/32", "dev", "mr0", "table", str(TABLE)]
        )
        ip_delta.append(time.perf_counter() - t0)
    await flush_table()

    sample = prefixes[:1000]
    async with AsyncIPRoute() as ipr:
        index = (await ipr.link_lookup(ifname="mr0"))[0]
        t0 = time.perf_counter()
        for p in sample:
            await ipr.route("add", dst=p, oif=index, table=TABLE)
        pyroute2_per_route = (time.perf_counter() - t0) / len(sample)
    await policy.teardown()

    def ms(values: list[float], q: float) -> float:
        ordered = sorted(values)
        return round(ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))] * 1000, 3)

    return {
        "routes": n,
        "deltas": deltas,
        "full_s": {"agent": round(agent_full, 3), "ip_batch": round(ip_full, 3)},
        "ratio_agent_over_ip_batch": round(agent_full / ip_full, 2),
        "one_route_delta_ms": {
            "agent": {"p50": ms(agent_delta, 0.5), "p99": ms(agent_delta, 0.99)},
            "ip_route_add": {"p50": ms(ip_delta, 0.5), "p99": ms(ip_delta, 0.99)},
        },
        "pyroute2_one_call_per_route_s_for_all": round(pyroute2_per_route * n, 2),
        "delta_ratio_ip_over_agent_p50": round(
            statistics.median(ip_delta) / statistics.median(agent_delta), 1
        ),
    }


def _count() -> int:
    out = subprocess.run(["ip", "route", "show", "table", "7120"], capture_output=True, text=True).stdout
    return len(out.splitlines())


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--routes", type=int, default=10000)
    parser.add_argument("--deltas", type=int, default=200)
    parser.add_argument("--inner", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.inner:
        print(json.dumps(asyncio.run(_inner(args.routes, args.deltas))))
        return
    subprocess.run(["ip", "netns", "add", NETNS], check=True)
    try:
        subprocess.run(["ip", "-n", NETNS, "link", "set", "lo", "up"], check=True)
        argv = [sys.executable, "-m", "bench.agent_routes", "--inner", "--routes", str(args.routes)]
        out = subprocess.run(
            ["ip", "netns", "exec", NETNS, *argv, "--deltas", str(args.deltas)],
            check=True,
            capture_output=True,
            text=True,
            cwd=Path(__file__).parent.parent,
        )
    finally:
        subprocess.run(["ip", "netns", "del", NETNS], check=False)
    result = json.loads(out.stdout)
    print(json.dumps(result, indent=2))
    print("wrote", write("agent_routes", result))


if __name__ == "__main__":
    main()
