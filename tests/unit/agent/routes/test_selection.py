"""The user's route selection and the exit-node rules: the reference's test tables
(agent-behaviour.md §5.5), our deterministic choices, and persistence."""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from meshroute.agent.routes.selection import (
    SELECTION_FILE,
    Groups,
    RouteSelector,
    deselect_all_routes,
    deselect_routes,
    exit_node_ids,
    expand_v6_exit_pairs,
    load_selector,
    pick_preferred_exit_node,
    reconcile_exit_nodes,
    save_selector,
    select_all_routes,
    select_routes,
    v6_exit_pairs,
)
from meshroute.core.model import MAX_METRIC, NetworkType
from meshroute.core.networkmap.types import MapRoute

V4, V6 = "0.0.0.0/0", "::/0"
ROUTES3 = ["route1", "route2", "route3"]
ROUTES4 = [*ROUTES3, "route4"]


def rt(
    net_id: str, network: str, *, peer: str = "p1", skip: bool = False, rid: str | None = None
) -> MapRoute:
    return MapRoute(
        id=rid or f"r-{net_id}-{peer}",
        net_id=net_id,
        network=network,
        domains=(),
        network_type=NetworkType.IPV6 if ":" in network else NetworkType.IPV4,
        peer_key=f"key-{peer}",
        peer_id=peer,
        metric=MAX_METRIC,
        masquerade=True,
        keep_route=False,
        skip_auto_apply=skip,
    )


def groups(*routes: MapRoute) -> dict[str, tuple[MapRoute, ...]]:
    out: dict[str, tuple[MapRoute, ...]] = {}
    for r in routes:
        out[r.ha_id] = (*out.get(r.ha_id, ()), r)
    return out


def selected(rs: RouteSelector, ids: Sequence[str]) -> list[str]:
    return [i for i in ids if rs.is_selected(i)]


def empty_groups(*ha_ids: str) -> dict[str, tuple[MapRoute, ...]]:
    return {ha_id: () for ha_id in ha_ids}


# -- routeselector_test: select / select all / deselect / deselect all ----------------------------


@pytest.mark.parametrize(
    ("initial", "ids", "append", "want", "errors"),
    [
        pytest.param(None, ["route1", "route2"], False, ["route1", "route2"], 0, id="initial nil"),
        pytest.param([], ["route1", "route2"], False, ["route1", "route2"], 0, id="initial empty"),
        pytest.param(["route1"], ["route2", "route3"], False, ["route2", "route3"], 0, id="replace"),
        pytest.param(None, ["route1", "route4"], False, ["route1"], 1, id="unknown id"),
        pytest.param(["route1"], ["route2"], True, ["route1", "route2"], 0, id="append"),
        pytest.param(None, ["route2"], True, ["route2"], 0, id="append without initial"),
    ],
)
def test_select(
    initial: list[str] | None, ids: list[str], append: bool, want: list[str], errors: int
) -> None:
    rs = RouteSelector()
    # As in the reference's table, the initial replace-select always runs (None: with no ids).
    assert rs.select(initial or [], False, ROUTES3) == []
    got = rs.select(ids, append, ROUTES3)
    assert len(got) == errors
    assert selected(rs, ROUTES3) == want


def test_select_reports_every_unknown_id_in_request_order_and_applies_the_rest() -> None:
    rs = RouteSelector()
    assert rs.select(["zz", "route2", "aa"], False, ROUTES3) == [
        "route 'zz' is not available",
        "route 'aa' is not available",
    ]
    assert selected(rs, ROUTES3) == ["route2"]


@pytest.mark.parametrize("initial", [None, [], ["route1"], ROUTES3])
def test_select_all(initial: list[str] | None) -> None:
    rs = RouteSelector()
    if initial is not None:
        rs.select(initial, False, ROUTES3)
    rs.select_all()
    assert selected(rs, ROUTES3) == ROUTES3
    assert rs.selected_ids == rs.deselected_ids == ()


@pytest.mark.parametrize(
    ("initial", "ids", "want", "errors"),
    [
        pytest.param(None, ["route1", "route2"], ["route3"], 0, id="initial nil"),
        pytest.param([], ["route1", "route2"], [], 0, id="initial empty"),
        pytest.param(["route1", "route2"], ["route1", "route3"], ["route2"], 0, id="with initial"),
        pytest.param(["route1", "route2"], ["route1", "route4"], ["route2"], 1, id="unknown id"),
    ],
)
def test_deselect(initial: list[str] | None, ids: list[str], want: list[str], errors: int) -> None:
    rs = RouteSelector()
    if initial is not None:
        rs.select(initial, False, ROUTES3)
    got = rs.deselect(ids, ROUTES3)
    assert got == ["route 'route4' is not available"] * errors
    assert selected(rs, ROUTES3) == want


