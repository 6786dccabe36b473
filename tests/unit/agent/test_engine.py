"""The agent engine against fakes: maps in, WireGuard peers, addresses, endpoint attempts, probes
and status out; plus the lifecycle (leftovers, preflight, installing) and the control socket."""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import json
import logging
import os
import stat
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

import grpc
import pytest

from meshroute.agent import control, engine, lifecycle, status
from meshroute.agent.config import AgentConfig
from meshroute.agent.control import ControlError, ControlServer
from meshroute.agent.desired import CONTROL_PLANE_MARK
from meshroute.agent.endpoints import HANDSHAKE_WAIT_S
from meshroute.agent.engine import EXIT_FAILED, EXIT_OK, EXIT_REFUSED, Agent, System
from meshroute.agent.identity import MemoryIdentityStore, StoredIdentity, generate_private_key, public_key
from meshroute.agent.ledger import LEDGER_FILE, Ledger
from meshroute.agent.lifecycle import WIREGUARD, StartupError
from meshroute.agent.link import LinkRefused, LinkState, ManagementLink
from meshroute.agent.netlink import LocalAddress
from meshroute.agent.procs import process_start_time
from meshroute.agent.wireguard.backend import BackendUnavailable
from meshroute.agent.wireguard.model import (
    REJECT_AFTER_TIME_S,
    REKEY_TIMEOUT_S,
    DeviceSettings,
    PeerConfig,
    PeerOp,
)
from meshroute.core.networkmap.types import MapPeer, MapRoute, NetworkMap
from meshroute.protocol.client import Identity, Meta, Update

from .fakes import (
    Clock,
    FakeDevice,
    FakeInstaller,
    FakeKernelRouting,
    FakeLink,
    FakeNetlink,
    FakeProbes,
    FakeRoutingPeer,
    FakeServer,
    Hang,
    rpc_error,
    run,
    settle,
)


def key(n: int) -> str:
    return base64.b64encode(bytes([n]) * 32).decode()


def peer(n: int, *, v6: bool = True, endpoints: tuple[str, ...] = (), name: str = "") -> MapPeer:
    label = name or f"peer-{n}"
    return MapPeer(f"p{n}", key(n), f"100.64.0.{n}", f"fd00::{n}" if v6 else None, label, label, endpoints)


ME = peer(1)
# ordered for an agent on 192.0.2.1/24 and 2001:db8::1/64: the same-subnet candidate first
B = peer(2, endpoints=("203.0.113.2:51820", "192.0.2.2:51820"))
C = peer(3, v6=False, endpoints=("198.51.100.3:51820", "[2001:db8::3]:51820"))
D = peer(4, endpoints=("192.0.2.4:51820", "203.0.113.4:51820"))
LOCAL = [
    LocalAddress("eth0", "192.0.2.1", 24),
    LocalAddress("eth0", "2001:db8::1", 64),
    LocalAddress("lo", "127.0.0.1", 8),
]


def nmap(serial: int, *peers: MapPeer, me: MapPeer = ME, routes: tuple[MapRoute, ...] = ()) -> NetworkMap:
    return NetworkMap(
        serial, me, tuple(sorted(peers, key=lambda p: p.id)), tuple(sorted(routes, key=lambda r: r.id)), ()
    )


def full(m: NetworkMap) -> Update:
    return Update(m, True)


def delta(m: NetworkMap) -> Update:
    return Update(m, False)


def route(rid: str, via: MapPeer) -> MapRoute:
    return MapRoute(rid, f"net-{rid}", "10.9.0.0/24", (), 1, via.key, via.id, 100, True, False, False)


def allowed(p: MapPeer) -> tuple[str, ...]:
    return tuple(sorted([f"{p.ip}/32"] + ([f"{p.ipv6}/128"] if p.ipv6 else [])))


@dataclasses.dataclass
class World:
    agent: Agent
    cfg: AgentConfig
    netlink: FakeNetlink
    device: FakeDevice
    installer: FakeInstaller
    probes: FakeProbes
    link: FakeLink
    clock: Clock
    store: MemoryIdentityStore

    @property
    def private_key(self) -> str:
        assert self.store.identity is not None
        return self.store.identity.private_key

    def apply(self, update: Update) -> None:
        run(self.agent._apply(update))

    def device_step(self) -> None:
        run(self.agent._device_step())

    def probe_step(self) -> None:
        run(self.agent._probe_step())

    def peer_status(self) -> dict[str, dict[str, Any]]:
        return {p["public_key"]: p for p in self.agent.status()["peers"]}


