"""The map engine applies committed change sets strictly in serial order; a gap that does not
fill in time makes it reload the account and resync everyone (both stores)."""

from __future__ import annotations

import pytest

from meshroute.server.sync import engine as engine_mod
from tests.integration.conftest import HeldBack


def _loaded(held: HeldBack) -> tuple[str, str, str]:
    """Two peers and a group of the second; the engine holds the account, no change set pending."""
    a, b = held.peer("a"), held.peer("b")
    group = held.group("clients", [b])
    assert held.engine.full_map(held.world.account_id, b) is not None
    held.changesets.clear()
    return a, b, group


def test_out_of_order_change_sets_wait_for_the_missing_serial(held: HeldBack) -> None:
    eng, account_id, published = held.engine, held.world.account_id, held.published
    a, b, group = _loaded(held)
    start = eng.serial(account_id)
    first = held.route(a, group, "10.1.0.0/16")
    second = held.route(a, group, "10.2.0.0/16")
    cs1, cs2 = held.changesets
    assert (cs1.serial, cs2.serial) == (start + 1, start + 2)

    eng.process(cs2)  # arrives first: must wait
    assert published == [] and eng.serial(account_id) == start
    eng.process(cs1)
    assert eng.serial(account_id) == start + 2
    serials = [next(iter(d.values())).serial for _, d in published]
    assert serials == [start + 1, start + 2]  # delivered in order
    snapshot = eng.full_map(account_id, b)
    assert snapshot is not None
    assert [r.id for r in snapshot[0].routes] == sorted([first, second])
    eng.process(cs1)  # a duplicate is ignored
    assert len(published) == 2


def test_a_gap_that_does_not_fill_reloads_the_account(
    held: HeldBack, monkeypatch: pytest.MonkeyPatch
) -> None:
    eng, account_id, published = held.engine, held.world.account_id, held.published
    a, b, group = _loaded(held)
    lost = held.route(a, group, "10.1.0.0/16")
    kept = held.route(a, group, "10.2.0.0/16")
    _, cs2 = held.changesets  # the first one is lost on the way (a missed NOTIFY, say)
    eng.process(cs2)
    eng._check_gaps()
    assert published == []  # still within the grace period
    monkeypatch.setattr(engine_mod, "GAP_TIMEOUT_S", 0.0)
    eng._check_gaps()
    assert published == [(account_id, None)]  # everyone of the account gets a full map
    snapshot = eng.full_map(account_id, b)
    assert snapshot is not None
    assert sorted(r.id for r in snapshot[0].routes) == sorted([lost, kept])
    assert eng.serial(account_id) == cs2.serial


def test_a_reader_ahead_of_the_engine_gets_the_map_at_its_serial(held: HeldBack) -> None:
    """A map asked for at a serial the engine never hears of (a change made by another process)
    comes once the engine has reloaded, not stale."""
    eng, account_id = held.engine, held.world.account_id
    a, b, group = _loaded(held)
    route = held.route(a, group, "10.1.0.0/16")  # its change set never reaches the engine
    eng.start()
    try:
        snapshot = eng.full_map(account_id, b, at_least=held.changesets[-1].serial)
    finally:
        eng.stop()
    assert snapshot is not None
    assert [r.id for r in snapshot[0].routes] == [route]
