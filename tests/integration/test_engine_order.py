"""The map engine applies committed change sets strictly in serial order; a gap that does not
fill in time makes it reload the account and resync everyone (both stores)."""

from __future__ import annotations

from typing import Any

import pytest

from meshroute.server.services.uow import ChangeSet
from meshroute.server.sync import engine as engine_mod
from meshroute.server.sync.engine import MapEngine
from tests.integration.conftest import World


def _route(world: World, peer: str, group: str, net: str) -> str:
    body = {"network": net, "network_id": net, "peer": peer, "groups": [group], "metric": 10, "enabled": True}
    return str(world.ok(world.post("/api/routes", body))["id"])


@pytest.fixture
def captured(world: World) -> tuple[MapEngine, list[ChangeSet], list[tuple[str, Any]]]:
    published: list[tuple[str, Any]] = []
    eng = MapEngine(world.services.uow, lambda account, deltas: published.append((account, deltas)))
    changesets: list[ChangeSet] = []
    world.services.uow.listeners[:] = [changesets.append]  # hold change sets back; the test delivers them
    return eng, changesets, published


def test_out_of_order_change_sets_wait_for_the_missing_serial(
    world: World, captured: tuple[MapEngine, list[ChangeSet], list[tuple[str, Any]]]
) -> None:
    eng, changesets, published = captured
    a, b = world.peer("a"), world.peer("b")
    group = world.group("clients", [b])
    assert eng.full_map(world.account_id, b) is not None  # the engine now holds the account
    changesets.clear()
    start = eng.serial(world.account_id)
    first = _route(world, a, group, "10.1.0.0/16")
    second = _route(world, a, group, "10.2.0.0/16")
    cs1, cs2 = changesets
    assert (cs1.serial, cs2.serial) == (start + 1, start + 2)

    eng.process(cs2)  # arrives first: must wait
    assert published == [] and eng.serial(world.account_id) == start
    eng.process(cs1)
    assert eng.serial(world.account_id) == start + 2
    serials = [next(iter(d.values())).serial for _, d in published]
    assert serials == [start + 1, start + 2]  # delivered in order
    snapshot = eng.full_map(world.account_id, b)
    assert snapshot is not None
    assert [r.id for r in snapshot[0].routes] == sorted([first, second])
    eng.process(cs1)  # a duplicate is ignored
    assert len(published) == 2


def test_a_gap_that_does_not_fill_reloads_the_account(
    world: World,
    captured: tuple[MapEngine, list[ChangeSet], list[tuple[str, Any]]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    eng, changesets, published = captured
    a, b = world.peer("a"), world.peer("b")
    group = world.group("clients", [b])
    assert eng.full_map(world.account_id, b) is not None
    changesets.clear()
    lost = _route(world, a, group, "10.1.0.0/16")
    kept = _route(world, a, group, "10.2.0.0/16")
    _, cs2 = changesets  # the first one is lost on the way (a missed NOTIFY, say)
    eng.process(cs2)
    eng._check_gaps()
    assert published == []  # still within the grace period
    monkeypatch.setattr(engine_mod, "GAP_TIMEOUT_S", 0.0)
    eng._check_gaps()
    assert published == [(world.account_id, None)]  # everyone of the account gets a full map
    snapshot = eng.full_map(world.account_id, b)
    assert snapshot is not None
    assert sorted(r.id for r in snapshot[0].routes) == sorted([lost, kept])
    assert eng.serial(world.account_id) == cs2.serial