@pytest.mark.parametrize("initial", [None, [], ["route1", "route2"], ROUTES3])
def test_deselect_all(initial: list[str] | None) -> None:
    rs = RouteSelector()
    if initial is not None:
        rs.select(initial, False, ROUTES3)
    rs.deselect_all()
    assert selected(rs, ROUTES3) == []
    assert rs.all_deselected


def test_is_selected_is_default_on_for_unknown_routes() -> None:
    rs = RouteSelector()
    rs.select(["route1", "route2"], False, ROUTES3)
    assert [rs.is_selected(i) for i in ["route1", "route2", "route3", "route4"]] == [True, True, False, True]


def test_filter_selected() -> None:
    rs = RouteSelector()
    rs.select(["route1", "route2"], False, ROUTES3)
    g = empty_groups("route3|172.16.0.0/12", "route1|10.0.0.0/8", "route2|192.168.0.0/16")
    got = rs.filter_selected(g)
    assert list(got) == ["route1|10.0.0.0/8", "route2|192.168.0.0/16"]  # sorted by HA ID


# -- routeselector_test: new routes, mixed, after deselect-all, complex ----------------------------

NEW5 = ["route1", "route2", "route3", "route4", "route5"]
GROUPS5 = empty_groups(
    "route1|10.0.0.0/8",
    "route2|192.168.0.0/16",
    "route3|172.16.0.0/12",
    "route4|10.10.0.0/16",
    "route5|192.168.1.0/24",
)


def _deselect_one_after_select_all(rs: RouteSelector) -> list[str]:
    rs.select_all()
    return rs.deselect(["route1"], ROUTES3)


@pytest.mark.parametrize(
    ("setup", "want"),
    [
        pytest.param(lambda rs: rs.select_all(), NEW5, id="after select all"),
        pytest.param(
            lambda rs: rs.select(["route1", "route2"], False, ROUTES3),
            ["route1", "route2", "route4", "route5"],
            id="after replace-select",
        ),
        pytest.param(lambda rs: rs.deselect_all(), [], id="after deselect all"),
        pytest.param(
            _deselect_one_after_select_all, ["route2", "route3", "route4", "route5"], id="after deselect"
        ),
        pytest.param(lambda rs: rs.select(["route1"], True, ROUTES3), NEW5, id="after append-select"),
    ],
)
def test_new_routes_appearing(setup: Callable[[RouteSelector], object], want: list[str]) -> None:
    rs = RouteSelector()
    assert not setup(rs)  # no errors
    assert selected(rs, NEW5) == want
    assert len(rs.filter_selected(GROUPS5)) == len(want)


@pytest.mark.parametrize(
    ("to_select", "to_deselect", "select_first", "want"),
    [
        pytest.param(["route1"], ["route2"], True, ["route1"], id="select A then deselect B"),
        pytest.param(["route1"], ["route1"], True, [], id="select A then deselect A"),
        pytest.param(["route2"], ["route1"], False, ["route2"], id="deselect A then select B"),
        pytest.param(["route1"], ["route1"], False, ["route1"], id="deselect A then select A"),
    ],
)
def test_mixed_selection_and_deselection(
    to_select: list[str], to_deselect: list[str], select_first: bool, want: list[str]
) -> None:
    rs = RouteSelector()
    if select_first:
        assert rs.select(to_select, False, ROUTES3) == []
        assert rs.deselect(to_deselect, ROUTES3) == []
    else:
        assert rs.deselect(to_deselect, ROUTES3) == []
        assert rs.select(to_select, False, ROUTES3) == []
    assert selected(rs, ROUTES3) == want


GROUPS3 = empty_groups("route1|10.0.0.0/8", "route2|192.168.0.0/16", "route3|172.16.0.0/12")


def _select_then_deselect_all(rs: RouteSelector) -> None:
    rs.select(["route1"], False, ROUTES3)
    rs.deselect_all()


