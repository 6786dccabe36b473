"""The client's interceptor against fake upstreams on loopback (dns/interceptor.py)."""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import time
from collections.abc import Awaitable, Callable
from typing import Any

import dns.asyncquery
import dns.edns
import dns.flags
import dns.message
import dns.rcode
import pytest

from meshroute.agent.dns.answers import Address, Answer
from meshroute.agent.dns.interceptor import Interceptor, parse_question
from meshroute.agent.dns.learned import LearnedAddresses
from meshroute.agent.dns.match import DomainTable
from meshroute.agent.dns.transport import Client, Server
from tests.unit.agent.fakes import run

from .fakedns import FakeUpstream

ROUTED = {
    "app.internal.test": ["app.internal.test. 60 IN A 10.77.0.20", "app.internal.test. 60 IN AAAA fd77::20"],
    "a.svc.internal.test": [
        "a.svc.internal.test. 300 IN CNAME lb.internal.test.",
        "lb.internal.test. 30 IN A 10.77.0.31",
    ],
    "mesh.internal.test": [
        "mesh.internal.test. 60 IN A 100.64.0.9",
        "mesh.internal.test. 60 IN A 10.77.0.40",
    ],
    "big.internal.test": [f"big.internal.test. 60 IN A 10.78.{i // 250}.{i % 250}" for i in range(120)],
}
OUTSIDE = {
    "www.outside.test": ["www.outside.test. 300 IN A 192.0.2.80"],
    "svc.internal.test": ["svc.internal.test. 300 IN A 192.0.2.81"],
}


def table() -> DomainTable:
    return DomainTable(
        [
            ("app.internal.test", "ha-app"),
            ("*.svc.internal.test", "ha-svc"),
            ("mesh.internal.test", "ha-app"),
            ("big.internal.test", "ha-app"),
        ]
    )


class Engine:
    """What the engine gives the interceptor: routing peers per group, and what it learned."""

    def __init__(self, forwarder: Server | None) -> None:
        self.forwarders: dict[str, Server | None] = {"ha-app": forwarder, "ha-svc": forwarder}
        self.learned: list[tuple[str, Answer]] = []
        self.gate: asyncio.Event | None = None
        self.fail = False
        self.asked: list[str] = []

    async def resolver_for(self, ha_id: str) -> Server | None:
        self.asked.append(ha_id)
        return self.forwarders.get(ha_id)

    async def on_answer(self, ha_id: str, answer: Answer) -> None:
        if self.gate is not None:
            await self.gate.wait()
        if self.fail:
            raise RuntimeError("netlink said no")
        self.learned.append((ha_id, answer))


Scenario = Callable[[Interceptor, Server, Engine, FakeUpstream, FakeUpstream], Awaitable[None]]


def scenario(test: Scenario, *, timeout: float = 2.0, **upstream: Any) -> None:
    async def main() -> None:
        async with FakeUpstream(ROUTED, **upstream) as forwarder, FakeUpstream(OUTSIDE) as host_dns:
            engine = Engine(forwarder.address)
            icpt = Interceptor(
                engine.resolver_for,
                engine.on_answer,
                [host_dns.address],
                table=table(),
                timeout=timeout,
                upstream_timeout=timeout,
                overlay=[ipaddress.ip_network("100.64.0.0/10")],
            )
            (listen,) = await icpt.start([("127.0.0.1", 0)])
            try:
                await test(icpt, listen, engine, forwarder, host_dns)
            finally:
                await icpt.stop()

    run(main())


async def ask(
    server: Server, name: str, rdtype: str = "A", *, tcp: bool = False, **kw: Any
) -> dns.message.Message:
    q = dns.message.make_query(name, rdtype, **kw)
    if tcp:
        return await dns.asyncquery.tcp(q, server[0], port=server[1], timeout=3)
    return await dns.asyncquery.udp(q, server[0], port=server[1], timeout=3)


def addresses(reply: dns.message.Message) -> set[str]:
    return {r.address for rrset in reply.answer if rrset.rdtype in (1, 28) for r in rrset}


def test_a_route_name_goes_to_the_routing_peer_and_its_addresses_to_the_engine() -> None:
    async def test(
        icpt: Interceptor, at: Server, engine: Engine, fwd: FakeUpstream, host: FakeUpstream
    ) -> None:
        reply = await ask(at, "App.Internal.Test")
        assert reply.rcode() == dns.rcode.NOERROR and addresses(reply) == {"10.77.0.20"}
        assert fwd.names() == ["app.internal.test"] and host.names() == []
        ((ha_id, answer),) = engine.learned
        assert ha_id == "ha-app" and answer.name == "app.internal.test"
        assert {str(a) for a in answer.all_addresses()} == {"10.77.0.20"} and answer.ttl == 60
        reply6 = await ask(at, "app.internal.test", "AAAA")
        assert addresses(reply6) == {"fd77::20"}
        assert engine.learned[1][1].addresses.keys() == {6}
        assert icpt.stats.intercepted == 2 and icpt.stats.answered == 2 and icpt.stats.passed == 0

    scenario(test)


