"""Domain routes with real agents (the seed's "DNS routes"): a client's DNS interceptor sends the names
of its domain routes to the chosen routing peer's forwarder through the tunnel, routes the addresses
in each answer before the application gets it, and leaves every other name as it was.

    mgmt (172.31.0.2)        the server, and the clients' usual name server (dnsmasq: www.outside.test,
                             svc.internal.test -> 192.0.2.x, so who answered shows)
    client, outsider, ...    agents; their resolv.conf (/etc/netns/NS/resolv.conf) names 172.31.0.2
    r1 (r2)                  routing peers; their resolv.conf names the office LAN's dnsmasq
    office-h1 (10.77.0.10)   dnsmasq for internal.test, and a whoami server on every address it has
                             (10.77.0.20 = app.internal.test, ...)

One world per test: (1) names of routes routed, the rest untouched, wildcards, access control, a
hand-made route; (2) answers that change, KeepRoute, TTL expiry and connections that postpone it;
(3) HA failover with learned addresses; (4) the client's resolv.conf and learned addresses across
SIGTERM and SIGKILL. The host's /etc/resolv.conf is compared before and after every test.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from meshroute.agent.wireguard import uapi
from meshroute.lab import Lan, Proc, World
from meshroute.lab.dnsmasq import start_dnsmasq
from tests.e2e.conftest import MakeWorld
from tests.e2e.domains import (
    FORWARDER_PORT,
    INTERCEPTOR,
    MANAGED,
    add_addresses,
    asked,
    create_domain_route,
    dig,
    getent,
    host_resolv_conf,
    in_domain_sets,
    learned,
    learned_prefixes,
    rcode,
    resolv_conf,
    restart_dnsmasq,
    route_status,
    start_agents_with,
    wait_interceptor,
)
from tests.e2e.mesh import overlay, wg_pid
from tests.e2e.routed import (
    add_counters,
    counters,
    everyone,
    group,
    group_view,
    holder,
    ping_run,
    routes_list_cli,
    routing_peer,
    table,
    wait_replies,
    wait_until,
    wait_via,
)
from tests.needs import need_dns_tools

ZONE = "internal.test"
ORIGINAL = (
    "# the client's own resolv.conf\nsearch corp.test\nnameserver 172.31.0.2\noptions timeout:2 attempts:2\n"
)
APP, OTHER, SVC_BASE, SVC_LB = "10.77.0.20", "10.77.0.21", "10.77.0.30", "10.77.0.31"
GAP_LIMIT_S = 5.0


@pytest.fixture(autouse=True)
def _host_resolv_conf_untouched(lab_ready: None) -> Iterator[None]:
    need_dns_tools()
    before = host_resolv_conf()
    yield
    assert host_resolv_conf() == before, "the host's /etc/resolv.conf changed"


def _route(v4: str) -> str:
    return f"{v4} dev mr0"


def _lan_dns(world: World, *records: str) -> Proc:
    """The office LAN's dnsmasq on office-h1 (internal.test), the routing peers' name server."""
    host = world.node("office-h1").ipv4
    return start_dnsmasq(world, "office-h1", host, ZONE, *records, name="dnsmasq-lan")


def _usual_dns(world: World) -> Proc:
    """The clients' usual name server, in the management node."""
    return start_dnsmasq(
        world,
        "mgmt",
        world.node("mgmt").ipv4,
        "test",
        "--host-record=www.outside.test,192.0.2.80",
        "--host-record=svc.internal.test,192.0.2.30",  # not the LAN's answer: who answered shows
        name="dnsmasq-usual",
    )


def _resolvers(world: World, clients: list[str], routers: list[str]) -> None:
    """Before any agent starts (a running process keeps the file it was started with)."""
    for node in clients:
        world.set_resolv_conf(node, ORIGINAL)
    for node in routers:
        world.set_resolv_conf(node, f"nameserver {world.node('office-h1').ipv4}\n")


def _wait_learned(world: World, node: str, network_id: str, expected: dict[str, set[str]]) -> None:
    wait_until(
        world,
        f"{node}: learned addresses of {network_id}",
        lambda: learned_prefixes(world, node, network_id),
        lambda seen: seen == expected,
        timeout=20,
        logs=[node],
    )