def make_config(state_dir: Path, **kw: Any) -> AgentConfig:
    values: dict[str, Any] = {
        "server": "127.0.0.1:33073",
        "state_dir": state_dir,
        "hostname": "host-1",
        "wireguard": "userspace",
        "wireguard_go": sys.executable,  # a binary that exists: preflight passes
    }
    values.update(kw)
    return AgentConfig(**values)


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    c = Clock()
    monkeypatch.setattr(engine, "time", c)
    monkeypatch.setattr(status, "time", c)
    return c


def build_world(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    clock: Clock,
    *,
    ipv6: str = "fd00::1/64",
    link_factory: Callable[[FakeLink, MemoryIdentityStore], Callable[[Callable[[], Meta]], Any]]
    | None = None,
) -> World:
    netlink = FakeNetlink(local=LOCAL)
    device = FakeDevice()
    installer = FakeInstaller(device)
    # A safety net: whatever happens, never the real installer (it would create a real mr0).
    monkeypatch.setattr(lifecycle, "install_device", installer)
    probes = FakeProbes()
    store = MemoryIdentityStore(StoredIdentity(generate_private_key(), peer_id="p1", credential="cred-1"))
    assert store.identity is not None
    link = FakeLink(Identity(store.identity.public_key, "p1", "cred-1", ip="100.64.0.1/16", ipv6=ipv6))
    cfg = make_config(tmp_path)
    system = System(
        netlink=netlink,
        install_device=installer,
        probes=probes.factory,
        routing=FakeKernelRouting,
        routing_peer=FakeRoutingPeer,
    )
    factory = link_factory(link, store) if link_factory else link.factory
    agent = Agent(cfg, store, system, factory, version="test")
    run(agent._refresh_local())
    return World(agent, cfg, netlink, device, installer, probes, link, clock, store)


@pytest.fixture
def world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, clock: Clock) -> World:
    return build_world(tmp_path, monkeypatch, clock)


# -- maps into WireGuard and addresses -------------------------------------------------------------


def test_the_first_map_installs_the_device_once_and_adds_both_overlay_addresses(world: World) -> None:
    world.apply(full(nmap(1, B, C)))
    assert world.installer.private_keys == [world.private_key]
    assert world.netlink.links["mr0"].up and world.netlink.links["mr0"].mtu == 1280
    assert world.netlink.addresses["mr0"] == {"100.64.0.1/16", "fd00::1/64"}
    assert world.probes.binds == [(["100.64.0.1", "fd00::1"], "mr0")]

    world.apply(delta(nmap(2, B, C)))
    world.apply(full(nmap(3, B)))
    assert len(world.installer.private_keys) == 1
    assert len(world.probes.binds) == 1  # the addresses did not change: no rebinding


def test_ipv6_is_added_only_when_the_maps_self_has_an_ipv6_address(world: World) -> None:
    me_v4 = peer(1, v6=False)
    world.apply(full(nmap(1, B, me=me_v4)))
    assert world.netlink.addresses["mr0"] == {"100.64.0.1/16"}
    assert world.probes.binds == [(["100.64.0.1"], "mr0")]
    # the peer became IPv6-capable
    world.apply(delta(nmap(2, B, me=ME)))
    assert world.netlink.addresses["mr0"] == {"100.64.0.1/16", "fd00::1/64"}
    assert world.probes.binds[-1] == (["100.64.0.1", "fd00::1"], "mr0")


def test_every_other_peer_becomes_a_wireguard_peer_with_its_overlay_host_routes(world: World) -> None:
    world.apply(full(nmap(1, B, C, ME)))  # a map listing this peer too: never a peer of itself
    assert world.device.view() == {
        B.key: PeerConfig(B.key, ("100.64.0.2/32", "fd00::2/128"), "192.0.2.2:51820"),
        C.key: PeerConfig(C.key, ("100.64.0.3/32",), "[2001:db8::3]:51820"),
    }
    assert len(world.device.transactions) == 1


def test_removing_a_peer_removes_only_that_peer_in_one_transaction(world: World) -> None:
    world.apply(full(nmap(1, B, C, D)))
    world.device.handshake(B.key, world.clock.time())
    world.apply(delta(nmap(2, B, D)))
    assert len(world.device.transactions) == 2
    assert world.device.transactions[1].ops == (PeerOp(C.key, remove=True),)
    assert set(world.device.table) == {B.key, D.key}
    assert world.device.creations[B.key] == 1 and world.device.table[B.key].last_handshake is not None