def test_the_answer_reaches_the_application_only_after_the_routes_are_installed() -> None:
    async def test(
        icpt: Interceptor, at: Server, engine: Engine, fwd: FakeUpstream, host: FakeUpstream
    ) -> None:
        engine.gate = asyncio.Event()
        client = asyncio.create_task(ask(at, "app.internal.test"))
        for _ in range(200):
            if fwd.queries:
                break
            await asyncio.sleep(0.005)
        await asyncio.sleep(0.1)  # the forwarder has answered long ago: the engine holds the reply
        assert fwd.queries and not client.done() and not engine.learned
        engine.gate.set()
        reply = await client
        assert addresses(reply) == {"10.77.0.20"} and len(engine.learned) == 1

    scenario(test)


def test_a_cname_chain_is_learned_under_the_question_name() -> None:
    async def test(
        icpt: Interceptor, at: Server, engine: Engine, fwd: FakeUpstream, host: FakeUpstream
    ) -> None:
        reply = await ask(at, "a.svc.internal.test")
        assert addresses(reply) == {"10.77.0.31"}
        ((ha_id, answer),) = engine.learned
        assert (ha_id, answer.name, answer.ttl) == ("ha-svc", "a.svc.internal.test", 30)

    scenario(test)


def test_the_wildcard_base_and_other_names_go_to_the_hosts_servers_untouched() -> None:
    async def test(
        icpt: Interceptor, at: Server, engine: Engine, fwd: FakeUpstream, host: FakeUpstream
    ) -> None:
        assert addresses(await ask(at, "svc.internal.test")) == {"192.0.2.81"}
        assert addresses(await ask(at, "www.outside.test", tcp=True)) == {"192.0.2.80"}
        assert (await ask(at, "nothere.outside.test")).rcode() == dns.rcode.NXDOMAIN
        assert fwd.queries == [] and engine.learned == [] and engine.asked == []
        assert host.names() == ["svc.internal.test", "www.outside.test", "nothere.outside.test"]
        assert host.queries[1][2] == "tcp"

    scenario(test)


def test_a_passed_query_and_its_answer_are_forwarded_byte_for_byte() -> None:
    async def test(
        icpt: Interceptor, at: Server, engine: Engine, fwd: FakeUpstream, host: FakeUpstream
    ) -> None:
        q = dns.message.make_query("www.outside.test", "A", use_edns=0, payload=1400, want_dnssec=True)
        q.flags |= dns.flags.CD
        q.use_edns(
            0,
            dns.flags.DO,
            1400,
            options=[dns.edns.GenericOption(dns.edns.OptionType.COOKIE, b"\x01\x02\x03\x04\x05\x06\x07\x08")],
        )
        wire = q.to_wire()
        expected = await host.answer(wire, "udp")  # what the upstream says to exactly this query
        host.queries.clear()
        loop = asyncio.get_running_loop()
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.setblocking(False)
            s.connect(at)
            await loop.sock_sendall(s, wire)
            got = await asyncio.wait_for(loop.sock_recv(s, 65535), 3)
        assert host.queries[0][3] == wire  # ID, flags, EDNS option: all as the application sent them
        assert got == expected

    scenario(test)


def test_no_routing_peer_means_servfail_and_nothing_is_sent() -> None:
    async def test(
        icpt: Interceptor, at: Server, engine: Engine, fwd: FakeUpstream, host: FakeUpstream
    ) -> None:
        engine.forwarders["ha-app"] = None
        reply = await ask(at, "app.internal.test")
        assert reply.rcode() == dns.rcode.SERVFAIL
        assert fwd.queries == [] and host.queries == [] and engine.learned == []
        assert icpt.stats.no_routing_peer == 1

    scenario(test)


def test_groups_are_tried_in_the_callers_order() -> None:
    async def test(
        icpt: Interceptor, at: Server, engine: Engine, fwd: FakeUpstream, host: FakeUpstream
    ) -> None:
        icpt.table = DomainTable([("app.internal.test", "ha-first"), ("app.internal.test", "ha-app")])
        reply = await ask(at, "app.internal.test")
        assert addresses(reply) == {"10.77.0.20"}
        # (the last: has the group failed over while the query was out?)
        assert engine.asked == ["ha-first", "ha-app", "ha-app"] and engine.learned[0][0] == "ha-app"

    scenario(test)


