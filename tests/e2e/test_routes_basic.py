"""Routes carry real traffic (issue 7, tests a, b, f, h): a client reaches a LAN host through a
routing peer, with masquerade (the LAN sees the routing peer) and without (the LAN sees the client's
overlay address), over IPv4 and IPv6; between candidates the lower metric wins, and a more specific
route wins whatever its metric."""

from __future__ import annotations

import time

import pytest

from meshroute.lab import Lan, World
from tests.e2e.conftest import MakeWorld
from tests.e2e.mesh import overlay
from tests.e2e.routed import (
    create_route,
    everyone,
    group_view,
    holder,
    nft_addresses,
    ping_run,
    route_body,
    routes_list_cli,
    rule_prefs,
    rules,
    start_agents,
    sysctl,
    table,
    wait_replies,
    wait_table,
    wait_via,
)

LAN4, LAN6 = "10.77.0.0/24", "fc00:77::/64"
UDP_PORT = 7008


def _used(world: World, node: str, network_id: str, via: str) -> None:
    """Wait until the client's route is installed through ``via`` and its candidates are healthy."""
    wait_via(world, node, network_id, via)

    def healthy() -> bool:
        view = group_view(world, node, network_id)
        return view is not None and all(c["state"] == "connected" for c in view["candidates"])

    world.wait_for(
        healthy,
        timeout=20,
        message=f"{network_id}: candidates not all connected",
        logs=[node],
    )


def test_ipv4_route_with_masquerade_reaches_the_lan_as_the_routing_peer(make_world: MakeWorld) -> None:
    world = make_world(peers=["client", "r1"], lans={"office": Lan(routers=["r1"])})  # no way back: NAT only
    host = world.node("office-h1")
    world.start_whoami("office-h1")
    peers = start_agents(world, "client", "r1")
    assert world.whoami("client", host.ipv4, timeout=1) is None  # nothing routed yet
    assert table(world, "client") == [] and rule_prefs(world, "client") == []

    create_route(world, "office", LAN4, [everyone(world)], peer=peers["r1"]["id"], masquerade=True)
    _used(world, "client", "office", "r1")

    assert world.whoami("client", host.ipv4) == world.node("r1").addr("lan0")
    assert world.ping("client", host.ipv4, count=3, interval=0.05)
    # the kernel side: one route in table 7120, the prefix on r1's WireGuard peer only, the rules
    assert table(world, "client") == [f"{LAN4} dev mr0"]
    assert holder(world, "client", LAN4) == ["r1"]
    assert rules(world, "client") == [
        f"104:\tfrom all to {world.node('mgmt').ipv4} lookup main",
        "105:\tfrom all lookup main suppress_prefixlength 0",
        "110:\tnot from all fwmark 0x1bd00 lookup 7120",
    ]
    assert rule_prefs(world, "client", 6) == ["105", "110"]
    # what the user sees: `meshroute agent routes list --json`
    (office,) = routes_list_cli(world, "client")
    assert (office["network"], office["selected"], office["installed"], office["routing_peer"]) == (
        LAN4,
        True,
        True,
        "r1",
    )
    assert [(c["peer"], c["state"], c["chosen"]) for c in office["candidates"]] == [("r1", "connected", True)]
    # the routing peer: forwarding on for IPv4 only, its requirements met
    assert sysctl(world, "r1", "net.ipv4.ip_forward") == "1"
    assert sysctl(world, "r1", "net.ipv6.conf.all.forwarding") == "0"
    served = world.agents["r1"].status()["routing_peer"]
    assert [(r["network"], r["masquerade"]) for r in served["serves"]] == [(LAN4, True)]
    assert all(c["ok"] for c in served["checks"]), served["checks"]
    assert peers["client"]["ip"] in nft_addresses(world, "r1")  # an allowed source


def test_ipv4_route_without_masquerade_shows_the_client_overlay_address(make_world: MakeWorld) -> None:
    world = make_world(peers=["client", "r1"], lans={"office": Lan(routers=["r1"], default_via="r1")})
    host = world.node("office-h1")
    world.start_whoami("office-h1")
    world.start_whoami("office-h1", UDP_PORT, udp=True)
    peers = start_agents(world, "client", "r1")
    create_route(world, "office", LAN4, [everyone(world)], peer=peers["r1"]["id"], masquerade=False)
    _used(world, "client", "office", "r1")

    assert world.whoami("client", host.ipv4) == overlay(peers["client"])
    assert world.whoami("client", host.ipv4, UDP_PORT, udp=True) == overlay(peers["client"])
    ruleset = world.exec("r1", ["nft", "list", "table", "inet", "meshroute"]).stdout
    assert "masquerade" not in ruleset, ruleset