def test_a_new_peer_is_added_alone(world: World) -> None:
    world.apply(full(nmap(1, B)))
    world.apply(delta(nmap(2, B, D)))
    assert world.device.transactions[1].ops == (
        PeerOp(D.key, endpoint="192.0.2.4:51820", allowed_ips=allowed(D)),
    )


def test_a_renamed_peer_changes_nothing_on_the_device(world: World) -> None:
    world.apply(full(nmap(1, B, C)))
    renamed = dataclasses.replace(B, name="database", dns_label="database")
    world.apply(delta(nmap(2, renamed, C)))
    assert len(world.device.transactions) == 1
    assert world.peer_status()[B.key]["name"] == "database"


def test_a_peer_whose_candidates_change_gets_the_new_first_candidate(world: World) -> None:
    world.apply(full(nmap(1, B)))
    moved = dataclasses.replace(B, endpoints=("192.0.2.22:51820",))
    world.apply(delta(nmap(2, moved)))
    assert world.device.transactions[1].ops == (PeerOp(B.key, endpoint="192.0.2.22:51820"),)


def test_probe_targets_are_the_routing_peers_of_received_routes(world: World) -> None:
    stranger = peer(9)
    routes = (route("r1", B), route("r2", C), route("r3", ME), route("r4", stranger))
    world.apply(full(nmap(1, B, C, D, routes=routes)))
    assert {k: t.address for k, t in world.agent.tracker.tracks.items()} == {B.key: B.ip, C.key: C.ip}
    world.apply(delta(nmap(2, B, C, D, routes=(route("r1", B),))))
    assert set(world.agent.tracker.tracks) == {B.key}
    world.probe_step()
    assert [a for a, _ in world.probes.sends] == [B.ip]


# -- endpoint attempts over the device -------------------------------------------------------------


def test_a_handshake_confirms_the_first_candidate(world: World) -> None:
    world.apply(full(nmap(1, B)))
    world.device_step()
    assert world.probes.sends == [(B.ip, 0)]  # a packet to start the handshake
    assert world.agent.selector.pending()
    assert world.peer_status()[B.key]["state"] == "connecting"

    world.device.handshake(B.key, world.clock.time() + 0.05)
    world.clock.advance(0.1)
    world.device_step()
    assert not world.agent.selector.pending()
    assert len(world.device.transactions) == 1
    assert world.agent.selector.endpoint(B.key) == "192.0.2.2:51820"
    assert world.peer_status()[B.key]["state"] == "connected"


def test_without_a_handshake_the_next_candidate_is_tried_after_the_wait(world: World) -> None:
    world.apply(full(nmap(1, B)))
    world.device_step()
    world.clock.advance(HANDSHAKE_WAIT_S / 2)
    world.device_step()
    assert len(world.device.transactions) == 1 and len(world.probes.sends) == 1

    world.clock.advance(HANDSHAKE_WAIT_S / 2)
    world.device_step()
    assert len(world.device.transactions) == 2
    assert world.device.transactions[1].ops == (
        PeerOp(B.key, recreate=True, endpoint="203.0.113.2:51820", allowed_ips=allowed(B)),
    )
    assert world.device.creations[B.key] == 2  # fresh handshake state for the new endpoint
    assert world.device.table[B.key].endpoint == "203.0.113.2:51820"
    assert world.probes.sends == [(B.ip, 0), (B.ip, 0)]

    world.device.handshake(B.key, world.clock.time() + 0.05)
    world.clock.advance(0.1)
    world.device_step()
    assert world.peer_status()[B.key]["endpoint"] == "203.0.113.2:51820"
    assert world.peer_status()[B.key]["state"] == "connected"
    assert len(world.device.transactions) == 2


def test_a_handshake_landing_while_another_reconcile_runs_is_seen_before_any_recreate(world: World) -> None:
    """The wait for the next candidate is over, but the peer reached us while a map was being
    applied: its session is kept (a peer that cannot reach us first would otherwise wait for
    WireGuard's 15 s rekey)."""
    world.apply(full(nmap(1, B)))
    world.device_step()
    world.clock.advance(HANDSHAKE_WAIT_S)

    async def scenario() -> None:
        await world.agent._reconciling.acquire()  # a map being applied
        step = asyncio.create_task(world.agent._device_step())
        await asyncio.sleep(0)
        world.device.handshake(B.key, world.clock.time())
        world.agent._reconciling.release()
        await step

    run(scenario())
    assert world.device.creations[B.key] == 1
    assert world.device.table[B.key].last_handshake is not None
    assert world.peer_status()[B.key]["state"] == "connected"


