"""The routing peer's firewall for real (root): nftables, sysctls and packets in network namespaces.

No agents and no WireGuard: the "overlay" is a veth pair named ``mr0`` between a client namespace
(overlay addresses 100.64.0.2 and .3, fd00:64::2 and ::3) and the routing peer ``rt`` (100.64.0.1,
fd00:64::1), which has the office LAN (10.77.0.0/24, fc00:77::/64, its host routes back through rt)
and the internet (203.0.113.0/24, reachable from rt only) behind it. The routing-peer code runs in
this process, in a thread that entered rt's namespace, exactly as the agent would call it.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import threading
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, TypeVar

import pytest

from meshroute.agent.firewall import RoutingPeer, restore_leftovers
from meshroute.agent.firewall.nft import Nftables, NftError
from meshroute.agent.firewall.requirements import Check, check
from meshroute.agent.firewall.ruleset import ServedRoute, build
from meshroute.agent.ledger import Ledger
from meshroute.core.model import NetworkType
from meshroute.core.networkmap import MapPeer, MapRoute, NetworkMap, RouteFirewallRule
from meshroute.lab import Internet, Lan, World, netns
from meshroute.lab.probes import WHOAMI_PORT

from .conftest import MakeWorld

T = TypeVar("T")
IF = "mr0"
RT_V4, C2, C3 = "100.64.0.1", "100.64.0.2", "100.64.0.3"
RT_V6, C2_V6, C3_V6 = "fd00:64::1", "fd00:64::2", "fd00:64::3"
LAN_HOST, LAN_HOST_V6, RT_LAN, RT_LAN_V6 = "10.77.0.10", "fc00:77::10", "10.77.0.1", "fc00:77::1"
INET_HOST, RT_WAN = "203.0.113.10", "203.0.113.1"
LAN, LAN6 = "10.77.0.0/24", "fc00:77::/64"


# -- the test bed ------------------------------------------------------------------------------------


@pytest.fixture
def bed(make_world: MakeWorld) -> World:
    world = make_world(
        peers=["cl", "rt"],
        lans={"office": Lan(routers=["rt"], default_via="rt")},
        internet=Internet(exits=["rt"]),
        server=False,
    )
    cl, rt = world.netns("cl"), world.netns("rt")
    # both ends made directly in their namespaces, like the lab's links (the root namespace never
    # holds them); no link-local addresses, so nothing changes by itself a second later
    netns.ip_batch([f"link add name {IF} netns {cl} type veth peer name {IF} netns {rt}"])
    # rt's end up first: a packet the client sends before its link has carrier is lost, and the
    # neighbour lookup it started retries only a second later
    overlay = {
        # link-local addresses too (without duplicate detection, so they are there at once): a
        # neighbour solicitation for a forwarded packet's destination is sent from one
        rt: [
            f"addr add {RT_V4}/16 dev {IF}",
            f"addr add {RT_V6}/64 dev {IF} nodad",
            f"addr add fe80::1/64 dev {IF} nodad",
        ],
        cl: [
            f"addr add fe80::2/64 dev {IF} nodad",
            f"addr add {C2}/16 dev {IF}",
            f"addr add {C3}/16 dev {IF}",
            f"addr add {C2_V6}/64 dev {IF} nodad",
            f"addr add {C3_V6}/64 dev {IF} nodad",
            f"route add 10.77.0.0/24 via {RT_V4} dev {IF}",
            f"route add default via {RT_V4} dev {IF}",
            f"route add default via {RT_V6} dev {IF}",
        ],
    }
    for ns in (rt, cl):
        netns.ip_batch([f"link set {IF} addrgenmode none", f"link set {IF} up", *overlay[ns]], netns=ns)
    # neighbours resolved before the tests time anything: for about half a second after a world is
    # built, the first ARP request on a LAN segment goes unanswered and is retried a second later
    for node, address in (
        ("cl", RT_V4),
        ("cl", RT_V6),
        ("rt", LAN_HOST),
        ("rt", LAN_HOST_V6),
        ("rt", INET_HOST),
    ):
        assert world.ping(node, address, timeout=10), f"{node} cannot reach {address}"
    world.start_whoami("office-h1")
    world.start_whoami("inet-h1")
    return world


def in_netns(world: World, node: str, fn: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run ``fn()`` in an event loop of its own, in a thread that entered the node's namespace: its
    netlink sockets, /proc/sys and child processes (nft) are the node's, the test's are untouched."""
    results: list[T] = []
    errors: list[BaseException] = []

    def target() -> None:
        try:
            netns.setns_current_thread(world.netns(node))
            results.append(asyncio.run(fn()))
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=target, name=f"in-{node}")
    thread.start()
    thread.join(30)
    if errors:
        raise errors[0]
    assert results, f"{fn} did not finish within 30 s"
    return results[0]


