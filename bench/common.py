"""Helpers shared by the benchmarks: machine description and result files."""

from __future__ import annotations

import json
import os
import platform
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

RESULTS = Path(__file__).parent / "results"
MESHROUTE = [sys.executable, "-m", "meshroute.cli.main"]


def machine() -> dict[str, Any]:
    cpu = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_kb = 0
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                mem_kb = int(line.split()[1])
    except OSError:
        pass
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gib": round(mem_kb / 1024 / 1024, 1),
        "python": platform.python_version(),
        "kernel": platform.release(),
    }


def git_rev() -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True
        )
        return out.stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def write(name: str, payload: dict[str, Any]) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    doc = {"benchmark": name, "when": stamp, "commit": git_rev(), "machine": machine(), **payload}
    path = RESULTS / f"{name}-{stamp}.json"
    path.write_text(json.dumps(doc, indent=2) + "\n")
    (RESULTS / f"{name}-latest.json").write_text(json.dumps(doc, indent=2) + "\n")
    return path


def rss_mib(pid: int) -> tuple[float, float]:
    """(current RSS, peak RSS) of a process in MiB, from /proc."""
    cur = peak = 0
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            cur = int(line.split()[1])
        elif line.startswith("VmHWM:"):
            peak = int(line.split()[1])
    return round(cur / 1024, 1), round(peak / 1024, 1)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def running_server(data_dir: Path, token: str, *extra: str) -> Iterator[tuple[int, httpx.Client]]:
    """A real `meshroute server` process on `data_dir` (free ports), its pid and an API client
    authenticated with `token`; ready once the API answers. Logs go to `data_dir/server.log`."""
    port = free_port()
    api = httpx.Client(
        base_url=f"http://127.0.0.1:{port}", headers={"Authorization": f"Token {token}"}, timeout=300
    )
    log = (data_dir / "server.log").open("w")
    argv = [*MESHROUTE, "server", "--data-dir", str(data_dir), "--listen", f"127.0.0.1:{port}"]
    argv += ["--sync-listen", f"127.0.0.1:{free_port()}", "--log-level", "warning", *extra]
    server = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                if api.get("/api/users/current").is_success:
                    break
            except httpx.TransportError:
                pass
            if server.poll() is not None or time.monotonic() > deadline:
                raise SystemExit((data_dir / "server.log").read_text())
            time.sleep(0.2)
        yield server.pid, api
    finally:
        server.terminate()
        server.wait(timeout=30)
        log.close()
        api.close()