def test_a_roamed_peer_keeps_the_endpoint_it_came_from(world: World) -> None:
    world.apply(full(nmap(1, B)))
    world.device_step()
    world.device.handshake(B.key, world.clock.time(), endpoint="198.51.100.77:40000")
    world.clock.advance(0.1)
    world.device_step()
    assert world.agent.selector.endpoint(B.key) == "198.51.100.77:40000"
    assert world.device.table[B.key].endpoint == "198.51.100.77:40000"
    # a later map that does not touch B leaves it there
    world.apply(delta(nmap(2, B, C)))
    assert world.device.table[B.key].endpoint == "198.51.100.77:40000"


def test_device_step_before_any_map_does_nothing(world: World) -> None:
    world.device_step()
    assert world.device.transactions == [] and world.probes.sends == []


def _confirm(world: World, p: MapPeer) -> None:
    world.device_step()
    world.device.handshake(p.key, world.clock.time())
    world.clock.advance(0.1)
    world.device_step()
    assert world.agent.selector.paths[p.key].confirmed


def _probe_until_down(world: World, p: MapPeer) -> None:
    for _ in range(world.agent.tracker.down_after + 1):
        world.probe_step()
        world.clock.advance(world.cfg.probe_interval)
    assert world.agent.tracker.tracks[p.key].up is False


def test_a_probed_peer_that_stops_answering_is_searched_for_again(world: World) -> None:
    world.apply(full(nmap(1, D, routes=(route("r1", D),))))
    _confirm(world, D)
    _probe_until_down(world, D)
    assert world.peer_status()[D.key]["state"] == "connecting"
    before = len(world.device.transactions)

    world.device_step()  # down, but only just: WireGuard may still recover by itself
    assert len(world.device.transactions) == before

    world.clock.advance(REKEY_TIMEOUT_S + 0.5)
    world.device_step()
    assert len(world.device.transactions) == before + 1
    assert world.device.transactions[-1].ops == (
        PeerOp(D.key, recreate=True, endpoint="192.0.2.4:51820", allowed_ips=allowed(D)),
    )
    assert world.agent.selector.pending()


def test_a_suspected_peer_found_again_is_not_recreated_over_and_over(world: World) -> None:
    world.apply(full(nmap(1, D, routes=(route("r1", D),))))
    _confirm(world, D)
    _probe_until_down(world, D)
    world.clock.advance(REKEY_TIMEOUT_S + 0.5)
    world.device_step()  # the one search the suspicion calls for
    searches = len(world.device.transactions)

    # WireGuard finds the peer again on the first candidate; its probe answers are still missing
    world.device.handshake(D.key, world.clock.time() + 0.05)
    world.clock.advance(0.1)
    world.device_step()
    assert world.agent.selector.paths[D.key].confirmed
    for _ in range(3):
        world.clock.advance(1.0)
        world.device_step()
    assert len(world.device.transactions) == searches
    assert world.device.creations[D.key] == 2


# -- probes and status -----------------------------------------------------------------------------


def test_probe_answers_make_a_peer_connected_with_a_latency(world: World) -> None:
    world.apply(full(nmap(1, D, routes=(route("r1", D),))))
    world.probe_step()
    (address, seq) = world.probes.sends[-1]
    assert address == D.ip
    assert world.probes.on_answer is not None
    world.probes.on_answer(D.ip, seq, world.clock.monotonic() + 0.004)
    st = world.peer_status()[D.key]
    assert st["state"] == "connected" and st["probed"] is True
    assert st["latency_ms"] == pytest.approx(4.0)