@pytest.mark.parametrize(
    ("first", "second", "want"),
    [
        pytest.param(
            lambda rs: rs.deselect_all(),
            lambda rs: rs.select(["route1", "route2"], False, ROUTES3),
            ["route1", "route2"],
            id="then replace-select",
        ),
        pytest.param(
            lambda rs: rs.deselect_all(),
            lambda rs: rs.select(["route1"], True, ROUTES3),
            ["route1"],
            id="then append-select",
        ),
        pytest.param(
            lambda rs: rs.deselect_all(), lambda rs: rs.deselect(["route1"], ROUTES3), [], id="then deselect"
        ),
        pytest.param(lambda rs: rs.deselect_all(), lambda rs: rs.select_all(), ROUTES3, id="then select all"),
        pytest.param(
            lambda rs: rs.deselect_all(),
            lambda rs: rs.deselect(["route4"], ROUTES3),
            [],
            id="then deselect unknown, no error",
        ),
        pytest.param(
            _select_then_deselect_all,
            lambda rs: rs.select(["route2", "route3"], False, ROUTES3),
            ["route2", "route3"],
            id="select, deselect all, select others",
        ),
    ],
)
def test_after_deselect_all(
    first: Callable[[RouteSelector], object], second: Callable[[RouteSelector], object], want: list[str]
) -> None:
    rs = RouteSelector()
    first(rs)
    assert not second(rs)  # None or no errors
    assert selected(rs, ROUTES3) == want
    assert len(rs.filter_selected(GROUPS3)) == len(want)


GROUPS4 = empty_groups(
    "route1|10.0.0.0/8", "route2|192.168.0.0/16", "route3|172.16.0.0/12", "route4|10.10.0.0/16"
)


@pytest.mark.parametrize(
    ("actions", "want"),
    [
        pytest.param(
            [
                lambda rs: rs.select_all(),
                lambda rs: rs.deselect(["route1", "route2"], ROUTES4),
                lambda rs: rs.select(["route1"], True, ROUTES4),
            ],
            ["route1", "route3", "route4"],
            id="select all, deselect two, append one",
        ),
        pytest.param(
            [
                lambda rs: rs.deselect_all(),
                lambda rs: rs.select(["route1", "route2"], False, ROUTES4),
                lambda rs: rs.deselect(["route2"], ROUTES4),
                lambda rs: rs.select(["route3"], True, ROUTES4),
            ],
            ["route1", "route3"],
            id="deselect all, select two, deselect one, append one",
        ),
        pytest.param(
            [
                lambda rs: rs.select(["route1", "route2"], False, ROUTES4),
                lambda rs: rs.deselect(["route2"], ROUTES4),
                lambda rs: rs.select_all(),
                lambda rs: rs.deselect(["route3", "route4"], ROUTES4),
            ],
            ["route1", "route2"],
            id="select two, deselect one, select all, deselect two",
        ),
    ],
)
def test_complex_scenarios(actions: list[Callable[[RouteSelector], object]], want: list[str]) -> None:
    rs = RouteSelector()
    for action in actions:
        assert not action(rs)
    assert selected(rs, ROUTES4) == want
    assert len(rs.filter_selected(GROUPS4)) == len(want)


def test_enabling_an_exit_node_the_tray_way_keeps_other_routes() -> None:
    rs = RouteSelector()
    every = ["exitA", "exitB", "lan1", "lan2"]
    assert rs.select(["exitA"], True, every) == []
    assert rs.deselect(["exitB"], every) == []
    assert selected(rs, every) == ["exitA", "lan1", "lan2"]


# -- routeselector_test: the exit-node filter --------------------------------------------------------


def test_filter_selected_exit_nodes_keeps_auto_apply_candidates_without_user_state() -> None:
    exit1 = rt("net1", V4, peer="peer1", skip=False, rid="route1")
    exit2 = rt("net1", V4, peer="peer2", skip=True, rid="route2")
    lan = rt("net2", "192.168.1.0/24", peer="peer3", rid="route3")
    g = groups(exit1, exit2, lan)
    rs = RouteSelector()
    assert rs.filter_selected_exit_nodes(g) == {"net1|0.0.0.0/0": (exit1,), "net2|192.168.1.0/24": (lan,)}

    assert rs.deselect(["net1"], ["net1", "net2"]) == []
    assert rs.filter_selected_exit_nodes(g) == {"net2|192.168.1.0/24": (lan,)}

    rs = RouteSelector()
    rs.deselect_all()
    assert rs.filter_selected_exit_nodes(g) == {}


