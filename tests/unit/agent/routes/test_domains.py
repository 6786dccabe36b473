"""Domain routes on a client (routes/domains.py) with the real interceptor on loopback, fake
forwarders (tests/unit/agent/dns/fakedns.py), a resolv.conf in a temporary directory, a fake clock
and a fake conntrack; and the plan's handling of learned addresses."""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
from collections.abc import Awaitable, Callable, Collection, Sequence
from pathlib import Path

import dns.asyncquery
import dns.exception
import dns.message
import dns.rcode
import pytest

from meshroute.agent.dns.hostconfig import ManagedResolvConf, ResolvedLink
from meshroute.agent.dns.transport import Server
from meshroute.agent.ledger import Ledger
from meshroute.agent.routes.domains import DomainRoutes
from meshroute.agent.routes.plan import GroupView, RouteManager, client_groups
from meshroute.agent.routes.scoring import CandidateHealth, PeerStatus
from meshroute.agent.routing.rtnl import TableRoute
from meshroute.core.model import NetworkType
from meshroute.core.networkmap.types import MapPeer, MapRoute, NetworkMap
from tests.unit.agent.dns.fakedns import FakeUpstream

ME = MapPeer("me", "KEY-ME", "100.64.0.1", None, "me", "me")
R1 = MapPeer("r1", "KEY-R1", "100.64.0.2", None, "r1", "r1")
R2 = MapPeer("r2", "KEY-R2", "100.64.0.3", None, "r2", "r2")
OVERLAY = [ipaddress.ip_network("100.64.0.0/16")]
UP = CandidateHealth(PeerStatus.CONNECTED, 1.0)
DOWN = CandidateHealth(PeerStatus.CONNECTING)
ORIGINAL = "search corp.test\nnameserver 127.0.0.1\n"
APP = {"app.internal.test": ["app.internal.test. 30 IN A 10.77.0.20"]}


def droute(rid: str, peer: MapPeer, *, keep_route: bool = False, metric: int = 100) -> MapRoute:
    return MapRoute(
        rid,
        "apps",
        "192.0.2.0/32",
        domains=("app.internal.test", "*.svc.internal.test"),
        network_type=NetworkType.DOMAIN,
        peer_key=peer.key,
        peer_id=peer.id,
        metric=metric,
        masquerade=True,
        keep_route=keep_route,
        skip_auto_apply=False,
    )


def nmap(*routes: MapRoute) -> NetworkMap:
    return NetworkMap(1, ME, (R1, R2), tuple(routes), ())


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Conntrack:
    def __init__(self) -> None:
        self.busy: set[str] = set()
        self.asked: list[list[str]] = []

    async def __call__(self, addresses: Collection[str]) -> frozenset[str]:
        self.asked.append(sorted(addresses))
        return frozenset(a for a in addresses if a in self.busy)


class Client:
    """DomainRoutes with the plan around it, as the engine drives them."""

    def __init__(
        self,
        tmp: Path,
        forwarders: dict[str, Server],
        keep_route: bool = False,
        record: Path | None = None,
        wall_offset: float = 50_000.0,  # the wall clock, ahead of this run's monotonic one
    ) -> None:
        self.resolv = tmp / "resolv.conf"
        if not self.resolv.exists():
            self.resolv.write_text(ORIGINAL)
        self.clock = Clock()
        self.conntrack = Conntrack()
        self.changes = 0
        self.manager = RouteManager()
        self.map = nmap(droute("a", R1, keep_route=keep_route), droute("b", R2, keep_route=keep_route))
        self.health = {"a": UP, "b": UP}
        (tmp / "state").mkdir(exist_ok=True)
        ledger = Ledger(tmp / "state")
        self.domains = DomainRoutes(
            ledger,
            "mr0",
            self.changed,
            grace=5,
            host=ManagedResolvConf(ledger, self.resolv),
            listen=[("127.0.0.1", 0)],
            in_use=self.conntrack,
            clock=self.clock,
            wall=lambda: self.clock.now + wall_offset,
            record=record,
            forwarder_of=lambda p: forwarders[p.key],
        )
        self.plan = self.replan()

    def replan(self):  # type: ignore[no-untyped-def]
        groups = client_groups(self.map)
        self.plan = self.manager.plan(self.map, groups, self.health, OVERLAY, self.domains.addresses)
        return self.plan

    async def changed(self) -> None:
        self.changes += 1
        self.replan()

    async def sync(self) -> None:
        self.replan()
        await self.domains.sync(self.plan.groups, self.map, "100.64.0.1")

    @property
    def server(self) -> Server:
        assert self.domains.interceptor is not None
        return self.domains.interceptor.bound[0]

    async def ask(self, name: str) -> dns.message.Message:
        q = dns.message.make_query(name, "A")
        return await dns.asyncquery.udp(q, self.server[0], port=self.server[1], timeout=3)

    @property
    def group(self) -> GroupView:
        return self.plan.groups[0]