_SEEN = """
import socket, sys
src, dst, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
family = socket.AF_INET6 if ":" in dst else socket.AF_INET
s = socket.socket(family, socket.SOCK_STREAM)
s.settimeout(float(sys.argv[4]))
s.bind((src, 0))
try:
    s.connect((dst, port))
    print(s.recv(100).decode(), s.getsockopt(socket.IPPROTO_TCP, socket.TCP_MAXSEG))
except OSError as exc:
    print(exc, file=sys.stderr)
    sys.exit(1)
"""


def seen(world: World, src: str, dst: str, *, timeout: float = 1.0) -> tuple[str | None, int]:
    """From the client, with source ``src``: the address the whoami server at ``dst`` saw (None: no
    answer), and the connection's MSS as the client ended up with it."""
    argv = [sys.executable, "-I", "-S", "-c", _SEEN, src, dst, str(WHOAMI_PORT), str(timeout)]
    done = world.exec("cl", argv, check=False, timeout=timeout + 5)
    if done.returncode != 0:
        return None, 0
    address, mss = done.stdout.split()
    return address, int(mss)


def network_map(*routes: tuple[str, str, bool, tuple[str, ...]]) -> NetworkMap:
    """rt's map: it serves each (route ID, network, masquerade, allowed sources)."""
    me = MapPeer("rt", "key-rt", RT_V4, RT_V6, "rt", "rt")
    entries, rules = [], []
    for rid, network, masquerade, sources in routes:
        kind = NetworkType.IPV6 if ":" in network else NetworkType.IPV4
        entries.append(
            MapRoute(rid, f"net-{rid}", network, (), int(kind), "key-rt", "rt", 100, masquerade, False, False)
        )
        rules.append(RouteFirewallRule(rid, network, sources))
    return NetworkMap(1, me, (), tuple(sorted(entries, key=lambda e: e.id)), tuple(sorted(rules)))


def serve(world: World, peer: RoutingPeer, m: NetworkMap) -> None:
    in_netns(world, "rt", lambda: peer.apply(m))


def sysctl(world: World, node: str, key: str) -> str:
    return world.exec(node, ["sysctl", "-n", key]).stdout.strip()


def nft_text(world: World, node: str = "rt") -> str:
    return world.exec(node, ["nft", "-s", "list", "ruleset"]).stdout


# -- traffic -----------------------------------------------------------------------------------------


def test_masquerade_and_allowed_sources(bed: World, tmp_path: Path) -> None:
    """(a) the LAN sees the routing peer's address; (c)/(d) a source the route does not grant is dropped;
    the same for IPv6."""
    peer = RoutingPeer(Ledger(tmp_path), IF)
    assert seen(bed, C2, LAN_HOST, timeout=0.5)[0] is None  # nothing forwarded before
    serve(
        bed,
        peer,
        network_map(("office", LAN, True, (f"{C2}/32",)), ("office6", LAN6, True, (f"{C2_V6}/128",))),
    )
    assert seen(bed, C2, LAN_HOST)[0] == RT_LAN
    assert seen(bed, C3, LAN_HOST, timeout=0.5)[0] is None
    assert seen(bed, C2_V6, LAN_HOST_V6)[0] == RT_LAN_V6
    assert seen(bed, C3_V6, LAN_HOST_V6, timeout=0.5)[0] is None
    # the grant moves to .3 (one transaction): .2 is dropped from now on
    serve(bed, peer, network_map(("office", LAN, True, (f"{C3}/32",))))
    assert seen(bed, C3, LAN_HOST)[0] == RT_LAN
    assert seen(bed, C2, LAN_HOST, timeout=0.5)[0] is None
    in_netns(bed, "rt", peer.stop)


