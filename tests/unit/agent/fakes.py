"""Fakes of the agent's system boundary (DESIGN rule 5) and of the management server it talks to.

- `FakeNetlink`: links and addresses in memory (`meshroute.agent.netlink.NetlinkOps`).
- `FakeDevice`: a WireGuard device with an in-memory peer table that applies `PeerOp`s the way
  WireGuard does (`meshroute.agent.wireguard.backend.WireGuardDevice`); every `configure` call is
  one recorded transaction. Tests make handshakes happen and peers roam with `handshake()`.
- `FakeProbes`: the probe socket (`meshroute.agent.engine.Probes`), recording what is sent.
- `FakeServer` / `FakePeerClient`: scripted login answers and scripted sync streams behind
  `ManagementLink(client_factory=server.factory)`.
- `FakeLink`: a management link for engine tests that only replays maps.
- `FakeInstaller`: stands in for `lifecycle.install_device`.
- `Clock`: wall clock and monotonic clock that move only when told.
"""

from __future__ import annotations

import asyncio
import copy
import ipaddress
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar, cast

import grpc

from meshroute.agent.config import AgentConfig
from meshroute.agent.endpoints import parse_endpoint
from meshroute.agent.firewall.requirements import Check
from meshroute.agent.firewall.ruleset import ServedRoute, served_routes
from meshroute.agent.ledger import Ledger
from meshroute.agent.lifecycle import WIREGUARD
from meshroute.agent.link import LinkStatus
from meshroute.agent.netlink import LocalAddress, NetlinkFailure, NetlinkOps
from meshroute.agent.routing.rtnl import TableRoute
from meshroute.agent.wireguard.model import DeviceSettings, PeerConfig, PeerOp, PeerStats
from meshroute.core.networkmap.types import NetworkMap
from meshroute.core.status import StatusReport
from meshroute.protocol.client import Identity, Meta, PeerClient, Update

T = TypeVar("T")


def run(coro: Coroutine[Any, Any, T]) -> T:
    """Run one coroutine to completion in a fresh event loop (the repo has no pytest-asyncio)."""
    return asyncio.run(coro)


def rpc_error(code: grpc.StatusCode, details: str = "") -> grpc.aio.AioRpcError:
    return grpc.aio.AioRpcError(code, grpc.aio.Metadata(), grpc.aio.Metadata(), details=details)


async def settle(done: Callable[[], bool], rounds: int = 1000) -> None:
    """Let other tasks run until `done()` holds, without sleeping for real."""
    for _ in range(rounds):
        if done():
            return
        await asyncio.sleep(0)
    raise AssertionError("condition not reached")


class Clock:
    """Replaces the `time` module of the code under test: `time()` and `monotonic()` move together,
    and only when the test says so."""

    def __init__(self, wall: float = 1_700_000_000.0, mono: float = 5_000.0) -> None:
        self.wall, self.mono = wall, mono

    def time(self) -> float:
        return self.wall

    def monotonic(self) -> float:
        return self.mono

    def advance(self, seconds: float) -> None:
        self.wall += seconds
        self.mono += seconds


# -- netlink ---------------------------------------------------------------------------------------


@dataclass(slots=True)
class FakeLinkState:
    up: bool = False
    mtu: int | None = None


