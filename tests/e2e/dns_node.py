"""The agent's DNS parts run alone inside a namespace, for tests/e2e/test_dns_parts.py (no agent,
no WireGuard: the engine's side is a few lines here). Prints one JSON object per line: `ready`
once listening, then one per answer the engine would act on.

    python dns_node.py forwarder --listen 172.31.0.12:22054 --route app.internal.test=r-app \
        --source 172.31.0.0/24
    python dns_node.py interceptor --listen 127.0.0.77:53 --route app.internal.test=ha-app \
        --forwarder 172.31.0.12:22054 --state-dir DIR
    python dns_node.py restore --state-dir DIR      # what the agent does first after a crash
    python dns_node.py inuse 10.77.0.20 ...         # which of these conntrack sees connections to
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import ipaddress
import json
import signal
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from meshroute.agent.dns.answers import Address, Answer
from meshroute.agent.dns.forwarder import Forwarder, HostResolver
from meshroute.agent.dns.hostconfig import RESOLV_CONF, ManagedResolvConf, restore_leftovers
from meshroute.agent.dns.interceptor import Interceptor
from meshroute.agent.dns.inuse import connections_to
from meshroute.agent.dns.learned import LearnedAddresses
from meshroute.agent.dns.match import DomainTable
from meshroute.agent.dns.transport import Server
from meshroute.agent.ledger import Ledger


def emit(event: str, **fields: object) -> None:
    print(json.dumps({"event": event, **fields}, sort_keys=True), flush=True)


def server(text: str) -> Server:
    host, _, port = text.rpartition(":")
    return host.strip("[]"), int(port)


def table(routes: Sequence[str]) -> DomainTable:
    """`PATTERN=VALUE` arguments."""
    return DomainTable((r.partition("=")[0], r.partition("=")[2]) for r in routes)


async def until_stopped() -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()


async def forwarder(args: argparse.Namespace) -> None:
    async def on_resolved(routes: Sequence[str], answer: Answer) -> frozenset[Address]:
        emit("resolved", routes=list(routes), name=answer.name, ttl=answer.ttl, addresses=_addresses(answer))
        return frozenset()

    fwd = Forwarder(
        on_resolved,
        HostResolver(args.nameserver or None),  # none given: this namespace's /etc/resolv.conf
        table=table(args.route),
        sources=[ipaddress.ip_network(s) for s in args.source],
    )
    await fwd.start([server(a) for a in args.listen])
    emit("ready", bound=[list(b) for b in fwd.bound])
    await until_stopped()
    await fwd.stop()
    emit("stopped")


async def interceptor(args: argparse.Namespace) -> None:
    Path(args.state_dir).mkdir(parents=True, exist_ok=True)
    ledger = Ledger(Path(args.state_dir))
    done = await restore_leftovers(ledger)  # an earlier run was killed: put things back first
    ledger.path.unlink(missing_ok=True)
    if done:
        emit("leftovers", restored=done)
    host = ManagedResolvConf(ledger, Path(args.resolv_conf))
    host.install()
    learned = LearnedAddresses()
    forwarder_at = server(args.forwarder)

    async def resolver_for(ha_id: str) -> Server | None:
        return forwarder_at

    async def on_answer(ha_id: str, answer: Answer) -> None:
        out = learned.learn_answer(ha_id, answer, time.monotonic(), keep_route=False)
        emit("learned", ha_id=ha_id, name=answer.name, ttl=answer.ttl, added=sorted(out.added))

    icpt = Interceptor(resolver_for, on_answer, host.upstreams, table=table(args.route))
    try:
        await icpt.start([server(a) for a in args.listen])
        emit("ready", bound=[list(b) for b in icpt.bound], upstreams=[list(u) for u in icpt.upstreams])
        await until_stopped()
    finally:
        await icpt.stop()
        host.restore()
    emit("stopped", stats=dataclasses.asdict(icpt.stats))


async def inuse(args: argparse.Namespace) -> None:
    used = await connections_to(args.address)
    emit("inuse", used={a: a in used for a in args.address})


async def restore(args: argparse.Namespace) -> None:
    ledger = Ledger(Path(args.state_dir))
    done = await restore_leftovers(ledger)
    ledger.path.unlink(missing_ok=True)
    emit("restored", done=done)


def _addresses(answer: Answer) -> list[str]:
    return sorted(str(a) for a in answer.all_addresses())


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="what", required=True)
    fwd = sub.add_parser("forwarder")
    fwd.add_argument("--listen", action="append", required=True)
    fwd.add_argument("--route", action="append", default=[])
    fwd.add_argument("--source", action="append", default=[])
    fwd.add_argument("--nameserver", action="append", default=[])
    icpt = sub.add_parser("interceptor")
    icpt.add_argument("--listen", action="append", required=True)
    icpt.add_argument("--route", action="append", default=[])
    icpt.add_argument("--forwarder", required=True)
    icpt.add_argument("--state-dir", required=True)
    icpt.add_argument("--resolv-conf", default=str(RESOLV_CONF))
    use = sub.add_parser("inuse")
    use.add_argument("address", nargs="+")
    rest = sub.add_parser("restore")
    rest.add_argument("--state-dir", required=True)
    args = parser.parse_args(argv)
    runner = {"forwarder": forwarder, "interceptor": interceptor, "inuse": inuse, "restore": restore}[
        args.what
    ]
    try:
        asyncio.run(runner(args))
    except Exception as exc:
        emit("error", error=repr(exc))
        sys.exit(1)


if __name__ == "__main__":
    main()