def test_filter_selected_exit_nodes_keeps_every_candidate_of_a_user_selected_exit_node() -> None:
    exit1 = rt("net1", V4, peer="peer1", skip=True)
    exit2 = rt("net1", V4, peer="peer2", skip=False)
    rs = RouteSelector()
    rs.select(["net1"], True, ["net1"])
    assert rs.filter_selected_exit_nodes(groups(exit1, exit2)) == {"net1|0.0.0.0/0": (exit1, exit2)}


def test_skip_auto_apply_is_per_route_despite_unrelated_user_state() -> None:
    g = groups(rt("Auto", V4, skip=False), rt("Skip", V4, skip=True))
    rs = RouteSelector()
    assert rs.deselect(["Unrelated"], ["Auto", "Skip", "Unrelated"]) == []
    assert list(rs.filter_selected_exit_nodes(g)) == ["Auto|0.0.0.0/0"]


def test_a_v6_default_route_is_an_exit_node_for_the_filter() -> None:
    assert RouteSelector().filter_selected_exit_nodes(groups(rt("V6Only", V6, skip=True))) == {}


# -- routeselector_test: v6 pair sync ----------------------------------------------------------------

PAIR_ALL = ["exit1", "exit1-v6", "exit2", "exit2-v6", "corp", "corp-v6"]
PAIR_GROUPS = groups(rt("exit1", V4), rt("exit1-v6", V6))


def test_selector_lookups_stay_literal_without_sync() -> None:
    rs = RouteSelector()
    assert rs.deselect(["exit1"], PAIR_ALL) == []
    assert not rs.has_user_selection("exit1-v6")
    assert rs.is_selected("exit1-v6")
    assert not rs.has_user_selection("exit1-something")


def test_sync_mirrors_a_deselected_base() -> None:
    rs = RouteSelector()
    rs.deselect(["exit1"], PAIR_ALL)
    rs.sync_paired_selection("exit1", "exit1-v6")
    assert not rs.is_selected("exit1") and not rs.is_selected("exit1-v6")
    assert rs.has_user_selection("exit1-v6")


def test_sync_mirrors_a_selected_base() -> None:
    rs = RouteSelector()
    rs.select(["exit1"], False, PAIR_ALL)
    rs.sync_paired_selection("exit1", "exit1-v6")
    assert rs.is_selected("exit1") and rs.is_selected("exit1-v6")


def test_sync_clears_the_twin_when_the_base_has_no_state() -> None:
    rs = RouteSelector()
    rs.select(["exit1-v6"], True, PAIR_ALL)
    assert rs.has_user_selection("exit1-v6")
    rs.sync_paired_selection("exit1", "exit1-v6")
    assert not rs.has_user_selection("exit1-v6")


def test_sync_clears_an_orphaned_twin_selection() -> None:
    rs = RouteSelector()
    rs.select(["exit1", "exit1-v6"], True, PAIR_ALL)
    rs.deselect(["exit1"], PAIR_ALL)
    assert rs.is_selected("exit1-v6")
    rs.sync_paired_selection("exit1", "exit1-v6")
    assert not rs.is_selected("exit1-v6")
    assert rs.filter_selected_exit_nodes(PAIR_GROUPS) == {}


def test_filter_drops_the_synced_twin_of_a_deselected_base() -> None:
    rs = RouteSelector()
    rs.deselect(["exit1"], PAIR_ALL)
    rs.sync_paired_selection("exit1", "exit1-v6")
    assert rs.filter_selected_exit_nodes(PAIR_GROUPS) == {}


def test_sync_is_a_no_op_under_deselect_all() -> None:
    rs = RouteSelector()
    rs.deselect_all()
    rs.sync_paired_selection("exit1", "exit1-v6")
    assert not rs.has_user_selection("exit1-v6")


def test_a_non_exit_v6_named_route_does_not_follow_an_unrelated_base() -> None:
    rs = RouteSelector()
    rs.deselect(["corp"], PAIR_ALL)
    g = groups(rt("corp-v6", "10.0.0.0/8"))
    assert list(rs.filter_selected_exit_nodes(g)) == ["corp-v6|10.0.0.0/8"]


# -- exit_node_selection_test ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("user_selected", "by_management", "want"),
    [
        pytest.param(["b"], ["a"], "b", id="persisted user selection wins"),
        pytest.param(["c", "a"], [], "a", id="several user-selected self-heal to the smallest"),
        pytest.param([], [], None, id="explicit opt-out keeps none"),  # user deselected a, b
        pytest.param([], ["b"], "b", id="fresh defaults to the management pick"),
        pytest.param([], [], None, id="nothing"),
        pytest.param([], ["b"], "b", id="a user deselect does not block a management sibling"),
        pytest.param([], ["c", "b"], "b", id="several management picks: the smallest"),
    ],
)
def test_pick_preferred_exit_node(
    user_selected: list[str], by_management: list[str], want: str | None
) -> None:
    assert pick_preferred_exit_node(user_selected, by_management) == want