@pytest.mark.parametrize("masquerade", [True, False], ids=["masquerade", "plain"])
def test_ipv6_route_through_a_routing_peer(make_world: MakeWorld, masquerade: bool) -> None:
    world = make_world(peers=["client", "r1"], lans={"office": Lan(routers=["r1"], default_via="r1")})
    # The lab's interfaces have no link-local addresses, and a router sends the neighbour
    # solicitation for a forwarded (not masqueraded) packet from one: give r1's LAN side one, as
    # every real router has.
    world.exec("r1", ["ip", "addr", "add", "fe80::1/64", "dev", "lan0", "nodad"])
    host = world.node("office-h1")
    world.start_whoami("office-h1")
    peers = start_agents(world, "client", "r1")
    assert world.whoami("client", host.ipv6, timeout=1) is None
    create_route(world, "office6", LAN6, [everyone(world)], peer=peers["r1"]["id"], masquerade=masquerade)
    _used(world, "client", "office6", "r1")

    expected = world.node("r1").addr("lan0", 6) if masquerade else overlay(peers["client"], 6)
    assert world.whoami("client", host.ipv6) == expected
    assert world.ping("client", host.ipv6, count=3, interval=0.05)
    assert table(world, "client", 6) == [f"{LAN6} dev mr0"]
    assert table(world, "client", 4) == []
    assert holder(world, "client", LAN6) == ["r1"]
    # only the family that is served is forwarded
    assert sysctl(world, "r1", "net.ipv6.conf.all.forwarding") == "1"
    assert sysctl(world, "r1", "net.ipv4.ip_forward") == "0"
    assert world.whoami("client", host.ipv4, timeout=1) is None  # the IPv4 LAN is not routed


def test_lower_metric_wins_and_a_more_specific_route_wins_whatever_its_metric(make_world: MakeWorld) -> None:
    world = make_world(peers=["client", "r1", "r2"], lans={"office": Lan(routers=["r1", "r2"])})
    host = world.node("office-h1")
    world.start_whoami("office-h1")
    peers = start_agents(world, "client", "r1", "r2")
    all_ = [everyone(world)]
    lan_of = {n: world.node(n).addr("lan0") for n in ("r1", "r2")}

    # Two single-peer routes, one HA group (same NetID and prefix). r1's is created first, so it
    # would win a tie (the smaller route ID); r2's lower metric must win instead.
    via_r1 = create_route(world, "office", LAN4, all_, peer=peers["r1"]["id"], metric=100, masquerade=True)
    via_r2 = create_route(world, "office", LAN4, all_, peer=peers["r2"]["id"], metric=50, masquerade=True)
    _used(world, "client", "office", "r2")
    office = group_view(world, "client", "office")
    assert office is not None and len(office["candidates"]) == 2, office
    assert world.whoami("client", host.ipv4) == lan_of["r2"]
    assert holder(world, "client", LAN4) == ["r2"]

    # The metric changes: the prefix moves to r1, whose metric is now the lower one.
    body = route_body("office", LAN4, all_, peer=peers["r1"]["id"], metric=10, masquerade=True)
    reply = world.api.put(f"/api/routes/{via_r1}", json=body)
    assert reply.status_code == 200, reply.text
    wait_via(world, "client", "office", "r1")
    assert world.whoami("client", host.ipv4) == lan_of["r1"]
    assert holder(world, "client", LAN4) == ["r1"]

    # r1 dies: r2 carries the traffic. r1 returns: with the lower metric it takes the prefix back.
    run = ping_run(world, "client", host.ipv4)
    t_down = time.time()
    world.kill_processes("r1")
    wait_via(world, "client", "office", "r2")
    wait_replies(world, run, since=t_down)
    t_back = time.time()
    world.agents["r1"].start()
    wait_via(world, "client", "office", "r1", timeout=15)
    wait_replies(world, run, since=time.time())
    run.stop()
    down, back = run.gap(), run.gap(since=t_back)
    print(f"metric HA: failover {down}; failback {back}")
    assert holder(world, "client", LAN4) == ["r1"]
    assert world.whoami("client", host.ipv4) == lan_of["r1"]

    # A /16 through r1 with the best metric and a /24 through r2 with the worst one: the LAN host
    # (in the /24) is reached through r2.
    for rid in (via_r1, via_r2):
        assert world.api.delete(f"/api/routes/{rid}").status_code == 200
    create_route(world, "wide", "10.77.0.0/16", all_, peer=peers["r1"]["id"], metric=1, masquerade=True)
    create_route(world, "narrow", LAN4, all_, peer=peers["r2"]["id"], metric=9000, masquerade=True)
    wait_via(world, "client", "wide", "r1")
    wait_via(world, "client", "narrow", "r2")
    wait_table(world, "client", ["10.77.0.0/16 dev mr0", f"{LAN4} dev mr0"])
    assert holder(world, "client", "10.77.0.0/16") == ["r1"]
    assert holder(world, "client", LAN4) == ["r2"]
    assert world.whoami("client", host.ipv4) == lan_of["r2"]
    assert world.ping("client", host.ipv4, count=3, interval=0.05)
