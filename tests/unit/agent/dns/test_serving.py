"""A routing peer's domain routes through `RoutingPeer` (agent/dns/serving.py): the forwarder on
loopback (port 0) in front of a fake upstream, nftables and sysctls faked. What nft would be given
is checked as documents; tests/e2e/test_firewall_domains.py gives them to the real nft."""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import dns.asyncquery
import dns.message
import dns.rcode
import dns.rdatatype
import pytest

from meshroute.agent.firewall import RoutingPeer
from meshroute.agent.firewall.forwarding import IPV4_FORWARD
from meshroute.agent.firewall.nft import NftError
from meshroute.agent.firewall.ruleset import add_elements
from meshroute.agent.ledger import Ledger
from meshroute.core.model import DOMAIN_PLACEHOLDER, NetworkType
from meshroute.core.networkmap import MapPeer, MapRoute, NetworkMap, RouteFirewallRule
from tests.unit.agent.fakes import Clock, run
from tests.unit.agent.test_firewall_ruleset import FakeSysctl

from .fakedns import FakeUpstream

IF = "mr0"
RP, C2, C3 = "127.0.0.1", "127.0.0.2", "127.0.0.3"  # loopback stands in for the overlay
LAN = {
    "app.internal.test": ["app.internal.test. 600 IN A 10.77.0.20"],
    "a.svc.internal.test": [
        "a.svc.internal.test. 30 IN CNAME lb.internal.test.",
        "lb.internal.test. 300 IN A 10.77.0.31",
        "lb.internal.test. 300 IN AAAA fc00:77::31",
    ],
    "big.internal.test": [f"big.internal.test. 60 IN A 10.78.0.{i}" for i in range(1, 6)],
    "more.internal.test": ["more.internal.test. 60 IN A 10.78.1.1"],
}


class FakeNft:
    """Records every document; `fail` makes the next ones fail."""

    def __init__(self) -> None:
        self.applied: list[dict[str, Any]] = []
        self.removed: list[str] = []
        self.fail = False

    async def apply(self, document: dict[str, Any]) -> None:
        if self.fail:
            raise NftError("Error: Could not process rule")
        self.applied.append(document)

    async def remove(self, table: str = "meshroute", family: str = "inet") -> bool:
        self.removed.append(f"{family} {table}")
        return True

    async def exists(self, table: str, family: str = "inet") -> bool:
        return bool(self.applied)

    async def list_ruleset(self) -> dict[str, Any]:
        return {"nftables": []}

    def elements(self, index: int = -1) -> dict[str, list[Any]]:
        """Set name -> elements of an applied table (the last by default)."""
        return {
            c["add"]["set"]["name"]: c["add"]["set"]["elem"]
            for c in self.applied[index]["nftables"]
            if "set" in c.get("add", {}) and "elem" in c["add"]["set"]
        }


def domain_route(rid: str, *domains: str, keep: bool = False, masquerade: bool = True) -> MapRoute:
    kind = int(NetworkType.DOMAIN)
    return MapRoute(
        rid,
        f"net-{rid}",
        str(DOMAIN_PLACEHOLDER),
        domains,
        kind,
        "key-rp",
        "rp",
        100,
        masquerade,
        keep,
        False,
    )


def domain_map(
    *routes: MapRoute, sources: tuple[str, ...] = (f"{C2}/32",), ipv6: str | None = None
) -> NetworkMap:
    me = MapPeer("rp", "key-rp", RP, ipv6, "rp", "rp")
    peers = tuple(MapPeer(p, f"key-{p}", ip, None, p, p) for p, ip in (("c2", C2), ("c3", C3)))
    rules = tuple(sorted(RouteFirewallRule(r.id, r.network, sources, r.domains, True) for r in routes))
    return NetworkMap(1, me, peers, tuple(sorted(routes, key=lambda r: r.id)), rules)


APP = domain_route("app", "app.internal.test", "*.svc.internal.test")


async def ask(peer: RoutingPeer, name: str, client: str = C2, rdtype: str = "A") -> dns.message.Message:
    assert peer.dns.forwarder is not None
    wire = await peer.dns.forwarder.handle(dns.message.make_query(name, rdtype).to_wire(), client)
    assert wire is not None
    return dns.message.from_wire(wire)


Scenario = Callable[[RoutingPeer, FakeNft, Clock, FakeUpstream], Awaitable[None]]


def scenario(tmp_path: Path, test: Scenario, **kw: Any) -> None:
    async def main() -> None:
        async with FakeUpstream(LAN) as lan:
            nft, clock = FakeNft(), Clock()
            peer = RoutingPeer(
                Ledger(tmp_path),
                IF,
                nft=nft,
                sysctl=FakeSysctl(),
                upstreams=lambda: [lan.address],
                dns_port=0,
                clock=clock.monotonic,
                **kw,
            )
            try:
                await test(peer, nft, clock, lan)
            finally:
                await peer.stop()

    run(main())