def test_a_forwarder_that_does_not_answer_gives_servfail_in_time() -> None:
    async def test(
        icpt: Interceptor, at: Server, engine: Engine, fwd: FakeUpstream, host: FakeUpstream
    ) -> None:
        t0 = time.monotonic()
        reply = await ask(at, "app.internal.test")
        assert reply.rcode() == dns.rcode.SERVFAIL and time.monotonic() - t0 < 1.5
        assert engine.learned == [] and icpt.stats.failed == 1

    scenario(test, timeout=0.3, silent=True)


def test_a_forwarder_that_is_not_there_gives_servfail_at_once() -> None:
    async def test(
        icpt: Interceptor, at: Server, engine: Engine, fwd: FakeUpstream, host: FakeUpstream
    ) -> None:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.bind(("127.0.0.1", 0))
            closed = s.getsockname()
        engine.forwarders["ha-app"] = closed
        t0 = time.monotonic()
        assert (await ask(at, "app.internal.test")).rcode() == dns.rcode.SERVFAIL
        assert time.monotonic() - t0 < 1.0  # ICMP port unreachable, not the timeout

    scenario(test, timeout=2.0)


def test_when_the_routes_cannot_be_installed_the_application_gets_servfail() -> None:
    async def test(
        icpt: Interceptor, at: Server, engine: Engine, fwd: FakeUpstream, host: FakeUpstream
    ) -> None:
        engine.fail = True
        assert (await ask(at, "app.internal.test")).rcode() == dns.rcode.SERVFAIL

    scenario(test)


def test_an_engine_that_hangs_gives_servfail_after_the_timeout() -> None:
    async def test(
        icpt: Interceptor, at: Server, engine: Engine, fwd: FakeUpstream, host: FakeUpstream
    ) -> None:
        engine.gate = asyncio.Event()  # never set
        assert (await ask(at, "app.internal.test")).rcode() == dns.rcode.SERVFAIL

    scenario(test, timeout=0.3)


def test_the_forwarder_forwarded_rcodes_and_empty_answers_reach_the_application() -> None:
    async def test(
        icpt: Interceptor, at: Server, engine: Engine, fwd: FakeUpstream, host: FakeUpstream
    ) -> None:
        reply = await ask(at, "nothere.svc.internal.test")
        assert reply.rcode() == dns.rcode.NXDOMAIN and engine.learned == []
        reply = await ask(at, "app.internal.test", "TXT")
        assert reply.rcode() == dns.rcode.NOERROR and reply.answer == [] and engine.learned == []

    scenario(test)


def test_a_truncated_answer_is_asked_again_over_tcp() -> None:
    async def test(
        icpt: Interceptor, at: Server, engine: Engine, fwd: FakeUpstream, host: FakeUpstream
    ) -> None:
        reply = await ask(at, "app.internal.test")
        assert addresses(reply) == {"10.77.0.20"}
        assert [q[2] for q in fwd.queries] == ["udp", "tcp"]
        assert len(engine.learned) == 1

    scenario(test, truncate_udp=True)


def test_an_answer_too_large_for_the_clients_udp_is_truncated_for_it() -> None:
    async def test(
        icpt: Interceptor, at: Server, engine: Engine, fwd: FakeUpstream, host: FakeUpstream
    ) -> None:
        q = dns.message.make_query("big.internal.test", "A")  # no EDNS: 512 bytes at most
        reply, used_tcp = await dns.asyncquery.udp_with_fallback(q, at[0], port=at[1], timeout=3)
        assert used_tcp and len(addresses(reply)) == 120
        raw = await dns.asyncquery.udp(q, at[0], port=at[1], timeout=3)
        assert raw.flags & dns.flags.TC and raw.answer == []
        edns = dns.message.make_query("big.internal.test", "A", use_edns=0, payload=4096)
        assert len(addresses(await dns.asyncquery.udp(edns, at[0], port=at[1], timeout=3))) == 120

    scenario(test)


def test_addresses_inside_the_overlay_are_not_routed_but_the_answer_is_unchanged() -> None:
    async def test(
        icpt: Interceptor, at: Server, engine: Engine, fwd: FakeUpstream, host: FakeUpstream
    ) -> None:
        reply = await ask(at, "mesh.internal.test")
        assert addresses(reply) == {"100.64.0.9", "10.77.0.40"}
        ((_, answer),) = engine.learned
        assert {str(a) for a in answer.all_addresses()} == {"10.77.0.40"}

    scenario(test)