class FakeNetlink:
    """Links and their addresses in memory; every call recorded in `calls`."""

    def __init__(self, links: Iterable[str] = (), local: Iterable[LocalAddress] = ()) -> None:
        self.links: dict[str, FakeLinkState] = {name: FakeLinkState() for name in links}
        self.addresses: dict[str, set[str]] = {}
        self.local: list[LocalAddress] = list(local)
        self.calls: list[tuple[Any, ...]] = []

    def add_link(self, name: str) -> None:
        """What creating a WireGuard device does to the link table."""
        self.links.setdefault(name, FakeLinkState())

    def _require(self, name: str) -> FakeLinkState:
        if name not in self.links:
            raise NetlinkFailure(f"no interface {name}")
        return self.links[name]

    async def link_exists(self, name: str) -> bool:
        self.calls.append(("link_exists", name))
        return name in self.links

    async def delete_link(self, name: str) -> bool:
        self.calls.append(("delete_link", name))
        self.addresses.pop(name, None)
        return self.links.pop(name, None) is not None

    async def set_up(self, name: str, mtu: int) -> None:
        self.calls.append(("set_up", name, mtu))
        link = self._require(name)
        link.up, link.mtu = True, mtu

    async def add_address(self, name: str, cidr: str) -> None:
        self.calls.append(("add_address", name, cidr))
        self._require(name)
        ipaddress.ip_interface(cidr)  # the kernel rejects what is not an address
        self.addresses.setdefault(name, set()).add(cidr)  # EEXIST is "already done"

    async def remove_address(self, name: str, cidr: str) -> None:
        self.calls.append(("remove_address", name, cidr))
        self.addresses.get(name, set()).discard(cidr)  # EADDRNOTAVAIL / ENODEV are "already done"

    async def local_addresses(self) -> list[LocalAddress]:
        self.calls.append(("local_addresses",))
        return sorted(self.local)


# -- WireGuard -------------------------------------------------------------------------------------


@dataclass(slots=True)
class FakePeer:
    endpoint: str | None = None
    allowed_ips: list[str] = field(default_factory=list)
    last_handshake: float | None = None
    rx_bytes: int = 0
    tx_bytes: int = 0


@dataclass(frozen=True, slots=True)
class Transaction:
    settings: DeviceSettings | None
    ops: tuple[PeerOp, ...]


class FakeDevice:
    """A WireGuard device in memory. `configure` is all or nothing, like one UAPI `set=1`:
    - `remove` deletes the peer; `recreate` deletes it and creates it anew (no handshake state);
    - an op on an unknown peer creates it;
    - `endpoint` replaces the endpoint (None leaves it: WireGuard cannot forget one);
    - `allowed_ips` replaces the list, `add_allowed_ips` appends to it; an AllowedIP moves away
      from any other peer that had it."""

    kind = "fake"

    def __init__(self, interface: str = "mr0") -> None:
        self.interface = interface
        self.settings: DeviceSettings | None = None
        self.table: dict[str, FakePeer] = {}
        self.transactions: list[Transaction] = []
        self.creations: dict[str, int] = {}  # key -> how many times the peer object was created
        self.fail_next: Exception | None = None
        self.closed = 0

    async def configure(self, settings: DeviceSettings | None, ops: Sequence[PeerOp]) -> None:
        if self.fail_next is not None:
            exc, self.fail_next = self.fail_next, None
            raise exc
        table = copy.deepcopy(self.table)
        creations = dict(self.creations)
        for op in ops:
            if op.remove or op.recreate:
                table.pop(op.public_key, None)
                if op.remove:
                    continue
            peer = table.get(op.public_key)
            if peer is None:
                peer = table[op.public_key] = FakePeer()
                creations[op.public_key] = creations.get(op.public_key, 0) + 1
            if op.endpoint is not None:
                parse_endpoint(op.endpoint)  # ValueError: the device rejects the transaction
                peer.endpoint = op.endpoint
            if op.allowed_ips is not None or op.add_allowed_ips:
                listed = [*(op.allowed_ips or ()), *op.add_allowed_ips]
                for cidr in listed:
                    if "/" not in cidr:
                        raise ValueError(f"AllowedIP without a prefix length: {cidr}")
                    ipaddress.ip_network(cidr, strict=False)
                for other_key, other in table.items():
                    if other_key != op.public_key:
                        other.allowed_ips = [c for c in other.allowed_ips if c not in listed]
                base = [] if op.allowed_ips is not None else peer.allowed_ips
                peer.allowed_ips = [*base, *(c for c in listed if c not in base)]
        self.table, self.creations = table, creations
        if settings is not None:
            self.settings = settings
        self.transactions.append(Transaction(settings, tuple(ops)))

    async def peers(self) -> list[PeerStats]:
        return [
            PeerStats(
                public_key=key,
                endpoint=p.endpoint,
                last_handshake=p.last_handshake,
                rx_bytes=p.rx_bytes,
                tx_bytes=p.tx_bytes,
                allowed_ips=tuple(sorted(p.allowed_ips)),
            )
            for key, p in sorted(self.table.items())
        ]

    async def close(self) -> None:
        self.closed += 1

    def owner_record(self) -> dict[str, object]:
        return {}

    def view(self) -> dict[str, PeerConfig]:
        """The peer table in the terms of the agent's desired state."""
        return {
            key: PeerConfig(key, tuple(sorted(p.allowed_ips)), p.endpoint)
            for key, p in sorted(self.table.items())
        }

    # -- what the network does to the device --
    def handshake(self, key: str, at: float, endpoint: str | None = None) -> None:
        """A handshake with the peer completed at `at` (wall clock); `endpoint`: the peer reached
        us from there (WireGuard roams to it)."""
        peer = self.table[key]
        peer.last_handshake = at
        if endpoint is not None:
            peer.endpoint = endpoint