def _holds_for(world: World, what: str, seconds: float, condition: Callable[[], bool]) -> None:
    """Fail as soon as ``condition`` is false during the next ``seconds``."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert condition(), f"{what}\n{world.logs(['client'])}"
        time.sleep(0.1)


# -- (1) names of the routes are routed, everything else is as it was ---------------------------------


def test_route_names_are_routed_through_the_routing_peer_and_other_names_are_untouched(
    make_world: MakeWorld,
) -> None:
    world = make_world(peers=["client", "outsider", "r1"], lans={"office": Lan(routers=["r1"])})
    add_addresses(world, "office-h1", APP, OTHER, SVC_BASE, SVC_LB)
    world.start_whoami("office-h1")
    lan_dns = _lan_dns(
        world,
        f"--host-record=app.{ZONE},{APP}",
        f"--host-record=other.{ZONE},{OTHER}",
        f"--host-record=lb.{ZONE},{SVC_LB}",
        f"--cname=a.svc.{ZONE},lb.{ZONE}",
        f"--host-record=svc.{ZONE},{SVC_BASE}",
        "--local-ttl=300",
    )
    usual_dns = _usual_dns(world)
    _resolvers(world, ["client", "outsider"], ["r1"])
    before = getent(world, "client", "www.outside.test")
    assert before == {"192.0.2.80"}
    dig_before = dig(world, "client", "www.outside.test", "+short").split()

    peers = start_agents_with(world, ["client", "outsider", "r1"])
    permitted = group(world, "may-use", [peers["client"]])
    fields: dict[str, Any] = {"peer": peers["r1"]["id"], "masquerade": True}
    fields["access_control_groups"] = [permitted]
    app_id = create_domain_route(world, "app", [f"app.{ZONE}"], [everyone(world)], **fields)
    create_domain_route(world, "svc", [f"*.svc.{ZONE}"], [everyone(world)], **fields)
    r1_ip = overlay(peers["r1"])
    r1_lan = world.node("r1").addr("lan0")
    add_counters(
        world, "r1", "prerouting", {"in-other": f'iifname "mr0" ip daddr {OTHER} icmp type echo-request'}
    )
    add_counters(
        world, "r1", "postrouting", {"to-other": f'oifname "lan0" ip daddr {OTHER} icmp type echo-request'}
    )
    wait_via(world, "client", "app", "r1", timeout=15)
    wait_interceptor(world, "client")
    text = resolv_conf(world, "client").read_text()
    assert MANAGED in text and "nameserver 172.31.0.2" not in text, text
    assert "search corp.test" in text and "options timeout:2 attempts:2" in text, text

    # (a) An application resolves a route name: routed before it has the answer, traffic flows.
    assert APP not in " ".join(table(world, "client"))
    assert getent(world, "client", f"app.{ZONE}") == {APP}
    assert _route(APP) in table(world, "client")  # no wait: installed before the answer came back
    assert holder(world, "client", f"{APP}/32") == ["r1"]
    assert world.whoami("client", APP) == r1_lan  # through r1, masqueraded
    assert APP in in_domain_sets(world, "r1")
    (entry,) = learned(world, "client", "app")[f"app.{ZONE}"]
    assert (entry["prefix"], entry["family"], entry["current"]) == (f"{APP}/32", 4, True), entry
    assert entry["remaining"] is not None and 300 < entry["remaining"] <= 360, entry  # TTL + grace 60
    (cli_app,) = [g for g in routes_list_cli(world, "client") if g["network_id"] == "app"]
    assert {n.rstrip("."): v for n, v in cli_app["learned"].items()}.keys() == {f"app.{ZONE}"}, cli_app
    assert dig(world, "client", f"app.{ZONE}", "+short").split() == [APP]  # dig through resolv.conf too

    # (b) A wildcard: a proper subdomain is routed (its CNAME chain learned under the name asked
    # for), the base name is not: it goes to the usual name server.
    assert getent(world, "client", f"a.svc.{ZONE}") == {SVC_LB}
    assert _route(SVC_LB) in table(world, "client")
    assert world.whoami("client", SVC_LB) == r1_lan
    assert getent(world, "client", f"svc.{ZONE}") == {"192.0.2.30"}
    assert rcode(dig(world, "client", f"nothere.svc.{ZONE}")) == "NXDOMAIN"  # routed name, no record
    routed = table(world, "client")
    assert _route(SVC_BASE) not in routed and _route("192.0.2.30") not in routed, routed
    assert learned_prefixes(world, "client", "svc") == {f"a.svc.{ZONE}": {f"{SVC_LB}/32"}}

    # (h) Other names resolve exactly as before, and never reach the routing peer.
    assert getent(world, "client", "www.outside.test") == before
    assert dig(world, "client", "www.outside.test", "+short").split() == dig_before
    assert rcode(dig(world, "client", "www.outside.test", "+tcp")) == "NOERROR"
    assert rcode(dig(world, "client", "nothere.outside.test")) == "NXDOMAIN"
    lan_asked, usual_asked = asked(lan_dns), asked(usual_dns)
    assert {f"app.{ZONE}", f"a.svc.{ZONE}"} <= lan_asked, lan_asked
    assert not {"www.outside.test", "nothere.outside.test", f"svc.{ZONE}"} & lan_asked, lan_asked
    assert not {f"app.{ZONE}", f"a.svc.{ZONE}", f"lb.{ZONE}"} & usual_asked, usual_asked
    assert "www.outside.test" in usual_asked

    # The forwarder answers only names of the routes it serves, and only to clients who may use them.
    for name in ("www.outside.test", f"other.{ZONE}", f"svc.{ZONE}"):
        assert rcode(dig(world, "client", name, server=r1_ip, port=FORWARDER_PORT)) == "REFUSED", name
    assert rcode(dig(world, "outsider", f"app.{ZONE}", server=r1_ip, port=FORWARDER_PORT)) == "REFUSED"
    assert f"other.{ZONE}" not in asked(lan_dns)  # refused names are never resolved

    # (f) A client outside the access-control groups: its interceptor passes the refusal on (or
    # SERVFAIL), and nothing is routed for it.
    wait_interceptor(world, "outsider")
    assert rcode(dig(world, "outsider", f"app.{ZONE}")) in {"REFUSED", "SERVFAIL"}
    assert getent(world, "outsider", f"app.{ZONE}") == set()
    assert APP not in " ".join(table(world, "outsider"))
    assert learned(world, "outsider", "app") == {}
    assert holder(world, "outsider", f"{APP}/32") == []
    assert world.whoami("outsider", APP, timeout=1) is None

    # The server shows how many addresses the client learned for the route.
    def client_entry() -> dict[str, Any]:
        mine = [e for e in route_status(world, app_id) if e["peer_id"] == peers["client"]["id"]]
        return mine[0] if mine else {}

    wait_until(
        world,
        "learned_addresses of the client in the route's status",
        client_entry,
        lambda e: e.get("learned_addresses") == 1,
        timeout=15,
        logs=["client", "mgmt"],
    )

    # (e) A hand-made route to a LAN address r1 never resolved for the route (other.internal.test is
    # no route's name): the packets reach r1 through the tunnel and go no further.
    world.exec("client", ["ip", "route", "add", f"{OTHER}/32", "dev", "mr0"])
    r1_key = world.agents["r1"].status()["interface"]["public_key"]
    sock = f"/proc/{wg_pid(world, 'client')}/root/run/wireguard/mr0.sock"
    answer = uapi.request(sock, f"set=1\npublic_key={uapi.b64_to_hex(r1_key)}\nallowed_ip={OTHER}/32\n\n")
    assert answer.startswith("errno=0"), answer
    before_counts = counters(world, "r1")
    done = world.exec("client", ["ping", "-n", "-c", "3", "-i", "0.1", "-w", "1", OTHER], check=False)
    assert done.returncode != 0 and " 0 received" in done.stdout, done.stdout
    after_counts = counters(world, "r1")
    assert after_counts["in-other"] - before_counts["in-other"] >= 3, (before_counts, after_counts)
    assert after_counts["to-other"] == before_counts["to-other"], (before_counts, after_counts)
    assert world.whoami("client", OTHER, timeout=1) is None
    assert world.whoami("client", APP) == r1_lan  # the learned address still works


# -- (2) answers that change, KeepRoute, TTL expiry -------------------------------------------------

MOVING = ("10.77.0.40", "10.77.0.41")  # moving.internal.test, before and after (no KeepRoute)
KEPT = ("10.77.0.42", "10.77.0.43")  # kept.internal.test, before and after (KeepRoute)
BRIEF, BUSY = "10.77.0.44", "10.77.0.45"  # TTL 1: brief is never used, busy has a ping running


def _records(moving: str, kept: str) -> list[str]:
    return [
        f"--host-record=moving.{ZONE},{moving},300",
        f"--host-record=kept.{ZONE},{kept},300",
        f"--host-record=brief.{ZONE},{BRIEF},1",
        f"--host-record=busy.{ZONE},{BUSY},1",
    ]


def test_changed_answers_keep_route_and_ttl_expiry_postponed_by_connections(make_world: MakeWorld) -> None:
    world = make_world(peers=["client", "r1"], lans={"office": Lan(routers=["r1"])})
    add_addresses(world, "office-h1", *MOVING, *KEPT, BRIEF, BUSY)
    world.start_whoami("office-h1")
    lan_dns = _lan_dns(world, *_records(MOVING[0], KEPT[0]))
    _usual_dns(world)
    _resolvers(world, ["client"], ["r1"])
    # ICMP flows leave conntrack 1 s after their last packet (the client namespace's own setting)
    world.exec("client", ["sysctl", "-qw", "net.netfilter.nf_conntrack_icmp_timeout=1"])
    peers = start_agents_with(world, ["client", "r1"], {"client": ["--dns-grace", "1"]})
    fields: dict[str, Any] = {"peer": peers["r1"]["id"], "masquerade": True}
    everybody = [everyone(world)]
    create_domain_route(world, "moving", [f"moving.{ZONE}"], everybody, **fields)
    create_domain_route(world, "kept", [f"kept.{ZONE}"], everybody, keep_route=True, **fields)
    create_domain_route(world, "brief", [f"brief.{ZONE}", f"busy.{ZONE}"], everybody, **fields)
    for network_id in ("moving", "kept", "brief"):
        wait_via(world, "client", network_id, "r1", timeout=15)
    wait_interceptor(world, "client")

    assert getent(world, "client", f"moving.{ZONE}") == {MOVING[0]}
    assert getent(world, "client", f"kept.{ZONE}") == {KEPT[0]}
    routed = table(world, "client")
    assert _route(MOVING[0]) in routed and _route(KEPT[0]) in routed, routed
    (moving,) = learned(world, "client", "moving")[f"moving.{ZONE}"]
    assert moving["remaining"] is not None and 295 < moving["remaining"] <= 301, moving  # TTL + grace 1
    (kept,) = learned(world, "client", "kept")[f"kept.{ZONE}"]
    assert kept["remaining"] is None, kept

    # (d) TTL expiry: a TTL of 1 s plus a grace of 1 s, and nobody connects: the address goes.
    assert getent(world, "client", f"brief.{ZONE}") == {BRIEF}
    assert _route(BRIEF) in table(world, "client")
    t0 = time.monotonic()
    # A TCP connection, closed at once: its TIME_WAIT entry in conntrack does not hold the address.
    assert world.whoami("client", BRIEF) == world.node("r1").addr("lan0")
    wait_until(
        world,
        f"{BRIEF} expired",
        lambda: table(world, "client"),
        lambda t: _route(BRIEF) not in t,
        timeout=10,
        logs=["client"],
    )
    print(f"{BRIEF} (TTL 1 s, grace 1 s) left table 7120 after {time.monotonic() - t0:.1f} s")
    assert holder(world, "client", f"{BRIEF}/32") == []
    assert f"brief.{ZONE}" not in learned(world, "client", "brief")

    # ... but never while a connection uses it (conntrack), rechecked every 30 s once it is unused.
    assert getent(world, "client", f"busy.{ZONE}") == {BUSY}
    run = ping_run(world, "client", BUSY, name="ping-busy")
    _holds_for(world, f"{BUSY} is in use: routed", 5.0, lambda: _route(BUSY) in table(world, "client"))
    run.stop()
    stopped = time.monotonic()

    # (c) The answers change. Without KeepRoute the address that dropped out is removed at once (its
    # TTL of 300 s is far away: no expiry does it); with KeepRoute it stays (and never expires).
    restart_dnsmasq(world, lan_dns, *_records(MOVING[1], KEPT[1]))
    assert getent(world, "client", f"moving.{ZONE}") == {MOVING[1]}
    wait_until(
        world,
        f"{MOVING[0]} replaced by {MOVING[1]}",
        lambda: table(world, "client"),
        lambda t: _route(MOVING[1]) in t and _route(MOVING[0]) not in t,
        timeout=20,
        logs=["client"],
    )
    assert holder(world, "client", f"{MOVING[0]}/32") == []
    assert holder(world, "client", f"{MOVING[1]}/32") == ["r1"]
    _wait_learned(world, "client", "moving", {f"moving.{ZONE}": {f"{MOVING[1]}/32"}})
    assert world.whoami("client", MOVING[1]) == world.node("r1").addr("lan0")

    assert getent(world, "client", f"kept.{ZONE}") == {KEPT[1]}
    routed = table(world, "client")
    assert _route(KEPT[0]) in routed and _route(KEPT[1]) in routed, routed
    assert holder(world, "client", f"{KEPT[0]}/32") == ["r1"]
    entries = learned(world, "client", "kept")[f"kept.{ZONE}"]
    assert {e["prefix"] for e in entries} == {f"{KEPT[0]}/32", f"{KEPT[1]}/32"}, entries
    assert all(e["remaining"] is None for e in entries), entries
    assert world.whoami("client", KEPT[1]) == world.node("r1").addr("lan0")

    # The connection to busy ended: its address goes at the next check (within 30 s).
    wait_until(
        world,
        f"{BUSY} removed once unused",
        lambda: table(world, "client"),
        lambda t: _route(BUSY) not in t,
        timeout=45,
        logs=["client"],
    )
    print(f"{BUSY} left table 7120 {time.monotonic() - stopped:.1f} s after its ping stopped")
    assert holder(world, "client", f"{BUSY}/32") == []
    assert _route(KEPT[0]) in table(world, "client")  # KeepRoute: still there, long after


# -- (3) HA failover with learned addresses --------------------------------------------------------

ROUTERS = ["r1", "r2"]


def test_failover_moves_the_learned_addresses_and_asks_the_new_routing_peer(make_world: MakeWorld) -> None:
    world = make_world(peers=["client", *ROUTERS], lans={"office": Lan(routers=ROUTERS)})
    add_addresses(world, "office-h1", APP)
    world.start_whoami("office-h1")
    _lan_dns(world, f"--host-record=app.{ZONE},{APP}", "--local-ttl=300")
    _usual_dns(world)
    _resolvers(world, ["client"], ROUTERS)
    peers = start_agents_with(world, ["client", *ROUTERS])
    routers = group(world, "routers", [peers[r] for r in ROUTERS])
    create_domain_route(
        world, "app", [f"app.{ZONE}"], [everyone(world)], peer_groups=[routers], masquerade=True
    )
    wait_until(
        world,
        "both routing peers connected candidates of the client's app route",
        lambda: group_view(world, "client", "app"),
        lambda view: (
            view is not None
            and view["routing_peer"] is not None
            and all(c["state"] == "connected" for c in view["candidates"])
            and {c["peer"] for c in view["candidates"]} == set(ROUTERS)
        ),
        timeout=15,
        logs=["client", *ROUTERS],
    )
    wait_interceptor(world, "client")
    first = routing_peer(world, "client", "app")
    assert first in ROUTERS
    other = next(r for r in ROUTERS if r != first)

    assert getent(world, "client", f"app.{ZONE}") == {APP}
    assert holder(world, "client", f"{APP}/32") == [first]
    assert APP in in_domain_sets(world, first) and APP not in in_domain_sets(world, other)
    assert world.whoami("client", APP) == world.node(first).addr("lan0")

    run = ping_run(world, "client", APP, name="ping-failover")
    t0 = time.time()
    assert world.kill_processes(first), f"nothing ran in {first}"
    wait_via(world, "client", "app", other, timeout=10)
    wait_replies(world, run, since=t0, count=20)
    gap = run.stop()
    print(f"failover of a learned address after killing {first}: {gap} (began {gap.at - t0:+.3f} s)")
    assert gap.seconds < GAP_LIMIT_S, gap
    # the learned /32 moved to the new routing peer; it learned the name (its set has the address)
    assert holder(world, "client", f"{APP}/32") == [other]
    assert _route(APP) in table(world, "client")
    assert APP in in_domain_sets(world, other)
    assert learned_prefixes(world, "client", "app") == {f"app.{ZONE}": {f"{APP}/32"}}
    assert world.whoami("client", APP) == world.node(other).addr("lan0")
    # and the name is now asked at the new routing peer
    assert getent(world, "client", f"app.{ZONE}") == {APP}
    assert world.ping("client", APP, count=3, interval=0.05)


# -- (4) the client's resolv.conf ------------------------------------------------------------------


def _leftovers(world: World) -> str:
    """What the client's agent said it removed of an earlier run, at its latest start."""
    text = world.agents["client"].log.read_text(errors="replace").rpartition("--- start #")[2]
    lines = [line for line in text.splitlines() if "removed what an earlier run left behind" in line]
    return "\n".join(lines)