def test_status_shape_and_peer_states(world: World) -> None:
    routes = (route("r1", D),)
    world.apply(full(nmap(7, B, C, D, routes=routes)))
    world.device_step()
    world.device.handshake(B.key, world.clock.time() + 0.05)
    world.device.handshake(C.key, world.clock.time() + 0.05)
    world.clock.advance(0.1)
    world.device_step()  # B and C confirmed; D never answers
    world.clock.advance(REJECT_AFTER_TIME_S + 10)
    now = world.clock.time()
    world.device.handshake(B.key, now)  # B's session renewed; C quiet since
    world.device_step()
    world.link.status.state, world.link.status.serial = LinkState.CONNECTED, 7

    out = world.agent.status()
    json.dumps(out)  # what the control socket sends
    assert set(out) == {
        "management",
        "interface",
        "endpoints",
        "probe",
        "peers",
        "started",
        "routes",
        "routing_peer",
        "dns_interceptor",
    }
    assert out["dns_interceptor"] == []  # no domain route: nothing intercepts the host's DNS
    assert out["routing_peer"]["domains"] == {}
    assert out["management"] == {
        "server": "127.0.0.1:33073",
        "state": "connected",
        "serial": 7,
        "connected_since": None,
        "last_error": "",
        "reconnects": 0,
        "peer_id": "p1",
    }
    assert out["interface"] == {
        "name": "mr0",
        "backend": "fake",
        "up": True,
        "public_key": public_key(world.private_key),
        "addresses": ["100.64.0.1/16", "fd00::1/64"],
        "listen_port": 51820,
        "mtu": 1280,
    }
    assert out["endpoints"] == ["192.0.2.1:51820", "[2001:db8::1]:51820"]
    assert out["probe"] == {"interval_ms": 200, "down_after": 3}
    assert [p["id"] for p in out["peers"]] == ["p2", "p3", "p4"]
    b = out["peers"][0]
    assert set(b) == {
        "id",
        "name",
        "public_key",
        "ip",
        "ipv6",
        "endpoint",
        "candidates",
        "state",
        "last_handshake",
        "latency_ms",
        "probed",
        "rx_bytes",
        "tx_bytes",
    }
    assert (b["ip"], b["ipv6"], b["endpoint"]) == ("100.64.0.2", "fd00::2", "192.0.2.2:51820")
    assert b["candidates"] == ["192.0.2.2:51820", "203.0.113.2:51820"]
    assert b["last_handshake"] == now and b["probed"] is False and b["latency_ms"] is None
    states = {p["id"]: p["state"] for p in out["peers"]}
    assert states == {"p2": "connected", "p3": "idle", "p4": "connecting"}


def test_status_before_any_map(world: World) -> None:
    out = world.agent.status()
    assert out["peers"] == []
    assert out["interface"]["up"] is False and out["interface"]["backend"] is None
    assert out["interface"]["addresses"] == []
    json.dumps(out)


# -- the system seam -------------------------------------------------------------------------------


