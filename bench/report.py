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
        "<!-- docs-test: skip: each benchmark runs for minutes -->",
        "```sh",
        ".venv/bin/python -m bench.networkmap_bench     # network-map engine, ~40 s",
        ".venv/bin/python -m bench.sync_e2e --peers 1000 --duration 20   # end to end, ~1 min",
        ".venv/bin/python -m bench.server_memory        # 30,000 peers in a real server, ~30 s",
        ".venv/bin/python -m bench.agent_wireguard      # maps into WireGuard vs wg, root, ~5 s",
        ".venv/bin/python -m bench.agent_mesh           # agents in namespaces, root, ~2 min",
        ".venv/bin/python -m bench.agent_routes         # 10,000 kernel routes vs ip -batch, root, ~5 s",
        ".venv/bin/python -m bench.route_failover       # failover gaps and throughput, root, ~4 min",
        ".venv/bin/python -m bench.api_peers            # GET /api/peers at 1,000/5,000/25,000 peers, ~1 min",
        ".venv/bin/python -m bench.dns_interceptor      # latency the DNS interceptor adds, ~20 s",
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
    api = _load("api_peers")
    if api:
        out += _api_peers(api)
    for name in ("sync_e2e", "sync_e2e_replicas"):
        e2e = _load(name)
        if e2e:
            out += _e2e(e2e)
    out += _agent()
    return "\n".join(out)


def _agent() -> list[str]:
    out: list[str] = []
    wg = _load("agent_wireguard")
    if wg:
        full, delta = wg["full_map_ms"], wg["one_peer_delta_ms"]
        out += [
            "## Agent: network maps into WireGuard",
            "",
            f"Machine: {_machine(wg)}. A fresh `wireguard-go` in a private network namespace gets a map of",
            f"{wg['peers']:,} peers from the agent's reconciler (one UAPI transaction), then {wg['deltas']}",
            "one-peer deltas (a peer's AllowedIPs change; each diffs the whole desired peer set). In the",
            "same run a second fresh `wireguard-go` gets the same configuration from `wg setconf`, and",
            "the same deltas from one `wg set` each (what an agent that shells out to `wg` would do).",
            "",
            "| figure | agent (UAPI) | `wg` | ratio |",
            "|---|---:|---:|---:|",
            f"| full map of {wg['peers']:,} peers (ms) | {full['agent_uapi']} | {full['wg_setconf']} "
            f"| {wg['full_map_ratio_wg_over_agent']}x |",
            f"| one-peer delta, p50 (ms) | {delta['agent_uapi']['p50']} | {delta['wg_set']['p50']} "
            f"| {wg['delta_ratio_wg_over_agent_p50']}x |",
            f"| one-peer delta, p99 (ms) | {delta['agent_uapi']['p99']} | {delta['wg_set']['p99']} | |",
            f"| reading every peer's state back (`get`, ms) | {wg['device_poll_ms']} | | |",
            f"| wireguard-go RSS with the map (MiB) | {wg['wireguard_go_rss_mib']} | | |",
            "",
        ]
    mesh = _load("agent_mesh")
    if mesh:
        join, down, idle = mesh["join"], mesh["down_detection_ms"], mesh["idle"]
        out += [
            "## Agent: joining, failure detection, rest",
            "",
            f"Machine: {_machine(mesh)}. Real server and agents in network namespaces (`meshroute.lab`),",
            "userspace WireGuard. Join: three `meshroute agent run` started at once in a fresh world,",
            f"{len(mesh['join_runs'])} worlds; the time includes starting Python. Down detection: a client",
            "receives a route whose routing peer then stops answering probes (its agent is frozen with",
            "SIGSTOP); the time until the client's agent logs it down. Rest: one agent whose map holds",
            f"{idle['peers_in_map']} other peers (registered by `meshroute sim`), measured over",
            f"{idle['idle_seconds']:.0f} s after it settled.",
            "",
            "| figure | median | max |",
            "|---|---:|---:|",
            f"| agents started → all three registered (s) | {join['registered_s']['median']} "
            f"| {join['registered_s']['max']} |",
            f"| agents started → first overlay ping answered (s) | {join['first_ping_s']['median']} "
            f"| {join['first_ping_s']['max']} |",
            f"| agents started → every pair pings (s) | {join['full_mesh_s']['median']} "
            f"| {join['full_mesh_s']['max']} |",
            f"| routing peer silent → seen down, probes every {down['probe_interval_ms']} ms, down after "
            f"{down['down_after']} (ms) | {down['median']} | {down['max']} |",
            "",
            "| agent at rest with a map of " + f"{idle['peers_in_map']} peers | value |",
            "|---|---:|",
            f"| start → every peer in WireGuard (s) | {idle['start_to_all_peers_in_wireguard_s']} |",
            f"| agent CPU (% of one core) | {idle['agent_cpu_percent']} |",
            f"| agent RSS (MiB) | {idle['agent_rss_mib']} |",
            f"| wireguard-go CPU (% of one core) | {idle['wireguard_go_cpu_percent']} |",
            f"| wireguard-go RSS (MiB) | {idle['wireguard_go_rss_mib']} |",
            "",
        ]
    out += _routes()
    return out


