"""End to end: N simulated agents on a real server; time from the API call returning to every
affected agent having applied the change.

    .venv/bin/python -m bench.sync_e2e [--peers 1000] [--duration 20] [--postgres URL [--replicas 2]]

Starts `meshroute server` (SQLite in a temp dir, or the given PostgreSQL database, which must be
empty) and `meshroute sim` as separate processes, prints the sim's figures plus the server's
memory, and records them in bench/results/sync_e2e-*.json. With two replicas on PostgreSQL the
agents hold their streams on replica B while the changes are made through replica A's API
(recorded as sync_e2e_replicas-*.json).
"""

from __future__ import annotations

import argparse
import json
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from bench.common import rss_mib, write

MESHROUTE = [sys.executable, "-m", "meshroute.cli.main"]


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--peers", type=int, default=1000)
    ap.add_argument("--duration", type=float, default=20)
    ap.add_argument("--interval", type=float, default=1.0)
    ap.add_argument("--postgres", default=None, help="SQLAlchemy URL of an empty PostgreSQL database")
    ap.add_argument("--replicas", type=int, choices=(1, 2), default=1)
    args = ap.parse_args()
    if args.replicas == 2 and not args.postgres:
        raise SystemExit("two replicas need --postgres")

    tmp = Path(tempfile.mkdtemp(prefix="meshroute-bench-"))
    api_port, sync_port = _port(), _port()
    cmd = [
        *MESHROUTE,
        "server",
        "--data-dir",
        str(tmp),
        "--listen",
        f"127.0.0.1:{api_port}",
        "--sync-listen",
        f"127.0.0.1:{sync_port}",
        "--log-level",
        "warning",
    ]
    if args.postgres:
        cmd += ["--database-url", args.postgres]
    log = (tmp / "server.log").open("w")
    server = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
    extra: list[subprocess.Popen[bytes]] = []
    api = f"http://127.0.0.1:{api_port}"
    try:
        deadline = time.monotonic() + 60
        while not (tmp / "admin-token").exists() or not _up(api, (tmp / "admin-token").read_text().strip()):
            if server.poll() is not None or time.monotonic() > deadline:
                raise SystemExit("server did not start:\n" + (tmp / "server.log").read_text())
            time.sleep(0.2)
        token = (tmp / "admin-token").read_text().strip()
        key = httpx.post(
            f"{api}/api/setup-keys",
            headers={"Authorization": f"Token {token}"},
            json={
                "name": "bench",
                "type": "reusable",
                "expires_in": 86400,
                "auto_groups": [],
                "usage_limit": 0,
            },
        ).json()["key"]
        idle_rss, _ = rss_mib(server.pid)
        sim_server = f"127.0.0.1:{sync_port}"
        if args.replicas == 2:
            b_sync = _port()
            replica = subprocess.Popen(
                [
                    *MESHROUTE,
                    "server",
                    "--data-dir",
                    str(tmp / "b"),
                    "--listen",
                    f"127.0.0.1:{_port()}",
                    "--sync-listen",
                    f"127.0.0.1:{b_sync}",
                    "--log-level",
                    "warning",
                    "--database-url",
                    args.postgres,
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
            extra.append(replica)
            _wait_port(b_sync, replica)
            sim_server = f"127.0.0.1:{b_sync}"  # agents on B, changes through A's API
        out = subprocess.run(
            [
                *MESHROUTE,
                "sim",
                "--sync",
                sim_server,
                "--setup-key",
                key,
                "--peers",
                str(args.peers),
                "--duration",
                str(args.duration),
                "--change-interval",
                str(args.interval),
                "--api",
                api,
                "--token",
                token,
                "--json",
            ],
            capture_output=True,
            text=True,
            timeout=3600,
        )
        if out.returncode != 0:
            raise SystemExit(f"sim failed ({out.returncode}):\n{out.stderr}\n{out.stdout}")
        sim = json.loads(out.stdout)
        rss, peak = rss_mib(server.pid)
        b_rss, b_peak = rss_mib(extra[0].pid) if extra else (None, None)
    finally:
        for proc in [server, *extra]:
            proc.terminate()
            proc.wait(timeout=30)
        log.close()
    result = {
        "store": "postgresql" if args.postgres else "sqlite",
        "replicas": args.replicas,
        "peers": args.peers,
        "duration_s": args.duration,
        "change_interval_s": args.interval,
        "sim": sim,
        "server_rss_idle_mib": idle_rss,
        "server_rss_end_mib": rss,
        "server_rss_peak_mib": peak,
        "replica_b_rss_end_mib": b_rss,
        "replica_b_rss_peak_mib": b_peak,
        "goal": "p99 <= 1000 ms after the API returns, 1,000 agents",
    }
    path = write("sync_e2e" if args.replicas == 1 else "sync_e2e_replicas", result)
    print(json.dumps(result, indent=2))
    print(f"recorded in {path}")


def _wait_port(port: int, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while True:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        if proc.poll() is not None or time.monotonic() > deadline:
            raise SystemExit("replica B did not start")
        time.sleep(0.2)


def _up(api: str, token: str) -> bool:
    try:
        return httpx.get(f"{api}/api/users/current", headers={"Authorization": f"Token {token}"}).is_success
    except httpx.TransportError:
        return False


if __name__ == "__main__":
    main()