def run(test: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(asyncio.wait_for(test(), 10))


def test_a_route_name_is_routed_through_the_chosen_routing_peer_before_the_answer(tmp_path: Path) -> None:
    async def test() -> None:
        async with FakeUpstream(APP) as r1, FakeUpstream(APP) as r2:
            c = Client(tmp_path, {R1.key: r1.address, R2.key: r2.address})
            await c.sync()
            assert "nameserver 127.0.0.77" in c.resolv.read_text()  # the host asks the interceptor
            reply = await c.ask("app.internal.test")
            assert [r.to_text() for rr in reply.answer for r in rr] == ["10.77.0.20"]
            assert c.changes == 1  # routed before the reply came back
            assert TableRoute("10.77.0.20/32") in c.plan.table
            assert c.plan.allowed == {R1.key: ("10.77.0.20/32",)}
            assert [q[0] for q in r1.queries] == ["app.internal.test"] and not r2.queries
            learned = c.domains.describe(c.group.ha_id)
            assert learned["app.internal.test"][0]["prefix"] == "10.77.0.20/32"
            assert c.domains.report(c.group.use).learned == 1
            # The same answer again changes nothing: no reconcile on the DNS path.
            await c.ask("app.internal.test")
            assert c.changes == 1
            await c.domains.stop()
            assert c.resolv.read_text() == ORIGINAL
            assert c.domains.addresses(c.group.ha_id) == frozenset()

    run(test)


def test_no_usable_routing_peer_gives_servfail_and_unreachable_learned_addresses(tmp_path: Path) -> None:
    async def test() -> None:
        async with FakeUpstream(APP) as r1, FakeUpstream(APP) as r2:
            c = Client(tmp_path, {R1.key: r1.address, R2.key: r2.address})
            await c.sync()
            await c.ask("app.internal.test")
            c.health = {"a": DOWN, "b": DOWN}
            await c.sync()
            reply = await c.ask("app.internal.test")
            assert reply.rcode() == dns.rcode.SERVFAIL
            # without KeepRoute: dropped in the tunnel's table, never leaked to the underlay
            assert c.plan.table == frozenset({TableRoute("10.77.0.20/32", unreachable=True)})
            assert c.plan.allowed == {}
            await c.domains.stop()

    run(test)


def test_failover_moves_every_learned_address_and_asks_the_new_routing_peer_again(tmp_path: Path) -> None:
    async def test() -> None:
        async with FakeUpstream(APP) as r1, FakeUpstream(APP) as r2:
            c = Client(tmp_path, {R1.key: r1.address, R2.key: r2.address})
            await c.sync()
            await c.ask("app.internal.test")
            c.health = {"a": DOWN, "b": UP}
            await c.sync()
            assert c.plan.allowed == {R2.key: ("10.77.0.20/32",)}  # one WireGuard change moves it
            for _ in range(100):
                if r2.queries:
                    break
                await asyncio.sleep(0.01)
            assert [q[0] for q in r2.queries] == ["app.internal.test"]  # its nftables set learns it
            await c.domains.stop()

    run(test)


def test_expiry_after_ttl_and_grace_waits_for_open_connections(tmp_path: Path) -> None:
    async def test() -> None:
        async with FakeUpstream(APP) as r1, FakeUpstream(APP) as r2:
            c = Client(tmp_path, {R1.key: r1.address, R2.key: r2.address})
            await c.sync()
            await c.ask("app.internal.test")
            c.clock.now += 30 + 5 - 1
            await c.domains.expire()
            assert c.conntrack.asked == []  # nothing due: conntrack is not read
            c.clock.now += 2
            c.conntrack.busy = {"10.77.0.20"}
            await c.domains.expire()
            assert c.domains.addresses(c.group.ha_id) == {"10.77.0.20/32"}  # a connection uses it
            c.conntrack.busy = set()
            c.clock.now += 31
            await c.domains.expire()
            assert c.domains.addresses(c.group.ha_id) == frozenset()
            assert TableRoute("10.77.0.20/32") not in c.plan.table
            await c.domains.stop()

    run(test)


def test_a_changed_answer_replaces_the_address_unless_keep_route(tmp_path: Path) -> None:
    async def test() -> None:
        for keep in (False, True):
            records = dict(APP)
            async with FakeUpstream(records) as r1, FakeUpstream(records) as r2:
                c = Client(tmp_path / str(keep), {R1.key: r1.address, R2.key: r2.address}, keep_route=keep)
                await c.sync()
                await c.ask("app.internal.test")
                r1.records["app.internal.test"] = ["app.internal.test. 30 IN A 10.77.0.21"]
                await c.ask("app.internal.test")
                expected = {"10.77.0.20/32", "10.77.0.21/32"} if keep else {"10.77.0.21/32"}
                assert c.domains.addresses(c.group.ha_id) == expected, keep
                assert set(c.plan.allowed[R1.key]) == expected
                await c.domains.stop()

    (tmp_path / "False").mkdir()
    (tmp_path / "True").mkdir()
    run(test)


def test_a_deselected_group_forgets_what_it_learned_and_the_interceptor_stops(tmp_path: Path) -> None:
    async def test() -> None:
        async with FakeUpstream(APP) as r1, FakeUpstream(APP) as r2:
            c = Client(tmp_path, {R1.key: r1.address, R2.key: r2.address})
            await c.sync()
            await c.ask("app.internal.test")
            c.map = nmap()
            await c.sync()
            assert c.domains.interceptor is None
            assert c.resolv.read_text() == ORIGINAL
            assert c.domains.learned.groups() == []

    run(test)


def test_learned_addresses_inside_the_mesh_are_never_routed() -> None:
    """A name that answers with a peer's overlay address must not move that address to the
    routing peer's AllowedIPs (it would take the peer's traffic)."""
    m = nmap(droute("a", R1), droute("b", R2))
    learned = {"10.77.0.20/32", "100.64.0.3/32"}
    plan = RouteManager().plan(m, client_groups(m), {"a": UP, "b": UP}, OVERLAY, lambda _: learned)
    assert plan.table == frozenset({TableRoute("10.77.0.20/32")})
    assert plan.allowed == {R1.key: ("10.77.0.20/32",)}


def test_learned_ipv6_without_an_overlay_ipv6_is_refused_at_once() -> None:
    """Without IPv6 in the tunnel a /128 would carry the client's underlay source, which the
    routing peer drops: unreachable instead, so applications fall back to IPv4 at once."""
    m = nmap(droute("a", R1), droute("b", R2))
    learned = {"10.77.0.20/32", "2001:db8::20/128"}
    plan = RouteManager().plan(m, client_groups(m), {"a": UP, "b": UP}, OVERLAY, lambda _: learned)
    assert plan.table == frozenset(
        {TableRoute("10.77.0.20/32"), TableRoute("2001:db8::20/128", unreachable=True)}
    )
    assert plan.allowed == {R1.key: ("10.77.0.20/32",)}
    dual = [*OVERLAY, ipaddress.ip_network("fd00:100::/64")]
    plan = RouteManager().plan(m, client_groups(m), {"a": UP, "b": UP}, dual, lambda _: learned)
    assert plan.allowed == {R1.key: ("10.77.0.20/32", "2001:db8::20/128")}


def test_the_interceptor_never_learns_an_overlay_address(tmp_path: Path) -> None:
    records = {
        "app.internal.test": [
            "app.internal.test. 30 IN A 10.77.0.20",
            "app.internal.test. 30 IN A 100.64.0.3",
        ]
    }

    async def test() -> None:
        async with FakeUpstream(records) as r1, FakeUpstream(records) as r2:
            c = Client(tmp_path, {R1.key: r1.address, R2.key: r2.address})
            c.replan()
            await c.domains.sync(c.plan.groups, c.map, "100.64.0.1", OVERLAY)
            reply = await c.ask("app.internal.test")
            assert sorted(r.to_text() for rr in reply.answer for r in rr) == ["10.77.0.20", "100.64.0.3"]
            assert c.domains.addresses(c.group.ha_id) == {"10.77.0.20/32"}
            await c.domains.stop()

    run(test)


def test_stopping_from_inside_an_answer_does_not_hang(tmp_path: Path) -> None:
    """What a DNS answer sets off may end in the interceptor being stopped (the last domain route
    went meanwhile): the query's own task must not be cancelled and awaited by that stop."""

    async def test() -> None:
        async with FakeUpstream(APP) as r1, FakeUpstream(APP) as r2:
            c = Client(tmp_path, {R1.key: r1.address, R2.key: r2.address})
            await c.sync()

            async def stop_now() -> None:
                await c.domains.stop()

            c.domains.changed = stop_now
            host, port = c.server
            q = dns.message.make_query("app.internal.test", "A")
            # the reply may be lost with the socket; the point is that nothing hangs
            with contextlib.suppress(dns.exception.Timeout):
                await dns.asyncquery.udp(q, host, port=port, timeout=1)
            assert c.domains.interceptor is None
            assert c.resolv.read_text() == ORIGINAL
            await c.domains.stop()

    run(test)


def test_a_resolv_conf_rewritten_by_something_else_is_taken_back(tmp_path: Path) -> None:
    """A DHCP client rewrites the file: route names would bypass the interceptor. The agent points
    it at the interceptor again, asks the new name servers for other names, and puts the new file
    back at the end (it is the newer original)."""

    async def test() -> None:
        async with FakeUpstream(APP) as r1, FakeUpstream(APP) as r2:
            c = Client(tmp_path, {R1.key: r1.address, R2.key: r2.address})
            await c.sync()
            dhcp = "nameserver 10.9.9.9\n"
            c.resolv.write_text(dhcp)
            await c.sync()
            assert "nameserver 127.0.0.77" in c.resolv.read_text()
            assert c.domains.interceptor is not None
            assert c.domains.interceptor.upstreams == [("10.9.9.9", 53)]
            await c.domains.stop()
            assert c.resolv.read_text() == dhcp

    run(test)


def test_with_systemd_resolved_the_interceptor_follows_the_overlay_address(tmp_path: Path) -> None:
    """resolved is pointed at the interceptor on the overlay address: when the server gives the
    peer another address, both move there."""

    async def test() -> None:
        commands: list[list[str]] = []

        async def resolvectl(argv: Sequence[str]) -> tuple[int, str]:
            commands.append(list(argv))
            return 0, ""

        async with FakeUpstream(APP) as r1, FakeUpstream(APP) as r2:
            c = Client(tmp_path, {R1.key: r1.address, R2.key: r2.address})
            ledger = Ledger(tmp_path / "state")
            c.domains = DomainRoutes(
                ledger,
                "mr0",
                c.changed,
                host=ResolvedLink(ledger, "mr0", run=resolvectl),
                port=0,
                forwarder_of=lambda p: {R1.key: r1.address, R2.key: r2.address}[p.key],
            )
            c.replan()
            await c.domains.sync(c.plan.groups, c.map, "127.0.0.1")
            assert c.server[0] == "127.0.0.1" and ["resolvectl", "dns", "mr0", "127.0.0.1"] in commands
            c.replan()
            await c.domains.sync(c.plan.groups, c.map, "127.0.0.2")
            assert c.server[0] == "127.0.0.2" and ["resolvectl", "dns", "mr0", "127.0.0.2"] in commands
            reply = await c.ask("app.internal.test")
            assert [r.to_text() for rr in reply.answer for r in rr] == ["10.77.0.20"]
            await c.domains.stop()
            assert commands[-1][:2] == ["resolvectl", "revert"]

    run(test)


async def learn_app_and_stop(
    tmp_path: Path, forwarders: dict[str, Server], record: Path, running: float = 0.0
) -> Client:
    """A client that learns app.internal.test, runs on for `running` seconds and stops (as the
    agent does: the record kept)."""
    c = Client(tmp_path, forwarders, record=record)
    await c.sync()
    await c.ask("app.internal.test")
    c.clock.now += running
    await c.domains.close()
    return c


def test_learned_addresses_survive_a_restart_and_are_asked_again_at_the_routing_peer(tmp_path: Path) -> None:
    """Applications still hold the answers the last run gave them: those addresses are routed from
    the first plan after a restart, and the routing peer is asked again so its sets hold them."""

    async def test() -> None:
        record = tmp_path / "state" / "learned-addresses.json"
        async with FakeUpstream(APP) as r1, FakeUpstream(APP) as r2:
            forwarders = {R1.key: r1.address, R2.key: r2.address}
            c = await learn_app_and_stop(tmp_path, forwarders, record, running=10)
            assert record.stat().st_mode & 0o777 == 0o600
            assert c.resolv.read_text() == ORIGINAL

            # 5 s later on the wall clock; the new run's monotonic clock starts where the last did
            again = Client(tmp_path, forwarders, record=record, wall_offset=50_015.0)
            ha = again.replan().groups[0].ha_id
            assert TableRoute("10.77.0.20/32") in again.plan.table  # routed from the first plan
            (view,) = again.domains.describe(ha)["app.internal.test"]
            assert (view["prefix"], view["remaining"]) == ("10.77.0.20/32", 20.0)  # 30 + 5 - 10 - 5
            await again.sync()
            async with asyncio.timeout(3):
                while again.domains.describe(ha)["app.internal.test"][0]["remaining"] != 35.0:
                    await asyncio.sleep(0.01)  # asked again at the routing peer: a fresh answer
            assert [q[0] for q in r1.queries] == ["app.internal.test"] * 2
            await again.domains.stop()  # no domain route any more: the record goes too
            assert not record.exists()

    run(test)


def test_a_damaged_record_is_ignored(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    async def test() -> None:
        record = tmp_path / "learned-addresses.json"
        record.write_text("{not json")
        with caplog.at_level(logging.WARNING):
            c = Client(tmp_path, {R1.key: ("127.0.0.1", 9), R2.key: ("127.0.0.1", 9)}, record=record)
        assert "learned addresses start empty" in caplog.text
        assert c.domains.learned.groups() == []

    run(test)


def test_a_restored_group_is_asked_again_once_when_its_routing_peer_comes_up(tmp_path: Path) -> None:
    async def test() -> None:
        record = tmp_path / "state" / "learned-addresses.json"
        async with FakeUpstream(APP) as r1, FakeUpstream(APP) as r2:
            forwarders = {R1.key: r1.address, R2.key: r2.address}
            await learn_app_and_stop(tmp_path, forwarders, record)

            again = Client(tmp_path, forwarders, record=record)
            again.health = {"a": DOWN, "b": DOWN}  # no routing peer usable yet
            await again.sync()
            await asyncio.sleep(0.2)
            assert len(r1.queries) + len(r2.queries) == 1  # only the one before the restart
            again.health = {"a": UP, "b": UP}
            await again.sync()
            async with asyncio.timeout(3):
                while len(r1.queries) < 2:
                    await asyncio.sleep(0.01)
            await asyncio.sleep(0.2)
            assert len(r1.queries) == 2 and not r2.queries  # asked again once, not twice
            await again.domains.stop()

    run(test)


def test_the_record_is_written_at_once_on_a_change_and_within_10_s_on_a_renewal(tmp_path: Path) -> None:
    async def test() -> None:
        record = tmp_path / "state" / "learned-addresses.json"
        async with FakeUpstream(APP) as r1, FakeUpstream(APP) as r2:
            c = Client(tmp_path, {R1.key: r1.address, R2.key: r2.address}, record=record)
            await c.sync()
            await c.ask("app.internal.test")
            await c.domains.expire()
            assert "10.77.0.20" in record.read_text()  # a new address: written with the next tick
            record.unlink()
            c.clock.now += 1
            await c.ask("app.internal.test")  # the same answer: only its expiry moves on
            await c.domains.expire()
            assert not record.exists()
            c.clock.now += 10
            await c.domains.expire()
            assert "10.77.0.20" in record.read_text()
            await c.domains.stop()
            assert not record.exists()

    run(test)


def test_a_full_keep_route_group_keeps_what_it_cannot_route_from_the_application(tmp_path: Path) -> None:
    names = {**APP, "a.svc.internal.test": ["a.svc.internal.test. 30 IN A 10.77.0.31"]}

    async def test() -> None:
        async with FakeUpstream(names) as r1, FakeUpstream(names) as r2:
            c = Client(tmp_path, {R1.key: r1.address, R2.key: r2.address}, keep_route=True)
            c.domains.learned.cap = 1
            await c.sync()
            assert [r.to_text() for rr in (await c.ask("app.internal.test")).answer for r in rr] == [
                "10.77.0.20"
            ]
            # full, and with KeepRoute nothing can make room: not routed, so not answered either
            assert (await c.ask("a.svc.internal.test")).rcode() == dns.rcode.SERVFAIL
            assert TableRoute("10.77.0.31/32") not in c.plan.table
            await c.domains.stop()

    run(test)