def test_a_served_domain_route_starts_the_forwarder_and_its_answers_fill_the_set(tmp_path: Path) -> None:
    async def test(peer: RoutingPeer, nft: FakeNft, clock: Clock, lan: FakeUpstream) -> None:
        assert await peer.apply(domain_map(APP)) is True
        ((host, port),) = peer.dns.listening
        assert host == RP and port > 0
        assert peer.sysctl.read(IPV4_FORWARD) == "1" and nft.elements() == {}
        reply = await ask(peer, "App.Internal.Test")
        assert reply.rcode() == dns.rcode.NOERROR
        # before the answer: one transaction, timeout = TTL + the 60 s grace
        assert nft.applied[-1] == add_elements({"d0_v4": [("10.77.0.20", 660)]})
        # a CNAME chain: the smallest TTL; AAAA into the v6 set
        await ask(peer, "a.svc.internal.test")
        await ask(peer, "a.svc.internal.test", rdtype="AAAA")
        assert nft.applied[-2] == add_elements({"d0_v4": [("10.77.0.31", 90)]})
        assert nft.applied[-1] == add_elements({"d0_v6": [("fc00:77::31", 90)]})
        # nobody else may ask, and nothing else is answered
        applied = len(nft.applied)
        assert (await ask(peer, "app.internal.test", client=C3)).rcode() == dns.rcode.REFUSED
        assert (await ask(peer, "www.example.com")).rcode() == dns.rcode.REFUSED
        assert len(nft.applied) == applied and lan.names().count("app.internal.test") == 1
        # learning never forces a rebuild
        assert await peer.apply(domain_map(APP)) is False and len(nft.applied) == applied
        clock.advance(40)
        assert peer.domain_status() == {
            "app": {
                "a.svc.internal.test": [
                    {"address": "10.77.0.31", "remaining": 50.0},
                    {"address": "fc00:77::31", "remaining": 50.0},
                ],
                "app.internal.test": [{"address": "10.77.0.20", "remaining": 620.0}],
            }
        }

    scenario(tmp_path, test)


def test_a_rebuilt_table_keeps_what_was_learned_with_the_remaining_timeouts(tmp_path: Path) -> None:
    async def test(peer: RoutingPeer, nft: FakeNft, clock: Clock, lan: FakeUpstream) -> None:
        await peer.apply(domain_map(APP))
        await ask(peer, "app.internal.test")
        await ask(peer, "a.svc.internal.test")
        applied = len(nft.applied)
        clock.advance(2)
        await ask(peer, "app.internal.test")  # its expiry moves on by 2 s (< grace / 2): not written
        assert len(nft.applied) == applied
        clock.advance(98)  # the CNAME's element (90 s) is gone from the kernel by now
        # another route before it: the table changes and app's sets become d1_...
        assert await peer.apply(domain_map(APP, domain_route("aaa", "x.internal.test"))) is True
        assert nft.elements() == {"d1_v4": [{"elem": {"val": "10.77.0.20", "timeout": 560}}]}
        assert peer.domain_status()["aaa"] == {}
        await ask(peer, "app.internal.test")  # the expiry moves on by 100 s: refreshed, in the new set
        assert nft.applied[-1] == add_elements({}, {"d1_v4": [("10.77.0.20", 660)]})

    scenario(tmp_path, test)


def test_when_a_routes_domains_change_what_was_resolved_only_for_dropped_names_goes(tmp_path: Path) -> None:
    """The route grants its names: an address learned for a name it no longer has is not forwarded
    any more (the table is rebuilt without it), the others stay with their timeouts."""

    async def test(peer: RoutingPeer, nft: FakeNft, clock: Clock, lan: FakeUpstream) -> None:
        await peer.apply(domain_map(APP))
        await ask(peer, "app.internal.test")
        await ask(peer, "a.svc.internal.test")
        narrower = domain_route("app", "*.svc.internal.test")
        assert await peer.apply(domain_map(narrower)) is True
        assert set(peer.domain_status()["app"]) == {"a.svc.internal.test"}
        assert "10.77.0.20" not in str(nft.elements())
        assert "10.77.0.31" in str(nft.elements())
        assert await peer.apply(domain_map(narrower)) is False  # nothing more to do

    scenario(tmp_path, test)


