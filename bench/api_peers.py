"""The REST API's peer list at NetBird's benchmark scales, side by side in one run.

    .venv/bin/python -m bench.api_peers [--repeat 15] [--scales 1000:20,5000:5,25000:50]

For each scale (peers:groups; the defaults are NetBird's M, L and XL peer scenarios) a fresh
SQLite store is filled (every peer in one group and in All, min(groups, 20) routes), a real
`meshroute server` process is started on it, and the median wall time of `GET /api/peers` is
taken over `--repeat` requests after one warm-up request, with `PUT /api/peers/{id}` (a rename)
beside it. Times include the HTTP round trip on loopback, as a client sees them. Records
bench/results/api_peers-*.json.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from bench.common import running_server, write
from bench.server_memory import populate

# NetBird's published budgets for the same requests (local min-max ms; reference/landscape.md).
BUDGETS = {
    1000: {"list": "20-50", "update": "—"},
    5000: {"list": "110-150", "update": "230-270"},
    25000: {"list": "450-800", "update": "600-1,000"},
}


def _median_ms(request: Any, repeat: int) -> tuple[float, float, httpx.Response]:
    """(median, max) wall time in ms of `repeat` calls, and the last response (checked)."""
    times = []
    response: httpx.Response | None = None
    for i in range(repeat):
        t0 = time.perf_counter()
        response = request(i)
        times.append((time.perf_counter() - t0) * 1000)
        assert response is not None
        response.raise_for_status()
    assert response is not None
    return round(statistics.median(times), 1), round(max(times), 1), response


def measure(peers: int, groups: int, repeat: int) -> dict[str, Any]:
    tmp = Path(tempfile.mkdtemp(prefix="meshroute-api-peers-"))
    try:
        peer_ids = populate(tmp, peers, groups)
        token = (tmp / "admin-token").read_text().strip()
        with running_server(tmp, token) as (_pid, api):
            api.get("/api/peers").raise_for_status()  # warm-up: first use of the store's pages
            list_ms, list_max, listed = _median_ms(lambda _i: api.get("/api/peers"), repeat)
            target = peer_ids[len(peer_ids) // 2]
            update_ms, update_max, _ = _median_ms(
                lambda i: api.put(f"/api/peers/{target}", json={"name": f"renamed-{i}"}), repeat
            )
        body = listed.content
        assert len(json.loads(body)) == peers
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return {
        "peers": peers,
        "groups": groups,
        "list_median_ms": list_ms,
        "list_max_ms": list_max,
        "list_body_kib": round(len(body) / 1024),
        "update_median_ms": update_ms,
        "update_max_ms": update_max,
        "netbird_list_budget_ms": BUDGETS.get(peers, {}).get("list", "—"),
        "netbird_update_budget_ms": BUDGETS.get(peers, {}).get("update", "—"),
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=15)
    ap.add_argument("--scales", default="1000:20,5000:5,25000:50", help="peers:groups,...")
    args = ap.parse_args()
    rows = []
    for scale in args.scales.split(","):
        peers, groups = (int(x) for x in scale.split(":"))
        row = measure(peers, groups, args.repeat)
        print(json.dumps(row))
        rows.append(row)
    path = write(
        "api_peers",
        {"repeat": args.repeat, "rows": rows, "goal": "GET /api/peers <= 450 ms at 25,000 peers"},
    )
    print(f"recorded in {path}")


if __name__ == "__main__":
    main()
