"""`GET /api/routes/explain` and `GET /api/routes/overlaps` over the real app and store (SQLite and
PostgreSQL; every answer checked against the served OpenAPI document): which route a peer uses
for a destination and why, what its agent reported, why other routes do not reach it, who may ask,
and the overlap report."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest

from meshroute.core.model import Role
from meshroute.core.status import RouteState, RouteUse, StatusReport
from meshroute.server.clock import utcnow
from tests.integration.conftest import World


@dataclass
class Office:
    w: World
    gw1: str
    gw2: str
    alice: str
    bob: str
    office: str  # 10.20.0.0/24 through the gateways group, to the clients
    wide: str  # 10.20.0.0/16 through gw2
    clients: str

    def explain(self, peer: str, destination: str, token: str | None = None) -> Any:
        return self.w.get("/api/routes/explain", token, params={"peer": peer, "destination": destination})


@pytest.fixture
def office(world: World) -> Office:
    gws = world.group("gateways")
    clients = world.group("clients")
    staff = world.group("staff")
    gw1, gw2 = (world.peer(n, world.setup_key([gws])) for n in ("gw1", "gw2"))
    alice = world.peer("alice", world.setup_key([clients]))
    bob = world.peer("bob", world.setup_key([clients, staff]))
    base = {"enabled": True, "masquerade": True, "keep_route": False, "groups": [clients]}
    office = world.ok(
        world.post(
            "/api/routes",
            {**base, "network_id": "office", "network": "10.20.0.0/24", "peer_groups": [gws], "metric": 100},
        )
    )["id"]
    wide = world.ok(
        world.post(
            "/api/routes",
            {**base, "network_id": "campus", "network": "10.20.0.0/16", "peer": gw2, "metric": 1},
        )
    )["id"]
    world.ok(
        world.post(
            "/api/routes",
            {
                **base,
                "network_id": "lab",
                "network": "10.20.0.0/25",
                "peer": gw1,
                "metric": 1,
                "enabled": False,
            },
        )
    )
    world.ok(
        world.post(
            "/api/routes",
            {
                **base,
                "network_id": "staff-only",
                "network": "10.20.0.0/26",
                "peer": gw1,
                "metric": 1,
                "groups": [staff],
            },
        )
    )
    for peer in (gw1, gw2, alice):
        world.services.peers.set_connected(peer, utcnow())
    return Office(world, gw1, gw2, alice, bob, office, wide, clients)


def test_the_longest_prefix_wins_and_the_rest_is_explained(office: Office) -> None:
    found = office.w.ok(office.explain(office.alice, "10.20.0.7"))
    assert found["destination_kind"] == "address" and found["peer_name"] == "alice"
    assert [(r["network_id"], r["use"]) for r in found["routes"]] == [
        ("office", "used"),
        ("campus", "shadowed"),
    ]
    winner = found["winner"]
    assert winner["network_id"] == "office" and winner["routing_peer_name"] == "gw1"
    assert [c["routing_peer_name"] for c in winner["candidates"]] == ["gw1", "gw2"]
    assert found["verdict"] == (
        "10.20.0.7 goes through route office (10.20.0.0/24) via routing peer gw1 "
        "(predicted: the peer's agent has not reported this route)."
    )
    reasons = {n["network_id"]: n["reasons"] for n in found["not_received"]}
    assert reasons == {
        "lab": ["the route is disabled"],
        "staff-only": ["this peer is not in its distribution groups (staff)"],
    }
    # outside the /24: only the /16
    assert office.w.ok(office.explain(office.alice, "10.20.9.9"))["winner"]["network_id"] == "campus"
    # a routing peer serves, it does not use
    own = office.w.ok(office.explain(office.gw2, "10.20.9.9"))
    assert own["winner"] is None and own["not_received"][0]["reasons"][0].startswith(
        "this peer is a routing peer"
    )


def test_what_the_agent_reports_is_shown(office: Office) -> None:
    w = office.w
    with w.services.uow.read(w.account_id) as tx:
        alice = tx.peers.get(office.alice)
    assert alice is not None
    ha = "office|10.20.0.0/24"
    use = RouteUse(
        ha, (f"{office.office}:{office.gw1}", f"{office.office}:{office.gw2}"), office.gw2, RouteState.ROUTING
    )
    w.services.peers.report_status(alice, StatusReport((use,)))
    winner = w.ok(office.explain(office.alice, "10.20.0.7"))["winner"]
    assert (winner["routing_peer_name"], winner["reported"]) == ("gw2", "routing")


def test_names_and_bad_input(office: Office) -> None:
    w = office.w
    by_name = w.ok(office.explain(office.alice, "intranet.example"))
    assert by_name["destination_kind"] == "name" and by_name["winner"] is None
    assert "network routes are matched by address" in by_name["notes"][0]
    bad = office.explain(office.alice, "10.0.0.0/8")
    assert bad.status_code == 422
    assert bad.json()["message"] == "destination should be an ip address or a domain name: '10.0.0.0/8'"
    assert office.explain("nope", "10.0.0.1").status_code == 404
    missing = w.get("/api/routes/explain", params={"destination": "10.0.0.1"})
    assert missing.status_code == 422 and "peer should be given" in missing.json()["message"]


def test_who_may_ask(office: Office) -> None:
    w = office.w
    _, auditor = w.user(Role.AUDITOR)
    _, person = w.user(Role.USER, service=False)
    assert office.explain(office.alice, "10.20.0.7", auditor).status_code == 200
    assert office.explain(office.alice, "10.20.0.7", person).status_code == 403
    assert (
        w.client.get(
            "/api/routes/explain", params={"peer": office.alice, "destination": "1.1.1.1"}
        ).status_code
        == 401
    )
    assert w.get("/api/routes/overlaps", person).status_code == 403
    assert w.get("/api/routes/overlaps", auditor).status_code == 200


def test_the_overlap_report(office: Office) -> None:
    found = office.w.ok(office.w.get("/api/routes/overlaps"))
    pairs = [(o["kind"], o["routes"][0]["network_id"], o["routes"][1]["network_id"]) for o in found]
    # the disabled route is left out; staff-only (/26) lies in both the /24 and the /16
    assert sorted(pairs) == [
        ("nested", "office", "campus"),
        ("nested", "staff-only", "campus"),
        ("nested", "staff-only", "office"),
    ]
    office_in_campus = next(o for o in found if o["routes"][0]["network_id"] == "office")
    assert office_in_campus["peers_receiving_both"] == 2
    assert [p["name"] for p in office_in_campus["peers"]] == ["alice", "bob"]
    assert "the longest prefix wins" in office_in_campus["effect"]
    staff = next(o for o in found if [r["network_id"] for r in o["routes"]] == ["staff-only", "office"])
    assert [p["name"] for p in staff["peers"]] == ["bob"]