class FakeInstaller:
    """Stands in for `lifecycle.install_device`: records the key it was given, records the device
    in the ledger the way the real one does, creates the link and brings it up."""

    def __init__(self, device: FakeDevice) -> None:
        self.device = device
        self.private_keys: list[str] = []

    async def __call__(self, cfg: AgentConfig, ledger: Ledger, netlink: NetlinkOps, private_key: str) -> Any:
        self.private_keys.append(private_key)
        ledger.record(WIREGUARD, {"interface": cfg.interface, "kind": self.device.kind})
        if isinstance(netlink, FakeNetlink):
            netlink.add_link(cfg.interface)
        await netlink.set_up(cfg.interface, cfg.mtu)
        self.device.interface = cfg.interface
        return self.device


# -- probes ----------------------------------------------------------------------------------------


class FakeProbes:
    """The probe socket: records binds and sends. `factory` is what `System.probes` takes."""

    def __init__(self) -> None:
        self.binds: list[tuple[list[str], str]] = []
        self.sends: list[tuple[str, int]] = []
        self.closed = False
        self.on_answer: Callable[[str, int, float], None] | None = None

    def factory(self, on_answer: Callable[[str, int, float], None]) -> FakeProbes:
        self.on_answer = on_answer
        return self

    async def bind(self, addresses: list[str], device: str) -> None:
        self.binds.append((list(addresses), device))

    def send(self, address: str, seq: int) -> None:
        self.sends.append((address, seq))

    def close(self) -> None:
        self.closed = True


# -- management ------------------------------------------------------------------------------------


class ScriptEnded(Exception):
    """The test's script is over: ends `ManagementLink.run` (it is no gRPC error, so it passes)."""


class Hang:
    """In a stream script: the stream stays open with nothing more to say."""


@dataclass(frozen=True, slots=True)
class LoginCall:
    public_key: str
    setup_key: str
    peer_id: str  # what the client held when it called
    credential: str
    meta: Meta


StreamItem = Update | BaseException | type[Hang]


class FakeServer:
    """The management server as the link's clients see it.

    `login_script`: one entry per Login, None = answer normally, an exception = raise it; when it
    runs out, logins are answered normally. A normal answer to a setup key registers the peer
    (peer ID and credential, once); a login without one must carry the right credential.
    `streams`: one list per Sync call; each item is yielded (`Update`), raised (exception) or
    hangs (`Hang`); a list that runs out ends the stream. No stream left: `ScriptEnded`.
    """

    def __init__(
        self,
        *,
        peer_id: str = "peer-1",
        credential: str = "cred-1",
        ip: str = "100.64.0.1/16",
        ipv6: str = "",
        logins: Iterable[BaseException | None] = (),
        streams: Iterable[Sequence[StreamItem]] = (),
    ) -> None:
        self.peer_id, self.credential, self.ip, self.ipv6 = peer_id, credential, ip, ipv6
        self.login_script: deque[BaseException | None] = deque(logins)
        self.streams: deque[Sequence[StreamItem]] = deque(streams)
        self.logins: list[LoginCall] = []
        self.syncs: list[int] = []  # the serial the client held at each Sync
        self.clients: list[FakePeerClient] = []

    def factory(self, channel: grpc.aio.Channel, identity: Identity) -> PeerClient:
        client = FakePeerClient(self, identity)
        self.clients.append(client)
        return client


