"""`meshroute routes explain --peer P --destination D`: the route a peer uses for a destination and
why, by peer name, ID or overlay IP, through a real server (`GET /api/routes/explain`)."""

from __future__ import annotations

from tests.integration.cli.conftest import Cli, peers_in, route_world, uniq


def test_explain_names_the_winner_the_order_and_what_does_not_reach_the_peer(cli: Cli) -> None:
    routers, clients, _, _ = route_world(cli)
    gateway = uniq("gw")
    (gw,) = peers_in(cli, routers, gateway)
    laptop = uniq("laptop")
    (peer,) = peers_in(cli, clients, laptop)
    office, campus, off = uniq("office"), uniq("campus"), uniq("off")
    cli.ok(
        "routes",
        "create",
        "--net-id",
        office,
        "--network",
        "10.91.0.0/24",
        "--peer-group",
        routers,
        "--group",
        clients,
    )
    cli.ok(
        "routes",
        "create",
        "--net-id",
        campus,
        "--network",
        "10.91.0.0/16",
        "--peer",
        gateway,
        "--group",
        clients,
        "--metric",
        "1",
    )
    cli.ok(
        "routes",
        "create",
        "--net-id",
        off,
        "--network",
        "10.91.0.0/25",
        "--peer",
        gateway,
        "--group",
        clients,
        "--disabled",
    )
    shown = cli.ok("routes", "explain", "--peer", laptop, "--destination", "10.91.0.9")
    assert f"10.91.0.9 matches route {office} (10.91.0.0/24), but no routing peer is usable" in shown
    lines = shown.splitlines()
    order = [line.split()[1] for line in lines if line.split() and line.split()[0].isdigit()]
    assert order == [office, campus]
    assert "the route is disabled" in shown
    as_json = cli.json("routes", "explain", "-p", peer, "-d", "10.91.0.9")
    assert as_json["winner"]["network_id"] == office and as_json["peer_id"] == peer
    assert [r["use"] for r in as_json["routes"]] == ["used", "shadowed"]
    # the routing peer serves, it does not use
    served = cli.json("routes", "explain", "--peer", gw, "--destination", "10.91.0.9")
    assert served["winner"] is None
    bad = cli.fails("routes", "explain", "--peer", laptop, "--destination", "10.91.0.0/24")
    assert "destination should be an ip address or a domain name" in bad.stderr