def test_set_exclusive_exit_node() -> None:
    rs = RouteSelector()
    every = ["a", "b", "c"]
    rs.set_exclusive_exit_node("b", every)
    assert selected(rs, every) == ["b"]
    rs.set_exclusive_exit_node("c", every)
    assert selected(rs, every) == ["c"]
    rs.set_exclusive_exit_node(None, every)
    assert selected(rs, every) == []


def test_set_exclusive_exit_node_respects_deselect_all() -> None:
    rs = RouteSelector()
    rs.deselect_all()
    rs.set_exclusive_exit_node("b", ["a", "b"])
    assert rs.all_deselected
    assert not rs.is_selected("b")


def test_reconcile_fresh_selects_the_smallest_auto_applied_exit_node() -> None:
    g = groups(
        rt("exitA", V4, peer="p1"),
        rt("exitB", V4, peer="p2"),
        rt("lan", "192.168.1.0/24", peer="p3"),
        rt("exitC", V4, peer="p4"),
    )
    rs = RouteSelector()
    reconcile_exit_nodes(rs, g)
    assert selected(rs, ["exitA", "exitB", "exitC", "lan"]) == ["exitA", "lan"]
    assert not rs.has_user_selection("lan")  # non-exit routes are never touched


def test_reconcile_honours_the_persisted_pick() -> None:
    g = groups(rt("exitA", V4, peer="p1"), rt("exitB", V4, peer="p2"))
    rs = RouteSelector()
    assert rs.select(["exitB"], True, ["exitA", "exitB"]) == []
    assert rs.deselect(["exitA"], ["exitA", "exitB"]) == []
    reconcile_exit_nodes(rs, g)
    assert selected(rs, ["exitA", "exitB"]) == ["exitB"]


def test_reconcile_keeps_an_opt_out() -> None:
    g = groups(rt("exitA", V4, peer="p1"), rt("exitB", V4, peer="p2"))
    rs = RouteSelector()
    assert rs.deselect(["exitA", "exitB"], ["exitA", "exitB"]) == []
    reconcile_exit_nodes(rs, g)
    assert selected(rs, ["exitA", "exitB"]) == []


def test_reconcile_selects_none_when_management_auto_applies_none() -> None:
    g = groups(rt("exitA", V4, peer="p1", skip=True), rt("exitB", V4, peer="p2", skip=True))
    rs = RouteSelector()
    reconcile_exit_nodes(rs, g)
    assert selected(rs, ["exitA", "exitB"]) == []


# -- selector_management_test ------------------------------------------------------------------------


def exit1(skip: bool) -> dict[str, tuple[MapRoute, ...]]:
    return groups(rt("exit1", V4, skip=skip, rid="r-exit1"))


def test_management_auto_apply_selects_an_exit_node_without_user_state() -> None:
    rs = RouteSelector()
    reconcile_exit_nodes(rs, exit1(False))
    assert rs.is_selected("exit1")
    assert len(rs.filter_selected_exit_nodes(exit1(False))) == 1


def test_management_skip_auto_apply_leaves_the_exit_node_off() -> None:
    rs = RouteSelector()
    reconcile_exit_nodes(rs, exit1(True))
    assert not rs.is_selected("exit1")
    assert rs.filter_selected_exit_nodes(exit1(True)) == {}


def test_a_user_selection_is_not_overridden_by_management() -> None:
    rs = RouteSelector()
    assert rs.select(["exit1"], True, ["exit1"]) == []
    reconcile_exit_nodes(rs, exit1(True))
    assert rs.is_selected("exit1")
    assert len(rs.filter_selected_exit_nodes(exit1(True))) == 1


def test_deselect_all_survives_a_management_sync() -> None:
    rs = RouteSelector()
    rs.deselect_all()
    reconcile_exit_nodes(rs, exit1(False))
    assert rs.all_deselected
    assert rs.filter_selected_exit_nodes(exit1(False)) == {}


# -- manager_v6exit_test -------------------------------------------------------------------------------


