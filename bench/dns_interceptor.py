"""Latency the client's DNS interceptor adds, compared with asking the same upstream directly in the
same run, and queries per second through it. Everything on loopback, in three processes: the
upstream (dnsmasq when installed, else a small dnspython server), the interceptor (as the agent runs
it, with `on_answer` learning into `LearnedAddresses`) and the client (raw UDP sockets, so its own
cost is the same on both paths and cancels out).

Three paths, interleaved query by query so that drift hits all alike:
- direct:       client -> upstream
- passed:       client -> interceptor -> upstream (a name outside the domain routes)
- intercepted:  client -> interceptor -> upstream as the routing peer's forwarder -> on_answer

    .venv/bin/python -m bench.dns_interceptor [--queries 1000] [--qps-seconds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import json
import os
import selectors
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import dns.message
import dns.rcode
import dns.rrset

from bench.common import free_port, write

PASSED = "www.outside.test"
ROUTED = "app.internal.test"


# -- the upstream ---------------------------------------------------------------------------------
def start_upstream(port: int, workdir: Path) -> tuple[subprocess.Popen[bytes], str]:
    records = [f"--host-record={PASSED},192.0.2.80", f"--host-record={ROUTED},10.77.0.20"]
    if shutil.which("dnsmasq"):
        argv = ["dnsmasq", "--keep-in-foreground", "--conf-file=/dev/null", "--no-resolv", "--no-hosts"]
        argv += ["--no-poll", "--listen-address=127.0.0.1", "--bind-interfaces", f"--port={port}"]
        argv += ["--local=/test/", "--pid-file=", "--log-facility=/dev/null", *records]
        if os.geteuid() == 0:
            argv.append("--user=root")
        kind = "dnsmasq"
    else:
        argv = [sys.executable, "-m", "bench.dns_interceptor", "--upstream", str(port)]
        kind = "python (dnspython, asyncio)"
    proc = subprocess.Popen(argv, stdout=(workdir / "upstream.log").open("wb"), stderr=subprocess.STDOUT)
    return proc, kind


async def serve_upstream(port: int) -> None:
    """The fallback upstream: answers the two names (A), NXDOMAIN for others."""
    answers = {PASSED: "192.0.2.80", ROUTED: "10.77.0.20"}

    class Proto(asyncio.DatagramProtocol):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            self.transport: Any = transport

        def datagram_received(self, data: bytes, addr: Any) -> None:
            query = dns.message.from_wire(data)
            reply = dns.message.make_response(query)
            name = query.question[0].name.to_text(omit_final_dot=True)
            if name in answers:
                reply.answer.append(dns.rrset.from_text(name + ".", 60, "IN", "A", answers[name]))
            else:
                reply.set_rcode(dns.rcode.NXDOMAIN)
            self.transport.sendto(reply.to_wire(), addr)

    loop = asyncio.get_running_loop()
    await loop.create_datagram_endpoint(Proto, local_addr=("127.0.0.1", port))
    await asyncio.Event().wait()


# -- the interceptor ------------------------------------------------------------------------------
async def serve_interceptor(port: int, upstream: int) -> None:
    from meshroute.agent.dns.answers import Address, Answer
    from meshroute.agent.dns.interceptor import Interceptor
    from meshroute.agent.dns.learned import LearnedAddresses
    from meshroute.agent.dns.match import DomainTable

    learned = LearnedAddresses()
    at = ("127.0.0.1", upstream)

    async def resolver_for(ha_id: str) -> tuple[str, int]:
        return at

    async def on_answer(ha_id: str, answer: Answer) -> frozenset[Address]:
        result = learned.learn_answer(ha_id, answer, time.monotonic(), keep_route=False)
        return frozenset(ipaddress.ip_address(a) for a in result.refused)  # as the agent does

    table = DomainTable([("app.internal.test", "ha-app"), ("*.svc.internal.test", "ha-svc")])
    icpt = Interceptor(resolver_for, on_answer, [at], table=table)
    await icpt.start([("127.0.0.1", port)])
    print("ready", flush=True)
    await asyncio.Event().wait()


# -- the client -----------------------------------------------------------------------------------
def _query(name: str) -> bytearray:
    return bytearray(dns.message.make_query(name, "A", use_edns=0).to_wire())


def ask(sock: socket.socket, wire: bytearray, qid: int) -> float:
    wire[0:2] = qid.to_bytes(2, "big")
    t0 = time.perf_counter()
    sock.send(wire)
    while True:
        data = sock.recv(4096)
        if data[:2] == wire[:2]:
            return time.perf_counter() - t0


def latencies(interceptor: int, upstream: int, n: int) -> dict[str, list[float]]:
    paths = {
        "direct": (upstream, _query(PASSED)),
        "passed": (interceptor, _query(PASSED)),
        "intercepted": (interceptor, _query(ROUTED)),
    }
    socks = {}
    for path, (port, _) in paths.items():
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.settimeout(2)
        s.connect(("127.0.0.1", port))
        socks[path] = s
    out: dict[str, list[float]] = {p: [] for p in paths}
    for i in range(n + 100):  # the first 100 of each warm up and are not counted
        for path, (_, wire) in paths.items():
            took = ask(socks[path], wire, (i * 3 + len(out[path])) & 0xFFFF)
            if i >= 100:
                out[path].append(took)
    for s in socks.values():
        s.close()
    return out


def qps(port: int, name: str, seconds: float, inflight: int = 32) -> float:
    """Queries per second with `inflight` outstanding at all times (one UDP socket each)."""
    sel = selectors.DefaultSelector()
    wire = _query(name)
    socks = []
    for _ in range(inflight):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.setblocking(False)
        s.connect(("127.0.0.1", port))
        sel.register(s, selectors.EVENT_READ)
        socks.append(s)
        s.send(wire)
    done = 0
    deadline = time.perf_counter() + seconds
    t0 = time.perf_counter()
    while time.perf_counter() < deadline:
        for key, _ in sel.select(timeout=1.0):
            sock: socket.socket = key.fileobj  # type: ignore[assignment]
            sock.recv(4096)
            done += 1
            sock.send(wire)
    elapsed = time.perf_counter() - t0
    for s in socks:
        s.close()
    return done / elapsed


def summary(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)

    def q(p: float) -> float:
        return round(ordered[min(len(ordered) - 1, round(p * (len(ordered) - 1)))] * 1000, 3)

    return {"p50": q(0.5), "p90": q(0.9), "p99": q(0.99), "mean": round(statistics.mean(values) * 1000, 3)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--qps-seconds", type=float, default=3.0)
    parser.add_argument("--upstream", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--interceptor", type=int, nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.upstream:
        asyncio.run(serve_upstream(args.upstream))
        return
    if args.interceptor:
        asyncio.run(serve_interceptor(*args.interceptor))
        return
    workdir = Path(tempfile.mkdtemp(prefix="mrbench-dns"))
    up_port, icpt_port = free_port(), free_port()
    upstream, kind = start_upstream(up_port, workdir)
    icpt = subprocess.Popen(
        [sys.executable, "-m", "bench.dns_interceptor", "--interceptor", str(icpt_port), str(up_port)],
        stdout=subprocess.PIPE,
        stderr=(workdir / "interceptor.log").open("wb"),
        cwd=Path(__file__).parent.parent,
    )
    try:
        assert icpt.stdout is not None
        if icpt.stdout.readline().strip() != b"ready":
            raise SystemExit((workdir / "interceptor.log").read_text())
        time.sleep(0.3)  # dnsmasq listens
        runs = latencies(icpt_port, up_port, args.queries)
        rates = {
            "direct": qps(up_port, PASSED, args.qps_seconds),
            "passed": qps(icpt_port, PASSED, args.qps_seconds),
            "intercepted": qps(icpt_port, ROUTED, args.qps_seconds),
        }
    finally:
        for proc in (icpt, upstream):
            proc.terminate()
            proc.wait(timeout=10)
        shutil.rmtree(workdir, ignore_errors=True)
    lat = {path: summary(values) for path, values in runs.items()}
    added = {
        path: {
            "p50": round(lat[path]["p50"] - lat["direct"]["p50"], 3),
            "p99": round(lat[path]["p99"] - lat["direct"]["p99"], 3),
        }
        for path in ("passed", "intercepted")
    }
    result = {
        "upstream": kind,
        "queries_per_path": args.queries,
        "latency_ms": lat,
        "added_ms": added,
        "goal_added_p50_ms": 0.3,
        "queries_per_second": {k: round(v) for k, v in rates.items()},
        "inflight_for_qps": 32,
    }
    print(json.dumps(result, indent=2))
    print("wrote", write("dns_interceptor", result))


if __name__ == "__main__":
    main()