def _routes() -> list[str]:
    out: list[str] = []
    fo = _load("route_failover")
    if fo:
        killed, cut = fo["gap_ms_killed"], fo["gap_ms_cut"]
        out += [
            "## Routes: failover and routed throughput",
            "",
            f"Machine: {_machine(fo)}. The lab's world (`meshroute.lab.demo`): a client, two routing peers",
            "in one peer group serving an office LAN, real agents with userspace WireGuard. The client pings",
            "a LAN host every 10 ms; the routing peer carrying the route dies, either *killed* (its agent",
            "and its WireGuard process) or *cut* (its underlay link goes down), and comes back between",
            "runs. The gap is the longest silence in the replies after the event. Probes every",
            f"{fo['probe_interval_ms']} ms, down after {fo['down_after']} misses (the defaults); "
            f"{fo['runs']} runs each way.",
            "",
            "| failover gap (ms) | p50 | p99 | max | goal |",
            "|---|---:|---:|---:|---|",
            f"| routing peer killed | {killed['p50']} | **{killed['p99']}** | {killed['max']} "
            "| p99 ≤ 1,000 |",
            f"| routing peer cut off | {cut['p50']} | **{cut['p99']}** | {cut['max']} | p99 ≤ 1,000 |",
            "",
        ]
        tp = fo.get("throughput")
        if tp:
            out += [
                f"TCP throughput (iperf3, one stream, {tp.get('rounds', 1)} alternated rounds per path, "
                "medians, same run): through the routing peer to the LAN host "
                f"{tp['routed_mbit_s']} Mbit/s, to the routing peer's own overlay address "
                f"{tp['direct_overlay_mbit_s']} Mbit/s: **ratio {tp['ratio']}** (goal ≥ 0.95). "
                "Both are bound by userspace WireGuard on 2 cores: both tunnel ends and the receiver share",
                "them at 100% CPU (Debian's wireguard-go 0.0.20220316 has no TUN offloads), so the routing",
                "peer's forwarding hop (veth, bridge, the receiver in another namespace) comes out of the",
                "same budget. The agent's nftables table is not the cost: with its chains flushed, or only a",
                "masquerade rule left, the routed figures stay within the run-to-run spread.",
                "",
            ]
    rt = _load("agent_routes")
    if rt:
        full, delta = rt["full_s"], rt["one_route_delta_ms"]
        out += [
            "## Routes: kernel routes on an agent",
            "",
            f"Machine: {_machine(rt)}. {rt['routes']:,} routes into table 7120 of a fresh namespace by the",
            "agent's reconciler (batched rtnetlink), side by side with `ip -batch` of the same routes in the",
            f"same run; then {rt['deltas']} one-route changes each way (the agent diffs the whole set",
            "each time).",
            "",
            "| figure | agent | iproute2 |",
            "|---|---:|---:|",
            f"| {rt['routes']:,} routes (s) (goal ≤ 0.5) | **{full['agent']}** "
            f"| {full['ip_batch']} (`ip -batch`) |",
            f"| one-route change, p50 (ms) | {delta['agent']['p50']} "
            f"| {delta['ip_route_add']['p50']} (`ip route add`) |",
            f"| one-route change, p99 (ms) | {delta['agent']['p99']} | {delta['ip_route_add']['p99']} |",
            "| for scale: pyroute2, one call per route (s) "
            f"| {rt['pyroute2_one_call_per_route_s_for_all']} | |",
            "",
        ]
    return out + _dns()


def _dns() -> list[str]:
    d = _load("dns_interceptor")
    if not d:
        return []
    lat, added, qps = d["latency_ms"], d["added_ms"], d["queries_per_second"]
    return [
        "## Domain routes: the client's DNS interceptor",
        "",
        f"Machine: {_machine(d)}.",
        "",
        f"Upstream: {d['upstream']} on loopback; {d['queries_per_path']:,} queries per path, interleaved",
        "query by query: *direct* to the upstream, *passed* through the interceptor (a name outside the",
        "domain routes), *intercepted* (a domain-route name: forwarded, its addresses learned before the",
        "answer returns). Added = the path's latency minus direct, same run.",
        "",
        "| path | p50 (ms) | p99 (ms) | added p50 (ms) | added p99 (ms) | queries/s |",
        "|---|---:|---:|---:|---:|---:|",
        f"| direct | {lat['direct']['p50']} | {lat['direct']['p99']} | | | {qps['direct']:,} |",
        f"| passed | {lat['passed']['p50']} | {lat['passed']['p99']} | {added['passed']['p50']} "
        f"| {added['passed']['p99']} | {qps['passed']:,} |",
        f"| intercepted | {lat['intercepted']['p50']} | {lat['intercepted']['p99']} "
        f"| **{added['intercepted']['p50']}** (goal ≤ {d['goal_added_p50_ms']}) "
        f"| {added['intercepted']['p99']} | {qps['intercepted']:,} |",
        "",
        f"Queries per second with {d['inflight_for_qps']} queries in flight.",
        "",
    ]


def _api_peers(doc: dict[str, Any]) -> list[str]:
    rows = [
        "## REST API: the peer list",
        "",
        f"Machine: {_machine(doc)}. NetBird's peer benchmark scales (peers in groups), each in a fresh",
        "SQLite store served by a real `meshroute server` process; every peer is in one group and in",
        f"All, and the account has min(groups, 20) routes. Median of {doc['repeat']} requests after a",
        "warm-up, including the HTTP round trip on loopback; NetBird's budgets are its published local",
        "figures for the same requests (`peers_handler_benchmark_test.go`, in-process).",
        "",
        "| peers / groups | `GET /api/peers` ms (max) | body KiB | NetBird's budget ms "
        "| `PUT /api/peers/{id}` ms (max) | NetBird's budget ms |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for r in doc["rows"]:
        rows.append(
            f"| {r['peers']:,} / {r['groups']} | **{r['list_median_ms']}** ({r['list_max_ms']}) "
            f"| {r['list_body_kib']:,} | {r['netbird_list_budget_ms']} "
            f"| {r['update_median_ms']} ({r['update_max_ms']}) | {r['netbird_update_budget_ms']} |"
        )
    return [*rows, "", f"Goal: {doc['goal']}.", ""]


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
