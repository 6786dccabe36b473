"""Quick timing of the network-map engine on the reference's synthetic account (§6.1).

    .venv/bin/python bench/networkmap_quick.py [--peers 5000] [--groups 200] [--memory]

N peers `peer-i`, G groups of N/G consecutive peers plus `group-all`, min(G, 20) routes
10.r.0.0/16 with PeerGroups [group-(r mod G)], Groups [group-all], ACG [group-(r mod G)].
Prints wall-clock figures only; it is feedback for the engine's author, not a benchmark suite.
"""

from __future__ import annotations

import argparse
import base64
import dataclasses
import gc
import hashlib
import ipaddress
import time
import tracemalloc
from datetime import UTC, datetime

from meshroute.core.model import Group, NetworkType, Peer, Route
from meshroute.core.networkmap import AccountState, GroupUpserted, PeerUpserted, RouteUpserted

ACCOUNT = "bench-account"
NOW = datetime(2026, 1, 1, tzinfo=UTC)


def build(n: int, g: int) -> tuple[list[Peer], list[Group], list[Route]]:
    peers = [
        Peer(
            id=f"peer-{i}",
            account_id=ACCOUNT,
            key=base64.b64encode(hashlib.sha256(str(i).encode()).digest()).decode(),
            ip=ipaddress.IPv4Address(f"100.{64 + i // 65536}.{(i // 256) % 256}.{i % 256}"),
            ipv6=None,
            name=f"peer-{i}",
            hostname=f"peer-{i}",
            dns_label=f"peer-{i}",
            created_at=NOW,
        )
        for i in range(n)
    ]
    size = n // g
    groups = [Group(id=f"group-{k}", account_id=ACCOUNT, name=f"group-{k}") for k in range(g)]
    for i, p in enumerate(peers):
        groups[min(i // size, g - 1)].peers.append(p.id)
    groups.append(Group(id="group-all", account_id=ACCOUNT, name="All", peers=[p.id for p in peers]))
    routes = [
        Route(
            id=f"route-{r}",
            account_id=ACCOUNT,
            net_id=f"net-{r}",
            network=ipaddress.IPv4Network(f"10.{r}.0.0/16"),
            network_type=NetworkType.IPV4,
            peer_groups=[f"group-{r % g}"],
            groups=["group-all"],
            access_control_groups=[f"group-{r % g}"],
            enabled=True,
            metric=100,
        )
        for r in range(min(g, 20))
    ]
    return peers, groups, routes


def ms(t0: float) -> str:
    return f"{(time.perf_counter() - t0) * 1000:.1f} ms"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--peers", type=int, default=5000)
    ap.add_argument("--groups", type=int, default=200)
    ap.add_argument("--memory", action="store_true", help="measure the state's size with tracemalloc")
    args = ap.parse_args()
    peers, groups, routes = build(args.peers, args.groups)
    print(f"synthetic account: {args.peers} peers, {args.groups}+1 groups, {len(routes)} routes")

    gc.collect()
    if args.memory:
        tracemalloc.start()
    t0 = time.perf_counter()
    state = AccountState(ACCOUNT, 1, peers, groups, routes)
    print(f"build AccountState:            {ms(t0)}")
    if args.memory:
        size, _ = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        print(f"state memory (tracemalloc):    {size / 2**20:.1f} MiB")

    t0 = time.perf_counter()
    m = state.network_map("peer-0")
    print(
        f"full map of peer-0:            {ms(t0)} ({len(m.peers)} peers, {len(m.routes)} routes, "
        f"{len(m.rules)} rules)"
    )
    t0 = time.perf_counter()
    m = state.network_map(f"peer-{args.peers // 2}")
    print(f"full map of a distribution peer: {ms(t0)} ({len(m.routes)} routes)")

    changed = dataclasses.replace(routes[0], metric=200)
    t0 = time.perf_counter()
    affected = state.affected_peers([RouteUpserted(changed)])
    print(f"affected_peers(route metric):  {ms(t0)} ({len(affected)} peers)")
    t0 = time.perf_counter()
    deltas = state.apply([RouteUpserted(changed)], 2)
    print(f"apply(route metric update):    {ms(t0)} ({len(deltas)} peer deltas)")

    g0 = next(gr for gr in groups if gr.id == "group-0")
    g1 = next(gr for gr in groups if gr.id == "group-1")
    mover = g1.peers[0]
    t0 = time.perf_counter()
    deltas = state.apply(
        [
            GroupUpserted(dataclasses.replace(g1, peers=g1.peers[1:])),
            GroupUpserted(dataclasses.replace(g0, peers=[*g0.peers, mover])),
        ],
        3,
    )
    print(f"apply(move a peer group-1 -> group-0): {ms(t0)} ({len(deltas)} peer deltas)")
    t0 = time.perf_counter()
    deltas = state.apply([GroupUpserted(dataclasses.replace(g0, peers=g0.peers))], 4)
    print(f"apply(group-0 back, peer leaves): {ms(t0)} ({len(deltas)} peer deltas)")

    rotated = dataclasses.replace(peers[0], key="rotated-key")
    t0 = time.perf_counter()
    deltas = state.apply([PeerUpserted(rotated)], 5)
    print(f"apply(routing peer key change): {ms(t0)} ({len(deltas)} peer deltas)")
    n = args.peers
    newcomer = dataclasses.replace(peers[1], id="peer-new", key="new-key", name="new", dns_label="new")
    newcomer.ip = ipaddress.IPv4Address(f"100.{64 + n // 65536}.{(n // 256) % 256}.{n % 256}")
    all_group = groups[-1]
    t0 = time.perf_counter()
    deltas = state.apply(
        [
            PeerUpserted(newcomer),
            GroupUpserted(dataclasses.replace(all_group, peers=[*all_group.peers, newcomer.id])),
        ],
        6,
    )
    print(f"apply(peer joins group-all):   {ms(t0)} ({len(deltas)} peer deltas)")


if __name__ == "__main__":
    main()