class FakePeerClient(PeerClient):
    """`PeerClient` without a channel: answers from a `FakeServer`."""

    def __init__(self, server: FakeServer, identity: Identity) -> None:  # no super(): no stub
        self.server = server
        self.identity = identity
        self.map = None
        self._call = None

    async def login(self, meta: Meta, setup_key: str = "") -> Identity:
        s = self.server
        s.logins.append(
            LoginCall(
                self.identity.wg_public_key, setup_key, self.identity.peer_id, self.identity.credential, meta
            )
        )
        outcome = s.login_script.popleft() if s.login_script else None
        if outcome is not None:
            raise outcome
        if setup_key:
            self.identity.peer_id, self.identity.credential = s.peer_id, s.credential
        elif self.identity.credential != s.credential:
            raise rpc_error(grpc.StatusCode.UNAUTHENTICATED, "unknown peer or credential")
        self.identity.ip, self.identity.ipv6 = s.ip, s.ipv6
        return self.identity

    async def maps(self) -> AsyncIterator[Update]:
        s = self.server
        s.syncs.append(self.map.serial if self.map else 0)
        if not s.streams:
            raise ScriptEnded("no stream left in the script")
        for item in s.streams.popleft():
            if item is Hang:
                await asyncio.Event().wait()
            elif isinstance(item, BaseException):
                raise item
            else:
                update = cast(Update, item)
                self.map = update.map
                yield update


class FakeLink:
    """A management link for engine tests: hands the agent `updates`, then raises `refuse` or
    stays connected. `identity` is what a login would have returned."""

    def __init__(self, identity: Identity, updates: Iterable[Update] = ()) -> None:
        self.identity: Identity | None = identity
        self.status = LinkStatus()
        self.updates = list(updates)
        self.refuse: BaseException | None = None
        self.reports = 0
        self.status_reports: list[StatusReport] = []
        self.closed = False
        self.meta: Callable[[], Meta] | None = None

    def factory(self, meta: Callable[[], Meta]) -> Any:
        self.meta = meta
        return self

    async def run(self, on_update: Callable[[Update], Awaitable[None]]) -> None:
        for update in self.updates:
            await on_update(update)
        if self.refuse is not None:
            raise self.refuse
        await asyncio.Event().wait()

    async def report(self) -> None:
        self.reports += 1

    async def report_status(self, report: StatusReport) -> bool:
        self.status_reports.append(report)
        return True

    def close(self) -> None:
        self.closed = True


class FakeKernelRouting:
    """Table 7120 and its rules in memory (implements routes.client.KernelRouting)."""

    def __init__(self, interface: str = "mr0", ledger: object = None) -> None:
        self.interface = interface
        self.active = False
        self.table: set[TableRoute] = set()
        self.bypass: set[str] = set()
        self.batches: list[tuple[int, int]] = []
        self.torn_down = 0

    async def setup(self) -> None:
        self.active = True

    async def set_bypass(self, addresses: Iterable[str]) -> None:
        self.bypass = set(addresses)

    async def apply(self, wanted: set[TableRoute]) -> tuple[int, int]:
        change = (len(wanted - self.table), len(self.table - wanted))
        if change != (0, 0):
            self.batches.append(change)
        self.table = set(wanted)
        return change

    async def teardown(self) -> None:
        self.active, self.table, self.bypass = False, set(), set()
        self.torn_down += 1


class FakeRoutingPeer:
    """The routing-peer side in memory (implements engine.ServedRoutes)."""

    def domain_status(self) -> dict[str, dict[str, list[dict[str, Any]]]]:
        return {}

    def __init__(self, *args: object) -> None:
        self.checks: list[Check] = []
        self.routes: list[ServedRoute] = []
        self.maps: list[NetworkMap] = []
        self.stopped = 0

    async def apply(self, m: NetworkMap) -> bool:
        routes = served_routes(m)
        changed = routes != self.routes or not self.maps
        self.maps.append(m)
        self.routes = routes
        return changed

    async def refresh_checks(self) -> list[Check]:
        self.checks = [Check(f"path {r.network}", True, "") for r in self.routes]
        return self.checks

    async def stop(self) -> None:
        self.routes, self.checks = [], []
        self.stopped += 1
