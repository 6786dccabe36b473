"""The routing peer's forwarder with the host resolver pointed at a fake upstream on loopback
(dns/forwarder.py)."""

from __future__ import annotations

import asyncio
import ipaddress
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

import dns.asyncquery
import dns.flags
import dns.message
import dns.name
import dns.opcode
import dns.rcode
import dns.rdatatype

from meshroute.agent.dns.answers import Address, Answer
from meshroute.agent.dns.forwarder import Forwarder, HostResolver, ResolveError
from meshroute.agent.dns.match import DomainTable
from meshroute.agent.dns.transport import Server
from tests.unit.agent.fakes import run

from .fakedns import FakeUpstream

LAN = {
    "app.internal.test": ["app.internal.test. 600 IN A 10.77.0.20"],
    "a.svc.internal.test": [
        "a.svc.internal.test. 86400 IN CNAME lb.internal.test.",
        "lb.internal.test. 86400 IN A 10.77.0.31",
        "lb.internal.test. 86400 IN A 10.77.0.32",
    ],
    "svc.internal.test": ["svc.internal.test. 60 IN A 10.77.0.30"],
    "mail.internal.test": [
        "mail.internal.test. 60 IN MX 10 mx.internal.test.",
        "mail.internal.test. 60 IN A 10.77.0.25",
    ],
    "both.internal.test": ["both.internal.test. 60 IN A 10.77.0.26"],
    "big.internal.test": [f"big.internal.test. 60 IN A 10.78.{i // 250}.{i % 250}" for i in range(120)],
    "loop.internal.test": ["loop.internal.test. 60 IN A 127.0.0.1", "loop.internal.test. 60 IN A 100.64.0.3"],
}
OVERLAY = [ipaddress.ip_network("100.64.0.0/10"), ipaddress.ip_network("127.0.0.0/8")]
CLIENT = "127.0.0.1"  # the tests' client; an overlay address in real life


class Engine:
    def __init__(self) -> None:
        self.resolved: list[tuple[tuple[str, ...], Answer]] = []
        self.gate: asyncio.Event | None = None
        self.fail = False
        self.full: set[str] = set()  # addresses no set can take

    async def on_resolved(self, routes: Sequence[str], answer: Answer) -> frozenset[Address]:
        if self.gate is not None:
            await self.gate.wait()
        if self.fail:
            raise RuntimeError("nft said no")
        self.resolved.append((tuple(routes), answer))
        return frozenset(a for a in answer.all_addresses() if str(a) in self.full)


def routes() -> DomainTable:
    return DomainTable(
        [
            ("app.internal.test", "r-app"),
            ("*.svc.internal.test", "r-svc"),
            ("mail.internal.test", "r-app"),
            ("both.internal.test", "r-app"),
            ("*.internal.test", "r-all"),
        ]
    )


Scenario = Callable[[Forwarder, Server, Engine, FakeUpstream], Awaitable[None]]


def scenario(test: Scenario, **upstream: Any) -> None:
    async def main() -> None:
        async with FakeUpstream(LAN, **upstream) as lan:
            engine = Engine()
            fwd = Forwarder(
                engine.on_resolved,
                HostResolver(["127.0.0.1"], port=lan.address[1], timeout=0.5),
                table=routes(),
                sources=[ipaddress.ip_network("127.0.0.0/8")],
                overlay=[OVERLAY[0]],
                max_ttl=3600,
            )
            (at,) = await fwd.start([("127.0.0.1", 0)])
            try:
                await test(fwd, at, engine, lan)
            finally:
                await fwd.stop()

    run(main())


async def ask(
    at: Server, name: str, rdtype: str = "A", *, tcp: bool = False, **kw: Any
) -> dns.message.Message:
    q = dns.message.make_query(name, rdtype, **kw)
    if tcp:
        return await dns.asyncquery.tcp(q, at[0], port=at[1], timeout=3)
    return await dns.asyncquery.udp(q, at[0], port=at[1], timeout=3)


def addresses(reply: dns.message.Message) -> set[str]:
    return {r.address for rrset in reply.answer if rrset.rdtype in (1, 28) for r in rrset}


def test_a_route_name_is_resolved_and_its_addresses_reach_the_set_before_the_answer() -> None:
    async def test(fwd: Forwarder, at: Server, engine: Engine, lan: FakeUpstream) -> None:
        engine.gate = asyncio.Event()
        client = asyncio.create_task(ask(at, "App.Internal.Test"))
        await asyncio.sleep(0.15)
        assert lan.names() == ["app.internal.test"] and not client.done()
        engine.gate.set()
        reply = await client
        assert reply.rcode() == dns.rcode.NOERROR and addresses(reply) == {"10.77.0.20"}
        assert reply.flags & dns.flags.RA
        ((route_ids, answer),) = engine.resolved
        # most specific first, and every route whose domains cover the name
        assert route_ids == ("r-app", "r-all")
        assert answer.name == "app.internal.test" and answer.ttl == 600

    scenario(test)


