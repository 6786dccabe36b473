"""Exit nodes (issue 7, test g): an exit node with SkipAutoApply is not used (another one, applied
by management, is) until the user selects it with `meshroute agent routes select`; then it is the
only one in use, the client's default routes go through its routing peers (the internet host sees
the exit's address, IPv4 and IPv6) while the agent's own control and WireGuard traffic keep their
underlay path, also after every routing peer of the exit node died; nothing for the internet leaves
on the client's underlay while the exit node is selected, the choice survives a restart, and
SIGTERM leaves the namespace as it was."""

from __future__ import annotations

import json

from meshroute.agent.routes.selection import SELECTION_FILE
from meshroute.lab import Internet
from tests.e2e.conftest import MakeWorld
from tests.e2e.mesh import overlay
from tests.e2e.routed import (
    add_counters,
    agent_routes,
    counters,
    create_route,
    everyone,
    group,
    group_view,
    holder,
    no_route,
    routes_list_cli,
    routes_view,
    routing_peer,
    start_agents,
    status,
    table,
    wait_table,
    wait_until,
    wait_via,
)

EXITS = ("r1", "r2")
NOWHERE6 = "fc00:172:31::254"  # nobody: a default route that would leak


def test_exit_node_selected_by_the_user_carries_everything_and_nothing_leaks_when_it_dies(
    make_world: MakeWorld,
) -> None:
    world = make_world(peers=["client", "other", *EXITS], internet=Internet(exits=list(EXITS)))
    inet = world.node(world.internet.hosts[0])
    mgmt = world.node("mgmt").ipv4
    # The client reaches everything on its underlay only through default routes (its IPv4 subnet
    # route is replaced by an on-link default route): the management server and the other peers'
    # endpoints then depend on the agent's bypass rule and WireGuard's mark once an exit node owns
    # the default route, and whatever bypasses the tunnel for the internet is counted on eth0.
    world.exec("client", ["ip", "route", "del", str(world.underlay.ipv4), "dev", "eth0"])
    world.exec("client", ["ip", "route", "add", "default", "dev", "eth0"])
    world.exec("client", ["ip", "-6", "route", "add", "default", "via", NOWHERE6, "dev", "eth0"])
    add_counters(
        world,
        "client",
        "postrouting",
        {
            "leak4": f'oifname "eth0" ip daddr {world.internet.ipv4}',
            "leak6": f'oifname "eth0" ip6 daddr {world.internet.ipv6}',
            "management": f'oifname "eth0" ip daddr {mgmt} tcp dport 33074',
            "wireguard": 'oifname "eth0" udp sport 51820',
        },
    )
    world.start_whoami(inet.name)
    initial = world.snapshot("client")
    peers = start_agents(world, "client", "other", *EXITS)
    exits = group(world, "exits", [peers[n] for n in EXITS])
    everybody = [everyone(world)]
    # The exit node of the test: both internet routers, only when the user selects it.
    create_route(
        world, "internet", "0.0.0.0/0", everybody, peer_groups=[exits], masquerade=True, skip_auto_apply=True
    )
    # A second exit node that management applies by itself ("other" has no internet behind it).
    create_route(world, "fallback", "0.0.0.0/0", everybody, peer=peers["other"]["id"], masquerade=True)

    # SkipAutoApply: received, not used; the auto-applied exit node is the one in use.
    wait_via(world, "client", "fallback", "other")
    world.wait_for(lambda: group_view(world, "client", "internet-v6"), timeout=20, logs=["client"])
    views = {g["network_id"]: g for g in routes_list_cli(world, "client")}
    for net_id in ("internet", "internet-v6"):
        assert views[net_id]["exit_node"] and not views[net_id]["selected"], views[net_id]
        assert not views[net_id]["installed"], views[net_id]
    for net_id in ("fallback", "fallback-v6"):
        assert views[net_id]["selected"] and views[net_id]["installed"], views[net_id]
    assert table(world, "client", 4) == ["default dev mr0"] and table(world, "client", 6) == [
        "default dev mr0"
    ]
    assert holder(world, "client", "0.0.0.0/0") == ["other"] and holder(world, "client", "::/0") == ["other"]
    assert world.whoami("client", inet.ipv4, timeout=1) is None

    # The user selects it (in the client's namespace, through the CLI): it replaces the other one.
    out = agent_routes(world, "client", "select", "internet")
    assert "routes selected" in out, out
    assert table(world, "client", 4) == ["default dev mr0"], table(world, "client", 4)
    assert table(world, "client", 6) == ["default dev mr0"], table(world, "client", 6)
    saved = json.loads((world.agents["client"].state_dir / SELECTION_FILE).read_text())
    assert "internet" in saved["selected_routes"], saved
    world.wait_for(lambda: routing_peer(world, "client", "internet") in EXITS, timeout=20, logs=["client"])
    views = {g["network_id"]: g for g in routes_view(world, "client")}
    assert not views["fallback"]["selected"] and not views["fallback"]["installed"], views["fallback"]
    assert not views["fallback-v6"]["installed"], views["fallback-v6"]
    assert holder(world, "client", "0.0.0.0/0")[0] in EXITS and holder(world, "client", "::/0")[0] in EXITS
    before = counters(world, "client")
    exit_addresses4 = {world.node(n).addr("wan0") for n in EXITS}
    exit_addresses6 = {world.node(n).addr("wan0", 6) for n in EXITS}
    assert world.whoami("client", inet.ipv4) in exit_addresses4
    assert world.whoami("client", inet.ipv6) in exit_addresses6
    assert world.ping("client", inet.ipv4, count=3, interval=0.05)
    # ... while the agent's own traffic keeps its underlay path: management and the mesh.
    assert status(world, "client")["management"]["state"] == "connected"
    for address in (overlay(peers["other"]), overlay(peers["other"], 6), overlay(peers["r1"])):
        assert world.ping("client", address, timeout=10), address

    # Every routing peer of the exit node dies.
    for node in EXITS:
        world.kill_processes(node)
    wait_table(world, "client", ["unreachable default"], ["unreachable default"])
    assert no_route(world, "client", inet.ipv4) and no_route(world, "client", inet.ipv6)
    assert world.whoami("client", inet.ipv4, timeout=1) is None
    # The control traffic still flows: a change on the server reaches the client.
    serial = status(world, "client")["management"]["serial"]
    reply = world.api.put(f"/api/peers/{peers['other']['id']}", json={"name": "other-renamed"})
    assert reply.status_code == 200, reply.text
    world.wait_for(
        lambda: (
            status(world, "client")["management"]["serial"] > serial
            and {p["name"] for p in status(world, "client")["peers"]} >= {"other-renamed"}
        ),
        timeout=20,
        message="the client no longer hears from management",
        logs=["client"],
    )
    assert status(world, "client")["management"]["state"] == "connected"
    assert status(world, "client")["management"]["reconnects"] == 0
    # ... and so does WireGuard to the peers that are still there.
    for address in (overlay(peers["other"]), overlay(peers["other"], 6)):
        assert world.ping("client", address, timeout=10), address
    after = counters(world, "client")
    assert after["leak4"] == before["leak4"] and after["leak6"] == before["leak6"], (before, after)
    assert after["management"] > before["management"], (before, after)
    assert after["wireguard"] > before["wireguard"], (before, after)

    # The choice is kept across a restart: still this exit node (unreachable now), not the other one.
    assert world.agents["client"].stop() == 0
    world.agents["client"].start()
    world.wait_for(lambda: status(world, "client")["management"]["state"] == "connected", timeout=10)
    wait_table(world, "client", ["unreachable default"], ["unreachable default"])
    views = {g["network_id"]: g for g in routes_view(world, "client")}
    assert views["internet"]["selected"] and views["internet"]["installed"], views["internet"]
    assert not views["fallback"]["selected"] and not views["fallback"]["installed"], views["fallback"]
    assert no_route(world, "client", inet.ipv4)
    assert counters(world, "client")["leak4"] == before["leak4"]
    # ... and the mesh is back (a session with "other" after the restart).
    wait_until(
        world,
        "the client's session with other after its restart",
        lambda: {p["name"]: p["state"] for p in status(world, "client")["peers"]},
        lambda states: states.get("other-renamed") == "connected",
        logs=["client"],
    )
    assert world.ping("client", overlay(peers["other"]), timeout=10)
    # SIGTERM with the unreachable entries in place: the namespace as it was before the agent
    assert world.agents["client"].stop() == 0
    diff = initial.diff(world.snapshot("client"))
    assert not diff, diff