def test_without_masquerade_the_lan_sees_the_client_and_syns_are_clamped(bed: World, tmp_path: Path) -> None:
    """(b), with a set of two sources; the LAN host's SYN-ACK into the overlay gets MSS 1240 (MTU 1280)."""
    peer = RoutingPeer(Ledger(tmp_path), IF, mtu=1280)
    serve(bed, peer, network_map(("office", LAN, False, (f"{C2}/32", f"{C3}/32"))))
    assert "set r0_v4" in nft_text(bed)
    address, mss = seen(bed, C2, LAN_HOST)
    assert address == C2 and mss <= 1240, mss  # 1448 (veth MTU 1500) without the clamp
    assert seen(bed, C3, LAN_HOST)[0] == C3
    in_netns(bed, "rt", peer.stop)
    # without our table nothing is clamped: the check above can fail
    bed.exec("rt", ["sysctl", "-qw", "net.ipv4.ip_forward=1"])
    address, mss = seen(bed, C2, LAN_HOST)
    assert address == C2 and mss > 1240
    bed.exec("rt", ["sysctl", "-qw", "net.ipv4.ip_forward=0"])


def test_exit_node_and_lan_route_decide_by_longest_prefix(bed: World, tmp_path: Path) -> None:
    peer = RoutingPeer(Ledger(tmp_path), IF)
    serve(
        bed,
        peer,
        network_map(
            ("exit", "0.0.0.0/0", True, (f"{C2}/32", f"{C3}/32")),
            ("office", LAN, False, (f"{C2}/32",)),
        ),
    )
    assert seen(bed, C2, INET_HOST)[0] == RT_WAN  # exit node: masqueraded
    assert seen(bed, C3, INET_HOST)[0] == RT_WAN
    assert seen(bed, C2, LAN_HOST)[0] == C2  # the LAN route: not masqueraded, though the exit node is
    assert seen(bed, C3, LAN_HOST, timeout=0.5)[0] is None  # the LAN route does not grant .3
    in_netns(bed, "rt", peer.stop)


# -- forwarding sysctls --------------------------------------------------------------------------------


def test_forwarding_is_set_while_serving_and_restored_exactly(bed: World, tmp_path: Path) -> None:
    # a state the copy-on-write of ip_forward would clobber: forwarding on for one interface only
    bed.exec("rt", ["sysctl", "-qw", "net.ipv4.conf.lan0.forwarding=1", "net.ipv6.conf.wan0.accept_ra=0"])
    before = bed.snapshot("rt")
    peer = RoutingPeer(Ledger(tmp_path), IF)
    serve(
        bed,
        peer,
        network_map(("office", LAN, True, (f"{C2}/32",)), ("office6", LAN6, True, (f"{C2_V6}/128",))),
    )
    assert sysctl(bed, "rt", "net.ipv4.ip_forward") == "1"
    assert sysctl(bed, "rt", "net.ipv6.conf.all.forwarding") == "1"
    assert sysctl(bed, "rt", "net.ipv6.conf.lan0.accept_ra") == "2"  # was 1
    assert sysctl(bed, "rt", "net.ipv6.conf.wan0.accept_ra") == "0"  # was not 1: left alone
    assert sysctl(bed, "rt", f"net.ipv6.conf.{IF}.accept_ra") == "1"  # the overlay: left alone
    # the IPv6 route goes: IPv6 forwarding back, IPv4 stays
    serve(bed, peer, network_map(("office", LAN, True, (f"{C2}/32",))))
    assert sysctl(bed, "rt", "net.ipv6.conf.all.forwarding") == "0"
    assert sysctl(bed, "rt", "net.ipv6.conf.lan0.accept_ra") == "1"
    assert sysctl(bed, "rt", "net.ipv4.ip_forward") == "1"
    in_netns(bed, "rt", peer.stop)
    after = bed.snapshot("rt")
    assert before == after, before.diff(after)