def test_reconcile_mirrors_a_deselected_base_onto_an_orphaned_twin() -> None:
    v4id, v6id = "Exit Node (raspberrypi)", "Exit Node (raspberrypi)-v6"
    rs = RouteSelector()
    assert rs.select([v4id, v6id], True, [v4id, v6id]) == []
    assert rs.deselect([v4id], [v4id, v6id]) == []
    assert rs.is_selected(v6id)
    g = groups(rt(v4id, V4), rt(v6id, V6))
    reconcile_exit_nodes(rs, g)
    assert not rs.is_selected(v6id)
    assert rs.filter_selected_exit_nodes(g) == {}


# -- selection_test (manager level) ---------------------------------------------------------------------


def manager_groups() -> dict[str, tuple[MapRoute, ...]]:
    return groups(
        rt("exitA", V4, peer="p1", skip=True),
        rt("exitA-v6", V6, peer="p1"),
        rt("exitB", V4, peer="p2", skip=True),
        rt("lan", "192.168.1.0/24", peer="p3"),
    )


def test_exit_node_exclusivity() -> None:
    g, rs = manager_groups(), RouteSelector()
    every = ["exitA", "exitA-v6", "exitB", "lan"]

    assert select_routes(rs, ["exitA"], True, g) == []
    assert selected(rs, every) == ["exitA", "exitA-v6", "lan"]

    assert select_routes(rs, ["exitB"], True, g) == []
    assert selected(rs, every) == ["exitB", "lan"]

    assert select_routes(rs, ["lan"], True, g) == []
    assert selected(rs, every) == ["exitB", "lan"]

    assert deselect_routes(rs, ["exitB"], g) == []
    assert selected(rs, every) == ["lan"]


@pytest.mark.parametrize("request_ids", [["missing", "exitB"], ["exitB", "missing"]])
def test_a_partial_error_still_enforces_exclusivity(request_ids: list[str]) -> None:
    g, rs = manager_groups(), RouteSelector()
    assert select_routes(rs, ["exitA"], True, g) == []
    assert select_routes(rs, request_ids, True, g) == ["route 'missing' is not available"]
    assert rs.is_selected("exitB")
    assert not rs.is_selected("exitA") and not rs.is_selected("exitA-v6")


def test_select_all_keeps_a_single_exit_node() -> None:
    g = groups(
        rt("exitA", V4, peer="p1"),
        rt("exitB", V4, peer="p2"),
        rt("lan", "192.168.1.0/24", peer="p3"),
    )
    rs = RouteSelector()
    assert select_routes(rs, ["exitB"], True, g) == []
    select_all_routes(rs, g)
    assert selected(rs, ["exitA", "exitB", "lan"]) == ["exitA", "lan"]


def test_unknown_routes_are_errors() -> None:
    g, rs = manager_groups(), RouteSelector()
    assert select_routes(rs, ["missing"], True, g) == ["route 'missing' is not available"]
    assert deselect_routes(rs, ["missing"], g) == ["route 'missing' is not available"]


def test_exit_node_helpers() -> None:
    g = groups(rt("exitA", V4), rt("exitB", V6), rt("lan", "192.168.0.0/16"))
    assert exit_node_ids(g) == ["exitA", "exitB"]
    # The only sibling of exitB is exitA: selecting exitB turns exitA off and leaves lan alone.
    rs = RouteSelector()
    assert select_routes(rs, ["exitB"], True, g) == []
    assert rs.deselected_ids == ("exitA",)


def test_deselect_all_routes() -> None:
    g, rs = manager_groups(), RouteSelector()
    select_routes(rs, ["exitA"], True, g)
    deselect_all_routes(rs)
    assert rs.all_deselected and rs.filter_selected_exit_nodes(g) == {}
    reconcile_exit_nodes(rs, g)  # the next map does not turn anything back on
    assert rs.filter_selected_exit_nodes(g) == {}


def test_replace_select_of_a_lan_route_deselects_every_other_known_route() -> None:
    g, rs = manager_groups(), RouteSelector()
    assert select_routes(rs, ["lan"], False, g) == []
    assert list(rs.filter_selected_exit_nodes(g)) == ["lan|192.168.1.0/24"]


