"""A routing peer's domain routes for real (root): the DNS forwarder on the overlay address, the nft
sets it fills, real nftables and packets, in the network namespaces of tests/e2e/test_firewall.py.

The routing-peer code runs in one event loop in a thread that entered rt's namespace for the whole
test (the forwarder's sockets live there, as they would in the agent); the "host resolver" of rt is
a fake DNS server on rt's loopback, given as ``upstreams``. The client asks the forwarder from its
overlay addresses and then connects to what it was told.
"""

from __future__ import annotations

import asyncio
import json
import sys
import threading
import time
from collections.abc import Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

import dns.message
import pytest

from meshroute.agent.firewall import RoutingPeer
from meshroute.agent.ledger import Ledger
from meshroute.core.model import DOMAIN_PLACEHOLDER, NetworkType
from meshroute.core.networkmap import MapPeer, MapRoute, NetworkMap, RouteFirewallRule
from meshroute.lab import World, netns
from tests.unit.agent.dns.fakedns import FakeUpstream

from . import test_firewall as fw

T = TypeVar("T")
bed = fw.bed  # the same test bed (a fixture)
IF, RT_V4, RT_V6, C2, C3 = fw.IF, fw.RT_V4, fw.RT_V6, fw.C2, fw.C3
LAN_HOST, RT_LAN = fw.LAN_HOST, fw.RT_LAN
RECORDS = {
    "app.internal.test": [f"app.internal.test. 300 IN A {LAN_HOST}"],
    "brief.internal.test": [f"brief.internal.test. 1 IN A {LAN_HOST}"],
}


class NetnsLoop:
    """One event loop in a thread inside a node's namespace, for as long as the test needs it."""

    def __init__(self, world: World, node: str) -> None:
        self.loop = asyncio.new_event_loop()
        ready = threading.Event()

        def target() -> None:
            netns.setns_current_thread(world.netns(node))
            asyncio.set_event_loop(self.loop)
            self.loop.call_soon(ready.set)
            self.loop.run_forever()

        self.thread = threading.Thread(target=target, name=f"loop-{node}", daemon=True)
        self.thread.start()
        assert ready.wait(10), "the namespace's loop did not start"

    def run(self, fn: Callable[[], Coroutine[Any, Any, T]], timeout: float = 30) -> T:
        return asyncio.run_coroutine_threadsafe(fn(), self.loop).result(timeout)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


@pytest.fixture
def rt(bed: World) -> Iterator[NetnsLoop]:
    loop = NetnsLoop(bed, "rt")
    yield loop
    loop.close()


def domain_map(
    *routes: tuple[str, tuple[str, ...], bool], sources: tuple[str, ...] = (f"{C2}/32",)
) -> NetworkMap:
    """rt's map: it serves each (route ID, domains, keep_route), masqueraded, for ``sources``."""
    me = MapPeer("rt", "key-rt", RT_V4, RT_V6, "rt", "rt")
    entries, rules = [], []
    for rid, domains, keep in routes:
        kind = int(NetworkType.DOMAIN)
        entries.append(
            MapRoute(
                rid,
                f"net-{rid}",
                str(DOMAIN_PLACEHOLDER),
                domains,
                kind,
                "key-rt",
                "rt",
                100,
                True,
                keep,
                False,
            )
        )
        rules.append(RouteFirewallRule(rid, str(DOMAIN_PLACEHOLDER), sources, domains, True))
    # the clients are peers of the mesh: the forwarder answers nobody else
    peers = (MapPeer("c2", "key-c2", C2, None, "c2", "c2"), MapPeer("c3", "key-c3", C3, None, "c3", "c3"))
    return NetworkMap(1, me, peers, tuple(sorted(entries, key=lambda e: e.id)), tuple(sorted(rules)))


_ASK = """
import socket, sys
src, server, port, query = sys.argv[1], sys.argv[2], int(sys.argv[3]), bytes.fromhex(sys.argv[4])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(3)
s.bind((src, 0))
s.sendto(query, (server, port))
print(s.recv(65535).hex())
"""


def ask(world: World, src: str, name: str, port: int) -> dns.message.Message:
    """A query from the client, with source ``src``, to rt's forwarder on its overlay address."""
    wire = dns.message.make_query(name, "A").to_wire().hex()
    done = world.exec("cl", [sys.executable, "-I", "-S", "-c", _ASK, src, RT_V4, str(port), wire], timeout=10)
    return dns.message.from_wire(bytes.fromhex(done.stdout.strip()))


