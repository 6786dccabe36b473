"""The overlap report (core.overlaps): which enabled routes overlap, in which way, which one a peer
receiving both uses, and who receives both."""

from __future__ import annotations

import ipaddress
import itertools

from hypothesis import given, settings
from hypothesis import strategies as st

from meshroute.core.overlaps import OverlapKind, overlaps
from tests.unit.test_core_explain import MEMBERS, route

PEERS = {"alice": False, "bob": True, "gw1": False, "gw2": False, "gw3": False}


def kinds(found: list) -> list[tuple[str, str, str]]:  # type: ignore[type-arg]
    return [(o.kind.value, o.first.net_id, o.second.net_id) for o in found]


def test_a_network_inside_another_wins_for_its_addresses() -> None:
    (o,) = overlaps([route("wide", "10.0.0.0/16", metric=1), route("narrow", "10.0.3.0/24")], MEMBERS, PEERS)
    assert (o.kind, o.first.net_id, o.second.net_id, o.shared) == (
        OverlapKind.NESTED,
        "narrow",
        "wide",
        "10.0.3.0/24",
    )
    assert o.receivers == ("alice", "bob")
    assert "the longest prefix wins, whatever the metrics" in o.effect


def test_the_same_network_under_two_network_ids_goes_by_metric() -> None:
    (o,) = overlaps([route("b", metric=10), route("a", metric=20, peer_groups=["other"])], MEMBERS, PEERS)
    assert (o.kind, o.first.net_id) == (OverlapKind.SAME_NETWORK, "b")
    assert "only as its standby" in o.effect
    (tie,) = overlaps([route("b"), route("a", peer_groups=["other"])], MEMBERS, PEERS)
    assert tie.first.net_id == "a" and "the same metric 100" in tie.effect


def test_not_overlaps_one_ha_group_exit_nodes_disabled_routes_other_families() -> None:
    twin = route("office", peer="gw1")
    sibling = route("office", peer="gw2")
    sibling.id = "office-2"
    routes = [
        twin,
        sibling,
        route("internet", "0.0.0.0/0"),
        route("off", "10.0.0.0/8", enabled=False),
        route("v6", "fd00::/8"),
        route("elsewhere", "10.1.0.0/24"),
    ]
    assert overlaps(routes, MEMBERS, PEERS) == []


def test_receivers_of_both_are_the_peers_whose_maps_hold_both() -> None:
    found = overlaps([route("wide", "10.0.0.0/16"), route("narrow", groups=["staff"])], MEMBERS, PEERS)
    assert found[0].receivers == ("bob",)
    none = overlaps([route("wide", "10.0.0.0/16", groups=["other"]), route("narrow")], MEMBERS, PEERS)
    assert none[0].receivers == ()


def test_domains_in_common_and_wildcards() -> None:
    routes = [
        route("app", domains=["app.corp.example", "mail.example"]),
        route("corp", domains=["*.corp.example"]),
        route("all", domains=["*.example"]),
        route("again", domains=["mail.example"]),
        route("corp-root", domains=["corp.example"]),
    ]
    found = {
        (o.kind.value, o.first.net_id, o.second.net_id, o.shared) for o in overlaps(routes, MEMBERS, PEERS)
    }
    assert found == {
        ("same_domain", "again", "app", "mail.example"),
        ("wildcard", "app", "corp", "app.corp.example"),
        ("wildcard", "app", "all", "app.corp.example"),
        ("wildcard", "again", "all", "mail.example"),
        ("wildcard", "corp", "all", "*.corp.example"),
        ("wildcard", "corp-root", "all", "corp.example"),
    }


NETS = [
    "10.0.0.0/8",
    "10.0.0.0/16",
    "10.0.0.0/24",
    "10.0.1.0/24",
    "10.1.0.0/16",
    "192.168.0.0/16",
    "fd00::/8",
    "fd00:1::/64",
]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(NETS), st.sampled_from(["a", "b"])), max_size=8))
def test_the_sweep_finds_exactly_the_overlapping_pairs(drawn: list[tuple[str, str]]) -> None:
    routes = []
    for i, (net, net_id) in enumerate(drawn):
        r = route(net_id, net)
        r.id = f"r{i}"
        routes.append(r)
    expected = set()
    for a, b in itertools.combinations(routes, 2):
        na, nb = ipaddress.ip_network(str(a.network)), ipaddress.ip_network(str(b.network))
        if na.version == nb.version and na.overlaps(nb) and a.ha_unique_id() != b.ha_unique_id():  # type: ignore[arg-type]
            expected.add(frozenset((a.id, b.id)))
    found = [frozenset((o.first.id, o.second.id)) for o in overlaps(routes, MEMBERS, PEERS)]
    assert len(found) == len(set(found))
    assert set(found) == expected
