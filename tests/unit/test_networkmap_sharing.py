"""Structures the engine shares across routes and peers (memory) and the caches that go with them.

Each scenario runs through `World` (test_networkmap.py), which checks every delta and every full map
against the oracle after each step; the assertions here add what sharing must not get wrong.
"""

from __future__ import annotations

import dataclasses

import pytest

from meshroute.core.networkmap import GroupDeleted, GroupUpserted, PeerUpserted, RouteDeleted, RouteUpserted
from meshroute.core.networkmap import expansion as expansion_module
from tests.unit.test_networkmap import P1, P2, P3, P4, P5, World, make_group, make_peer, make_route, src

PEERS = (P1, P2, P3, P4, P5)


def test_routes_with_the_same_audience_share_their_sources() -> None:
    """Sources are stored once per (distribution groups, ACGs), whatever the order or duplicates."""
    w = World(
        [make_peer(p, i) for i, p in enumerate(PEERS, start=1)],
        [make_group("ha", P1), make_group("all", *PEERS), make_group("acg", P2, P3)],
        [
            make_route("a", "10.0.0.0/24", net_id="a", peer_groups=["ha"], groups=["all"]),
            make_route("b", "10.1.0.0/24", net_id="b", peer=P1, groups=["all", "all"]),
            make_route("c", "10.2.0.0/24", net_id="c", peer_groups=["ha"], groups=["all"], acgs=["acg"]),
        ],
    )
    bases = {b.route_id: b for b in w.state._parts[P1].bases}
    assert bases["a"].v4 is bases["b"].v4 and bases["a"].v4 == src(1, 2, 3, 4, 5)
    assert bases["c"].v4 == src(2, 3)
    # the routing peer itself is left out when its rules are sent
    assert {r.route_id: r.sources for r in w.map(P1).rules}["a:peer1"] == src(2, 3, 4, 5)


def test_audience_cache_is_not_stale_after_its_routes_are_gone() -> None:
    """The per-audience sources outlive the route that computed them: membership changes while no
    route of that audience exists, a group deleted and recreated, must still be seen."""
    w = World(
        [make_peer(p, i) for i, p in enumerate(PEERS, start=1)],
        [make_group("ha", P1), make_group("dist", P2, P3)],
        [make_route("a", "10.0.0.0/24", net_id="a", peer_groups=["ha"], groups=["dist"])],
    )
    assert w.map(P1).rules[0].sources == src(2, 3)
    w.step(RouteDeleted("a"))
    w.set_members("dist", P2, P4)
    w.step(RouteUpserted(make_route("b", "10.1.0.0/24", net_id="b", peer_groups=["ha"], groups=["dist"])))
    assert w.map(P1).rules[0].sources == src(2, 4)
    w.step(RouteDeleted("b"))
    w.step(GroupDeleted("dist"))
    w.step(GroupUpserted(make_group("dist", P5)))
    w.step(RouteUpserted(make_route("c", "10.2.0.0/24", net_id="c", peer=P1, groups=["dist"])))
    assert w.map(P1).rules[0].sources == src(5)
    # a member's address changes while no route uses the audience
    w.step(RouteDeleted("c"))
    w.step(PeerUpserted(dataclasses.replace(make_peer(P5, 5), ip=make_peer(P5, 9).ip)))
    w.step(RouteUpserted(make_route("c", "10.2.0.0/24", net_id="c", peer=P1, groups=["dist"])))
    assert w.map(P1).rules[0].sources == src(9)


@pytest.mark.parametrize("rid", ["r:x", "r-v6-default", "r"])
def test_rule_changes_with_any_route_id(rid: str) -> None:
    """Rule changes are detected route by route; route IDs that could make rule IDs clash across
    routes (":" or the twin suffix) take the full comparison instead."""
    w = World(
        [make_peer(p, i, v6=True) for i, p in enumerate(PEERS, start=1)],
        [make_group("ha", P1, P2), make_group("dist", P3, P4), make_group("acg", P3)],
        [
            make_route(rid, "0.0.0.0/0", net_id="exit", peer_groups=["ha"], groups=["dist"]),
            make_route("o", "10.0.0.0/8", net_id="o", peer=P1, groups=["dist"], acgs=["acg"]),
        ],
    )
    w.set_members("dist", P3, P4, P5)
    assert w.last[P1].rules is not None and w.last[P2].rules is not None
    w.set_members("acg", P3, P4)
    assert w.last[P1].rules is not None and (P2 not in w.last or w.last[P2].rules is None)
    # a routing peer joining the audience: its own rules do not change (it is left out of them)
    w.set_members("dist", P1, P3, P4, P5)
    assert P1 not in w.last or w.last[P1].rules is None
    assert w.last[P2].rules is not None


def test_received_entries_cache_bound_and_invalidation(monkeypatch: pytest.MonkeyPatch) -> None:
    """The sorted received entries of full maps are cached per selection; a bound smaller than one
    entry evicts on every map, and any change of a route's entries drops what contains it."""
    monkeypatch.setattr(expansion_module, "RECV_CACHE_MAX_ENTRIES", 1)
    w = World(
        [make_peer(p, i) for i, p in enumerate(PEERS, start=1)],
        [make_group("ha", P1, P2), make_group("all", *PEERS), make_group("few", P3)],
        [
            make_route("a", "10.0.0.0/24", net_id="a", peer_groups=["ha"], groups=["all"]),
            make_route("b", "10.1.0.0/24", net_id="b", peer=P3, groups=["few", "all"]),
        ],
    )
    # only the last full map's selection stays (peer5 receives a:peer1, a:peer2 and b)
    assert len(w.state._recv_cache) == 1 and w.state._recv_cache_size == 3
    w.step(PeerUpserted(make_peer(P2, 2, key="new-key")))
    assert {r.peer_key for r in w.map(P4).routes if r.peer_id == P2} == {"new-key"}
    w.set_members("ha", P1)
    assert [r.id for r in w.map(P5).routes] == ["a:peer1", "b"]


def test_received_entries_cache_follows_changes_within_its_bound() -> None:
    w = World(
        [make_peer(p, i) for i, p in enumerate(PEERS, start=1)],
        [make_group("ha", P1, P2), make_group("all", *PEERS)],
        [make_route("a", "10.0.0.0/24", net_id="a", peer_groups=["ha"], groups=["all"])],
    )
    assert w.state._recv_cache  # filled by the full maps World compares
    w.step(
        RouteUpserted(
            make_route("a", "10.0.0.0/24", net_id="a", peer_groups=["ha"], groups=["all"], metric=1)
        )
    )
    assert {r.metric for r in w.map(P3).routes} == {1}
    w.step(RouteUpserted(make_route("b", "10.1.0.0/24", net_id="b", peer=P5, groups=["all"])))
    assert [r.id for r in w.map(P3).routes] == ["a:peer1", "a:peer2", "b"]