def routed_again_without_a_lookup(world: World) -> None:
    wait_until(
        world,
        "the learned address restored after the restart",
        lambda: learned_prefixes(world, "client", "app"),
        lambda seen: seen == {f"app.{ZONE}": {f"{APP}/32"}},
        timeout=20,
        logs=["client"],
    )
    world.wait_for(
        lambda: world.ping("client", APP, count=1, timeout=1),
        timeout=10,
        message=f"{APP} not reached through r1 after the restart\n{world.logs(['client'])}",
    )


def test_resolv_conf_is_restored_after_sigterm_and_after_sigkill(make_world: MakeWorld) -> None:
    world = make_world(peers=["client", "r1"], lans={"office": Lan(routers=["r1"])})
    add_addresses(world, "office-h1", APP)
    _lan_dns(world, f"--host-record=app.{ZONE},{APP}", "--local-ttl=300")
    _usual_dns(world)
    _resolvers(world, ["client"], ["r1"])
    path = resolv_conf(world, "client")
    inode = path.stat().st_ino
    peers = start_agents_with(world, ["client", "r1"])
    agent = world.agents["client"]
    route_id = create_domain_route(
        world, "app", [f"app.{ZONE}"], [everyone(world)], peer=peers["r1"]["id"], masquerade=True
    )

    def managed() -> None:
        wait_via(world, "client", "app", "r1", timeout=20)
        wait_interceptor(world, "client")
        text = path.read_text()
        assert "nameserver 172.31.0.2" not in text, text
        assert "search corp.test" in text and "options timeout:2 attempts:2" in text, text
        assert path.stat().st_ino == inode  # written in place, through the bind mount
        assert getent(world, "client", f"app.{ZONE}") == {APP}
        assert getent(world, "client", "www.outside.test") == {"192.0.2.80"}

    managed()

    # SIGTERM: the original comes back byte for byte, in the same inode.
    assert agent.stop(timeout=15) == 0, agent.tail()
    assert path.read_text() == ORIGINAL and path.stat().st_ino == inode
    assert getent(world, "client", "www.outside.test") == {"192.0.2.80"}

    # Started again: what it learned is routed at once, before any lookup (applications still
    # hold the answer); then the file is rewritten while the route exists.
    agent.start()
    routed_again_without_a_lookup(world)
    managed()

    # SIGKILL: nothing is put back ...
    time.sleep(1.5)  # the record of learned addresses is written once a second
    agent.kill()
    assert MANAGED in path.read_text()
    # ... until the next start, which restores the original first and then (the route still exists)
    # points the file at its interceptor again: the original it records is the real one.
    agent.start()
    routed_again_without_a_lookup(world)
    managed()
    assert "the original /etc/resolv.conf" in _leftovers(world), agent.tail()

    # The routing peer restarts, its sets empty: the client saw it go and come back, and asks it
    # again for what it learned, so traffic resumes with no lookup by any application.
    router = world.agents["r1"]
    assert router.stop(timeout=15) == 0, router.tail()
    router.start()
    world.wait_for(
        lambda: world.ping("client", APP, count=1, timeout=1),
        timeout=20,
        message=lambda: f"{APP} not reached after r1 restarted\n{world.logs(['client', 'r1'])}",
    )
    assert APP in in_domain_sets(world, "r1")

    assert agent.stop(timeout=15) == 0, agent.tail()
    assert path.read_text() == ORIGINAL and path.stat().st_ino == inode

    # SIGKILL, the route deleted meanwhile: the next start only restores.
    agent.start()
    managed()
    agent.kill()
    reply = world.api.delete(f"/api/routes/{route_id}")
    assert reply.status_code == 200, reply.text
    agent.start()
    wait_until(
        world,
        "the original resolv.conf back after a crash",
        lambda: path.read_text(),
        lambda text: text == ORIGINAL,
        timeout=20,
        logs=["client"],
    )
    assert path.stat().st_ino == inode
    wait_until(
        world,
        "the agent says it put the original resolv.conf back",
        lambda: _leftovers(world),
        lambda said: "the original /etc/resolv.conf" in said,
        timeout=10,
        logs=["client"],
    )
    assert getent(world, "client", "www.outside.test") == {"192.0.2.80"}
    assert rcode(dig(world, "client", "www.outside.test", server=INTERCEPTOR, time=1)) is None  # gone
