"""Route explain's rules (core.explain): which routes a peer receives that cover a destination (the
network map's rules, checked against the oracle on random accounts), the agent's order (longest
prefix, then metric among groups of one prefix, then HA candidates), exit nodes, refused prefixes,
what the peer's agent reported, and why a route does not reach the peer."""

from __future__ import annotations

import ipaddress
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from meshroute.core.errors import InvalidArgument
from meshroute.core.explain import Explanation, Use, explain
from meshroute.core.explain_match import PeerFacts, parse_destination
from meshroute.core.model import DOMAIN_PLACEHOLDER, Group, NetworkType, Route
from meshroute.core.networkmap import compute_network_map
from meshroute.core.networkmap.types import effective_ipv6
from meshroute.core.status import RouteState, RouteUse, StatusReport, base_route_id
from tests.unit.test_networkmap import ACCOUNT
from tests.unit.test_networkmap_property import Ids, draw_members, draw_peer, draw_route

OVERLAY = (ipaddress.ip_network("100.64.0.0/10"),)
MEMBERS = {"clients": {"alice", "bob"}, "gws": {"gw1", "gw2"}, "staff": {"bob"}, "other": {"gw3"}}
GROUP_NAMES = {"clients": "clients", "gws": "gateways", "staff": "staff", "other": "other"}


def facts(connected: tuple[str, ...] = ("gw1", "gw2", "gw3", "alice", "bob"), v6: bool = False) -> Any:
    names = ("alice", "bob", "gw1", "gw2", "gw3")
    return {n: PeerFacts(n, n, n in connected, v6) for n in names}


def route(rid: str, net: str = "10.0.0.0/24", **kw: Any) -> Route:
    domains = kw.pop("domains", [])
    if domains:
        network: Any = DOMAIN_PLACEHOLDER
        kind = NetworkType.DOMAIN
    else:
        network = ipaddress.ip_network(net)
        kind = NetworkType.IPV6 if network.version == 6 else NetworkType.IPV4
    base: dict[str, Any] = {
        "net_id": rid,
        "peer_groups": ["gws"],
        "groups": ["clients"],
        "enabled": True,
        "metric": 100,
    }
    base.update(kw)
    if base.get("peer"):
        base["peer_groups"] = []
    return Route(rid, ACCOUNT, network=network, network_type=kind, domains=domains, **base)


def run(routes: list[Route], dest: str = "10.0.0.5", peer: str = "alice", **kw: Any) -> Explanation:
    kw.setdefault("overlay", OVERLAY)
    kw.setdefault("group_names", GROUP_NAMES)
    peers = kw.pop("peers", facts())
    return explain(peer, parse_destination(dest), routes, MEMBERS, peers, **kw)


def uses(e: Explanation) -> list[tuple[str, Use]]:
    return [(g.net_id, g.use) for g in e.groups]


@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_the_covering_routes_a_peer_receives_are_those_of_its_network_map(data: st.DataObject) -> None:
    ids = Ids()
    peers = [draw_peer(data, ids) for _ in range(data.draw(st.integers(1, 5)))]
    peer_ids = [p.id for p in peers]
    groups = [Group(f"g{i}", ACCOUNT, f"g{i}", draw_members(data, peer_ids)) for i in range(4)]
    routes = [
        draw_route(data, f"r{i}", peer_ids, [g.id for g in groups])
        for i in range(data.draw(st.integers(1, 6)))
    ]
    members = {g.id: g.peers for g in groups}
    known = {p.id: PeerFacts(p.id, p.name, True, effective_ipv6(p) is not None) for p in peers}
    dest = data.draw(
        st.sampled_from(["10.0.0.7", "10.1.2.3", "192.168.1.1", "8.8.8.8", "fd00:1::5", "2001:db8::1"])
    )
    address = ipaddress.ip_address(dest)
    for p in peers:
        m = compute_network_map(p.id, peers, groups, routes, 1)
        expected = {
            (base_route_id(e.id), e.id.endswith("-v6-default"))
            for e in m.routes
            if e.peer_id != p.id
            and e.network_type != NetworkType.DOMAIN
            and address in ipaddress.ip_network(e.network)
            and address.version == ipaddress.ip_network(e.network).version
        }
        found = explain(p.id, parse_destination(dest), routes, members, known)
        got = {
            (rid, g.network == "::/0" and g.net_id.endswith("-v6"))
            for g in found.groups
            for rid in g.route_ids
        }
        assert got == expected
        missing = {n.route_id for n in found.not_received}
        assert not missing & {rid for rid, _ in got}


