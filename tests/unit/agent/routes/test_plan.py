"""The route plan: handlers (kernel routes), watchers (who holds the prefix), KeepRoute, metrics
between groups, exit nodes, refused prefixes."""

from __future__ import annotations

import ipaddress

from meshroute.agent.routes.plan import RouteManager, client_groups, route_refusal
from meshroute.agent.routes.scoring import CandidateHealth, PeerStatus
from meshroute.agent.routing.rtnl import TableRoute
from meshroute.core.networkmap.types import MapPeer, MapRoute, NetworkMap

OVERLAY = [ipaddress.ip_network("100.64.0.0/16")]
ME = MapPeer("me", "KEY-ME", "100.64.0.1", None, "me", "me")
R1 = MapPeer("r1", "KEY-R1", "100.64.0.2", None, "r1", "r1")
R2 = MapPeer("r2", "KEY-R2", "100.64.0.3", None, "r2", "r2")
UP = CandidateHealth(PeerStatus.CONNECTED, 1.0)
SLOW = CandidateHealth(PeerStatus.CONNECTED, 80.0)
DOWN = CandidateHealth(PeerStatus.CONNECTING)


def route(
    rid: str,
    peer: MapPeer,
    network: str = "10.77.0.0/24",
    *,
    net_id: str = "office",
    metric: int = 100,
    **kw: object,
) -> MapRoute:
    kind = 2 if ":" in network else 1
    fields: dict[str, object] = dict(
        domains=(), network_type=kind, masquerade=True, keep_route=False, skip_auto_apply=False
    )
    fields.update(kw)
    return MapRoute(rid, net_id, network, peer_key=peer.key, peer_id=peer.id, metric=metric, **fields)  # type: ignore[arg-type]


def nmap(*routes: MapRoute) -> NetworkMap:
    return NetworkMap(1, ME, (R1, R2), tuple(sorted(routes, key=lambda r: r.id)), ())


def plan(manager: RouteManager, m: NetworkMap, health: dict[str, CandidateHealth], selected: object = None):  # type: ignore[no-untyped-def]
    groups = client_groups(m)
    return manager.plan(m, groups if selected is None else selected, health, OVERLAY)  # type: ignore[arg-type]


def test_a_ha_group_gets_one_kernel_route_and_its_best_candidate_holds_the_prefix() -> None:
    a, b = route("a", R1), route("b", R2)
    p = plan(RouteManager(), nmap(a, b), {"a": SLOW, "b": UP})
    assert p.table == {TableRoute("10.77.0.0/24")}
    assert p.allowed == {R2.key: ("10.77.0.0/24",)}
    assert p.probe_peers == {R1.key, R2.key}
    (group,) = p.groups
    assert (group.ha_id, group.chosen, group.installed, group.selected) == (
        "office|10.77.0.0/24",
        "b",
        True,
        True,
    )


def test_failover_moves_the_prefix_and_the_kernel_route_stays() -> None:
    manager = RouteManager()
    m = nmap(route("a", R1), route("b", R2))
    assert plan(manager, m, {"a": UP, "b": SLOW}).allowed == {R1.key: ("10.77.0.0/24",)}
    after = plan(manager, m, {"a": DOWN, "b": SLOW})
    assert after.allowed == {R2.key: ("10.77.0.0/24",)}
    assert after.table == {TableRoute("10.77.0.0/24")}
    # R1 back, better by far more than the 10 ms stickiness: it takes the prefix back.
    assert plan(manager, m, {"a": UP, "b": SLOW}).allowed == {R1.key: ("10.77.0.0/24",)}


def test_a_latency_change_alone_never_moves_the_prefix() -> None:
    manager = RouteManager()
    m = nmap(route("a", R1), route("b", R2))
    assert plan(manager, m, {"a": UP, "b": SLOW}).allowed == {R1.key: ("10.77.0.0/24",)}
    # Under load the carrying peer's latency rises far above the other's: no move (it would cut
    # every masqueraded connection through it).
    loaded = CandidateHealth(PeerStatus.CONNECTED, 500.0)
    assert plan(manager, m, {"a": loaded, "b": UP}).allowed == {R1.key: ("10.77.0.0/24",)}
    # A state change is an event: the choice is made again, with the latencies of that moment.
    assert plan(manager, m, {"a": DOWN, "b": UP}).allowed == {R2.key: ("10.77.0.0/24",)}


def test_a_metric_change_is_a_candidate_change_and_moves_the_prefix() -> None:
    manager = RouteManager()
    before = nmap(route("a", R1, metric=100), route("b", R2, metric=50))
    assert plan(manager, before, {"a": UP, "b": UP}).allowed == {R2.key: ("10.77.0.0/24",)}
    after = nmap(route("a", R1, metric=10), route("b", R2, metric=50))
    assert plan(manager, after, {"a": UP, "b": UP}).allowed == {R1.key: ("10.77.0.0/24",)}


def test_stickiness_keeps_the_current_routing_peer_for_a_small_difference() -> None:
    manager = RouteManager()
    m = nmap(route("a", R1), route("b", R2))
    plan(
        manager,
        m,
        {"a": CandidateHealth(PeerStatus.CONNECTED, 12.0), "b": CandidateHealth(PeerStatus.CONNECTED, 15.0)},
    )
    later = plan(
        manager,
        m,
        {"a": CandidateHealth(PeerStatus.CONNECTED, 15.0), "b": CandidateHealth(PeerStatus.CONNECTED, 12.0)},
    )
    assert later.allowed == {R1.key: ("10.77.0.0/24",)}  # 3 ms is not worth a move