def test_names_outside_the_served_routes_are_refused_and_never_resolved() -> None:
    async def test(fwd: Forwarder, at: Server, engine: Engine, lan: FakeUpstream) -> None:
        for name in ("www.example.com", "internal.test", "app.internal.test.evil.test"):
            assert (await ask(at, name)).rcode() == dns.rcode.REFUSED
        assert lan.queries == [] and engine.resolved == [] and fwd.stats.refused == 3

    scenario(test)


def test_the_wildcard_base_is_not_a_subdomain_on_the_routing_peer_either() -> None:
    async def test(fwd: Forwarder, at: Server, engine: Engine, lan: FakeUpstream) -> None:
        fwd.table = DomainTable([("*.svc.internal.test", "r-svc")])
        assert (await ask(at, "svc.internal.test")).rcode() == dns.rcode.REFUSED
        reply = await ask(at, "a.svc.internal.test")
        assert addresses(reply) == {"10.77.0.31", "10.77.0.32"}
        assert engine.resolved[0][0] == ("r-svc",)

    scenario(test)


def test_only_the_mesh_may_ask() -> None:
    async def test(fwd: Forwarder, at: Server, engine: Engine, lan: FakeUpstream) -> None:
        fwd.sources = [ipaddress.ip_network("100.64.0.0/10")]
        assert (await ask(at, "app.internal.test")).rcode() == dns.rcode.REFUSED
        assert lan.queries == []

    scenario(test)


def test_only_routes_the_client_may_use_are_answered_and_taught() -> None:
    async def test(fwd: Forwarder, at: Server, engine: Engine, lan: FakeUpstream) -> None:
        allowed = {(CLIENT, "r-all")}
        fwd.permitted = lambda client, route: (client, route) in allowed
        await ask(at, "app.internal.test")
        assert engine.resolved[-1][0] == ("r-all",)  # not r-app: this client is not in its groups
        allowed.clear()
        assert (await ask(at, "app.internal.test")).rcode() == dns.rcode.REFUSED
        assert len(lan.queries) == 1

    scenario(test)


def test_ttls_are_clamped_and_a_cname_chain_is_passed_on() -> None:
    async def test(fwd: Forwarder, at: Server, engine: Engine, lan: FakeUpstream) -> None:
        reply = await ask(at, "a.svc.internal.test")
        assert [rrset.rdtype for rrset in reply.answer] == [dns.rdatatype.CNAME, dns.rdatatype.A]
        assert {rrset.ttl for rrset in reply.answer} == {3600}
        ((route_ids, answer),) = engine.resolved
        assert route_ids == ("r-svc", "r-all")
        assert answer.name == "a.svc.internal.test" and answer.ttl == 3600
        assert {str(a) for a in answer.all_addresses()} == {"10.77.0.31", "10.77.0.32"}

    scenario(test)


def test_nxdomain_stays_nxdomain_and_teaches_nothing() -> None:
    async def test(fwd: Forwarder, at: Server, engine: Engine, lan: FakeUpstream) -> None:
        reply = await ask(at, "gone.internal.test")
        assert reply.rcode() == dns.rcode.NXDOMAIN and engine.resolved == []

    scenario(test)


def test_other_types_are_passed_on_and_meta_types_are_not_implemented() -> None:
    async def test(fwd: Forwarder, at: Server, engine: Engine, lan: FakeUpstream) -> None:
        mx = await ask(at, "mail.internal.test", "MX")
        assert [rrset.rdtype for rrset in mx.answer] == [dns.rdatatype.MX] and engine.resolved == []
        txt = await ask(at, "app.internal.test", "TXT")
        assert txt.rcode() == dns.rcode.NOERROR and txt.answer == []
        assert (await ask(at, "both.internal.test", "ANY")).rcode() == dns.rcode.NOTIMP
        assert (await ask(at, "app.internal.test", "AXFR", tcp=True)).rcode() == dns.rcode.NOTIMP

    scenario(test)


def test_an_upstream_failure_is_servfail() -> None:
    async def test(fwd: Forwarder, at: Server, engine: Engine, lan: FakeUpstream) -> None:
        assert (await ask(at, "app.internal.test")).rcode() == dns.rcode.SERVFAIL
        assert fwd.stats.failed == 1

    scenario(test, rcode=dns.rcode.SERVFAIL)
    scenario(test, silent=True)


