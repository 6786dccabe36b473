"""Applying network maps to WireGuard: the agent's reconciler over the UAPI socket, side by side
with `wg setconf` / `wg set` on the same configuration, in the same run.

A full map of N peers (default 1,000) goes into a fresh wireguard-go; then one-peer deltas (a
peer's AllowedIPs change) are applied one at a time. The same configuration goes through `wg`
on a second fresh wireguard-go. Everything runs in a private network namespace.

    .venv/bin/python -m bench.agent_wireguard [--peers 1000] [--deltas 200]
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

from bench.common import rss_mib, write

NETNS = f"mrb{os.getpid()}"


def _keys(n: int) -> list[str]:
    from meshroute.agent.identity import generate_private_key, public_key

    return [public_key(generate_private_key()) for _ in range(n)]


def _ip(i: int) -> str:
    return f"100.64.{(i + 2) // 256}.{(i + 2) % 256}"


async def _inner(peers: int, deltas: int) -> dict[str, Any]:
    from meshroute.agent.identity import generate_private_key
    from meshroute.agent.reconcile import WireGuardReconciler
    from meshroute.agent.wireguard.model import DeviceSettings, PeerConfig
    from meshroute.agent.wireguard.userspace import UserspaceDevice

    keys = _keys(peers)
    desired = {
        k: PeerConfig(k, (f"{_ip(i)}/32",), f"10.1.{i // 256}.{i % 256}:51820") for i, k in enumerate(keys)
    }
    work = Path(tempfile.mkdtemp(prefix="mrbench"))
    ours = await UserspaceDevice.start("mrb0", work / "a.log")
    theirs = await UserspaceDevice.start("mrb1", work / "b.log")
    try:
        await ours.configure(DeviceSettings(generate_private_key(), 51900, 0x1BD00), [])
        reconciler = WireGuardReconciler(ours)
        t0 = time.perf_counter()
        await reconciler.apply(desired)
        full_ours = (time.perf_counter() - t0) * 1000
        assert len(await ours.peers()) == peers

        t0 = time.perf_counter()
        await ours.peers()
        poll_ms = (time.perf_counter() - t0) * 1000

        ours_delta = []
        for j in range(deltas):
            key = keys[j % peers]
            extra = () if j // peers % 2 else (f"10.200.{j % 250}.0/24",)
            desired[key] = PeerConfig(key, (f"{_ip(j % peers)}/32", *extra), desired[key].endpoint)
            t0 = time.perf_counter()
            ops = await reconciler.apply(desired)
            ours_delta.append((time.perf_counter() - t0) * 1000)
            assert len(ops) == 1

        conf = work / "wg.conf"
        lines = [
            "[Interface]",
            f"PrivateKey = {generate_private_key()}",
            "ListenPort = 51901",
            "FwMark = 0x1bd00",
        ]
        for i, k in enumerate(keys):
            lines += ["", "[Peer]", f"PublicKey = {k}", f"AllowedIPs = {_ip(i)}/32"]
            lines.append(f"Endpoint = 10.1.{i // 256}.{i % 256}:51820")
        conf.write_text("\n".join(lines) + "\n")
        wg = ["nsenter", "-t", str(theirs.pid), "-m", "wg"]
        t0 = time.perf_counter()
        subprocess.run([*wg, "setconf", "mrb1", str(conf)], check=True)
        full_wg = (time.perf_counter() - t0) * 1000
        assert len(await theirs.peers()) == peers
        wg_delta = []
        for j in range(deltas):
            key = keys[j % peers]
            extra = "" if j // peers % 2 else f",10.200.{j % 250}.0/24"
            t0 = time.perf_counter()
            subprocess.run(
                [*wg, "set", "mrb1", "peer", key, "allowed-ips", f"{_ip(j % peers)}/32{extra}"], check=True
            )
            wg_delta.append((time.perf_counter() - t0) * 1000)
        rss_ours = rss_mib(ours.pid)[0]
    finally:
        await ours.close()
        await theirs.close()

    def pct(values: list[float], q: float) -> float:
        ordered = sorted(values)
        return round(ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))], 3)

    return {
        "peers": peers,
        "deltas": deltas,
        "full_map_ms": {"agent_uapi": round(full_ours, 1), "wg_setconf": round(full_wg, 1)},
        "one_peer_delta_ms": {
            "agent_uapi": {"p50": pct(ours_delta, 0.5), "p99": pct(ours_delta, 0.99)},
            "wg_set": {"p50": pct(wg_delta, 0.5), "p99": pct(wg_delta, 0.99)},
        },
        "full_map_ratio_wg_over_agent": round(full_wg / full_ours, 2),
        "delta_ratio_wg_over_agent_p50": round(
            statistics.median(wg_delta) / statistics.median(ours_delta), 1
        ),
        "device_poll_ms": round(poll_ms, 2),
        "wireguard_go_rss_mib": rss_ours,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--peers", type=int, default=1000)
    parser.add_argument("--deltas", type=int, default=200)
    parser.add_argument("--inner", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.inner:
        print(json.dumps(asyncio.run(_inner(args.peers, args.deltas))))
        return
    subprocess.run(["ip", "netns", "add", NETNS], check=True)
    try:
        subprocess.run(["ip", "-n", NETNS, "link", "set", "lo", "up"], check=True)
        out = subprocess.run(
            [
                "ip",
                "netns",
                "exec",
                NETNS,
                sys.executable,
                "-m",
                "bench.agent_wireguard",
                "--inner",
                "--peers",
                str(args.peers),
                "--deltas",
                str(args.deltas),
            ],
            check=True,
            capture_output=True,
            text=True,
            cwd=Path(__file__).parent.parent,
        )
    finally:
        for pid in subprocess.run(
            ["ip", "netns", "pids", NETNS], capture_output=True, text=True
        ).stdout.split():
            os.kill(int(pid), 9)
        subprocess.run(["ip", "netns", "del", NETNS], check=False)
    result = json.loads(out.stdout)
    print(json.dumps(result, indent=2))
    print("wrote", write("agent_wireguard", result))


if __name__ == "__main__":
    main()
