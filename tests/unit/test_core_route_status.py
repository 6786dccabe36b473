"""The route status view's rules (core.route_status): who receives a route (exactly the peers whose
network map holds it, checked against the oracle on random accounts), and what each client's state
is from its last report and its connection."""

from __future__ import annotations

import ipaddress
from datetime import UTC, datetime

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from meshroute.core.model import Group, NetworkType, Route
from meshroute.core.networkmap import compute_network_map
from meshroute.core.networkmap.types import effective_ipv6
from meshroute.core.route_status import (
    STALE,
    UNKNOWN,
    ClientStatus,
    PeerStatus,
    client_status,
    route_receivers,
    use_of,
)
from meshroute.core.status import RouteState, RouteUse, StatusReport, base_route_id
from tests.unit.test_networkmap import ACCOUNT
from tests.unit.test_networkmap_property import Ids, draw_members, draw_peer, draw_route

WHEN = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_the_receivers_of_a_route_are_the_peers_whose_map_holds_it(data: st.DataObject) -> None:
    ids = Ids()
    peers = [draw_peer(data, ids) for _ in range(data.draw(st.integers(1, 6)))]
    peer_ids = [p.id for p in peers]
    groups = [Group(f"g{i}", ACCOUNT, f"g{i}", draw_members(data, peer_ids)) for i in range(4)]
    group_ids = [g.id for g in groups]
    routes = [draw_route(data, f"r{i}", peer_ids, group_ids) for i in range(data.draw(st.integers(1, 6)))]
    members = {g.id: g.peers for g in groups}
    uses_ipv6 = {p.id: effective_ipv6(p) is not None for p in peers}
    maps = {p.id: compute_network_map(p.id, peers, groups, routes, 1) for p in peers}
    for route in routes:
        expected = {
            pid
            for pid, m in maps.items()
            if any(base_route_id(e.id) == route.id and e.peer_id != pid for e in m.routes)
        }
        assert route_receivers(route, routes, members, uses_ipv6) == expected, route


def _route(
    rid: str, *, peer: str = "", peer_groups: list[str] | None = None, net: str = "10.0.0.0/24"
) -> Route:
    network = ipaddress.ip_network(net)
    kind = NetworkType.IPV6 if network.version == 6 else NetworkType.IPV4
    return Route(
        rid, ACCOUNT, "office", network, kind, peer=peer, peer_groups=peer_groups or [],
        groups=["clients"], enabled=True, metric=10,
    )  # fmt: skip


def test_receivers_leave_out_routing_peers_and_peers_serving_the_same_ha_group() -> None:
    members = {"clients": ["a", "b", "gw1", "gw2"], "gws": ["gw1"]}
    peers = dict.fromkeys(["a", "b", "gw1", "gw2"], False)
    one = _route("r1", peer_groups=["gws"])
    sibling = _route("r2", peer="gw2")  # same NetID and prefix: the same HA group
    assert route_receivers(one, [one, sibling], members, peers) == {"a", "b"}
    assert route_receivers(one, [one], members, peers) == {"a", "b", "gw2"}
    disabled = _route("r3", peer="gw1")
    disabled.enabled = False
    assert route_receivers(disabled, [disabled], members, peers) == set()
    nobody_routes = _route("r4", peer_groups=["empty"])
    assert route_receivers(nobody_routes, [nobody_routes], members, peers) == set()
    v6 = _route("r5", peer="gw1", net="fd00:1::/64")
    assert route_receivers(v6, [v6], members, {**peers, "b": True}) == {"b"}


def _report(*uses: RouteUse) -> StatusReport:
    return StatusReport(routes=uses)


def test_the_ha_group_holding_a_route_is_found_by_its_map_route_ids() -> None:
    lan = RouteUse("office|10.0.0.0/24", ("r1:gw1", "r1:gw2", "r2"), "gw2", RouteState.ROUTING)
    exit_v4 = RouteUse("exit|0.0.0.0/0", ("x1",), "gw1", RouteState.ROUTING)
    exit_v6 = RouteUse("exit-v6|::/0", ("x1-v6-default",), "", RouteState.NO_ROUTING_PEER)
    report = _report(exit_v6, lan, exit_v4)
    assert use_of(report, "r1") == lan and use_of(report, "r2") == lan
    assert use_of(report, "x1") == exit_v4  # the IPv4 exit node wins over its IPv6 twin
    assert use_of(_report(exit_v6), "x1") == exit_v6
    assert use_of(report, "r") is None and use_of(report, "gw1") is None


def test_a_clients_state_comes_from_its_report_and_its_connection() -> None:
    use = RouteUse("office|10.0.0.0/24", ("r1:gw1", "r1:gw2"), "gw2", RouteState.ROUTING)
    status = PeerStatus("a", ACCOUNT, _report(use), WHEN)
    assert client_status("a", True, status, "r1") == ClientStatus("a", "routing", "gw2", "gw2", WHEN)
    # disconnected: never current, but what was last known stays visible
    assert client_status("a", False, status, "r1") == ClientStatus("a", STALE, None, "gw2", WHEN)
    # nothing reported for this route, or nothing at all
    assert client_status("a", True, status, "r9") == ClientStatus("a", UNKNOWN, None, None, None)
    assert client_status("a", False, None, "r1") == ClientStatus("a", UNKNOWN, None, None, None)
    none = PeerStatus("a", ACCOUNT, _report(RouteUse("h", ("r1",), "", RouteState.NO_ROUTING_PEER)), WHEN)
    assert client_status("a", True, none, "r1") == ClientStatus("a", "no_routing_peer", None, None, WHEN)


def test_a_domain_routes_client_shows_how_many_addresses_it_learned() -> None:
    use = RouteUse("dns|app.example.com", ("r1",), "gw1", RouteState.ROUTING, learned=3)
    status = PeerStatus("a", "acc", StatusReport(routes=(use,)), WHEN)
    assert client_status("a", True, status, "r1", domain=True).learned_addresses == 3
    assert client_status("a", True, status, "r1").learned_addresses is None  # not a domain route
