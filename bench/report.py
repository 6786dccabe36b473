"""Renders docs/benchmarks.md from the latest recorded results.

.venv/bin/python -m bench.report
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from bench.common import RESULTS

DOC = Path(__file__).parent.parent / "docs" / "benchmarks.md"


def _load(name: str) -> dict[str, Any] | None:
    path = RESULTS / f"{name}-latest.json"
    return json.loads(path.read_text()) if path.exists() else None


def _machine(doc: dict[str, Any]) -> str:
    m = doc["machine"]
    return (
        f"{m['cpu'] or 'unknown CPU'}, {m['cores']} cores, {m['memory_gib']} GiB, Python {m['python']}, "
        f"Linux {m['kernel']}; commit `{doc['commit']}`, {doc['when']}"
    )


def _v(x: Any) -> str:
    return "—" if x is None else str(x)


def render() -> str:
    out = [
        "# Benchmarks",
        "",
        "Figures are printed and recorded by the scripts in `bench/` (never by timed tests) into",
        "`bench/results/`; this page is generated from the latest results by `python -m bench.report`.",
        "Reproduce with:",
        "",
        "```sh",
        ".venv/bin/python -m bench.networkmap_bench     # network-map engine, ~40 s",
        ".venv/bin/python -m bench.sync_e2e --peers 1000 --duration 20   # end to end, ~1 min",
        ".venv/bin/python -m bench.server_memory        # 30,000 peers in a real server, ~30 s",
        ".venv/bin/python -m bench.report               # rewrite this page",
        "```",
        "",
    ]
    nm = _load("networkmap")
    if nm:
        out += [
            "## Network-map engine",
            "",
            f"Machine: {_machine(nm)}.",
            "",
            "Accounts: the reference's synthetic shape (§6.1 of the reference notes: N peers in G groups of",
            "N/G consecutive peers plus a group with everyone; min(G, 20) routes `10.r.0.0/16` served by",
            "peer group `group-(r mod G)`, distributed to everyone, access-controlled by the serving",
            "group) and a route-heavy account (5,000 peers, 200 groups, 1,000 /24 routes: 3/4 served by",
            "a 25-peer group and 1/4 by a single peer, half distributed to everyone and half to one group,",
            "a third with access-control groups). Times are wall-clock milliseconds on one core;",
            "*state* is the engine's memory for the account (tracemalloc).",
            "",
            "| account | state MiB | build ms | one map: routing peer ms | one map: other peer ms "
            "| all maps from scratch ms | route change ms (peers with a delta) "
            "| group-membership change ms (peers with a delta) |",
            "|---|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for r in nm["rows"]:
            out.append(
                f"| {r['account']} | {r['state_mib']} | {r['build_ms']} | {r['map_routing_peer_ms']} "
                f"| {r['map_distribution_peer_ms']} | {_v(r['all_maps_ms'])} "
                f"| {r['route_change_ms']} ({r['route_change_deltas']}) "
                f"| {r['group_change_ms']} ({r['group_change_deltas']}) |"
            )
        five = next((r for r in nm["rows"] if r["account"] == "synthetic 5000/200"), None)
        thirty = next((r for r in nm["rows"] if r["account"] == "synthetic 30000/300"), None)
        out += ["", "Goals and the reference's published budgets, side by side:", ""]
        out += ["| figure | goal | measured | NetBird's budget |", "|---|---|---|---|"]
        if five:
            out.append(
                f"| one route change at 5,000 peers / 200 groups: every affected peer's delta | ≤ 50 ms "
                f"| {five['route_change_ms']} ms ({five['route_change_deltas']} deltas) "
                "| 800-1,700 ms locally for one account-wide update (`BenchmarkUpdateAccountPeers` Large, "
                "full maps computed and sent, logged only) |"
            )
        if thirty:
            out.append(f"| state for 30,000 peers | ≤ 1 GiB | {thirty['state_mib']} MiB engine state | — |")
        out.append("")
    mem = _load("server_memory")
    if mem:
        out += [
            "## Server memory with a large account",
            "",
            f"Machine: {_machine(mem)}. {mem['peers']:,} peers in {mem['groups']} groups and "
            f"{mem['routes']} routes",
            "(the synthetic shape) written to a SQLite store, then a real `meshroute server` process started",
            "on it; the first network-map request makes it build the account's in-memory state.",
            "",
            "| figure | value |",
            "|---|---:|",
            f"| server RSS idle (MiB) | {mem['server_rss_idle_mib']} |",
            "| **server RSS with the account's state built (MiB)** (goal ≤ 1,024) "
            f"| **{mem['server_rss_loaded_mib']}** |",
            f"| server peak RSS (MiB) | {mem['server_rss_peak_mib']} |",
            "| first map over REST, including loading the account (ms) "
            f"| {mem['first_map_ms_incl_state_load']} |",
            f"| a later map over REST ({mem['map_peers']:,} peers in it, JSON) (ms) "
            f"| {mem['later_map_ms']} |",
            "",
        ]
    for name in ("sync_e2e", "sync_e2e_replicas"):
        e2e = _load(name)
        if e2e:
            out += _e2e(e2e)
    return "\n".join(out)


def _e2e(e2e: dict[str, Any]) -> list[str]:
    s = e2e["sim"]
    two = e2e.get("replicas", 1) == 2
    where = (
        "Two server replicas share one PostgreSQL database: the agents hold their streams on replica B "
        "while the simulator makes its changes through replica A's API, so every change crosses "
        "replicas through LISTEN/NOTIFY."
        if two
        else f"One server process (store: {e2e['store']})."
    )
    rows = [
        f"## End to end: simulated agents{' across two replicas' if two else ''}",
        "",
        f"Machine: {_machine(e2e)}. {where} The servers and `meshroute sim` run as separate processes",
        "on the same 2-core machine. The simulator registers the peers with a setup key, holds one",
        f"sync stream each, creates a route distributed to everyone and changes its metric every "
        f"{e2e['change_interval_s']} s",
        f"for {e2e['duration_s']} s. Latency is the time from the API call returning to each agent having",
        "applied the change (an agent that had it before the HTTP response arrived counts as 0), and,",
        "for comparison, from the request being sent.",
        "",
        "| figure | value |",
        "|---|---:|",
        f"| agents | {s['peers']} |",
        f"| registration of all agents (s) | {s['register_s']} |",
        f"| first full maps to all agents (s) | {s['first_maps_s']} |",
        f"| changes made | {s['changes']} |",
        f"| agents updated per change | {s['affected_per_change']} |",
        f"| deltas applied | {s['updates_applied']} |",
        f"| **p50 after the API returned (ms)** | **{_v(s['p50_ms'])}** |",
        f"| **p99 after the API returned (ms)** (goal ≤ 1,000) | **{_v(s['p99_ms'])}** |",
        f"| max after the API returned (ms) | {_v(s['max_ms'])} |",
        f"| p50 / p99 from the request being sent (ms) | {_v(s.get('p50_since_request_ms'))} / "
        f"{_v(s.get('p99_since_request_ms'))} |",
        f"| maps differing from the server's computation | {s['mismatches']} |",
        f"| serial gaps / errors | {s['serial_gaps']} / {len(s['errors'])} |",
        f"| {'replica A' if two else 'server'} memory: idle / after / peak (MiB RSS) "
        f"| {e2e['server_rss_idle_mib']} / {e2e['server_rss_end_mib']} / {e2e['server_rss_peak_mib']} |",
    ]
    if two and e2e.get("replica_b_rss_end_mib") is not None:
        rows.append(
            f"| replica B memory (holding the streams): after / peak (MiB RSS) "
            f"| {e2e['replica_b_rss_end_mib']} / {e2e['replica_b_rss_peak_mib']} |"
        )
    return [*rows, ""]


def main() -> None:
    DOC.write_text(render())
    print(f"wrote {DOC}")


if __name__ == "__main__":
    main()