def test_the_longest_prefix_wins_whatever_the_metrics() -> None:
    e = run([route("wide", "10.0.0.0/16", metric=1), route("narrow", "10.0.0.0/24", metric=9000)])
    assert uses(e) == [("narrow", Use.USED), ("wide", Use.SHADOWED)]
    assert e.winner is not None and e.winner.net_id == "narrow"
    assert "10.0.0.0/24 is more specific" in e.groups[1].note
    assert e.verdict.startswith("10.0.0.5 goes through route narrow (10.0.0.0/24) via routing peer gw1")


def test_groups_of_one_prefix_go_by_metric_and_the_other_is_standby() -> None:
    routes = [route("b-office", metric=50, peer_groups=["other"]), route("a-office", metric=200)]
    assert uses(run(routes)) == [("b-office", Use.USED), ("a-office", Use.STANDBY)]
    # the lower metric has no routing peer up: the other one holds the prefix
    e = run(routes, peers=facts(connected=("gw1", "gw2", "alice")))
    assert uses(e) == [("a-office", Use.USED), ("b-office", Use.STANDBY)]


def test_ha_candidates_connected_first_then_metric() -> None:
    routes = [route("office", peer="gw1", metric=10), route("office", peer="gw2", metric=20)]
    routes[1].id = "office-2"
    e = run(routes, peers=facts(connected=("gw2", "alice")))
    (group,) = e.groups
    assert [c.routing_peer_id for c in group.candidates] == ["gw2", "gw1"]
    assert group.routing_peer_id == "gw2" and group.reported is None
    assert "predicted" in e.verdict
    both_up = run(routes)
    assert [c.routing_peer_id for c in both_up.groups[0].candidates] == ["gw1", "gw2"]


def test_what_the_agent_reported_beats_the_prediction_and_a_stale_report_does_not() -> None:
    r = route("office")
    use = RouteUse(r.ha_unique_id(), ("office:gw1", "office:gw2"), "gw2", RouteState.ROUTING)
    e = run([r], report=StatusReport((use,)))
    assert e.groups[0].routing_peer_id == "gw2" and e.groups[0].reported == "routing"
    assert e.verdict.endswith("via routing peer gw2 (as the peer's agent reported).")
    away = run([r], report=StatusReport((use,)), peers=facts(connected=("gw1", "gw2")))
    assert away.groups[0].reported == "stale" and away.groups[0].routing_peer_id == "gw1"
    down = RouteUse(r.ha_unique_id(), ("office:gw1",), "", RouteState.NO_ROUTING_PEER)
    dropped = run([r], report=StatusReport((down,)))
    assert dropped.winner is not None and dropped.winner.routing_peer_id is None
    assert "no routing peer is usable: the traffic is dropped" in dropped.verdict


def test_a_deselected_route_is_skipped_and_the_next_one_wins() -> None:
    narrow, wide = route("narrow"), route("wide", "10.0.0.0/8")
    off = RouteUse(narrow.ha_unique_id(), ("narrow:gw1",), "", RouteState.DESELECTED)
    e = run([narrow, wide], report=StatusReport((off,)))
    assert uses(e) == [("narrow", Use.DESELECTED), ("wide", Use.USED)]


def test_why_a_route_does_not_reach_the_peer() -> None:
    routes = [
        route("disabled", enabled=False),
        route("staff-only", groups=["staff"]),
        route("served", peer="alice"),
        route("v6", "fd00:1::/64"),
        route("nobody", peer_groups=["empty"]),
    ]
    e = run(routes)
    by_id = {n.route_id: n.reasons for n in e.not_received}
    assert by_id["disabled"] == ("the route is disabled",)
    assert by_id["staff-only"] == ("this peer is not in its distribution groups (staff)",)
    assert by_id["served"][0].startswith("this peer is a routing peer of the route")
    assert "nobody" in by_id and "no routing peer" in by_id["nobody"][0]
    assert "v6" not in by_id  # an IPv6 route does not cover an IPv4 address
    assert e.winner is None and "leaves through the peer's own network" in e.verdict
    v6 = run(routes, dest="fd00:1::9")
    assert v6.not_received[-1].reasons == ("an IPv6 route, and this peer does not use IPv6 in the mesh",)


def test_a_peer_serving_a_route_of_the_same_ha_group_does_not_use_the_others() -> None:
    mine = route("office", peer="alice")
    mine.id = "office-alice"
    e = run([route("office"), mine])
    reasons = {n.route_id: n.reasons for n in e.not_received}
    assert reasons["office"] == (
        "this peer serves route office (office-alice) of the same HA group, so it does not use this one",
    )