# -- route_test: v6 pair expansion ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("ids", "routes", "want"),
    [
        pytest.param(["exit-node"], [("exit-node", V4), ("exit-node-v6", V6)], ["exit-node", "exit-node-v6"]),
        pytest.param(["exit-node"], [("exit-node", V4)], ["exit-node"]),
        pytest.param(["office"], [("office", "10.0.0.0/8"), ("office-v6", V6)], ["office"]),
        pytest.param(
            ["exit-node", "exit-node-v6"],
            [("exit-node", V4), ("exit-node-v6", V6)],
            ["exit-node", "exit-node-v6"],
        ),
        pytest.param(
            ["exit-a", "exit-b"],
            [("exit-a", V4), ("exit-a-v6", V6), ("exit-b", V4), ("exit-b-v6", V6)],
            ["exit-a", "exit-b", "exit-a-v6", "exit-b-v6"],
        ),
        pytest.param(["office"], [("office", "10.0.0.0/8"), ("office-v6", "10.0.0.0/8")], ["office"]),
        pytest.param(["0.0.0.0/0"], [("0.0.0.0/0", V4), ("0.0.0.0/0-v6", V6)], ["0.0.0.0/0", "0.0.0.0/0-v6"]),
        pytest.param([], [], []),
    ],
)
def test_expand_v6_exit_pairs(ids: list[str], routes: list[tuple[str, str]], want: list[str]) -> None:
    g = groups(*(rt(n, net) for n, net in routes))
    assert expand_v6_exit_pairs(ids, g) == want


def test_v6_exit_pairs_need_a_v4_base_and_a_v6_twin() -> None:
    g = groups(
        rt("x", V4),
        rt("x-v6", V6),
        rt("y-v6", V6),  # no base
        rt("z", "10.0.0.0/8"),
        rt("z-v6", V6),  # base is not an exit node
    )
    assert v6_exit_pairs(g) == {"x-v6": "x"}


# -- our decisions where the reference is loose ------------------------------------------------------


def test_twins_agree_with_their_bases_right_after_reconcile() -> None:
    # The reference mirrors before enforcing, so exitB-v6 would stay auto-applied next to
    # exitA until the next map; we mirror after.
    g = groups(rt("exitA", V4), rt("exitA-v6", V6), rt("exitB", V4, peer="p2"), rt("exitB-v6", V6, peer="p2"))
    rs = RouteSelector()
    reconcile_exit_nodes(rs, g)
    assert list(rs.filter_selected_exit_nodes(g)) == ["exitA-v6|::/0", "exitA|0.0.0.0/0"]


def test_an_unpaired_v6_named_exit_node_is_an_exit_node_of_its_own() -> None:
    g = groups(rt("exitA", V4), rt("solo-v6", V6, peer="p2"))
    rs = RouteSelector()
    reconcile_exit_nodes(rs, g)
    assert list(rs.filter_selected_exit_nodes(g)) == ["exitA|0.0.0.0/0"]
    assert select_routes(rs, ["solo-v6"], True, g) == []
    assert list(rs.filter_selected_exit_nodes(g)) == ["solo-v6|::/0"]


def test_a_twin_is_never_a_choice_of_its_own() -> None:
    # exitA is not auto-applied but its twin is: the twin follows exitA (off), and the
    # auto-applied exitC is the one management gets.
    g = groups(rt("exitA", V4, skip=True), rt("exitA-v6", V6), rt("exitC", V4, peer="p2"))
    rs = RouteSelector()
    reconcile_exit_nodes(rs, g)
    assert list(rs.filter_selected_exit_nodes(g)) == ["exitC|0.0.0.0/0"]


def test_reconcile_is_idempotent() -> None:
    g = manager_groups()
    rs = RouteSelector()
    select_routes(rs, ["exitB"], True, g)
    reconcile_exit_nodes(rs, g)
    once = rs.to_json()
    reconcile_exit_nodes(rs, g)
    assert rs.to_json() == once


EXIT_NAMES = ["a", "b", "c", "a-v6", "b-v6", "d-v6"]


@st.composite
def exit_maps(draw: st.DrawFn) -> tuple[dict[str, tuple[MapRoute, ...]], list[tuple[str, list[str], bool]]]:
    names = draw(st.lists(st.sampled_from(EXIT_NAMES), unique=True, max_size=len(EXIT_NAMES)))
    routes = [
        rt(n, V6 if n.endswith("-v6") else V4, peer=f"p{i}", skip=draw(st.booleans()))
        for i, n in enumerate(names)
    ]
    routes.append(rt("lan", "10.0.0.0/8"))
    ops = draw(
        st.lists(
            st.tuples(
                st.sampled_from(["select", "deselect", "select_all", "deselect_all"]),
                st.lists(st.sampled_from([*EXIT_NAMES, "lan"]), max_size=3),
                st.booleans(),
            ),
            max_size=4,
        )
    )
    return groups(*routes), ops


