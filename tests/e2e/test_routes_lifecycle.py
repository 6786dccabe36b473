"""Routes over their lifetime (issue 7, tests i, j and k): disabling or deleting a route through the
API removes it from the client within 2 s; with its routing peer offline a route without KeepRoute
becomes unreachable (IPv4 and IPv6) and one with KeepRoute stays in the tunnel, none leaks to the
underlay, and all work again when the routing peer is back;
SIGKILL and restart of a client and of a routing peer duplicate nothing, and SIGTERM leaves their
namespaces exactly as they were before the agents started (also a SIGTERM that arrives while
wireguard-go is still starting)."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path
from typing import Any

from meshroute.lab import Internet, Lan, World
from meshroute.lab.demo import Demo, create_routes
from tests.e2e.conftest import MakeWorld
from tests.e2e.mesh import joined, wg_device
from tests.e2e.routed import (
    add_counters,
    counters,
    create_route,
    everyone,
    holder,
    nft_tables,
    no_route,
    route_body,
    routes_view,
    rule_prefs,
    start_agents,
    status,
    sysctl,
    table,
    wait_table,
    wait_until,
    wait_via,
)

LAN4 = "10.77.0.0/24"
LAB4 = "10.77.1.0/24"
LAN6 = "fc00:77::/64"
# underlay addresses nobody has: default routes via them are a way to leak
NOWHERE, NOWHERE6 = "172.31.0.254", "fc00:172:31::254"


def _wait_gone(world: World, what: str, condition: Any, limit: float = 20.0) -> float:
    t0 = time.monotonic()
    world.wait_for(condition, timeout=limit, interval=0.02, message=f"{what}: not gone", logs=["client"])
    took = time.monotonic() - t0
    print(f"{what}: removed from the client after {took * 1000:.0f} ms")
    return took


def test_disabling_or_deleting_a_route_removes_it_from_the_client(make_world: MakeWorld) -> None:
    world = make_world(peers=["client", "r1"], lans={"office": Lan(routers=["r1"])})
    host = world.node("office-h1").ipv4
    world.start_whoami("office-h1")
    peers = start_agents(world, "client", "r1")
    body = route_body("office", LAN4, [everyone(world)], peer=peers["r1"]["id"], masquerade=True)
    reply = world.api.post("/api/routes", json=body)
    assert reply.status_code == 200, reply.text
    route_id = reply.json()["id"]
    wait_via(world, "client", "office", "r1")
    assert world.whoami("client", host) == world.node("r1").addr("lan0")

    def gone() -> bool:
        return table(world, "client") == [] and holder(world, "client", LAN4) == []

    # Disabled: out of table 7120 and out of r1's AllowedIPs; r1 stops serving it.
    reply = world.api.put(f"/api/routes/{route_id}", json={**body, "enabled": False})
    assert reply.status_code == 200, reply.text
    _wait_gone(world, "disabled route", gone)
    assert routes_view(world, "client") == []
    assert world.whoami("client", host, timeout=1) is None
    world.wait_for(
        lambda: (
            status(world, "r1")["routing_peer"]["serves"] == []
            and sysctl(world, "r1", "net.ipv4.ip_forward") == "0"
        ),
        timeout=20,
        message="r1 still serves the disabled route (or forwards)",
        logs=["r1"],
    )

    # Enabled again: back, and used.
    reply = world.api.put(f"/api/routes/{route_id}", json=body)
    assert reply.status_code == 200, reply.text
    wait_via(world, "client", "office", "r1")
    world.wait_for(
        lambda: world.whoami("client", host, timeout=1) == world.node("r1").addr("lan0"), timeout=20
    )

    # Deleted: gone again.
    assert world.api.delete(f"/api/routes/{route_id}").status_code == 200
    _wait_gone(world, "deleted route", gone)
    assert routes_view(world, "client") == []
    assert world.whoami("client", host, timeout=1) is None


def test_keep_route_with_the_routing_peer_offline_and_no_leak_either_way(make_world: MakeWorld) -> None:
    world = make_world(
        peers=["client", "r1"], lans={"office": Lan(routers=["r1"]), "lab": Lan(routers=["r1"])}
    )
    office, lab = world.node("office-h1").ipv4, world.node("lab-h1").ipv4
    office6 = world.node("office-h1").ipv6
    # The client has default routes on its underlay: traffic that left the tunnel would leak there.
    world.exec("client", ["ip", "route", "add", "default", "via", NOWHERE, "dev", "eth0"])
    world.exec("client", ["ip", "-6", "route", "add", "default", "via", NOWHERE6, "dev", "eth0"])
    add_counters(
        world,
        "client",
        "postrouting",
        {
            "leak": f'oifname "eth0" ip daddr {{ {LAN4}, {LAB4} }}',
            "leak6": f'oifname "eth0" ip6 daddr {LAN6}',
            "tunnel-office": f'oifname "mr0" ip daddr {office}',
            "tunnel-lab": f'oifname "mr0" ip daddr {lab}',
        },
    )
    for host in ("office-h1", "lab-h1"):
        world.start_whoami(host)
    peers = start_agents(world, "client", "r1")
    everybody = [everyone(world)]
    create_route(world, "office", LAN4, everybody, peer=peers["r1"]["id"], masquerade=True, keep_route=False)
    create_route(world, "lab", LAB4, everybody, peer=peers["r1"]["id"], masquerade=True, keep_route=True)
    create_route(world, "office6", LAN6, everybody, peer=peers["r1"]["id"], masquerade=True, keep_route=False)
    for net_id in ("office", "lab", "office6"):
        wait_via(world, "client", net_id, "r1")
    assert world.whoami("client", office) == world.node("r1").addr("lan0")
    assert world.whoami("client", lab) == world.node("r1").addr("lan1")
    assert world.whoami("client", office6) == world.node("r1").addr("lan0", 6)
    assert table(world, "client") == [f"{LAN4} dev mr0", f"{LAB4} dev mr0"]
    assert table(world, "client", 6) == [f"{LAN6} dev mr0"]

    # r1 goes offline (agent and WireGuard killed).
    world.kill_processes("r1")
    wait_table(world, "client", [f"{LAB4} dev mr0", f"unreachable {LAN4}"], [f"unreachable {LAN6}"])
    assert holder(world, "client", LAB4) == ["r1"]  # KeepRoute: still on the last routing peer
    assert holder(world, "client", LAN4) == []
    before = counters(world, "client")
    # refused by the kernel at once (an `unreachable` route), not sent anywhere to time out
    assert "No route to host" in no_route(world, "client", office)
    assert "No route to host" in no_route(world, "client", office6)
    error = no_route(world, "client", lab)  # sent into the tunnel, to nobody: no answer, no refusal
    assert error and "No route to host" not in error, error
    assert world.whoami("client", lab, timeout=1) is None
    after = counters(world, "client")
    assert after["leak"] == 0 and after["leak6"] == 0, after
    assert after["tunnel-lab"] > before["tunnel-lab"], (before, after)
    assert after["tunnel-office"] == before["tunnel-office"], (before, after)
    notes = {g["network_id"]: g["note"] for g in routes_view(world, "client")}
    assert "unreachable" in notes["office"] and "KeepRoute" in notes["lab"], notes

    # r1 is back: both routes work again without anything done on the client.
    world.agents["r1"].start()
    wait_table(world, "client", [f"{LAN4} dev mr0", f"{LAB4} dev mr0"], [f"{LAN6} dev mr0"], timeout=15)
    world.wait_for(
        lambda: world.whoami("client", lab, timeout=1) == world.node("r1").addr("lan1"), timeout=10
    )
    world.wait_for(
        lambda: world.whoami("client", office, timeout=1) == world.node("r1").addr("lan0"), timeout=10
    )
    assert world.whoami("client", office6) == world.node("r1").addr("lan0", 6)
    final = counters(world, "client")
    assert final["leak"] == 0 and final["leak6"] == 0, final


def _installed(world: World, node: str) -> dict[str, Any]:
    """What a restart must not duplicate on a client or a routing peer."""
    links = world.exec(node, ["ip", "-o", "link"]).stdout
    device = wg_device(world, node)[1]
    return {
        "rules4": rule_prefs(world, node, 4),
        "rules6": rule_prefs(world, node, 6),
        "table4": table(world, node, 4),
        "table6": table(world, node, 6),
        "nft": nft_tables(world, node),
        "ruleset": world.exec(node, ["nft", "-s", "list", "table", "inet", "meshroute"]).stdout,
        "mr0": sum(1 for line in links.splitlines() if ": mr0:" in line),
        # every prefix once (which routing peer holds it may differ after a restart)
        "wireguard": (len(device), sorted(ip for p in device for ip in p.allowed_ips)),
        "forwarding": (
            sysctl(world, node, "net.ipv4.ip_forward"),
            sysctl(world, node, "net.ipv6.conf.all.forwarding"),
        ),
        "processes": sorted(_process_names(world, node)),
    }


def _same(world: World, node: str, expected: dict[str, Any]) -> None:
    def differences() -> dict[str, Any]:
        now = _installed(world, node)
        return {k: (expected[k], now[k]) for k in expected if now[k] != expected[k]}

    wait_until(
        world, f"{node} as before its restart (before, after)", differences, lambda d: not d, logs=[node]
    )


def _process_names(world: World, node: str) -> list[str]:
    names = []
    for pid in world.pids().get(node, []):
        try:
            with open(f"/proc/{pid}/comm") as f:
                names.append(f.read().strip())
        except OSError:
            continue
    return names


def test_sigkill_and_restart_duplicate_nothing_and_sigterm_restores_the_namespaces(
    make_world: MakeWorld,
) -> None:
    world = make_world(
        peers=["client", "r1", "r2"],
        lans={"office": Lan(routers=["r1", "r2"])},
        internet=Internet(exits=["r1", "r2"]),
    )
    nodes = ("client", "r1", "r2")
    # r2 forwarded IPv4 before the agent came (a router already): that must stay so after it.
    world.exec("r2", ["sysctl", "-qw", "net.ipv4.ip_forward=1"])
    initial = {n: world.snapshot(n) for n in nodes}
    start_agents(world, *nodes)
    demo = Demo(world)
    create_routes(demo)  # the lab's routes: HA office route and an exit node, both through r1 and r2
    inet = world.internet.hosts[0]
    world.start_whoami(inet)
    world.start_whoami("office-h1")
    exits = {world.node(r).addr("wan0") for r in ("r1", "r2")}

    def routed() -> bool:
        views = {g["network"]: g for g in routes_view(world, "client")}
        return all(views.get(n, {}).get("routing_peer") for n in (LAN4, "0.0.0.0/0", "::/0"))

    def serving(node: str) -> bool:
        return len(status(world, node)["routing_peer"]["serves"]) == 3  # office, 0.0.0.0/0, ::/0

    world.wait_for(lambda: routed() and serving("r1") and serving("r2"), timeout=10, logs=list(nodes))
    assert world.whoami("client", world.node(inet).ipv4) in exits
    client_state = _installed(world, "client")
    assert client_state["rules4"] == ["104", "105", "110"] and client_state["rules6"] == ["105", "110"]
    assert client_state["table4"] == [f"{LAN4} dev mr0", "default dev mr0"], client_state
    assert client_state["table6"] == ["default dev mr0"], client_state
    assert client_state["nft"] == ["table inet meshroute"]
    r1_state = _installed(world, "r1")
    assert r1_state["nft"] == ["table inet meshroute"] and r1_state["forwarding"] == ("1", "1"), r1_state

    # SIGKILL the client's agent (its wireguard-go lives on), start it again: the same, once.
    world.agents["client"].kill()
    world.agents["client"].start()
    world.wait_for(
        lambda: routed() and status(world, "client")["management"]["state"] == "connected",
        timeout=10,
        logs=["client"],
    )
    assert "removed what an earlier run left behind" in world.agents["client"].log.read_text()
    _same(world, "client", client_state)
    assert world.whoami("client", world.node(inet).ipv4) in exits

    # The same for a routing peer.
    world.agents["r1"].kill()
    world.agents["r1"].start()
    world.wait_for(lambda: serving("r1"), timeout=10, logs=["r1"])
    assert "removed what an earlier run left behind" in world.agents["r1"].log.read_text()
    _same(world, "r1", r1_state)
    assert world.whoami("client", world.node("office-h1").ipv4) in {
        world.node(r).addr("lan0") for r in ("r1", "r2")
    }

    # SIGTERM: each namespace exactly as before the agents (rules, routes of all tables, nftables,
    # sysctls with forwarding included), also r1's after its crash.
    for node in nodes:
        assert world.agents[node].stop(timeout=10) == 0, world.agents[node].tail()
        diff = initial[node].diff(world.snapshot(node))
        assert not diff, f"{node}:\n{diff}"
        assert _process_names(world, node) == [], node


def test_sigterm_while_wireguard_starts_leaves_nothing_behind(make_world: MakeWorld, tmp_path: Path) -> None:
    world = make_world(peers=["client"])
    # A wireguard-go that takes 2 s to start (as on a loaded host): the SIGTERM lands in between.
    real = shutil.which("wireguard-go")
    slow, started = tmp_path / "slow-bin", tmp_path / "wireguard-go.started"
    slow.mkdir()
    wrapper = slow / "wireguard-go"
    wrapper.write_text(f'#!/bin/sh\necho $$ > {started}\nsleep 2\nexec {real} "$@"\n')
    wrapper.chmod(0o755)
    before = world.snapshot("client")
    agent = world.start_agent("client", env={"PATH": f"{slow}:{os.environ['PATH']}"})
    world.wait_for(started.exists, timeout=15, message="wireguard-go was not started", logs=["client"])

    assert agent.stop(timeout=10) == 0, agent.tail()
    # Once the slow start would have finished, nothing the agent started may be left.
    wait_until(
        world,
        "no process left in the client's namespace",
        lambda: _process_names(world, "client"),
        lambda names: names == [],
        timeout=20,
        logs=["client"],
    )
    diff = before.diff(world.snapshot("client"))
    assert not diff, diff
    # ... and the agent starts again.
    agent.start()
    joined(world, "client", timeout=15)