def test_keep_route_means_no_timeout_and_a_change_of_it_only_changes_the_timeouts(tmp_path: Path) -> None:
    async def test(peer: RoutingPeer, nft: FakeNft, clock: Clock, lan: FakeUpstream) -> None:
        kept = domain_route("app", "app.internal.test", keep=True)
        await peer.apply(domain_map(kept))
        await ask(peer, "app.internal.test")
        assert nft.applied[-1] == add_elements({"d0_v4": [("10.77.0.20", None)]})
        clock.advance(10_000)
        await ask(peer, "app.internal.test")  # kept: nothing to refresh
        assert nft.applied[-1] == add_elements({"d0_v4": [("10.77.0.20", None)]}) and len(nft.applied) == 2
        assert peer.domain_status() == {
            "app": {"app.internal.test": [{"address": "10.77.0.20", "remaining": None}]}
        }
        # KeepRoute off: the same rule structure, yet rebuilt; the address stays (clients still
        # route it) and now expires after the grace period
        assert await peer.apply(domain_map(domain_route("app", "app.internal.test"))) is True
        assert nft.elements() == {"d0_v4": [{"elem": {"val": "10.77.0.20", "timeout": 60}}]}
        clock.advance(61)
        assert peer.domain_status() == {"app": {}}
        # and back on: no timeout again, for what is still there
        await ask(peer, "app.internal.test")
        assert await peer.apply(domain_map(kept)) is True
        assert nft.elements() == {"d0_v4": ["10.77.0.20"]}

    scenario(tmp_path, test)


def a_records(reply: dns.message.Message) -> list[str]:
    return sorted(rd.address for rrset in reply.answer for rd in rrset if rrset.rdtype == dns.rdatatype.A)


