"""The engine with routes, against fakes: the plan reaches the kernel table and WireGuard; a probe
verdict moves the prefix in one append; selection from the control socket; the routing-peer side
gets every map; teardown removes it all."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from meshroute.agent.routing.rtnl import TableRoute
from meshroute.agent.wireguard.model import PeerOp
from meshroute.core.networkmap.types import MapRoute

from . import test_engine as base
from .fakes import Clock, FakeKernelRouting, FakeRoutingPeer, run
from .test_engine import ME, B, D, World, full, nmap, peer

clock = base.clock  # the fake clock fixture of test_engine


@pytest.fixture
def world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, clock: Clock) -> World:
    w = base.build_world(tmp_path, monkeypatch, clock)
    run(w.agent._resolve_management())
    return w


PREFIX = "10.9.0.0/24"


def ha_route(rid: str, via: Any, *, net_id: str = "office", metric: int = 100, **kw: Any) -> MapRoute:
    fields: dict[str, Any] = {"masquerade": True, "keep_route": False, "skip_auto_apply": False}
    fields.update(kw)
    network = kw.pop("network", PREFIX)
    fields.pop("network", None)
    return MapRoute(rid, net_id, network, (), 1, via.key, via.id, metric, **fields)


def kernel(world: World) -> FakeKernelRouting:
    routing = world.agent.routes.policy
    assert isinstance(routing, FakeKernelRouting)
    return routing


def answer_all(world: World) -> None:
    """One probe round in which every probed peer answers (4 ms)."""
    world.probe_step()
    assert world.probes.on_answer is not None
    for address, seq in list(world.probes.sends):
        world.probes.on_answer(address, seq, world.clock.monotonic() + 0.004)
    world.probe_step()  # the answers' verdicts are applied on the next probe tick


def held_by(world: World, prefix: str = PREFIX) -> list[str]:
    return [k for k, p in world.device.table.items() if prefix in p.allowed_ips]


def test_a_received_route_is_in_table_7120_and_on_its_routing_peer_once_probed(world: World) -> None:
    world.apply(full(nmap(1, B, D, routes=(ha_route("a", B), ha_route("b", D)))))
    # Nobody judged yet and no endpoint proven: the route is there, pointing nowhere (no leak).
    assert kernel(world).table == {TableRoute(PREFIX, unreachable=True)}
    assert held_by(world) == []
    answer_all(world)
    assert kernel(world).table == {TableRoute(PREFIX)}
    assert len(held_by(world)) == 1
    assert kernel(world).active and kernel(world).bypass == {"127.0.0.1"}  # the management server
    listed = world.agent.routes_list()
    assert [(r["network_id"], r["installed"], r["routing_peer"]) for r in listed] == [
        ("office", True, world.agent._peer_name(held_by(world)[0]).split(" ")[0])
    ]


def test_failover_is_one_append_to_the_other_routing_peer(world: World) -> None:
    world.apply(full(nmap(1, B, D, routes=(ha_route("a", B), ha_route("b", D, metric=200)))))
    answer_all(world)
    assert held_by(world) == [B.key]  # the lower metric
    before = len(world.device.transactions)
    # B stops answering: after `down_after` ticks it is down and the prefix moves at once.
    for _ in range(world.agent.tracker.down_after + 1):
        world.probe_step()
        assert world.probes.on_answer is not None
        for address, seq in list(world.probes.sends[-2:]):
            if address == D.ip:
                world.probes.on_answer(address, seq, world.clock.monotonic() + 0.004)
        world.clock.advance(world.cfg.probe_interval)
    assert held_by(world) == [D.key]
    moves = [t.ops for t in world.device.transactions[before:] if t.ops]
    assert moves == [(PeerOp(D.key, add_allowed_ips=(PREFIX,)),)]  # one append, nothing else
    assert kernel(world).table == {TableRoute(PREFIX)}  # the kernel route never moved


def test_deselecting_a_route_removes_it_and_selecting_brings_it_back(world: World) -> None:
    world.apply(full(nmap(1, B, routes=(ha_route("a", B),))))
    answer_all(world)
    assert kernel(world).table == {TableRoute(PREFIX)}
    assert run(world.agent.routes_deselect(["office"])) == []
    assert kernel(world).table == set() and held_by(world) == []
    assert (world.cfg.state_dir / "route_selection.json").exists()
    with pytest.raises(Exception, match="not available"):
        run(world.agent.routes_select(["nope"]))
    run(world.agent.routes_select(["office"]))
    answer_all(world)
    assert kernel(world).table == {TableRoute(PREFIX)}


def test_an_exit_node_with_skip_auto_apply_waits_to_be_selected(world: World) -> None:
    exit_route = ha_route("x", B, net_id="internet", network="0.0.0.0/0", skip_auto_apply=True)
    world.apply(full(nmap(1, B, routes=(exit_route,))))
    answer_all(world)
    assert kernel(world).table == set()
    run(world.agent.routes_select(["internet"], append=True))
    answer_all(world)
    assert TableRoute("0.0.0.0/0") in kernel(world).table
    assert held_by(world, "0.0.0.0/0") == [B.key]


def test_the_routing_peer_side_sees_every_map_and_teardown_removes_everything(world: World) -> None:
    mine = ha_route("m", ME, net_id="served", network="10.66.0.0/24")
    world.apply(full(nmap(1, B, routes=(mine, ha_route("a", B)))))
    served = world.agent.served
    assert isinstance(served, FakeRoutingPeer)
    assert [r.network for r in served.routes] == ["10.66.0.0/24"]
    assert world.agent.status()["routing_peer"]["serves"][0]["network"] == "10.66.0.0/24"
    run(world.agent.teardown())
    assert served.stopped == 1 and kernel(world).torn_down == 1 and world.device.closed == 1


def test_a_peer_leaving_the_map_takes_its_candidacy_with_it(world: World) -> None:
    world.apply(full(nmap(1, B, D, routes=(ha_route("a", B), ha_route("b", D, metric=200)))))
    answer_all(world)
    assert held_by(world) == [B.key]
    other = peer(5)
    world.apply(full(nmap(2, D, other, routes=(ha_route("b", D, metric=200),))))
    answer_all(world)
    assert held_by(world) == [D.key]


def test_the_report_names_the_routing_peer_in_use_and_follows_a_failover(world: World) -> None:
    world.apply(full(nmap(1, B, D, routes=(ha_route("a", B), ha_route("b", D, metric=200)))))
    answer_all(world)
    run(world.agent._report_step())
    (report,) = world.link.status_reports
    (use,) = report.routes
    assert (use.ha_id, use.routing_peer_id, use.state.value) == (f"office|{PREFIX}", B.id, "routing")
    assert set(use.route_ids) == {"a", "b"}
    run(world.agent._report_step())
    assert len(world.link.status_reports) == 1  # nothing changed: nothing sent
    run(world.agent.routes_deselect(["office"]))
    run(world.agent._report_step())
    assert world.link.status_reports[-1].routes[0].state.value == "deselected"
