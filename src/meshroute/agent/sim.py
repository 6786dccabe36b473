"""`meshroute sim`: N virtual peers with real keys holding real sync streams.

Each virtual peer is the agent's own management link (`meshroute.agent.link`) without the system
layer: it registers with a setup key, keeps its map by applying deltas, reconnects with backoff,
and is checked at the end against the server's own computation (the REST network-map view). With
an API token the simulator also makes route changes and measures, for every affected peer, the
time from the API call returning to the peer having applied the change.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import statistics
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

from meshroute.agent.identity import MemoryIdentityStore
from meshroute.agent.link import LinkRefused, ManagementLink
from meshroute.protocol.client import Meta, Update, open_channel
from meshroute.protocol.convert import map_json

PEERS_PER_CHANNEL = 100


@dataclass(slots=True)
class SimConfig:
    server: str
    setup_key: str
    peers: int
    duration: float = 10.0
    api: str | None = None
    token: str | None = None
    change_interval: float = 1.0
    tls: bool = False
    root_ca: bytes | None = None
    cleanup: bool = True
    # ("registering" | "syncing", done, total), for a progress display
    progress: Callable[[str, int, int], None] | None = None


@dataclass(slots=True)
class _Stats:
    applied: dict[int, dict[str, float]] = field(default_factory=lambda: defaultdict(dict))
    updates_applied: int = 0
    full_maps: int = 0
    errors: list[str] = field(default_factory=list)


def _percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    idx = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return round(ordered[idx], 3)


async def _hold(link: ManagementLink, stats: _Stats, first: asyncio.Event) -> None:
    async def applied(update: Update) -> None:
        now = time.perf_counter()
        if update.full:
            stats.full_maps += 1
            first.set()
        else:
            stats.updates_applied += 1
        assert link.identity is not None
        stats.applied[update.map.serial].setdefault(link.identity.peer_id, now)

    try:
        await link.run(applied)
    except LinkRefused as exc:
        stats.errors.append(f"{link.name}{exc}")
        first.set()


async def run(cfg: SimConfig) -> dict[str, Any]:
    t_start = time.perf_counter()
    channels = [
        open_channel(cfg.server, root_ca=cfg.root_ca, tls=cfg.tls)
        for _ in range(max(1, -(-cfg.peers // PEERS_PER_CHANNEL)))
    ]
    clients = [
        ManagementLink(
            channels[i // PEERS_PER_CHANNEL],
            MemoryIdentityStore(),
            functools.partial(Meta, hostname=f"sim-{i}", agent_version="sim"),
            setup_key=cfg.setup_key,
            server=cfg.server,
            name=f"sim-{i}: ",
        )
        for i in range(cfg.peers)
    ]
    gate = asyncio.Semaphore(16)
    report = cfg.progress or (lambda _what, _done, _total: None)
    done = 0

    async def login(c: ManagementLink) -> None:
        nonlocal done
        async with gate:
            await c.login()
        done += 1
        report("registering", done, cfg.peers)

    await asyncio.gather(*(login(c) for c in clients))
    t_registered = time.perf_counter()
    stats = _Stats()
    # Every virtual peer is a full agent link: keep their per-link state changes out of the output.
    logging.getLogger("meshroute.agent.link").setLevel(logging.ERROR)
    firsts = [asyncio.Event() for _ in clients]
    tasks = [asyncio.create_task(_hold(c, stats, e)) for c, e in zip(clients, firsts, strict=True)]
    synced = 0

    async def first_map(event: asyncio.Event) -> None:
        nonlocal synced
        await event.wait()
        synced += 1
        report("syncing", synced, cfg.peers)

    await asyncio.wait_for(asyncio.gather(*(first_map(e) for e in firsts)), timeout=max(60.0, cfg.peers / 10))
    t_synced = time.perf_counter()

    latencies: list[float] = []
    since_request: list[float] = []
    changes = 0
    affected: list[int] = []
    mismatches: int | None = None
    api = None
    route_id = None
    if cfg.api and cfg.token:
        api = httpx.AsyncClient(
            base_url=cfg.api.rstrip("/"), headers={"Authorization": f"Token {cfg.token}"}, timeout=60
        )
    if api is not None and cfg.duration > 0:
        all_group = next(g["id"] for g in (await api.get("/api/groups", params={"name": "All"})).json())
        body = {
            "network": "198.18.0.0/24",
            "network_id": f"sim-{os.getpid()}",
            "description": "meshroute sim",
            "peer": _peer_id(clients[0]),
            "groups": [all_group],
            "metric": 100,
            "enabled": True,
        }
        created = await api.post("/api/routes", json=body)
        created.raise_for_status()
        route_id = created.json()["id"]
        await asyncio.sleep(cfg.change_interval)
        deadline = time.perf_counter() + cfg.duration
        while time.perf_counter() < deadline:
            body["metric"] = 100 + (changes % 2) + 1
            t_send = time.perf_counter()
            resp = await api.put(f"/api/routes/{route_id}", json=body)
            t0 = time.perf_counter()
            resp.raise_for_status()
            serial = (await api.get("/api/accounts")).json()[0]["network_serial"]
            changes += 1
            await asyncio.sleep(cfg.change_interval)
            arrived = stats.applied.get(serial, {})
            affected.append(len(arrived))
            # An agent may apply the change before the HTTP response reaches us: that counts as 0.
            latencies.extend(max(0.0, t - t0) * 1000 for t in arrived.values())
            since_request.extend((t - t_send) * 1000 for t in arrived.values())
        await asyncio.sleep(1.0)
        mismatches = await _compare(api, clients)
    else:
        await asyncio.sleep(cfg.duration)

    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    for ch in channels:
        await ch.close()
    if api is not None:
        if cfg.cleanup:
            if route_id:
                await api.delete(f"/api/routes/{route_id}")
            gate = asyncio.Semaphore(8)

            async def drop(c: ManagementLink) -> None:
                async with gate:
                    await api.delete(f"/api/peers/{_peer_id(c)}")

            await asyncio.gather(*(drop(c) for c in clients))
        await api.aclose()
    return {
        "peers": cfg.peers,
        "register_s": round(t_registered - t_start, 3),
        "first_maps_s": round(t_synced - t_registered, 3),
        "changes": changes,
        "affected_per_change": round(statistics.mean(affected), 1) if affected else 0,
        "updates_applied": stats.updates_applied,
        "full_maps": stats.full_maps,
        "serial_gaps": sum(c.status.gaps for c in clients),
        "p50_ms": _percentile(latencies, 0.50),
        "p99_ms": _percentile(latencies, 0.99),
        "max_ms": _percentile(latencies, 1.0),
        "p50_since_request_ms": _percentile(since_request, 0.50),
        "p99_since_request_ms": _percentile(since_request, 0.99),
        "mismatches": mismatches,
        "errors": stats.errors,
    }


def _comparable(view: dict[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in view.items() if k not in ("serial", "routes_received", "routes_served")}
    out["self"] = {k: v for k, v in view["self"].items() if k not in ("network", "network_v6", "endpoints")}
    return out


def _peer_id(link: ManagementLink) -> str:
    assert link.identity is not None, "the link has logged in"
    return link.identity.peer_id


async def _compare(api: httpx.AsyncClient, clients: list[ManagementLink]) -> int:
    """How many virtual peers hold a map that differs from the server's computation for them."""
    gate = asyncio.Semaphore(16)

    async def one(c: ManagementLink) -> bool:
        async with gate:
            # fresh: computed from the store, so a drifted server state cannot vouch for itself
            resp = await api.get(f"/api/peers/{_peer_id(c)}/network-map", params={"fresh": "true"})
        if resp.status_code != 200 or c.map is None:
            return True
        return _comparable(resp.json()) != _comparable(map_json(c.map))

    results = await asyncio.gather(*(one(c) for c in clients))
    return sum(results)