def test_a_crash_is_undone_by_restore_leftovers(bed: World, tmp_path: Path) -> None:
    before = bed.snapshot("rt")
    peer = RoutingPeer(Ledger(tmp_path), IF)
    serve(
        bed,
        peer,
        network_map(
            ("exit", "0.0.0.0/0", True, (f"{C2}/32",)), ("exit-v6-default", "::/0", True, (f"{C2_V6}/128",))
        ),
    )
    assert sysctl(bed, "rt", "net.ipv4.ip_forward") == "1" and "table inet meshroute" in nft_text(bed)
    del peer  # killed: no stop
    done = in_netns(bed, "rt", lambda: restore_leftovers(Ledger(tmp_path)))
    assert "nftables table inet meshroute" in done and "sysctl net.ipv4.ip_forward=0" in done
    after = bed.snapshot("rt")
    assert before == after, before.diff(after)


# -- requirement checks --------------------------------------------------------------------------------


def by_name(checks: list[Check]) -> dict[str, Check]:
    return {c.name: c for c in checks}


def test_requirement_checks_fail_and_pass_in_the_right_situations(bed: World, tmp_path: Path) -> None:
    routes = [
        ServedRoute("office", LAN, True, (f"{C2}/32",)),
        ServedRoute("nowhere", "10.99.0.0/24", True, (f"{C2}/32",)),
        ServedRoute("loop", "10.98.0.0/24", True, (f"{C2}/32",)),
        ServedRoute("exit", "0.0.0.0/0", True, (f"{C2}/32",)),
    ]
    bed.exec("rt", ["ip", "route", "add", "10.98.0.0/24", "via", C2, "dev", IF])

    def run() -> dict[str, Check]:
        return by_name(in_netns(bed, "rt", lambda: check(routes, IF)))

    checks = run()
    assert not checks["forwarding-ipv4"].ok and "net.ipv4.ip_forward = 0" in checks["forwarding-ipv4"].detail
    # 10.77.0.1 is rt's own address: the lookup moves on to 10.77.0.254
    assert checks[f"path {LAN}"].ok and "10.77.0.254 dev lan0" in checks[f"path {LAN}"].detail
    assert (
        checks["path 10.99.0.0/24"].ok and "via 203.0.113.254 dev wan0" in checks["path 10.99.0.0/24"].detail
    )
    assert not checks["path 10.98.0.0/24"].ok and f"goes back into {IF}" in checks["path 10.98.0.0/24"].detail
    assert checks["path 0.0.0.0/0"].ok and "dev wan0" in checks["path 0.0.0.0/0"].detail
    assert checks["firewall"].ok
    # without the default route, neither the exit node nor 10.99.0.0/24 has a way out
    bed.exec("rt", ["ip", "route", "del", "default", "dev", "wan0"])
    checks = run()
    assert (
        not checks["path 10.99.0.0/24"].ok and "no route to 10.99.0.1" in checks["path 10.99.0.0/24"].detail
    )
    assert not checks["path 0.0.0.0/0"].ok and "no IPv4 default route" in checks["path 0.0.0.0/0"].detail
    assert checks[f"path {LAN}"].ok

    # a host firewall that drops forwarded traffic: reported, and really dropping (the check is right)
    bed.exec("rt", ["sysctl", "-qw", "net.ipv4.ip_forward=1"])
    hostfw = "table inet hostfw {\n  chain fw { type filter hook forward priority 0; policy drop; }\n}\n"
    bed.exec("rt", ["nft", "-f", "-"], input=hostfw)
    peer = RoutingPeer(Ledger(tmp_path), IF)
    serve(bed, peer, network_map(("office", LAN, True, (f"{C2}/32",))))
    checks = run()
    assert checks["forwarding-ipv4"].ok
    assert not checks["firewall"].ok and "table inet hostfw, chain fw " in checks["firewall"].detail
    assert seen(bed, C2, LAN_HOST, timeout=0.5)[0] is None
    # what the detail says to add, added: passes, and traffic flows
    for line in ('iifname "mr0" accept', 'oifname "mr0" ct state established,related accept'):
        bed.exec("rt", ["nft", f"insert rule inet hostfw fw {line}"])
    assert run()["firewall"].ok
    assert seen(bed, C2, LAN_HOST)[0] == RT_LAN
    in_netns(bed, "rt", peer.stop)
    assert "hostfw" in nft_text(bed)  # never touched


# -- nft itself ----------------------------------------------------------------------------------------


def without_handles(ruleset: dict[str, Any]) -> list[Any]:
    """nft's listing minus the handles, which a re-created table renumbers."""
    out = []
    for item in ruleset["nftables"]:
        ((kind, body),) = item.items()
        out.append({kind: {k: v for k, v in body.items() if k != "handle"}})
    return out


