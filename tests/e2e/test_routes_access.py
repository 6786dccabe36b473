"""Who may use a route (issue 7, tests c and d): a peer outside the distribution groups receives
nothing, and the routing peer drops its traffic even when it routes the prefix into the tunnel by
hand; a peer in the distribution groups but not in the access-control groups receives the route,
and the routing peer drops its traffic. A peer that is allowed gets through in the same world (the
counters prove the dropped packets did reach the routing peer)."""

from __future__ import annotations

from meshroute.agent.wireguard import uapi
from meshroute.lab import Lan, World
from tests.e2e.conftest import MakeWorld
from tests.e2e.mesh import overlay, wg_pid
from tests.e2e.routed import (
    add_counters,
    counters,
    create_route,
    everyone,
    group,
    group_view,
    holder,
    nft_addresses,
    no_route,
    routes_view,
    rule_prefs,
    start_agents,
    table,
    wait_via,
)

LAN4 = "10.77.0.0/24"


def _count_at_r1(world: World, host: str, sources: dict[str, str]) -> None:
    """Counters in r1: echo requests from each source arriving on the overlay for the LAN host, and
    echo requests r1 sends on towards the LAN host (after masquerade, whoever sent them)."""
    arriving = {
        f"in-{name}": f'iifname "mr0" ip saddr {address} ip daddr {host} icmp type echo-request'
        for name, address in sources.items()
    }
    add_counters(world, "r1", "prerouting", arriving)
    leaving = {"to-lan": f'oifname "lan0" ip daddr {host} icmp type echo-request'}
    add_counters(world, "r1", "postrouting", leaving)


def _pings_dropped_at_r1(world: World, node: str, host: str) -> None:
    """``node`` pings the LAN host 3 times: no answer; r1 got them all and sent none on."""
    before = counters(world, "r1")
    done = world.exec(node, ["ping", "-n", "-c", "3", "-i", "0.1", "-w", "1", host], check=False)
    assert done.returncode != 0 and " 0 received" in done.stdout, done.stdout
    after = counters(world, "r1")
    assert after[f"in-{node}"] - before[f"in-{node}"] >= 3, (before, after)  # they did arrive
    assert after["to-lan"] == before["to-lan"], (before, after)  # ... and went no further


def test_a_peer_outside_the_distribution_groups_gets_nothing_and_is_dropped_even_with_a_hand_made_route(
    make_world: MakeWorld,
) -> None:
    world = make_world(peers=["client", "outsider", "r1"], lans={"office": Lan(routers=["r1"])})
    host = world.node("office-h1").ipv4
    world.start_whoami("office-h1")
    peers = start_agents(world, "client", "outsider", "r1")
    clients = group(world, "clients", [peers["client"]])
    create_route(world, "office", LAN4, [clients], peer=peers["r1"]["id"], masquerade=True)
    _count_at_r1(world, host, {"client": overlay(peers["client"]), "outsider": overlay(peers["outsider"])})

    wait_via(world, "client", "office", "r1")
    assert world.whoami("client", host) == world.node("r1").addr("lan0")  # the route works
    # The outsider got nothing: no route, no rules, nothing in its WireGuard.
    assert routes_view(world, "outsider") == []
    assert table(world, "outsider", 4) == [] and table(world, "outsider", 6) == []
    assert rule_prefs(world, "outsider", 4) == [] and rule_prefs(world, "outsider", 6) == []
    assert holder(world, "outsider", LAN4) == []
    assert no_route(world, "outsider", host)

    # It routes the prefix into the tunnel by hand and gives it to r1's WireGuard peer.
    world.exec("outsider", ["ip", "route", "add", LAN4, "dev", "mr0"])
    r1_key = world.agents["r1"].status()["interface"]["public_key"]
    sock = f"/proc/{wg_pid(world, 'outsider')}/root/run/wireguard/mr0.sock"
    answer = uapi.request(sock, f"set=1\npublic_key={uapi.b64_to_hex(r1_key)}\nallowed_ip={LAN4}\n\n")
    assert answer.startswith("errno=0"), answer
    assert holder(world, "outsider", LAN4) == ["r1"]
    _pings_dropped_at_r1(world, "outsider", host)
    assert world.whoami("outsider", host, timeout=1) is None
    assert world.whoami("client", host) == world.node("r1").addr("lan0")  # r1 still serves the client


def test_a_peer_outside_the_access_control_groups_receives_the_route_but_is_dropped(
    make_world: MakeWorld,
) -> None:
    world = make_world(peers=["client", "permitted", "r1"], lans={"office": Lan(routers=["r1"])})
    host = world.node("office-h1").ipv4
    world.start_whoami("office-h1")
    peers = start_agents(world, "client", "permitted", "r1")
    acg = group(world, "may-use-office", [peers["permitted"]])
    create_route(
        world,
        "office",
        LAN4,
        [everyone(world)],
        peer=peers["r1"]["id"],
        masquerade=True,
        access_control_groups=[acg],
    )
    _count_at_r1(world, host, {"client": overlay(peers["client"]), "permitted": overlay(peers["permitted"])})

    wait_via(world, "permitted", "office", "r1")
    assert world.whoami("permitted", host) == world.node("r1").addr("lan0")
    # The client receives the route (distribution) and uses it ...
    wait_via(world, "client", "office", "r1")
    view = group_view(world, "client", "office")
    assert view is not None and view["installed"], view
    assert table(world, "client") == [f"{LAN4} dev mr0"]
    assert holder(world, "client", LAN4) == ["r1"]
    # ... but r1 lets only the access-control group through.
    sources = nft_addresses(world, "r1")
    assert overlay(peers["permitted"]) in sources and overlay(peers["client"]) not in sources, sources
    _pings_dropped_at_r1(world, "client", host)
    assert world.whoami("client", host, timeout=1) is None
    assert world.whoami("permitted", host) == world.node("r1").addr("lan0")