def test_outside_the_access_control_groups_the_routing_peer_drops_it() -> None:
    e = run([route("office", access_control_groups=["staff"])])
    assert e.winner is not None and not e.winner.allowed
    assert "drops it: this peer is not in the route's access-control groups" in e.verdict
    assert run([route("office", access_control_groups=["staff"])], peer="bob").winner.allowed  # type: ignore[union-attr]


def test_exit_nodes_one_in_use_skip_auto_apply_waits_for_a_selection() -> None:
    routes = [
        route("b-internet", "0.0.0.0/0"),
        route("a-internet", "0.0.0.0/0", peer_groups=["other"]),
        route("c-manual", "0.0.0.0/0", skip_auto_apply=True, peer="gw1"),
    ]
    e = run(routes, dest="1.1.1.1")
    assert dict(uses(e)) == {
        "a-internet": Use.USED,
        "b-internet": Use.NOT_SELECTED,
        "c-manual": Use.NOT_SELECTED,
    }
    notes = {g.net_id: g.note for g in e.groups}
    assert "the exit node in use is a-internet" in notes["b-internet"]
    assert notes["c-manual"].startswith("SkipAutoApply: used only once selected")
    # the user selected c-manual: its agent reports it routing, the others deselected
    report = StatusReport(
        tuple(
            RouteUse(r.ha_unique_id(), (r.id,), "gw1" if r.net_id == "c-manual" else "", state)
            for r, state in zip(
                routes, (RouteState.DESELECTED, RouteState.DESELECTED, RouteState.ROUTING), strict=True
            )
        )
    )
    chosen = run(routes, dest="1.1.1.1", report=report)
    assert chosen.winner is not None and chosen.winner.net_id == "c-manual"


def test_an_ipv4_exit_node_covers_ipv6_through_its_twin_on_ipv6_peers() -> None:
    internet = route("internet", "0.0.0.0/0")
    e = run([internet], dest="2001:db8::1", peers=facts(v6=True))
    assert e.winner is not None and (e.winner.net_id, e.winner.network) == ("internet-v6", "::/0")
    no_v6 = run([internet], dest="2001:db8::1")
    assert no_v6.winner is None and "unreachable ::/0" in no_v6.notes[0]


def test_refused_prefixes_are_never_routed() -> None:
    e = run([route("mesh", "100.64.0.0/16"), route("wide", "100.0.0.0/8")], dest="100.64.1.1")
    assert uses(e) == [("mesh", Use.REFUSED), ("wide", Use.REFUSED)]
    assert "inside the mesh's own network 100.64.0.0/10" in e.groups[0].note
    assert e.winner is None


def test_names_exact_before_wildcards_before_exit_nodes() -> None:
    routes = [
        route("exact", domains=["app.corp.example"]),
        route("wide", domains=["*.example"]),
        route("narrow", domains=["*.corp.example"]),
        route("internet", "0.0.0.0/0"),
        route("lan", "10.0.0.0/8"),
    ]
    e = run(routes, dest="App.Corp.Example.")
    assert uses(e) == [
        ("exact", Use.USED),
        ("narrow", Use.SHADOWED),
        ("wide", Use.SHADOWED),
        ("internet", Use.SHADOWED),
    ]
    assert "network routes are matched by address" in e.notes[0]
    # a wildcard covers proper subdomains only
    assert [g.net_id for g in run(routes, dest="corp.example").groups] == ["wide", "internet"]


@pytest.mark.parametrize("text", ["", " ", "*.corp.example", "10.0.0.0/24", "a b", "x" * 300, "http://a"])
def test_a_destination_is_an_address_or_a_name(text: str) -> None:
    with pytest.raises(InvalidArgument, match="destination should be an IP address or a domain name"):
        parse_destination(text)


def test_destinations_parse() -> None:
    assert parse_destination(" 10.0.0.1 ").address == ipaddress.ip_address("10.0.0.1")
    assert parse_destination("fd00::1").kind == "address"
    assert parse_destination("Münich.example").name == "xn--mnich-kva.example"


def test_an_address_notes_the_domain_routes_that_may_have_taught_it() -> None:
    routes = [route("lan", "10.0.0.0/24"), route("apps", domains=["app.corp.example"])]
    e = run(routes, dest="10.0.0.5")
    assert e.winner is not None and e.winner.net_id == "lan"
    assert any("also receives domain routes (apps)" in n for n in e.notes)
    # not received: no note
    other = run([route("lan", "10.0.0.0/24"), route("apps", domains=["app.corp.example"], groups=["other"])])
    assert not any("domain routes" in n for n in other.notes)
    assert not any("domain routes" in n for n in run(routes, dest="app.corp.example").notes[1:])
