"""Network-map engine benchmark on the reference's synthetic accounts (§6.1) and a route-heavy one.

    .venv/bin/python -m bench.networkmap_bench [--quick]

For each account: build time and memory of the in-memory state, one peer's full map (a routing
peer and a distribution peer), every peer's map from scratch (up to 5,000 peers, as the
reference), the deltas of one route change, and the deltas of one group-membership change.
Prints a table and records it in bench/results/networkmap-*.json.
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import ipaddress
import statistics
import time
import tracemalloc
from collections.abc import Callable
from typing import Any

from bench.common import write
from bench.networkmap_quick import ACCOUNT, build
from meshroute.core.model import Group, NetworkType, Peer, Route
from meshroute.core.networkmap import AccountState, GroupUpserted, RouteUpserted

SCALES = [(100, 5), (500, 20), (1000, 50), (5000, 100), (5000, 200), (10000, 200), (20000, 200), (30000, 300)]
ALL_PEERS_MAX = 5000


def route_heavy(n: int = 5000, g: int = 200, r: int = 1000) -> tuple[list[Peer], list[Group], list[Route]]:
    """5,000 peers, 200 groups, 1,000 routes: half for everyone, half for one group; a third with ACGs."""
    peers, groups, _ = build(n, g)
    routes = []
    for i in range(r):
        routes.append(
            Route(
                id=f"route-{i}",
                account_id=ACCOUNT,
                net_id=f"net-{i}",
                network=ipaddress.IPv4Network(f"10.{i // 256}.{i % 256}.0/24"),
                network_type=NetworkType.IPV4,
                peer_groups=[f"group-{i % g}"] if i % 4 else [],
                peer="" if i % 4 else f"peer-{(i * 7) % n}",
                groups=["group-all"] if i % 2 else [f"group-{(i + 1) % g}"],
                access_control_groups=[f"group-{(i + 2) % g}"] if i % 3 == 0 else [],
                enabled=True,
                metric=100,
            )
        )
    return peers, groups, routes


def timed(fn: Callable[[], Any], repeat: int = 5) -> tuple[float, Any]:
    """Median wall time in ms over `repeat` runs (each run does new work), and the last result."""
    times, result = [], None
    for _ in range(repeat):
        t0 = time.perf_counter()
        result = fn()
        times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times), result


def measure(name: str, peers: list[Peer], groups: list[Group], routes: list[Route]) -> dict[str, Any]:
    gc.collect()
    tracemalloc.start()
    state = AccountState(ACCOUNT, 1, peers, groups, routes)
    mem, _ = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    del state
    gc.collect()
    t0 = time.perf_counter()
    state = AccountState(ACCOUNT, 1, peers, groups, routes)
    build_ms = (time.perf_counter() - t0) * 1000

    # Cold: the first map of a peer after the state was built (nothing of it computed before).
    routing_ms, m = timed(lambda: state.network_map("peer-0"), repeat=1)
    dist_peer = f"peer-{len(peers) // 2 + 1}"
    dist_ms, dm = timed(lambda: state.network_map(dist_peer), repeat=1)
    all_ms = None
    if len(peers) <= ALL_PEERS_MAX:
        t0 = time.perf_counter()
        for p in peers:
            state.network_map(p.id)
        all_ms = (time.perf_counter() - t0) * 1000

    serial = [2]

    def route_change() -> int:
        serial[0] += 1
        changed = dataclasses.replace(routes[1], metric=100 + serial[0] % 2 + 1)
        return len(state.apply([RouteUpserted(changed)], serial[0]))

    route_ms, route_deltas = timed(route_change)

    g0 = next(gr for gr in groups if gr.id == "group-0")
    g1 = next(gr for gr in groups if gr.id == "group-1")
    mover = g1.peers[0]
    moved = [False]

    def move() -> int:
        serial[0] += 1
        if moved[0]:
            changes = [GroupUpserted(g0), GroupUpserted(g1)]
        else:
            changes = [
                GroupUpserted(dataclasses.replace(g1, peers=g1.peers[1:])),
                GroupUpserted(dataclasses.replace(g0, peers=[*g0.peers, mover])),
            ]
        moved[0] = not moved[0]
        return len(state.apply(changes, serial[0]))

    group_ms, group_deltas = timed(move, repeat=6)
    return {
        "account": name,
        "peers": len(peers),
        "groups": len(groups),
        "routes": len(routes),
        "state_mib": round(mem / 2**20, 1),
        "build_ms": round(build_ms, 1),
        "map_routing_peer_ms": round(routing_ms, 2),
        "map_routing_peer_size": {"peers": len(m.peers), "routes": len(m.routes), "rules": len(m.rules)},
        "map_distribution_peer_ms": round(dist_ms, 2),
        "map_distribution_peer_routes": len(dm.routes),
        "all_maps_ms": round(all_ms, 1) if all_ms is not None else None,
        "route_change_ms": round(route_ms, 2),
        "route_change_deltas": route_deltas,
        "group_change_ms": round(group_ms, 2),
        "group_change_deltas": group_deltas,
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="only up to 5,000 peers")
    args = ap.parse_args()
    rows = []
    for n, g in SCALES:
        if args.quick and n > 5000:
            continue
        rows.append(measure(f"synthetic {n}/{g}", *build(n, g)))
        print(_line(rows[-1]), flush=True)
    rows.append(measure("route-heavy 5000/200/1000", *route_heavy()))
    print(_line(rows[-1]), flush=True)
    path = write(
        "networkmap",
        {
            "rows": rows,
            "goals": {
                "route_change_ms_at_5000_200": 50,
                "state_mib_at_30000": 1024,
            },
            "reference": {
                "UpdateAccountPeers_large_5000_200_ms_local": [800, 1700],
                "UpdateAccountPeers_medium_500_100_ms_local": [110, 150],
                "note": "NetBird recomputes every affected peer's full map and sends it; budgets only logged",
            },
        },
    )
    print(f"recorded in {path}")


def _line(r: dict[str, Any]) -> str:
    return (
        f"{r['account']:<28} state {r['state_mib']:>6} MiB  build {r['build_ms']:>8} ms  "
        f"map(routing) {r['map_routing_peer_ms']:>7} ms  map(dist) {r['map_distribution_peer_ms']:>6} ms  "
        f"all {r['all_maps_ms']!s:>8} ms  "
        f"route-change {r['route_change_ms']:>7} ms ({r['route_change_deltas']})  "
        f"group-change {r['group_change_ms']:>7} ms ({r['group_change_deltas']})"
    )


if __name__ == "__main__":
    main()
