"""Routes addressed by network ID, grouped by it in `routes list`, and their status (issue 11, items
3 and 5), through a real server."""

from __future__ import annotations

from tests.integration.cli.conftest import Cli, peers_in, route_world, uniq


def _route(cli: Cli, net_id: str, network: str, *via: str, group: str = "All") -> str:
    created = cli.json("routes", "create", "--net-id", net_id, "--network", network, *via, "--group", group)
    return str(created["id"])


def test_show_update_status_and_delete_by_network_id(cli: Cli) -> None:
    routers, clients, routers_id, _ = route_world(cli)
    net_id = uniq("office")
    route_id = _route(cli, net_id, "10.70.0.0/24", "--peer-group", routers, group=clients)

    assert cli.json("routes", "show", net_id)["id"] == route_id
    assert cli.json("routes", "show", net_id.upper())["id"] == route_id  # as typed, else case-insensitively
    updated = cli.json("routes", "update", net_id, "--metric", "42")
    assert updated["id"] == route_id and updated["metric"] == 42
    assert cli.server.api("GET", f"routes/{route_id}").json()["metric"] == 42

    status = cli.json("routes", "status", net_id)
    assert [s["route"]["id"] for s in status] == [route_id]
    assert status[0]["routing_peers"] == []  # an empty peer group: nobody routes it
    assert "0 of 1 route enabled with a connected routing peer" in cli.ok("routes", "status", net_id)

    assert cli.ok("routes", "delete", net_id) == f"Deleted route {route_id}.\n"
    assert cli.server.api("GET", f"routes/{route_id}").status_code == 404
    # a second delete, by network ID or by ID, says there is no such route and changes nothing
    assert cli.fails("routes", "delete", net_id).stderr == f"error: no route '{net_id}'\n"
    assert cli.fails("routes", "delete", route_id).stderr == f"error: no route '{route_id}'\n"
    assert routers_id in {g["id"] for g in cli.json("groups", "list")}


def test_an_ambiguous_network_id_lists_its_routes_and_changes_nothing(cli: Cli) -> None:
    routers, _, _, _ = route_world(cli)
    gw1, gw2 = uniq("gw1"), uniq("gw2")
    peers_in(cli, routers, gw1, gw2)
    net_id = uniq("ha")
    first = _route(cli, net_id, "10.71.0.0/24", "--peer", gw1)
    second = _route(cli, net_id, "10.71.0.0/24", "--peer", gw2)
    before = cli.json("routes", "list")

    for command in (["show", net_id], ["delete", net_id], ["update", net_id, "--metric", "5"]):
        result = cli.fails("routes", *command)
        lines = result.stderr.splitlines()
        assert lines[0] == f"error: network ID '{net_id}' names 2 routes; give one of their IDs:"
        assert sorted(lines[1:]) == sorted(
            [f"  {first}  10.71.0.0/24 via {gw1}", f"  {second}  10.71.0.0/24 via {gw2}"]
        )
    assert cli.json("routes", "list") == before

    # status takes the whole network ID: both routes, with their routing peers
    status = cli.json("routes", "status", net_id)
    assert {s["route"]["id"]: [p["name"] for p in s["routing_peers"]] for s in status} == {
        first: [gw1],
        second: [gw2],
    }
    assert all(p["connected"] is False for s in status for p in s["routing_peers"])
    table = cli.ok("routes", "status", net_id)
    assert first in table and second in table and gw1 in table
    assert "0 of 2 routes enabled with a connected routing peer" in table
    assert cli.fails("routes", "status", uniq("none")).stderr.startswith("error: no route ")

    for route_id in (first, second):  # the IDs still work
        cli.ok("routes", "delete", route_id)


def test_routes_list_groups_by_network_id_and_marks_exit_nodes_and_dns_routes(cli: Cli) -> None:
    routers, _, _, _ = route_world(cli)
    gw = uniq("gw")
    peers_in(cli, routers, gw)
    net_a, net_b, exit_id, dns_id = uniq("a-lan"), uniq("b-lan"), uniq("exit"), uniq("dns")
    ids = {
        "a1": _route(cli, net_a, "10.72.0.0/24", "--peer", gw),
        "b": _route(cli, net_b, "10.73.0.0/24", "--peer", gw),
        "a2": _route(cli, net_a, "10.74.0.0/24", "--peer-group", routers),
        "exit": _route(cli, exit_id, "0.0.0.0/0", "--peer", gw),
        "dns": str(
            cli.json(
                "routes", "create", "--net-id", dns_id, "--domain", "example.com", "--domain",
                "*.corp.example", "--peer", gw, "--group", "All",
            )["id"]
        ),
    }  # fmt: skip

    lines = cli.ok("routes", "list").splitlines()
    header = lines[0]
    assert header.split() == ["Net", "ID", "Network", "Type", "Routing", "peer", "Metric", "Enabled",
                              "Distribution", "ID"]  # fmt: skip
    rows = {route: next(line for line in lines if line.endswith(route_id)) for route, route_id in ids.items()}
    # plain output: one line per route, the network ID on every line, columns aligned
    assert rows["a1"].startswith(net_a) and rows["a2"].startswith(net_a) and rows["b"].startswith(net_b)
    order = [lines.index(rows[r]) for r in ("a1", "a2", "b")]
    assert order[1] == order[0] + 1 and order[2] > order[1]  # a network ID's routes stay together
    column = header.index("Type")
    assert rows["exit"][column:].startswith("exit node")
    assert rows["dns"][column:].startswith("domains")
    assert rows["a1"][column:].startswith("IPv4")
    assert "example.com, *.corp.example" in rows["dns"]
    assert f"group {routers} (1 peer)" in rows["a2"]
    assert rows["a1"][header.index("Routing peer") :].startswith(gw)
    for route_id in ids.values():
        cli.ok("routes", "delete", route_id)


def test_peers_show_lists_the_routes_a_peer_serves_and_receives(cli: Cli) -> None:
    routers, clients, _, _ = route_world(cli)
    gw, laptop = uniq("gw"), uniq("laptop")
    peers_in(cli, routers, gw)
    peers_in(cli, clients, laptop)
    served = _route(cli, uniq("lan"), "10.75.0.0/24", "--peer", gw, group=clients)
    out = cli.ok("peers", "show", gw)
    assert out.index("Routes served:") < out.index(served) < out.index("Routes received: none.")

    received = cli.ok("peers", "show", laptop)
    section = received[received.index("Routes received:") :]
    line = next(line for line in section.splitlines() if served in line)
    assert "10.75.0.0/24" in line and gw in line
    assert "Routes served: none." in received
    assert cli.json("peers", "show", laptop)["name"] == laptop  # --json is the peer, as the API has it
    cli.ok("routes", "delete", served)