def elements(world: World, name: str) -> dict[str, tuple[int | None, int | None]]:
    """The elements of one of rt's sets, as nft lists them: address -> (timeout, expires)."""
    listing = json.loads(world.exec("rt", ["nft", "-j", "list", "set", "inet", "meshroute", name]).stdout)
    (found,) = [item["set"] for item in listing["nftables"] if "set" in item]
    out: dict[str, tuple[int | None, int | None]] = {}
    for elem in found.get("elem", []):
        if isinstance(elem, dict):
            out[elem["elem"]["val"]] = (elem["elem"].get("timeout"), elem["elem"].get("expires"))
        else:
            out[elem] = (None, None)
    return out


def test_only_resolved_addresses_are_forwarded_and_a_rebuild_keeps_them(
    bed: World, rt: NetnsLoop, tmp_path: Path
) -> None:
    lan = FakeUpstream(RECORDS)
    upstream = rt.run(lan.start)
    peer = RoutingPeer(Ledger(tmp_path), IF, upstreams=lambda: [upstream], dns_grace=60)
    app = ("app", ("app.internal.test",), False)
    rt.run(lambda: peer.apply(domain_map(app)))
    ((_, port), _) = peer.dns.listening  # IPv4 and IPv6 overlay addresses
    assert fw.seen(bed, C2, LAN_HOST, timeout=0.5)[0] is None  # nothing resolved: nothing forwarded

    reply = ask(bed, C2, "app.internal.test", port)
    assert [r.address for r in reply.answer[0]] == [LAN_HOST]
    ((timeout, expires),) = elements(bed, "d0_v4").values()
    assert timeout == 360 and expires is not None and 350 < expires <= 360  # TTL 300 + grace 60
    assert fw.seen(bed, C2, LAN_HOST)[0] == RT_LAN  # forwarded, masqueraded
    assert ask(bed, C3, "app.internal.test", port).rcode() == 5  # REFUSED: not a source of the route
    assert fw.seen(bed, C3, LAN_HOST, timeout=0.5)[0] is None

    # another route sorts first: the table is replaced and app's address moves to d1_v4, with what
    # is left of its timeout
    rt.run(lambda: peer.apply(domain_map(("aaa", ("x.internal.test",), False), app)))
    assert elements(bed, "d0_v4") == {}
    ((timeout, expires),) = elements(bed, "d1_v4").values()
    assert timeout is not None and 340 < timeout <= 360 and expires is not None
    assert fw.seen(bed, C2, LAN_HOST)[0] == RT_LAN

    # the listing reads back in as it is (elements with timeouts and expiries included)
    text = fw.nft_text(bed)
    bed.exec("rt", ["nft", "delete table inet meshroute"])
    bed.exec("rt", ["nft", "-f", "-"], input=text)
    assert LAN_HOST in elements(bed, "d1_v4")
    rt.run(peer.stop)
    rt.run(lan.stop)
    assert "meshroute" not in fw.nft_text(bed)


def test_kernel_timeouts_expire_addresses_and_keep_route_keeps_them(
    bed: World, rt: NetnsLoop, tmp_path: Path
) -> None:
    lan = FakeUpstream(RECORDS)
    upstream = rt.run(lan.start)
    peer = RoutingPeer(Ledger(tmp_path), IF, upstreams=lambda: [upstream], dns_grace=1)
    brief = ("brief", ("brief.internal.test",), False)
    rt.run(lambda: peer.apply(domain_map(brief)))
    ((_, port), _) = peer.dns.listening
    ask(bed, C2, "brief.internal.test", port)
    assert elements(bed, "d0_v4")[LAN_HOST][0] == 2  # TTL 1 + grace 1
    assert fw.seen(bed, C2, LAN_HOST)[0] == RT_LAN
    time.sleep(1.2)
    ask(bed, C2, "brief.internal.test", port)  # refreshed in place (add, delete, add)
    timeout, expires = elements(bed, "d0_v4")[LAN_HOST]
    assert timeout == 2 and expires is not None and expires >= 1  # would be 0 without the refresh
    time.sleep(2.5)
    assert elements(bed, "d0_v4") == {} and peer.domain_status() == {"brief": {}}
    assert fw.seen(bed, C2, LAN_HOST, timeout=0.5)[0] is None  # expired: dropped again

    # KeepRoute: no timeout; when it changes back the address stays (clients still route it)
    # with the grace period as its timeout, and then goes
    rt.run(lambda: peer.apply(domain_map(("brief", brief[1], True))))
    ask(bed, C2, "brief.internal.test", port)
    time.sleep(2.5)
    assert elements(bed, "d0_v4") == {LAN_HOST: (None, None)}
    assert fw.seen(bed, C2, LAN_HOST)[0] == RT_LAN
    rt.run(lambda: peer.apply(domain_map(brief)))
    timeout, _ = elements(bed, "d0_v4")[LAN_HOST]
    assert timeout is not None and timeout <= 1
    time.sleep(1.5)
    assert elements(bed, "d0_v4") == {}
    rt.run(peer.stop)
    rt.run(lan.stop)