@given(exit_maps())
def test_at_most_one_exit_node_is_routed_after_any_user_action_and_a_map(
    case: tuple[dict[str, tuple[MapRoute, ...]], list[tuple[str, list[str], bool]]],
) -> None:
    g, ops = case
    rs = RouteSelector()
    for op, ids, append in ops:
        if op == "select":
            select_routes(rs, ids, append, g)
        elif op == "deselect":
            deselect_routes(rs, ids, g)
        elif op == "select_all":
            select_all_routes(rs, g)
        else:
            deselect_all_routes(rs)
        reconcile_exit_nodes(rs, g)
        pairs = v6_exit_pairs(g)
        routed = {
            pairs.get(n, n)
            for n in (ha.rpartition("|")[0] for ha in rs.filter_selected_exit_nodes(g))
            if n != "lan"
        }
        assert len(routed) <= 1
        # A twin is routed exactly when its base is.
        for v6, base in pairs.items():
            assert (f"{v6}|::/0" in rs.filter_selected_exit_nodes(g)) == (
                f"{base}|0.0.0.0/0" in rs.filter_selected_exit_nodes(g)
            )


# -- persistence ---------------------------------------------------------------------------------------


def test_json_has_the_reference_shape() -> None:
    rs = RouteSelector()
    rs.select(["b", "a"], False, ["a", "b", "c", "d"])
    assert json.loads(rs.to_json()) == {
        "selected_routes": {"a": {}, "b": {}},
        "deselected_routes": {"c": {}, "d": {}},
        "deselect_all": False,
    }
    assert list(json.loads(rs.to_json())["selected_routes"]) == ["a", "b"]  # sorted


def _state(rs: RouteSelector) -> tuple[tuple[str, ...], tuple[str, ...], bool]:
    return rs.selected_ids, rs.deselected_ids, rs.all_deselected


@pytest.mark.parametrize("deselect_all", [False, True])
def test_json_round_trip(deselect_all: bool) -> None:
    rs = RouteSelector()
    rs.select(["x", "y"], False, ["x", "y", "z"])
    if deselect_all:
        rs.deselect_all()
    back = RouteSelector.from_json(rs.to_json())
    assert _state(back) == _state(rs)


@pytest.mark.parametrize("text", ["", "  \n", "null", "{}"])
def test_empty_or_null_loads_fresh(text: str) -> None:
    assert _state(RouteSelector.from_json(text)) == ((), (), False)


def test_loads_what_the_reference_writes() -> None:
    text = '{"selected_routes":{"exit":{}},"deselected_routes":null,"deselect_all":false,"extra":1}'
    assert _state(RouteSelector.from_json(text)) == (("exit",), (), False)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{not json", "not JSON"),
        ("[]", "JSON object"),
        ('"x"', "JSON object"),
        ('{"selected_routes": ["a"]}', "'selected_routes'"),
        ('{"deselected_routes": {"a": 1}}', "'deselected_routes'"),
        ('{"deselect_all": "yes"}', "'deselect_all'"),
    ],
)
def test_malformed_json_raises_a_clear_value_error(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        RouteSelector.from_json(text)


def test_save_and_load(tmp_path: Path) -> None:
    path = tmp_path / SELECTION_FILE
    assert _state(load_selector(path)) == ((), (), False)  # no file yet

    rs = RouteSelector()
    rs.select(["exitB"], True, ["exitA", "exitB"])
    rs.deselect(["exitA"], ["exitA", "exitB"])
    save_selector(path, rs)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert _state(load_selector(path)) == (("exitB",), ("exitA",), False)

    rs.deselect_all()
    save_selector(path, rs)  # replaces the file
    assert _state(load_selector(path)) == ((), (), True)
    assert sorted(p.name for p in tmp_path.iterdir()) == [SELECTION_FILE]  # nothing half-written left


def test_load_names_a_damaged_file(tmp_path: Path) -> None:
    path = tmp_path / SELECTION_FILE
    path.write_text("{broken")
    with pytest.raises(ValueError, match=str(path)):
        load_selector(path)


def test_groups_type_accepts_plain_mappings() -> None:
    g: Groups = {"lan|10.0.0.0/8": [rt("lan", "10.0.0.0/8")]}
    assert RouteSelector().filter_selected_exit_nodes(g) == {"lan|10.0.0.0/8": (rt("lan", "10.0.0.0/8"),)}