def test_the_device_is_installed_through_the_system_seam(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def real_installer(*args: Any) -> Any:
        raise AssertionError("the engine went around System.install_device")

    monkeypatch.setattr(lifecycle, "install_device", real_installer)
    world.apply(full(nmap(1, B)))
    assert world.installer.private_keys == [world.private_key]


def test_local_address_changes_are_reported_once(world: World) -> None:
    run(world.agent._address_step())
    assert world.link.reports == 0
    world.netlink.local.append(LocalAddress("eth1", "198.51.100.1", 24))
    run(world.agent._address_step())
    run(world.agent._address_step())
    assert world.link.reports == 1
    assert world.agent.own_endpoints == ["192.0.2.1:51820", "198.51.100.1:51820", "[2001:db8::1]:51820"]
    assert world.link.meta is not None
    meta = world.link.meta()
    assert meta.endpoints == world.agent.own_endpoints and meta.hostname == "host-1"


# -- the whole agent over a fake management link ---------------------------------------------------


def _managed(
    server: FakeServer,
) -> Callable[[FakeLink, MemoryIdentityStore], Callable[[Callable[[], Meta]], Any]]:
    def factory(_: FakeLink, store: MemoryIdentityStore) -> Callable[[Callable[[], Meta]], Any]:
        def make(meta: Callable[[], Meta]) -> ManagementLink:
            return ManagementLink(
                cast(grpc.aio.Channel, None),
                store,
                meta,
                server="127.0.0.1:33073",
                client_factory=server.factory,
            )

        return make

    return factory


def test_agent_run_applies_maps_from_the_link_and_removes_everything_on_stop(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, clock: Clock
) -> None:
    server = FakeServer(ip="100.64.0.1/16", ipv6="fd00::1/64", streams=[[full(nmap(1, B, C)), Hang]])
    w = build_world(tmp_path, monkeypatch, clock, link_factory=_managed(server))

    async def scenario() -> int:
        stop = asyncio.Event()
        task = asyncio.create_task(w.agent.run(stop))
        await settle(lambda: w.agent.map is not None)
        assert set(w.device.table) == {B.key, C.key}
        assert (tmp_path / LEDGER_FILE).exists()
        stop.set()
        return await task

    assert run(scenario()) == EXIT_OK
    login = server.logins[0]
    assert (login.setup_key, login.credential) == ("", "cred-1")
    assert login.meta.endpoints == ["192.0.2.1:51820", "[2001:db8::1]:51820"]
    # stopped: the interface and the ledger are gone, the probe socket closed
    assert w.device.closed == 1 and "mr0" not in w.netlink.links
    assert not (tmp_path / LEDGER_FILE).exists()
    assert w.probes.closed


def test_agent_run_stops_with_exit_2_and_installs_nothing_when_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    server = FakeServer(logins=[rpc_error(grpc.StatusCode.UNAUTHENTICATED, "unknown credential")])
    w = build_world(tmp_path, monkeypatch, clock, link_factory=_managed(server))

    async def scenario() -> int:
        return await w.agent.run(asyncio.Event())

    assert run(scenario()) == EXIT_REFUSED
    assert w.installer.private_keys == [] and w.device.transactions == []
    assert w.netlink.links == {} and not (tmp_path / LEDGER_FILE).exists()
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert any("credential" in m for m in errors)


def test_agent_run_deleted_while_running_exits_2_and_removes_what_it_installed(world: World) -> None:
    world.link.updates = [full(nmap(1, B))]
    world.link.refuse = LinkRefused("this peer was deleted on the management server")

    async def scenario() -> int:
        return await world.agent.run(asyncio.Event())

    assert run(scenario()) == EXIT_REFUSED
    assert world.installer.private_keys == [world.private_key]
    assert world.device.closed == 1 and "mr0" not in world.netlink.links
    assert not (world.cfg.state_dir / LEDGER_FILE).exists()


def test_agent_run_exits_1_when_the_device_cannot_be_installed(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def refuse(*args: Any) -> Any:
        raise StartupError("WireGuard refused its settings (is UDP port 51820 taken?)")

    world.agent.system.install_device = refuse
    world.link.updates = [full(nmap(1, B))]

    async def scenario() -> int:
        return await world.agent.run(asyncio.Event())

    assert run(scenario()) == EXIT_FAILED


def test_prepare_removes_leftovers_before_checking_the_interface(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, clock: Clock
) -> None:
    w = build_world(tmp_path, monkeypatch, clock)
    Ledger(tmp_path).record(WIREGUARD, {"interface": "mr0", "kind": "kernel"})
    w.netlink.add_link("mr0")  # left by a run that was killed
    run(w.agent.prepare())
    assert "mr0" not in w.netlink.links
    assert not (tmp_path / LEDGER_FILE).exists()


# -- lifecycle -------------------------------------------------------------------------------------


def _dead_pid() -> int:
    """A PID no process can have: PIDs stay below pid_max."""
    with open("/proc/sys/kernel/pid_max") as f:
        return int(f.read())


@pytest.fixture
def kills(monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, int]]:
    sent: list[tuple[int, int]] = []

    def fake_kill(pid: int, sig: int) -> None:
        sent.append((pid, sig))

    monkeypatch.setattr(os, "kill", fake_kill)
    return sent


def test_leftovers_recorded_interface_is_deleted_and_the_ledger_removed(
    tmp_path: Path, kills: list[tuple[int, int]]
) -> None:
    Ledger(tmp_path).record(
        WIREGUARD, {"interface": "mr0", "kind": "userspace", "pid": _dead_pid(), "start_time": 4242}
    )
    netlink = FakeNetlink(links=["mr0", "eth0"])
    removed = run(lifecycle.remove_leftovers(Ledger(tmp_path), netlink))
    assert removed == ["interface mr0"]
    assert set(netlink.links) == {"eth0"}
    assert not (tmp_path / LEDGER_FILE).exists()
    assert kills == []  # a dead PID is not signalled


def test_leftovers_a_reused_pid_is_not_signalled(tmp_path: Path, kills: list[tuple[int, int]]) -> None:
    start = process_start_time(os.getpid())
    assert start is not None
    Ledger(tmp_path).record(WIREGUARD, {"interface": "mr0", "pid": os.getpid(), "start_time": start + 1})
    removed = run(lifecycle.remove_leftovers(Ledger(tmp_path), FakeNetlink()))
    assert removed == [] and kills == []
    assert not (tmp_path / LEDGER_FILE).exists()


def test_leftovers_an_orphaned_process_is_stopped(tmp_path: Path) -> None:
    orphan = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        start = process_start_time(orphan.pid)
        assert start is not None
        Ledger(tmp_path).record(WIREGUARD, {"interface": "mr0", "pid": orphan.pid, "start_time": start})
        removed = run(lifecycle.remove_leftovers(Ledger(tmp_path), FakeNetlink()))
        assert removed == [f"wireguard-go (pid {orphan.pid})"]
        assert orphan.wait(timeout=5) != 0
    finally:
        if orphan.poll() is None:
            orphan.kill()
            orphan.wait()


def test_leftovers_with_no_ledger_touch_nothing(tmp_path: Path) -> None:
    netlink = FakeNetlink(links=["mr0"])
    assert run(lifecycle.remove_leftovers(Ledger(tmp_path), netlink)) == []
    assert set(netlink.links) == {"mr0"}
    assert not any(c[0] == "delete_link" for c in netlink.calls)


def test_preflight_refuses_an_interface_that_is_not_ours(tmp_path: Path) -> None:
    cfg = make_config(tmp_path, interface="wg-busy")
    with pytest.raises(StartupError) as caught:
        run(lifecycle.preflight(cfg, FakeNetlink(links=["wg-busy"])))
    assert "wg-busy" in str(caught.value) and "already exists" in str(caught.value)


def test_preflight_userspace_without_wireguard_go_says_to_install_it(tmp_path: Path) -> None:
    cfg = make_config(tmp_path, wireguard="userspace", wireguard_go="meshroute-test-no-such-wireguard-go")
    with pytest.raises(StartupError) as caught:
        run(lifecycle.preflight(cfg, FakeNetlink()))
    message = str(caught.value)
    assert "install" in message and "wireguard-go" in message
    assert "meshroute-test-no-such-wireguard-go" in message


def test_preflight_userspace_message_does_not_blame_a_kernel_that_has_wireguard(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(lifecycle, "kernel_wireguard_possible", lambda: True)
    cfg = make_config(tmp_path, wireguard="userspace", wireguard_go="meshroute-test-no-such-wireguard-go")
    with pytest.raises(StartupError) as caught:
        run(lifecycle.preflight(cfg, FakeNetlink()))
    assert "kernel has no WireGuard" not in str(caught.value)


def test_preflight_kernel_backend_without_the_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(lifecycle, "kernel_wireguard_possible", lambda: False)
    with pytest.raises(StartupError, match="kernel"):
        run(lifecycle.preflight(make_config(tmp_path, wireguard="kernel"), FakeNetlink()))


def test_preflight_auto_needs_one_of_the_two(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    missing = "meshroute-test-no-such-wireguard-go"
    monkeypatch.setattr(lifecycle, "kernel_wireguard_possible", lambda: True)
    run(lifecycle.preflight(make_config(tmp_path, wireguard="auto", wireguard_go=missing), FakeNetlink()))
    monkeypatch.setattr(lifecycle, "kernel_wireguard_possible", lambda: False)
    run(lifecycle.preflight(make_config(tmp_path, wireguard="auto"), FakeNetlink()))  # wireguard-go there
    with pytest.raises(StartupError, match="wireguard-go"):
        run(lifecycle.preflight(make_config(tmp_path, wireguard="auto", wireguard_go=missing), FakeNetlink()))


def _fake_backends(
    monkeypatch: pytest.MonkeyPatch, netlink: FakeNetlink, device: FakeDevice, kernel: bool
) -> None:
    async def create(interface: str) -> FakeDevice:
        if not kernel:
            raise BackendUnavailable("the kernel has no WireGuard module")
        netlink.add_link(interface)
        device.kind = "kernel"
        return device

    async def start(interface: str, log_path: Path, *, binary: str = "", verbose: bool = False) -> FakeDevice:
        netlink.add_link(interface)
        device.kind = "userspace"
        return device

    monkeypatch.setattr(lifecycle.KernelDevice, "create", create)
    monkeypatch.setattr(lifecycle.UserspaceDevice, "start", start)


@pytest.mark.parametrize(("kernel", "kind"), [(True, "kernel"), (False, "userspace")])
def test_install_device_records_configures_and_brings_up(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kernel: bool, kind: str
) -> None:
    netlink, device = FakeNetlink(), FakeDevice()
    _fake_backends(monkeypatch, netlink, device, kernel)
    cfg = make_config(tmp_path, wireguard="auto", listen_port=51999, mtu=1300)
    private = generate_private_key()
    got = run(lifecycle.install_device(cfg, Ledger(tmp_path), netlink, private))
    assert got is device and device.kind == kind
    assert [t.settings for t in device.transactions] == [DeviceSettings(private, 51999, CONTROL_PLANE_MARK)]
    assert device.transactions[0].ops == ()
    assert netlink.links["mr0"].up and netlink.links["mr0"].mtu == 1300
    assert Ledger(tmp_path).load() == {WIREGUARD: {"interface": "mr0", "kind": kind}}


def test_install_device_undoes_everything_when_wireguard_refuses_its_settings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    netlink, device = FakeNetlink(), FakeDevice()
    _fake_backends(monkeypatch, netlink, device, kernel=True)
    device.fail_next = OSError("address already in use")
    with pytest.raises(StartupError, match="51820"):
        run(
            lifecycle.install_device(make_config(tmp_path), Ledger(tmp_path), netlink, generate_private_key())
        )
    assert device.closed == 1
    assert "mr0" not in netlink.links
    assert not (tmp_path / LEDGER_FILE).exists()


def test_install_device_kernel_only_does_not_fall_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    netlink, device = FakeNetlink(), FakeDevice()
    _fake_backends(monkeypatch, netlink, device, kernel=False)
    cfg = make_config(tmp_path, wireguard="kernel")
    with pytest.raises(BackendUnavailable):
        run(lifecycle.install_device(cfg, Ledger(tmp_path), netlink, generate_private_key()))
    assert device.transactions == [] and not (tmp_path / LEDGER_FILE).exists()


# -- the control socket ----------------------------------------------------------------------------


async def _with_server(state_dir: Path, handlers: dict[str, Callable[[], Any]], *commands: str) -> list[Any]:
    server = ControlServer(state_dir, handlers)
    await server.start()
    try:
        out: list[Any] = []
        for command in commands:
            try:
                out.append(await asyncio.to_thread(control.call, state_dir, command))
            except ControlError as exc:
                out.append(exc)
        return out
    finally:
        await server.stop()


def test_control_answers_a_known_command(tmp_path: Path) -> None:
    modes: list[int] = []

    def status_handler() -> Any:
        modes.append(stat.S_IMODE((tmp_path / control.SOCKET_FILE).stat().st_mode))
        return {"state": "connected", "peers": [1, 2]}

    assert run(_with_server(tmp_path, {"status": status_handler}, "status")) == [
        {"state": "connected", "peers": [1, 2]}
    ]
    assert modes == [0o600]
    assert not (tmp_path / control.SOCKET_FILE).exists()  # removed on stop


def test_control_unknown_command(tmp_path: Path) -> None:
    (answer,) = run(_with_server(tmp_path, {"status": lambda: 1, "peers": lambda: 2}, "reboot"))
    assert isinstance(answer, ControlError)
    assert "unknown command 'reboot'" in str(answer) and "peers, status" in str(answer)


def test_control_handler_failure_is_an_error_answer(tmp_path: Path) -> None:
    def broken() -> Any:
        raise RuntimeError("boom")

    first, second = run(_with_server(tmp_path, {"status": broken, "ok": lambda: "fine"}, "status", "ok"))
    assert isinstance(first, ControlError) and str(first) == "status failed: boom"
    assert second == "fine"  # the server keeps serving


def test_control_rejects_a_request_that_is_not_json(tmp_path: Path) -> None:
    async def scenario() -> bytes:
        server = ControlServer(tmp_path, {"status": lambda: 1})
        await server.start()
        try:
            reader, writer = await asyncio.open_unix_connection(str(tmp_path / control.SOCKET_FILE))
            writer.write(b"status please\n")
            await writer.drain()
            line = await reader.readline()
            writer.close()
            return line
        finally:
            await server.stop()

    assert json.loads(run(scenario())) == {
        "error": "expected a JSON object with a command (and an object of args)"
    }


def test_control_serves_the_agent_status(world: World) -> None:
    world.apply(full(nmap(1, B, C)))
    (answer,) = run(_with_server(world.cfg.state_dir, {"status": world.agent.status}, "status"))
    assert answer == json.loads(json.dumps(world.agent.status()))


def test_control_call_without_an_agent(tmp_path: Path) -> None:
    with pytest.raises(ControlError, match="no agent is running") as caught:
        control.call(tmp_path, "status")
    assert str(tmp_path) in str(caught.value)


def test_control_call_with_a_stale_socket(tmp_path: Path) -> None:
    import socket

    path = tmp_path / control.SOCKET_FILE
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.bind(str(path))  # bound, never listening: what a killed agent leaves
    with pytest.raises(ControlError, match="not running"):
        control.call(tmp_path, "status")


def test_control_start_replaces_a_stale_socket(tmp_path: Path) -> None:
    (tmp_path / control.SOCKET_FILE).write_text("stale")
    assert run(_with_server(tmp_path, {"status": lambda: "ok"}, "status")) == ["ok"]


def test_control_works_with_a_state_dir_too_long_for_a_socket_path(tmp_path: Path) -> None:
    state_dir = tmp_path / ("d" * 60) / ("e" * 60)
    state_dir.mkdir(parents=True)
    assert len(str(state_dir / control.SOCKET_FILE)) > 107  # more than sockaddr_un holds
    assert run(_with_server(state_dir, {"status": lambda: "ok"}, "status")) == ["ok"]