def test_when_the_set_cannot_be_updated_the_client_gets_servfail() -> None:
    async def test(fwd: Forwarder, at: Server, engine: Engine, lan: FakeUpstream) -> None:
        engine.fail = True
        assert (await ask(at, "app.internal.test")).rcode() == dns.rcode.SERVFAIL

    scenario(test)


def test_addresses_no_set_can_take_are_left_out_and_servfail_when_none_is_left() -> None:
    async def test(fwd: Forwarder, at: Server, engine: Engine, lan: FakeUpstream) -> None:
        engine.full = {"10.77.0.32"}
        reply = await ask(at, "a.svc.internal.test")
        assert [rrset.rdtype for rrset in reply.answer] == [dns.rdatatype.CNAME, dns.rdatatype.A]
        assert addresses(reply) == {"10.77.0.31"}
        engine.full = {"10.77.0.31", "10.77.0.32"}
        assert (await ask(at, "a.svc.internal.test")).rcode() == dns.rcode.SERVFAIL
        assert fwd.stats.failed == 1

    scenario(test)


def test_overlay_and_loopback_answers_are_passed_on_but_never_added_to_a_set() -> None:
    async def test(fwd: Forwarder, at: Server, engine: Engine, lan: FakeUpstream) -> None:
        reply = await ask(at, "loop.internal.test")
        assert addresses(reply) == {"127.0.0.1", "100.64.0.3"}
        assert engine.resolved == []

    scenario(test)


def test_tcp_and_large_answers() -> None:
    async def test(fwd: Forwarder, at: Server, engine: Engine, lan: FakeUpstream) -> None:
        assert addresses(await ask(at, "app.internal.test", tcp=True)) == {"10.77.0.20"}
        for q in (
            dns.message.make_query("big.internal.test", "A"),
            dns.message.make_query("big.internal.test", "A", use_edns=0, payload=1232),
        ):
            reply, used_tcp = await dns.asyncquery.udp_with_fallback(q, at[0], port=at[1], timeout=3)
            assert used_tcp and len(addresses(reply)) == 120

    scenario(test)


def test_malformed_and_unusual_queries() -> None:
    async def test(fwd: Forwarder, at: Server, engine: Engine, lan: FakeUpstream) -> None:
        notify = dns.message.make_query("app.internal.test", "SOA")
        notify.set_opcode(dns.opcode.NOTIFY)
        assert await fwd.handle(notify.to_wire(), CLIENT) is not None
        reply = dns.message.from_wire(await fwd.handle(notify.to_wire(), CLIENT) or b"")
        assert reply.rcode() == dns.rcode.NOTIMP
        two = dns.message.make_query("app.internal.test", "A")
        two.question.append(two.question[0])
        assert (
            dns.message.from_wire(await fwd.handle(two.to_wire(), CLIENT) or b"").rcode() == dns.rcode.FORMERR
        )
        garbage = await fwd.handle(b"\x01\x02\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\x09", CLIENT)
        assert garbage is not None and garbage[3] & 0x0F == dns.rcode.FORMERR
        response = dns.message.make_response(dns.message.make_query("app.internal.test", "A"))
        assert await fwd.handle(response.to_wire(), CLIENT) is None  # never answer an answer
        chaos = dns.message.make_query("app.internal.test", "TXT", rdclass="CH")
        assert (
            dns.message.from_wire(await fwd.handle(chaos.to_wire(), CLIENT) or b"").rcode()
            == dns.rcode.REFUSED
        )
        assert lan.queries == []

    scenario(test)


def test_the_host_resolver_reads_resolv_conf(tmp_path: Path) -> None:
    async def main() -> None:
        async with FakeUpstream(LAN) as lan:
            conf = tmp_path / "resolv.conf"
            conf.write_text("search corp.test\nnameserver 127.0.0.1\n")
            resolver = HostResolver(resolv_conf=str(conf), port=lan.address[1], timeout=0.5)
            msg = await resolver.resolve(dns.name.from_text("app.internal.test"), dns.rdatatype.A)
            assert addresses(msg) == {"10.77.0.20"}
            nx = await resolver.resolve(dns.name.from_text("gone.internal.test"), dns.rdatatype.A)
            assert nx.rcode() == dns.rcode.NXDOMAIN
            assert lan.names() == ["app.internal.test", "gone.internal.test"]  # no search list

    run(main())

    async def dead() -> None:
        async with FakeUpstream(LAN, silent=True) as lan:
            resolver = HostResolver(["127.0.0.1"], port=lan.address[1], timeout=0.3)
            try:
                await resolver.resolve(dns.name.from_text("app.internal.test"), dns.rdatatype.A)
            except ResolveError:
                return
            raise AssertionError("no ResolveError")

    run(dead())