def test_at_most_cap_addresses_per_route(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """What the set cannot take is left out of the answer (the client would route it here, to be
    dropped); an answer with nothing left is SERVFAIL."""

    async def test(peer: RoutingPeer, nft: FakeNft, clock: Clock, lan: FakeUpstream) -> None:
        peer.dns.cap = 3
        await peer.apply(domain_map(domain_route("big", "big.internal.test", "more.internal.test")))
        with caplog.at_level(logging.WARNING):
            reply = await ask(peer, "big.internal.test")
        assert reply.rcode() == dns.rcode.NOERROR
        assert a_records(reply) == ["10.78.0.1", "10.78.0.2", "10.78.0.3"]
        assert nft.applied[-1] == add_elements({"d0_v4": [(f"10.78.0.{i}", 120) for i in (1, 2, 3)]})
        assert "big holds 3 addresses (the cap): 10.78.0.4, 10.78.0.5" in caplog.text
        writes = len(nft.applied)
        assert (await ask(peer, "more.internal.test")).rcode() == dns.rcode.SERVFAIL
        assert len(nft.applied) == writes  # nothing written for it
        assert peer.domain_status()["big"].keys() == {"big.internal.test"}
        clock.advance(121)  # expired: room again
        reply = await ask(peer, "more.internal.test")
        assert a_records(reply) == ["10.78.1.1"]
        assert nft.applied[-1] == add_elements({"d0_v4": [("10.78.1.1", 120)]})

    scenario(tmp_path, test)


def test_a_refresh_takes_no_room_under_the_cap(tmp_path: Path) -> None:
    """Near the cap, an answer that renews the held addresses and brings one new one still has
    room for it (a refresh is not a new element)."""

    async def test(peer: RoutingPeer, nft: FakeNft, clock: Clock, lan: FakeUpstream) -> None:
        peer.dns.cap = 4
        lan.records["big.internal.test"] = [f"big.internal.test. 60 IN A 10.78.0.{i}" for i in (1, 2, 3)]
        await peer.apply(domain_map(domain_route("big", "big.internal.test")))
        await ask(peer, "big.internal.test")
        clock.advance(40)  # past half the grace: the next answer renews all three
        lan.records["big.internal.test"].append("big.internal.test. 60 IN A 10.78.0.4")
        reply = await ask(peer, "big.internal.test")
        assert a_records(reply) == [f"10.78.0.{i}" for i in (1, 2, 3, 4)]
        assert len(peer.domain_status()["big"]["big.internal.test"]) == 4

    scenario(tmp_path, test)


def test_when_nft_fails_the_client_gets_servfail_and_nothing_is_recorded(tmp_path: Path) -> None:
    async def test(peer: RoutingPeer, nft: FakeNft, clock: Clock, lan: FakeUpstream) -> None:
        await peer.apply(domain_map(APP))
        nft.fail = True
        assert (await ask(peer, "app.internal.test")).rcode() == dns.rcode.SERVFAIL
        nft.fail = False
        assert peer.domain_status() == {"app": {}}
        await ask(peer, "app.internal.test")  # so the next answer writes it
        assert nft.applied[-1] == add_elements({"d0_v4": [("10.77.0.20", 660)]})

    scenario(tmp_path, test)


def test_the_forwarder_goes_with_the_last_domain_route_and_takes_its_record(tmp_path: Path) -> None:
    async def test(peer: RoutingPeer, nft: FakeNft, clock: Clock, lan: FakeUpstream) -> None:
        await peer.apply(domain_map(APP))
        await ask(peer, "app.internal.test")
        assert await peer.apply(domain_map()) is True
        assert peer.dns.forwarder is None and peer.dns.listening == [] and peer.domain_status() == {}
        assert peer.sysctl.read(IPV4_FORWARD) == "0"
        await peer.apply(domain_map(APP))
        assert nft.elements() == {} and peer.dns.forwarder is not None

    scenario(tmp_path, test)


def test_stop_closes_the_forwarder_and_removes_the_table(tmp_path: Path) -> None:
    async def test(peer: RoutingPeer, nft: FakeNft, clock: Clock, lan: FakeUpstream) -> None:
        await peer.apply(domain_map(APP))
        ((_, port),) = peer.dns.listening
        await peer.stop()
        assert nft.removed == ["inet meshroute"] and peer.dns.forwarder is None
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.bind((RP, port))  # free again

    scenario(tmp_path, test)


def test_real_queries_over_udp_and_tcp_on_the_overlay_addresses_v4_and_v6(tmp_path: Path) -> None:
    async def test(peer: RoutingPeer, nft: FakeNft, clock: Clock, lan: FakeUpstream) -> None:
        await peer.apply(domain_map(APP, sources=(f"{C2}/32", "::1/128"), ipv6="::1"))
        (v4, v6) = peer.dns.listening
        assert v4[0] == RP and v6[0] == "::1"
        q = dns.message.make_query("app.internal.test", "A")
        udp = await dns.asyncquery.udp(q, RP, port=v4[1], source=C2, timeout=3)
        tcp = await dns.asyncquery.tcp(q, RP, port=v4[1], source=C2, timeout=3)
        six = await dns.asyncquery.udp(q, "::1", port=v6[1], timeout=3)
        assert {r.address for m in (udp, tcp, six) for r in m.answer[0]} == {"10.77.0.20"}
        refused = await dns.asyncquery.udp(q, RP, port=v4[1], source=C3, timeout=3)
        assert refused.rcode() == dns.rcode.REFUSED

    scenario(tmp_path, test)


def test_the_upstreams_are_asked_again_and_a_busy_port_is_retried(tmp_path: Path) -> None:
    async def main() -> None:
        async with (
            FakeUpstream(LAN) as first,
            FakeUpstream({"app.internal.test": LAN["big.internal.test"]}) as second,
        ):
            upstreams = [first.address]
            busy = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            busy.bind((RP, 0))
            port = busy.getsockname()[1]
            nft = FakeNft()
            peer = RoutingPeer(
                Ledger(tmp_path), IF, nft=nft, sysctl=FakeSysctl(), upstreams=lambda: upstreams, dns_port=port
            )
            await peer.apply(domain_map(APP))  # the table is in place, the forwarder is not
            assert peer.dns.forwarder is None and len(nft.applied) == 1
            busy.close()
            await peer.apply(domain_map(APP))
            assert peer.dns.listening == [(RP, port)]
            assert (await ask(peer, "app.internal.test")).answer[0][0].address == "10.77.0.20"
            upstreams[:] = [second.address]
            await peer.apply(domain_map(APP))
            assert (await ask(peer, "app.internal.test")).answer[0][0].address.startswith("10.78.0.")
            await peer.stop()

    run(main())


def test_answers_are_serialised_with_the_table_replacement(tmp_path: Path) -> None:
    async def test(peer: RoutingPeer, nft: FakeNft, clock: Clock, lan: FakeUpstream) -> None:
        await peer.apply(domain_map(APP))
        async with peer.dns.lock:  # a rebuild in progress
            query = asyncio.create_task(ask(peer, "app.internal.test"))
            await asyncio.sleep(0.2)
            assert not query.done() and lan.names() == ["app.internal.test"]
        assert (await query).rcode() == dns.rcode.NOERROR
        assert nft.applied[-1] == add_elements({"d0_v4": [("10.77.0.20", 660)]})

    scenario(tmp_path, test)


def test_a_table_that_fails_to_apply_leaves_answers_filling_the_sets_still_there(tmp_path: Path) -> None:
    """Set names are positions: when a new table (with another route first) fails, the kernel
    keeps the old one, and an answer must fill its own route's set there, not another's."""

    async def test(peer: RoutingPeer, nft: FakeNft, clock: Clock, lan: FakeUpstream) -> None:
        app = domain_route("b-app", "app.internal.test")
        await peer.apply(domain_map(app))  # b-app is d0
        nft.fail = True
        with pytest.raises(NftError):
            await peer.apply(domain_map(domain_route("a-new", "new.internal.test"), app))  # b-app: d1
        nft.fail = False
        await ask(peer, "app.internal.test")
        assert nft.applied[-1] == add_elements({"d0_v4": [("10.77.0.20", 660)]})

    scenario(tmp_path, test)