def test_without_keep_route_no_usable_peer_makes_the_prefix_unreachable_and_withdraws_it() -> None:
    manager = RouteManager()
    m = nmap(route("a", R1), route("b", R2))
    plan(manager, m, {"a": UP, "b": UP})
    p = plan(manager, m, {"a": DOWN, "b": DOWN})
    assert p.table == {TableRoute("10.77.0.0/24", unreachable=True)}  # never to the underlay
    assert p.allowed == {}
    assert p.groups[0].chosen is None and "unreachable" in p.groups[0].note


def test_with_keep_route_the_prefix_stays_in_the_tunnel_at_the_last_routing_peer() -> None:
    manager = RouteManager()
    m = nmap(route("a", R1, keep_route=True), route("b", R2, keep_route=True))
    plan(manager, m, {"a": UP, "b": SLOW})
    p = plan(manager, m, {"a": DOWN, "b": DOWN})
    assert p.table == {TableRoute("10.77.0.0/24")}
    assert p.allowed == {R1.key: ("10.77.0.0/24",)}
    assert "KeepRoute" in p.groups[0].note


def test_between_groups_of_one_prefix_the_lower_metric_holds_it() -> None:
    cheap, dear = route("a", R1, net_id="one", metric=200), route("b", R2, net_id="two", metric=100)
    p = plan(RouteManager(), nmap(cheap, dear), {"a": UP, "b": UP})
    assert p.allowed == {R2.key: ("10.77.0.0/24",)}
    assert p.table == {TableRoute("10.77.0.0/24")}  # one kernel route for both


def test_more_specific_prefixes_are_their_own_routes() -> None:
    wide = route("a", R1, "10.0.0.0/8", net_id="wide", metric=1)
    narrow = route("b", R2, "10.77.1.0/24", net_id="narrow", metric=9000)
    p = plan(RouteManager(), nmap(wide, narrow), {"a": UP, "b": UP})
    assert p.table == {TableRoute("10.0.0.0/8"), TableRoute("10.77.1.0/24")}  # the kernel prefers the /24
    assert p.allowed == {R1.key: ("10.0.0.0/8",), R2.key: ("10.77.1.0/24",)}


def test_an_ipv4_exit_node_without_an_ipv6_overlay_blocks_ipv6() -> None:
    p = plan(RouteManager(), nmap(route("x", R1, "0.0.0.0/0", net_id="exit")), {"x": UP})
    assert p.table == {TableRoute("0.0.0.0/0"), TableRoute("::/0", unreachable=True)}
    assert p.allowed == {R1.key: ("0.0.0.0/0",)}


def test_refused_prefixes_get_no_route_and_say_why() -> None:
    for prefix, why in [
        ("127.0.0.0/8", "loopback"),
        ("169.254.0.0/16", "link-local"),
        ("224.0.0.0/4", "multicast"),
        ("100.64.5.0/24", "own network"),
        ("fe80::/64", "link-local"),
    ]:
        refusal = route_refusal(prefix, OVERLAY)
        assert refusal is not None and why.split()[0] in refusal, (prefix, refusal)
        p = plan(RouteManager(), nmap(route("a", R1, prefix)), {"a": UP})
        assert p.table == frozenset() and p.allowed == {}
        assert p.groups[0].note.startswith("not routed")
    assert route_refusal("10.77.0.0/24", OVERLAY) is None and route_refusal("0.0.0.0/0", OVERLAY) is None


def test_deselected_groups_have_no_route_and_are_not_probed() -> None:
    m = nmap(route("a", R1), route("x", R2, "0.0.0.0/0", net_id="exit"))
    groups = client_groups(m)
    only_office = {ha: rs for ha, rs in groups.items() if ha.startswith("office")}
    p = plan(RouteManager(), m, {"a": UP, "x": UP}, only_office)
    assert p.table == {TableRoute("10.77.0.0/24")}
    assert p.probe_peers == {R1.key}
    assert [(g.net_id, g.selected) for g in p.groups] == [("exit", False), ("office", True)]


def test_own_routes_are_not_client_routes() -> None:
    mine = route("m", ME, "10.99.0.0/24", net_id="mine")
    assert list(client_groups(nmap(mine, route("a", R1)))) == ["office|10.77.0.0/24"]


def test_one_prefix_under_two_netids_stays_routed_through_the_group_that_can_carry_it() -> None:
    manager = RouteManager()
    better, other = route("b", R2, net_id="office-b", metric=50), route("a", R1, net_id="office", metric=100)
    m = nmap(better, other)
    assert plan(manager, m, {"a": UP, "b": UP}).allowed == {R2.key: ("10.77.0.0/24",)}
    p = plan(manager, m, {"a": UP, "b": DOWN})
    assert p.table == {TableRoute("10.77.0.0/24")}  # one kernel route, into the tunnel
    assert p.allowed == {R1.key: ("10.77.0.0/24",)}
    assert plan(manager, m, {"a": UP, "b": UP}).table == {TableRoute("10.77.0.0/24")}
    # A KeepRoute group that only keeps its dead peer loses to a group that really chose one.
    keep = RouteManager()
    m = nmap(route("b", R2, net_id="office-b", metric=50, keep_route=True), other)
    plan(keep, m, {"a": UP, "b": UP})
    assert plan(keep, m, {"a": UP, "b": DOWN}).allowed == {R1.key: ("10.77.0.0/24",)}