def test_apply_is_atomic_and_idempotent_and_remove_restores_the_ruleset(bed: World) -> None:
    bed.exec("rt", ["nft", "add table ip other; add chain ip other c { type filter hook input priority 0; }"])
    before = nft_text(bed)
    nft = Nftables()
    documents = [
        build(IF, []),
        build(IF, [ServedRoute("a", LAN, True, (f"{C2}/32", f"{C3}/32"))]),
        build(
            IF,
            [
                ServedRoute("exit", "0.0.0.0/0", True, (f"{C2}/32", f"{C3}/32")),
                ServedRoute("exit-v6-default", "::/0", True, (f"{C2_V6}/128",)),
                ServedRoute("lan", LAN, False, (f"{C2}/32",)),
                ServedRoute("lan6", LAN6, True, (f"{C2_V6}/128", f"{C3_V6}/128")),
                ServedRoute("nobody", "10.1.0.0/16", True, ()),
            ],
            mtu=1420,
        ),
    ]

    async def scenario() -> None:
        for doc in documents:
            await nft.check(doc)  # nft and the kernel accept every shape
        await nft.apply(documents[2])
        first = without_handles(await nft.list_ruleset())
        await nft.apply(documents[2])
        assert without_handles(await nft.list_ruleset()) == first, "applying twice changed something"
        broken = {
            "nftables": [
                *documents[1]["nftables"],
                {
                    "add": {
                        "rule": {
                            "family": "inet",
                            "table": "meshroute",
                            "chain": "forward",
                            "expr": [
                                {
                                    "match": {
                                        "op": "==",
                                        "left": {"payload": {"protocol": "ip", "field": "saddr"}},
                                        "right": "@missing",
                                    }
                                },
                                {"accept": None},
                            ],
                        }
                    }
                },
            ]
        }
        with pytest.raises(NftError, match=r"missing|No such file"):
            await nft.apply(broken)
        assert without_handles(await nft.list_ruleset()) == first, "a failed transaction changed the ruleset"
        assert await nft.exists("meshroute")
        assert await nft.remove() is True
        assert await nft.remove() is False and not await nft.exists("meshroute")

    in_netns(bed, "rt", scenario)
    assert nft_text(bed) == before


def test_the_rules_read_as_documented(bed: World) -> None:
    """The layout the module docstring promises, as `nft list table` shows it."""
    doc = build(
        IF,
        [
            ServedRoute("exit", "0.0.0.0/0", True, (f"{C2}/32", f"{C3}/32")),
            ServedRoute("office", LAN, False, (f"{C2}/32",)),
        ],
    )
    in_netns(bed, "rt", lambda: Nftables().apply(doc))
    text = bed.exec("rt", ["nft", "list", "table", "inet", "meshroute"]).stdout
    print(text)
    for line in (
        'iifname "mr0" jump from_overlay',
        "ct state established,related accept",
        f'ip daddr {LAN} ip saddr {C2} accept comment "office"',
        f'ip daddr {LAN} drop comment "office"',
        'ip saddr @r0_v4 accept comment "exit"',
        'drop comment "everything else from the overlay"',
        'iifname "mr0" oifname != "mr0" jump nat_from_overlay',
        f'ip daddr {LAN} return comment "office"',
        'meta nfproto ipv4 masquerade comment "exit"',
        "tcp option maxseg size set 1240",
        "tcp option maxseg size set 1220",
    ):
        assert line in text, line
    assert text.index(f"ip daddr {LAN} drop") < text.index("ip saddr @r0_v4 accept")  # longest prefix first
    bed.exec("rt", ["nft", "-c", "-f", "-"], input=text)  # what `nft list` shows reads back (no keywords)


def test_helpers_keep_the_root_namespace(bed: World) -> None:
    """The in-namespace thread must never leak into the test's own namespace."""
    root = subprocess.run(["nft", "list", "tables"], capture_output=True, text=True).stdout
    in_netns(bed, "rt", lambda: Nftables().apply(build(IF, [])))
    assert subprocess.run(["nft", "list", "tables"], capture_output=True, text=True).stdout == root
    assert "meshroute" in nft_text(bed)