def test_host_servers_are_tried_in_order_like_glibc() -> None:
    async def main() -> None:
        async with (
            FakeUpstream(OUTSIDE, rcode=dns.rcode.SERVFAIL) as broken,
            FakeUpstream(OUTSIDE, silent=True) as dead,
            FakeUpstream(OUTSIDE) as good,
            FakeUpstream(OUTSIDE, rcode=dns.rcode.REFUSED) as refusing,
        ):
            engine = Engine(None)
            icpt = Interceptor(engine.resolver_for, engine.on_answer, [], upstream_timeout=0.2)
            (at,) = await icpt.start([("127.0.0.1", 0)])
            try:
                icpt.set_upstreams([broken.address, dead.address, good.address])
                assert addresses(await ask(at, "www.outside.test")) == {"192.0.2.80"}
                assert (broken.names(), dead.names(), good.names()) == (["www.outside.test"],) * 3
                icpt.set_upstreams([broken.address, refusing.address])
                assert (await ask(at, "www.outside.test")).rcode() == dns.rcode.REFUSED  # the last word
                icpt.set_upstreams([dead.address])
                assert (await ask(at, "www.outside.test")).rcode() == dns.rcode.SERVFAIL
                assert icpt.stats.upstream_failed == 1
                icpt.set_upstreams([at, ("127.0.0.77", 53), good.address])
                assert icpt.upstreams == [good.address]  # never itself
            finally:
                await icpt.stop()

    run(main())


def test_many_queries_at_once() -> None:
    async def test(
        icpt: Interceptor, at: Server, engine: Engine, fwd: FakeUpstream, host: FakeUpstream
    ) -> None:
        names = ["app.internal.test", "www.outside.test", "a.svc.internal.test"] * 50
        replies = await asyncio.gather(*(ask(at, n) for n in names))
        assert all(r.rcode() == dns.rcode.NOERROR for r in replies)
        assert len(engine.learned) == 100 and len(host.queries) == 50

    scenario(test)


def test_garbage_gets_no_answer_or_formerr_and_the_server_keeps_going() -> None:
    async def test(
        icpt: Interceptor, at: Server, engine: Engine, fwd: FakeUpstream, host: FakeUpstream
    ) -> None:
        loop = asyncio.get_running_loop()
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.setblocking(False)
            s.connect(at)
            await loop.sock_sendall(s, b"\x12")  # not even a header: no reply
            cut_short = b"\xab\xcd\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\x05hello"
            await loop.sock_sendall(s, cut_short)
            got = await asyncio.wait_for(loop.sock_recv(s, 512), 3)
        assert got[:2] == b"\xab\xcd" and got[2] & 0x80 and got[3] & 0x0F == dns.rcode.FORMERR
        assert host.queries == []  # sent nowhere
        assert addresses(await ask(at, "app.internal.test")) == {"10.77.0.20"}

    scenario(test)


def test_parse_question() -> None:
    q = parse_question(dns.message.make_query("App.Example.COM", "AAAA").to_wire())
    assert q is not None and (q.name, q.rdtype, q.rdclass) == ("app.example.com", 28, 1)
    assert q.dns_name() == dns.name.from_text("app.example.com")
    response = dns.message.make_response(dns.message.make_query("a.test", "A")).to_wire()
    assert parse_question(response) is None
    update = dns.message.make_query("a.test", "A")
    update.set_opcode(dns.opcode.UPDATE)
    assert parse_question(update.to_wire()) is None
    assert parse_question(b"\x00" * 11) is None
    dotted = dns.message.make_query(dns.name.Name([b"app.internal", b"test", b""]), "A").to_wire()
    assert parse_question(dotted) is None  # a label with a dot never poses as another name


def test_only_the_host_itself_may_ask() -> None:
    from meshroute.agent.dns.interceptor import _may_ask

    assert _may_ask(Client("127.0.0.1", 5000, "127.0.0.77", tcp=False))
    assert _may_ask(Client("100.64.0.5", 5000, "100.64.0.5", tcp=False))  # the host via its overlay address
    assert not _may_ask(Client("100.64.0.6", 5000, "100.64.0.5", tcp=False))  # another peer
    assert not _may_ask(Client("bogus", 5000, "100.64.0.5", tcp=True))


def test_start_fails_cleanly_when_the_address_is_taken() -> None:
    async def main() -> None:
        engine = Engine(None)
        first = Interceptor(engine.resolver_for, engine.on_answer, [])
        (at,) = await first.start([("127.0.0.1", 0)])
        second = Interceptor(engine.resolver_for, engine.on_answer, [])
        try:
            with pytest.raises(OSError):
                await second.start([("127.0.0.1", 0), at])
            assert second.bound == []
        finally:
            await first.stop()
            await second.stop()

    run(main())


