"""Server memory with a large account: N peers in G groups (the reference's synthetic shape)
loaded into a real store, then a real `meshroute server` process serving it.

    .venv/bin/python -m bench.server_memory [--peers 30000] [--groups 300]

Measures the server's resident memory idle, after it has built the account's network-map state
(first `GET /api/peers/{id}/network-map`) and the time of that first and of a later map.
Records bench/results/server_memory-*.json.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import ipaddress
import json
import tempfile
import time
from pathlib import Path

from sqlalchemy import insert, select

from bench.common import rss_mib, running_server, write
from meshroute.core.ids import new_id
from meshroute.core.model import NetworkType
from meshroute.server.clock import utcnow
from meshroute.server.services import Services
from meshroute.server.services.routes import RouteInput
from meshroute.server.services.uow import UnitOfWork
from meshroute.server.store import tables as t
from meshroute.server.store.db import make_engine, migrate, sqlite_url
from meshroute.server.store.sql import SqlStore


def populate(data_dir: Path, n: int, g: int) -> list[str]:
    """A store in `data_dir` with the owner's token in `admin-token` and one account of `n` peers in
    `g` groups (plus All) and min(g, 20) routes; returns the peer IDs, the first a routing peer."""
    engine = make_engine(sqlite_url(data_dir))
    migrate(engine)
    services = Services.create(UnitOfWork(SqlStore(engine)))  # no server runs yet: nothing to tell
    boot = services.accounts.bootstrap()
    assert boot is not None
    (data_dir / "admin-token").write_text(boot.token + "\n")
    account = boot.account
    now = utcnow()
    base = int(account.network_v4.network_address)
    peer_ids = [new_id() for _ in range(n)]
    with engine.begin() as conn:
        conn.execute(
            insert(t.peers),
            [
                {
                    "id": pid,
                    "account_id": account.id,
                    "key": base64.b64encode(hashlib.sha256(pid.encode()).digest()).decode(),
                    "ip": str(ipaddress.IPv4Address(base + 1 + i)),
                    "ipv6": None,
                    "name": f"peer-{i}",
                    "hostname": f"peer-{i}",
                    "dns_label": f"peer-{i}",
                    "created_at": now,
                    "endpoints": [],
                }
                for i, pid in enumerate(peer_ids)
            ],
        )
        group_ids = [new_id() for _ in range(g)]
        conn.execute(
            insert(t.groups),
            [
                {"id": gid, "account_id": account.id, "name": f"group-{k}", "created_at": now}
                for k, gid in enumerate(group_ids)
            ],
        )
        all_id = conn.execute(select(t.groups.c.id).where(t.groups.c.name == "All")).scalar_one()
        size = n // g
        rows = [
            {
                "group_id": group_ids[min(i // size, g - 1)],
                "peer_id": pid,
                "account_id": account.id,
                "position": i,
            }
            for i, pid in enumerate(peer_ids)
        ]
        rows += [
            {"group_id": all_id, "peer_id": pid, "account_id": account.id, "position": i}
            for i, pid in enumerate(peer_ids)
        ]
        conn.execute(insert(t.group_peers), rows)
    for r in range(min(g, 20)):
        gid = group_ids[r % g]
        services.routes.create(
            account.id,
            boot.owner.id,
            RouteInput(
                net_id=f"net-{r}",
                network=ipaddress.IPv4Network(f"10.{r}.0.0/16"),
                network_type=NetworkType.IPV4,
                peer_groups=[gid],
                groups=[all_id],
                access_control_groups=[gid],
                metric=100,
                enabled=True,
            ),
        )
    engine.dispose()
    return peer_ids


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--peers", type=int, default=30000)
    ap.add_argument("--groups", type=int, default=300)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="meshroute-mem-"))
    t0 = time.perf_counter()
    peer_ids = populate(tmp, args.peers, args.groups)
    routing_peer, other_peer = peer_ids[0], peer_ids[args.peers // 2]
    populate_s = time.perf_counter() - t0
    token = (tmp / "admin-token").read_text().strip()  # written by populate(), before the server
    with running_server(tmp, token) as (pid, api):
        idle, _ = rss_mib(pid)
        t0 = time.perf_counter()
        first = api.get(f"/api/peers/{routing_peer}/network-map")
        first_ms = (time.perf_counter() - t0) * 1000
        first.raise_for_status()
        t0 = time.perf_counter()
        later = api.get(f"/api/peers/{other_peer}/network-map")
        later_ms = (time.perf_counter() - t0) * 1000
        later.raise_for_status()
        loaded, peak = rss_mib(pid)
    result = {
        "peers": args.peers,
        "groups": args.groups,
        "routes": min(args.groups, 20),
        "populate_s": round(populate_s, 1),
        "server_rss_idle_mib": idle,
        "server_rss_loaded_mib": loaded,
        "server_rss_peak_mib": peak,
        "first_map_ms_incl_state_load": round(first_ms, 1),
        "later_map_ms": round(later_ms, 1),
        "map_peers": len(first.json()["peers"]),
        "goal": "state for 30,000 peers in <= 1 GiB of server memory",
    }
    path = write("server_memory", result)
    print(json.dumps(result, indent=2))
    print(f"recorded in {path}")


if __name__ == "__main__":
    main()
