"""Route choice inside an HA group: the reference's 27-case table (agent-behaviour.md §1.8), the
score's boundaries, our probe-health mapping, determinism, and properties over random groups."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from hypothesis import given
from hypothesis import strategies as st

from meshroute.agent.routes.scoring import (
    CandidateHealth,
    PeerStatus,
    best_route,
    candidate_health,
    score,
)
from meshroute.core.model import MAX_METRIC, MIN_METRIC, NetworkType
from meshroute.core.networkmap.types import MapRoute

UP, IDLE, DOWN = PeerStatus.CONNECTED, PeerStatus.IDLE, PeerStatus.CONNECTING  # DOWN: connecting
GONE = "routeDoesntExistAnymore"  # the reference harness's "no current route"
MINUTE_MS = 60_000.0


def route(route_id: str, metric: int = MAX_METRIC) -> MapRoute:
    return MapRoute(
        id=route_id,
        net_id="office",
        network="192.168.0.0/24",
        domains=(),
        network_type=NetworkType.IPV4,
        peer_key=f"key-{route_id}",
        peer_id=f"peer-{route_id}",
        metric=metric,
        masquerade=False,
        keep_route=False,
        skip_auto_apply=False,
    )


@dataclass(frozen=True)
class Cand:
    id: str
    status: PeerStatus
    relayed: bool = False
    latency_ms: float = 0
    metric: int = MAX_METRIC


# name, candidates, current (None = the harness's non-existent current), expected, scores
TABLE: list[tuple[str, list[Cand], str | None, str | None, list[float | None]]] = [
    ("one route", [Cand("route1", UP)], None, "route1", [100001.001]),
    (
        "one connected routes with relayed and direct",
        [Cand("route1", UP, relayed=True)],
        None,
        "route1",
        [100000.001],
    ),
    (
        "one connected routes with relayed and no direct",
        [Cand("route1", UP, relayed=True)],
        None,
        "route1",
        [100000.001],
    ),
    ("no connected peers", [Cand("route1", DOWN)], None, None, [None]),
    (
        "multiple connected peers with different metrics",
        [Cand("route1", UP, metric=9000), Cand("route2", UP)],
        None,
        "route1",
        [109991.001, 100001.001],
    ),
    (
        "multiple connected peers with one relayed",
        [Cand("route1", UP), Cand("route2", UP, relayed=True)],
        None,
        "route1",
        [100001.001, 100000.001],
    ),
    (
        "multiple connected peers with different latencies",
        [Cand("route1", UP, latency_ms=300), Cand("route2", UP, latency_ms=10)],
        None,
        "route2",
        [100001.7, 100001.99],
    ),
    (
        "should ignore routes with latency 0",
        [Cand("route1", UP, latency_ms=0), Cand("route2", UP, latency_ms=10)],
        None,
        "route2",
        [100001.001, 100001.99],
    ),
    (
        "current route with similar score and similar but slightly worse latency should not change",
        [Cand("route1", UP, latency_ms=15), Cand("route2", UP, latency_ms=10)],
        "route1",
        "route1",
        [100001.985, 100001.99],
    ),
    (
        "relayed routes with latency 0 should maintain previous choice",
        [Cand("route1", UP, relayed=True), Cand("route2", UP, relayed=True)],
        "route1",
        "route1",
        [100000.001, 100000.001],
    ),
    (
        "p2p routes with latency 0 should maintain previous choice",
        [Cand("route1", UP), Cand("route2", UP)],
        "route1",
        "route1",
        [100001.001, 100001.001],
    ),
    (
        "current route with bad score should be changed to route with better score",
        [Cand("route1", UP, latency_ms=200), Cand("route2", UP, latency_ms=10)],
        "route1",
        "route2",
        [100001.8, 100001.99],
    ),
    (
        "current chosen route doesn't exist anymore",
        [Cand("route1", UP, latency_ms=20), Cand("route2", UP, latency_ms=10)],
        GONE,
        "route2",
        [100001.98, 100001.99],
    ),
    (
        "connected peer should be preferred over idle peer",
        [Cand("route1", IDLE, latency_ms=10), Cand("route2", UP, latency_ms=100)],
        None,
        "route2",
        [1.99, 100001.9],
    ),
    (
        "idle peer should be selected when no connected peers",
        [Cand("route1", IDLE, latency_ms=10), Cand("route2", DOWN, latency_ms=5)],
        None,
        "route1",
        [1.99, None],
    ),
    (
        "best idle peer should be selected among multiple idle peers",
        [Cand("route1", IDLE, latency_ms=100), Cand("route2", IDLE, latency_ms=10)],
        None,
        "route2",
        [1.9, 1.99],
    ),
    (
        "connecting peers should not be considered for routing",
        [Cand("route1", DOWN, latency_ms=10), Cand("route2", DOWN, latency_ms=5)],
        None,
        None,
        [None, None],
    ),
    (
        "mixed statuses - connected wins over idle and connecting",
        [
            Cand("route1", DOWN, latency_ms=5),
            Cand("route2", IDLE, latency_ms=10),
            Cand("route3", UP, relayed=True, latency_ms=200),
        ],
        None,
        "route3",
        [None, 1.99, 100000.8],
    ),
    (
        "idle peer with better metric should win over idle peer with worse metric",
        [Cand("route1", IDLE, latency_ms=50, metric=5000), Cand("route2", IDLE, latency_ms=50)],
        None,
        "route1",
        [49991.95, 1.95],
    ),
    (
        "current idle route should be maintained for similar scores",
        [Cand("route1", IDLE, latency_ms=20), Cand("route2", IDLE, latency_ms=15)],
        "route1",
        "route1",
        [1.98, 1.985],
    ),
    (
        "idle peer with zero latency should still be considered",
        [Cand("route1", IDLE, latency_ms=0), Cand("route2", DOWN, latency_ms=10)],
        None,
        "route1",
        [1.001, None],
    ),
    (
        "direct idle peer preferred over relayed idle peer",
        [Cand("route1", IDLE, relayed=True, latency_ms=10), Cand("route2", IDLE, latency_ms=50)],
        None,
        "route2",
        [0.99, 1.95],
    ),
    (
        "connected peer with worse metric still beats idle peer with better metric",
        [Cand("route1", IDLE, latency_ms=10, metric=1000), Cand("route2", UP, latency_ms=50)],
        None,
        "route2",
        [89991.99, 100001.95],
    ),
    (
        "connected peer wins even when idle peer has all advantages",
        [
            Cand("route1", IDLE, latency_ms=1, metric=1),
            Cand("route2", UP, relayed=True, latency_ms=30 * MINUTE_MS),
        ],
        None,
        "route2",
        [99981.999, 100000.001],
    ),
    # The reference's table repeats its first three idle cases verbatim (rows 25-27).
    (
        "connected peer should be preferred over idle peer (2)",
        [Cand("route1", IDLE, latency_ms=10), Cand("route2", UP, latency_ms=100)],
        None,
        "route2",
        [1.99, 100001.9],
    ),
    (
        "idle peer should be selected when no connected peers (2)",
        [Cand("route1", IDLE, latency_ms=10), Cand("route2", DOWN, latency_ms=5)],
        None,
        "route1",
        [1.99, None],
    ),
    (
        "best idle peer should be selected among multiple idle peers (2)",
        [Cand("route1", IDLE, latency_ms=100), Cand("route2", IDLE, latency_ms=10)],
        None,
        "route2",
        [1.9, 1.99],
    ),
]


def with_dummies(cands: list[Cand]) -> tuple[list[MapRoute], dict[str, CandidateHealth]]:
    """The case's candidates plus the harness's 100 connecting, relayed, metric-1 dummies."""
    routes = [route(c.id, c.metric) for c in cands]
    health = {c.id: CandidateHealth(c.status, c.latency_ms, c.relayed) for c in cands}
    for prefix in ("dummy_p1", "dummy_p2"):
        for i in range(50):
            dummy = route(f"{prefix}_{i}", MIN_METRIC)
            routes.append(dummy)
            health[dummy.id] = CandidateHealth(DOWN, 0, relayed=True)
    return routes, health


def test_the_table_has_the_reference_27_cases() -> None:
    assert len(TABLE) == 27


@pytest.mark.parametrize(
    ("cands", "current", "expected"),
    [pytest.param(c, cur, exp, id=name) for name, c, cur, exp, _ in TABLE],
)
def test_reference_table(cands: list[Cand], current: str | None, expected: str | None) -> None:
    routes, health = with_dummies(cands)
    assert best_route(routes, health, current if current is not None else GONE) == expected
    # The candidates' order must not matter (the reference walks a map).
    assert best_route(routes[::-1], health, current if current is not None else GONE) == expected
    if current is None:  # "no current route" and "a current route that is gone" are the same
        assert best_route(routes, health, None) == expected


@pytest.mark.parametrize(("cands", "scores"), [pytest.param(c, s, id=name) for name, c, _, _, s in TABLE])
def test_reference_table_scores(cands: list[Cand], scores: list[float | None]) -> None:
    for cand, expected in zip(cands, scores, strict=True):
        got = score(route(cand.id, cand.metric), CandidateHealth(cand.status, cand.latency_ms, cand.relayed))
        assert got == (pytest.approx(expected, abs=1e-9) if expected is not None else None)


# -- the score's boundaries --------------------------------------------------------------------------


def connected(latency_ms: float) -> CandidateHealth:
    return CandidateHealth(UP, latency_ms)


@pytest.mark.parametrize(
    ("current_ms", "challenger_ms", "expected"),
    [
        (20, 10, "b"),  # exactly 10 ms better: switches (the sums compare equal or below)
        (15, 5, "b"),
        (110, 100, "b"),
        (19, 10, "a"),  # 9 ms better: stays
        (10.5, 1, "a"),
        (10, 10, "a"),  # equal: stays
        (999, 989, "b"),
    ],
)
def test_a_challenger_must_be_at_least_10ms_better(
    current_ms: float, challenger_ms: float, expected: str
) -> None:
    routes = [route("a"), route("b")]
    health = {"a": connected(current_ms), "b": connected(challenger_ms)}
    assert best_route(routes, health, "a") == expected


def test_latency_unknown_zero_or_above_one_second_counts_as_999ms() -> None:
    r = route("a")
    unknown = score(r, CandidateHealth(UP, None))
    assert unknown == score(r, CandidateHealth(UP, 0)) == score(r, CandidateHealth(UP, 999))
    assert unknown == score(r, CandidateHealth(UP, 1000.001)) == score(r, CandidateHealth(UP, 30 * MINUTE_MS))
    # Exactly one second is not "above" it: it scores 1 - 1.0.
    assert score(r, CandidateHealth(UP, 1000)) == pytest.approx(100001.0)
    just_below = score(r, CandidateHealth(UP, 998))
    assert unknown is not None and just_below is not None and unknown < just_below


def test_metric_weight() -> None:
    health = CandidateHealth(IDLE, 500)
    assert score(route("a", MAX_METRIC), health) == pytest.approx(1.5)
    assert score(route("a", MAX_METRIC - 1), health) == pytest.approx(11.5)
    assert score(route("a", MIN_METRIC), health) == pytest.approx(99981.5)


def test_connecting_is_not_eligible_and_idle_is() -> None:
    assert score(route("a"), CandidateHealth(DOWN, 5)) is None
    assert score(route("a"), CandidateHealth(IDLE, 5)) is not None


def test_candidates_without_health_are_skipped() -> None:
    routes = [route("a", metric=1), route("b")]
    assert best_route(routes, {"b": connected(50)}, None) == "b"
    assert best_route(routes, {}, None) is None
    assert best_route([], {"a": connected(1)}, None) is None


def test_no_stickiness_for_an_ineligible_or_unknown_current() -> None:
    routes = [route("a"), route("b")]
    # "a" is 5 ms worse: sticky while eligible, abandoned once connecting or without health.
    assert best_route(routes, {"a": connected(15), "b": connected(10)}, "a") == "a"
    assert best_route(routes, {"a": CandidateHealth(DOWN, 15), "b": connected(10)}, "a") == "b"
    assert best_route(routes, {"b": connected(10)}, "a") == "b"


def test_a_current_route_scoring_exactly_zero_gets_no_stickiness() -> None:
    # Idle, relayed, metric 9999, latency exactly 1 s scores 0, which the reference also uses
    # for "no current route": a challenger only 5 ms better then takes over.
    routes = [route("a"), route("b")]
    health = {"a": CandidateHealth(IDLE, 995, relayed=True), "b": CandidateHealth(IDLE, 1000, relayed=True)}
    assert score(routes[1], health["b"]) == 0
    assert best_route(routes, health, "b") == "a"
    health["b"] = CandidateHealth(IDLE, 999, relayed=True)  # scores 0.001: sticky again
    assert best_route(routes, health, "b") == "b"


def test_a_current_route_that_lost_connection_gives_way_to_a_connected_one() -> None:
    routes = [route("a"), route("b")]
    assert best_route(routes, {"a": CandidateHealth(IDLE, 1), "b": connected(900)}, "a") == "b"


def test_the_current_route_is_returned_when_it_is_the_best() -> None:
    routes = [route("a"), route("b")]
    assert best_route(routes, {"a": connected(5), "b": connected(50)}, "a") == "a"


# -- determinism ----------------------------------------------------------------------------------


def test_ties_without_a_current_route_go_to_the_smallest_route_id() -> None:
    routes = [route("rt-c"), route("rt-a"), route("rt-b")]
    health = {r.id: connected(10) for r in routes}
    assert best_route(routes, health, None) == "rt-a"
    assert best_route(routes[::-1], health, GONE) == "rt-a"
    # With a current route among the tied ones, it stays.
    assert best_route(routes, health, "rt-b") == "rt-b"


# -- our health mapping -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("probe_up", "rtt_ms", "endpoint_confirmed", "expected"),
    [
        (True, 12.5, False, CandidateHealth(UP, 12.5)),
        (True, 3.0, True, CandidateHealth(UP, 3.0)),
        (False, 7.0, True, CandidateHealth(DOWN, 7.0)),
        (False, None, False, CandidateHealth(DOWN)),
        (None, None, True, CandidateHealth(IDLE)),
        (None, None, False, CandidateHealth(DOWN)),
    ],
)
def test_candidate_health(
    probe_up: bool | None, rtt_ms: float | None, endpoint_confirmed: bool, expected: CandidateHealth
) -> None:
    got = candidate_health(probe_up, rtt_ms, endpoint_confirmed)
    assert got == expected
    assert got.relayed is False


def test_probed_up_beats_not_yet_judged_and_down_is_never_chosen() -> None:
    routes = [route("a", metric=1), route("b", metric=9000), route("c", metric=1)]
    health = {
        "a": candidate_health(None, None, True),  # idle, best metric
        "b": candidate_health(True, 40.0, True),  # up
        "c": candidate_health(False, 1.0, True),  # down
    }
    assert best_route(routes, health, "c") == "b"


# -- properties ---------------------------------------------------------------------------------------

healths = st.builds(
    CandidateHealth,
    status=st.sampled_from(list(PeerStatus)),
    latency_ms=st.one_of(st.none(), st.floats(min_value=0, max_value=3000, allow_nan=False)),
    relayed=st.booleans(),
)


@st.composite
def groups(draw: st.DrawFn) -> tuple[list[MapRoute], dict[str, CandidateHealth], str | None]:
    ids = draw(st.lists(st.sampled_from([f"r{i}" for i in range(8)]), unique=True, max_size=8))
    routes = [route(i, draw(st.integers(MIN_METRIC, MAX_METRIC))) for i in ids]
    health = {i: draw(healths) for i in ids if draw(st.booleans()) or draw(st.booleans())}
    current = draw(st.one_of(st.none(), st.sampled_from([*ids, GONE])))
    return draw(st.permutations(routes)), health, current


@given(groups())
def test_best_route_is_eligible_and_exists_whenever_one_is_eligible(
    group: tuple[list[MapRoute], dict[str, CandidateHealth], str | None],
) -> None:
    routes, health, current = group
    eligible = {r.id for r in routes if r.id in health and score(r, health[r.id]) is not None}
    chosen = best_route(routes, health, current)
    if eligible:
        assert chosen in eligible
    else:
        assert chosen is None


@given(groups())
def test_best_route_ignores_order_and_keeps_its_own_choice(
    group: tuple[list[MapRoute], dict[str, CandidateHealth], str | None],
) -> None:
    routes, health, current = group
    chosen = best_route(routes, health, current)
    assert best_route(sorted(routes, key=lambda r: r.id, reverse=True), health, current) == chosen
    # Nothing changed: deciding again with the choice as current keeps it (no flapping).
    assert best_route(routes, health, chosen) == chosen