def test_after_a_failover_the_learned_names_are_asked_again_at_the_new_routing_peer() -> None:
    async def main() -> None:
        async with FakeUpstream(ROUTED) as old, FakeUpstream(ROUTED) as new, FakeUpstream(OUTSIDE) as host:
            engine = Engine(old.address)
            learned = LearnedAddresses()

            async def on_answer(ha_id: str, answer: Answer) -> None:
                learned.learn_answer(ha_id, answer, now=0, keep_route=False)
                engine.learned.append((ha_id, answer))

            icpt = Interceptor(engine.resolver_for, on_answer, [host.address], table=table())
            (at,) = await icpt.start([("127.0.0.1", 0)])
            try:
                await ask(at, "app.internal.test")
                await ask(at, "app.internal.test", "AAAA")
                await ask(at, "a.svc.internal.test")
                assert learned.questions("ha-app") == [("app.internal.test", 4), ("app.internal.test", 6)]
                engine.forwarders["ha-app"] = new.address  # the engine chose another routing peer
                assert await icpt.replay("ha-app", learned.questions("ha-app")) == 2
                assert sorted((q[0], q[1]) for q in new.queries) == [
                    ("app.internal.test", "A"),
                    ("app.internal.test", "AAAA"),
                ]
                assert len(engine.learned) == 5
                engine.forwarders["ha-app"] = None
                assert await icpt.replay("ha-app", learned.questions("ha-app")) == 0
                engine.forwarders["ha-app"] = host.address  # a forwarder that does not know the names
                assert (
                    await icpt.replay("ha-app", [("app.internal.test", 4)]) == 1
                )  # NXDOMAIN: nothing learned
                assert len(engine.learned) == 5
            finally:
                await icpt.stop()

    run(main())


def test_an_answer_that_arrives_after_a_failover_is_asked_again_at_the_new_routing_peer() -> None:
    """The failover's replay ran while this query was out, and did not know the name yet."""

    async def main() -> None:
        async with FakeUpstream(ROUTED) as old, FakeUpstream(ROUTED) as new, FakeUpstream(OUTSIDE) as host:
            engine = Engine(old.address)

            async def on_answer(ha_id: str, answer: Answer) -> None:
                engine.forwarders["ha-app"] = new.address  # the group failed over meanwhile
                engine.learned.append((ha_id, answer))

            icpt = Interceptor(engine.resolver_for, on_answer, [host.address], table=table())
            (at,) = await icpt.start([("127.0.0.1", 0)])
            try:
                assert addresses(await ask(at, "app.internal.test")) == {"10.77.0.20"}
                async with asyncio.timeout(3):
                    while len(engine.learned) < 2:
                        await asyncio.sleep(0.01)
                assert [(q[0], q[1]) for q in new.queries] == [("app.internal.test", "A")]
                assert [a.name for _, a in engine.learned] == ["app.internal.test"] * 2
                await ask(at, "app.internal.test")  # asked at the new one: nothing more to do
                await asyncio.sleep(0.1)
                assert len(new.queries) == 2 and len(old.queries) == 1
            finally:
                await icpt.stop()

    run(main())


def test_addresses_that_are_not_routed_never_reach_the_application() -> None:
    """The group is full (KeepRoute at its cap): what it could not take is left out, and an answer
    with nothing left is SERVFAIL: traffic to a route's name never takes the underlay."""

    async def main() -> None:
        async with FakeUpstream(ROUTED) as fwd, FakeUpstream(OUTSIDE) as host:
            engine = Engine(fwd.address)
            unrouted = {"10.78.0.1", "10.78.0.2"}

            async def on_answer(ha_id: str, answer: Answer) -> frozenset[Address]:
                engine.learned.append((ha_id, answer))
                return frozenset(a for a in answer.all_addresses() if str(a) in unrouted)

            icpt = Interceptor(engine.resolver_for, on_answer, [host.address], table=table())
            (at,) = await icpt.start([("127.0.0.1", 0)])
            try:
                reply = await ask(at, "big.internal.test", tcp=True)
                assert len(addresses(reply)) == 118 and not addresses(reply) & unrouted
                unrouted.add("10.77.0.20")
                assert (await ask(at, "app.internal.test")).rcode() == dns.rcode.SERVFAIL
                assert addresses(await ask(at, "app.internal.test", "AAAA")) == {"fd77::20"}
                assert icpt.stats.failed == 1
            finally:
                await icpt.stop()

    run(main())
