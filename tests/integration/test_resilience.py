"""What keeps agents' maps true when things go wrong: lost change sets, failing handlers,
replicas starting together, shutdown (both stores unless said otherwise)."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, func, select

from meshroute.core.changes import ChangeSet
from meshroute.server.services import Services
from meshroute.server.services.uow import UnitOfWork
from meshroute.server.store import tables as t
from meshroute.server.store.sql import SqlStore
from meshroute.server.sync import engine as engine_mod
from meshroute.server.sync.replicas import ReplicaBus
from tests.integration.conftest import HeldBack, World


def test_a_gap_heals_even_while_changes_keep_arriving(
    held: HeldBack, monkeypatch: pytest.MonkeyPatch
) -> None:
    eng, changesets, published, world = held.engine, held.changesets, held.published, held.world
    peer = held.peer("a")
    gid = held.group("g")
    assert eng.full_map(world.account_id, peer) is not None
    changesets.clear()
    for n in range(4):
        held.rename_group(gid, f"g{n}")
    _lost, *rest = changesets
    monkeypatch.setattr(engine_mod, "GAP_TIMEOUT_S", 0.3)
    eng.process(rest[0])
    opened = time.monotonic()
    for cs in rest[1:]:  # steady arrivals must not restart the gap's clock
        time.sleep(0.12)
        eng.process(cs)
        eng._check_gaps()
    while time.monotonic() - opened < 0.35:
        time.sleep(0.05)
    eng._check_gaps()
    assert (world.account_id, None) in published
    assert eng.serial(world.account_id) == rest[-1].serial  # reloaded from the store


def test_a_lost_last_change_set_is_found_by_comparing_with_the_store(
    held: HeldBack, monkeypatch: pytest.MonkeyPatch
) -> None:
    eng, published, world = held.engine, held.published, held.world
    peer = held.peer("a")
    gid = held.group("g")
    assert eng.full_map(world.account_id, peer) is not None
    held.rename_group(gid, "g1")  # its change set never reaches the engine, and nothing follows
    monkeypatch.setattr(engine_mod, "GAP_TIMEOUT_S", 0.0)
    eng._check_gaps()  # the audit notices the store is ahead; the gap clock starts
    time.sleep(0.01)
    eng._check_gaps()
    assert published == [(world.account_id, None)]


def test_the_engine_worker_survives_a_failing_change_set(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The world's own engine, fed by its unit of work as in production."""
    eng = world.engine
    published: list[tuple[str, Any]] = []
    real_publish = eng.publish
    monkeypatch.setattr(eng, "publish", lambda a, d: (published.append((a, d)), real_publish(a, d)))
    a, b = world.peer("a"), world.peer("b")
    gid = world.group("clients", [b])
    assert eng.full_map(world.account_id, b, at_least=world.serial()) is not None
    real_apply = eng._apply
    calls = {"n": 0}

    def flaky(entry: Any, cs: ChangeSet) -> None:
        calls["n"] += 1
        if calls["n"] == 1:
            raise RuntimeError("the database went away for a moment")
        real_apply(entry, cs)

    monkeypatch.setattr(eng, "_apply", flaky)
    body = {
        "network": "10.1.0.0/16",
        "network_id": "n",
        "peer": a,
        "groups": [gid],
        "metric": 1,
        "enabled": True,
    }
    world.ok(world.post("/api/routes", body))
    body = {**body, "network": "10.2.0.0/16", "network_id": "m"}
    world.ok(world.post("/api/routes", body))
    deadline = time.monotonic() + 10
    while True:
        snapshot = eng.full_map(world.account_id, b)
        if snapshot is not None and len(snapshot[0].routes) == 2:
            break
        assert time.monotonic() < deadline, f"worker stopped? {published} {snapshot and snapshot[0].routes}"
        time.sleep(0.05)
    assert eng._worker is not None and eng._worker.is_alive()
    assert (world.account_id, None) in published  # the failure cost a resync, not the engine


def test_bootstrap_by_replicas_starting_together_makes_one_account(engine: Engine) -> None:
    services = [Services.create(UnitOfWork(SqlStore(engine))) for _ in range(4)]
    barrier = threading.Barrier(len(services))
    results: list[Any] = []

    def boot(s: Services) -> None:
        barrier.wait()
        results.append(s.accounts.bootstrap())

    threads = [threading.Thread(target=boot, args=(s,)) for s in services]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert sum(r is not None for r in results) == 1
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(t.accounts)).scalar_one() == 1


def test_a_blocked_user_cannot_authenticate(world: World) -> None:
    from meshroute.core.model import Role

    _, token = world.user(Role.ADMIN, blocked=True)
    response = world.get("/api/users/current", token=token)
    assert response.status_code == 403
    assert response.json()["message"] == "failed to validate user permissions: user is blocked"


class _Recorder:
    def __init__(self) -> None:
        self.submitted: list[ChangeSet] = []
        self.reloads: list[str] = []
        self.fail_next = True

    def submit(self, cs: ChangeSet) -> None:
        if self.fail_next:
            self.fail_next = False
            raise RuntimeError("boom")
        self.submitted.append(cs)

    def reload(self, account_id: str) -> None:
        self.reloads.append(account_id)

    def reload_all(self) -> None:
        self.reloads.append("*")


def test_the_replica_listener_survives_a_failing_handler(pg_engine: Engine, tmp_path: Path) -> None:
    recorder = _Recorder()
    bus = ReplicaBus(pg_engine, recorder)  # type: ignore[arg-type]
    other = ReplicaBus(pg_engine, recorder)  # type: ignore[arg-type]  # the "other replica" sending
    bus.start()
    try:
        assert bus.ready.wait(10)
        from sqlalchemy import text

        for serial in (1, 2):
            payload = f'{{"r":"{other.replica_id}","a":"acc","s":{serial},"c":[["route","r{serial}",0]]}}'
            with pg_engine.begin() as conn:
                conn.execute(text("SELECT pg_notify(:ch, :p)"), {"ch": "meshroute_changes", "p": payload})
        with pg_engine.begin() as conn:  # garbage must not stop it either
            conn.execute(text("SELECT pg_notify('meshroute_changes', 'not json')"))
        payload = f'{{"r":"{other.replica_id}","a":"acc","s":3,"c":null}}'
        with pg_engine.begin() as conn:
            conn.execute(text("SELECT pg_notify(:ch, :p)"), {"ch": "meshroute_changes", "p": payload})
        deadline = time.monotonic() + 10
        while not (recorder.submitted and recorder.reloads):
            assert time.monotonic() < deadline, (recorder.submitted, recorder.reloads)
            time.sleep(0.05)
        assert [cs.serial for cs in recorder.submitted] == [2]  # the first one failed, the thread lived on
        assert recorder.reloads == ["acc"]  # an oversized change set asks for a reload
        assert bus._thread is not None and bus._thread.is_alive()
    finally:
        bus.stop()
