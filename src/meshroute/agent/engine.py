"""The agent at run time: maps from the management link become WireGuard peers and interface
addresses; endpoint selection and probes keep every peer reachable and its health known.

Three loops besides the link, each a small step over pure state: probes (every probe
interval), the device (handshakes, endpoint attempts; fast while one is pending), and local
addresses (reported to the server when they change). The data plane never depends on the
link: with management gone, the last map stays applied.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import socket
import time
from collections.abc import Awaitable, Callable, Collection, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from meshroute.agent import lifecycle, status
from meshroute.agent.config import AgentConfig
from meshroute.agent.control import CommandError
from meshroute.agent.desired import overlay_addresses, prefixlen, wireguard_peers
from meshroute.agent.dns.hostconfig import HostDnsError
from meshroute.agent.endpoints import EndpointSelector, Step, order_candidates, own_candidates
from meshroute.agent.firewall import RoutingPeer, ServedRoute
from meshroute.agent.firewall.requirements import Check
from meshroute.agent.health import ProbeSocket, ProbeTracker, Transition
from meshroute.agent.identity import IdentityStore
from meshroute.agent.ledger import Ledger
from meshroute.agent.link import LinkRefused, ManagementLink
from meshroute.agent.netlink import LocalAddress, NetlinkFailure, NetlinkOps, ipv6_enabled
from meshroute.agent.reconcile import AddressReconciler, WireGuardReconciler
from meshroute.agent.routes.client import ClientRoutes, KernelRouting
from meshroute.agent.routes.domains import LEARNED_FILE, DomainRoutes, is_domain_group
from meshroute.agent.routes.scoring import CandidateHealth, candidate_health
from meshroute.agent.routing.policy import PolicyRouting
from meshroute.agent.wireguard.backend import WireGuardDevice
from meshroute.agent.wireguard.model import REKEY_TIMEOUT_S, PeerStats
from meshroute.core.networkmap.types import MapRoute, NetworkMap
from meshroute.core.status import RequirementCheck, StatusReport
from meshroute.protocol.client import Meta, Update

log = logging.getLogger(__name__)

DEVICE_POLL_S = 1.0  # handshakes and counters, when no endpoint attempt is pending
DEVICE_POLL_FAST_S = 0.1  # while a handshake on a new endpoint is awaited
ADDRESS_POLL_S = 2.0
MANAGEMENT_RESOLVE_S = 60.0
CHECKS_EVERY_S = 30.0  # the host can change under a routing peer (forwarding, routes, firewalls)
REPORT_CHECK_S = 0.25  # how soon the server hears of a change (a failover)
REPORT_EVERY_S = 60.0  # and a report anyway, so it knows the last one still holds
DNS_EXPIRY_S = 1.0  # how often learned addresses past their TTL are looked at
EXIT_OK, EXIT_FAILED, EXIT_REFUSED = 0, 1, 2
STOP_WAIT_S = 2.0


class ServedRoutes(Protocol):
    """The routing-peer side (`firewall.RoutingPeer`, or a fake in unit tests)."""

    checks: list[Check]
    routes: list[ServedRoute]

    async def apply(self, m: NetworkMap) -> bool: ...

    async def refresh_checks(self) -> list[Check]: ...

    def domain_status(self) -> dict[str, dict[str, list[dict[str, Any]]]]: ...

    async def stop(self) -> None: ...


Upstreams = Callable[[], list[tuple[str, int]]]
Overlay = Callable[[], Sequence[ipaddress.IPv4Network | ipaddress.IPv6Network]]


def _routing_peer(cfg: AgentConfig, ledger: Ledger, upstreams: Upstreams, overlay: Overlay) -> ServedRoutes:
    """`upstreams`: the host's own name servers while the client side points resolv.conf at its
    interceptor (the forwarder must not ask it); `overlay`: the mesh's networks."""
    return RoutingPeer(
        ledger,
        cfg.interface,
        mtu=cfg.mtu,
        upstreams=upstreams,
        overlay=overlay,
        dns_grace=cfg.dns_grace,
        dns_cap=cfg.dns_cap,
    )


def _domain_routes(cfg: AgentConfig, ledger: Ledger, changed: Callable[[], Awaitable[None]]) -> DomainRoutes:
    return DomainRoutes(
        ledger,
        cfg.interface,
        changed,
        grace=cfg.dns_grace,
        cap=cfg.dns_cap,
        record=cfg.state_dir / LEARNED_FILE,
    )


class Probes(Protocol):
    async def bind(self, addresses: list[str], device: str) -> None: ...

    def send(self, address: str, seq: int) -> None: ...

    def close(self) -> None: ...


@dataclass(slots=True)
class System:
    """The agent's doors to the host (DESIGN rule 5): real ones in `runtime`, fakes in tests."""

    netlink: NetlinkOps
    install_device: Callable[[AgentConfig, Ledger, NetlinkOps, str], Awaitable[WireGuardDevice]] = (
        lifecycle.install_device
    )
    probes: Callable[[Callable[[str, int, float], None]], Probes] = ProbeSocket
    routing: Callable[[str, Ledger], KernelRouting] = PolicyRouting
    routing_peer: Callable[[AgentConfig, Ledger, Upstreams, Overlay], ServedRoutes] = _routing_peer
    domains: Callable[[AgentConfig, Ledger, Callable[[], Awaitable[None]]], DomainRoutes] = _domain_routes


class Agent:
    def __init__(
        self,
        cfg: AgentConfig,
        store: IdentityStore,
        system: System,
        link_factory: Callable[[Callable[[], Meta]], ManagementLink],
        version: str = "",
    ) -> None:
        self.cfg = cfg
        self.store = store
        self.system = system
        self.netlink = system.netlink
        self.version = version
        self.ledger = Ledger(cfg.state_dir)
        self.selector = EndpointSelector()
        self.tracker = ProbeTracker(cfg.probe_down_after)
        self.probes = system.probes(self._answered)
        self.link = link_factory(self._meta)
        self.device: WireGuardDevice | None = None
        self.wg: WireGuardReconciler | None = None
        self.addresses: AddressReconciler | None = None
        self.map: NetworkMap | None = None
        self.local: list[LocalAddress] = []
        self.own_endpoints: list[str] = []
        self.stats: dict[str, PeerStats] = {}
        self._suspected: set[str] = set()
        self.routes = ClientRoutes(cfg.state_dir, system.routing(cfg.interface, self.ledger))
        self.domains = system.domains(cfg, self.ledger, self._domains_changed)
        self.served = system.routing_peer(
            cfg, self.ledger, self.domains.host_upstreams, self._overlay_networks
        )
        self.routes.learned = self.domains.addresses
        self._reconciling = asyncio.Lock()  # the loops and DNS answers reconcile one at a time
        self._dns_failing = False
        self._stopping = False  # teardown began: no reconcile may start any more
        self._background: set[asyncio.Task[None]] = set()
        self._checks_due = 0.0
        self.management: list[str] = []  # the server's addresses: they keep the underlay path
        self._management_resolved = 0.0
        self._replan = False  # a probe answer changed a candidate's health
        self._reported: tuple[StatusReport, int] | None = None  # last sent, with the link's full maps
        self._report_due = 0.0
        self.started = time.time()

    # -- start and stop ------------------------------------------------------------------------
    async def prepare(self) -> None:
        """Before the server is contacted: remove leftovers, then check what can be checked."""
        removed = await lifecycle.remove_leftovers(self.ledger, self.netlink)
        if removed:
            log.warning("removed what an earlier run left behind: %s", ", ".join(removed))
        await lifecycle.preflight(self.cfg, self.netlink)
        await self._refresh_local()
        await self._resolve_management()

    async def run(self, stop: asyncio.Event) -> int:
        tasks = {
            asyncio.create_task(self.link.run(self._apply), name="link"),
            asyncio.create_task(self._loop(self._probe_step, self._probe_interval), name="probes"),
            asyncio.create_task(self._loop(self._device_step, self._device_interval), name="device"),
            asyncio.create_task(self._loop(self._address_step, lambda: ADDRESS_POLL_S), name="addresses"),
            asyncio.create_task(self._loop(self._report_step, lambda: REPORT_CHECK_S), name="reports"),
            asyncio.create_task(self._loop(self.domains.expire, lambda: DNS_EXPIRY_S), name="dns expiry"),
        }
        stopping = asyncio.create_task(stop.wait(), name="stop")
        done, _ = await asyncio.wait({*tasks, stopping}, return_when=asyncio.FIRST_COMPLETED)
        self.link.close()
        for task in (*tasks, stopping):
            task.cancel()
        # Bounded: whatever does not end in time must not keep the teardown from running.
        _, stuck = await asyncio.wait({*tasks, stopping}, timeout=STOP_WAIT_S)
        for task in stuck:
            log.warning("%s did not stop in time; removing what was installed anyway", task.get_name())
        code = EXIT_OK
        for task in done - {stopping}:
            exc = task.exception()
            if isinstance(exc, LinkRefused):
                log.error("%s", exc)
                code = EXIT_REFUSED
            elif isinstance(exc, lifecycle.StartupError):
                log.error("%s", exc)
                code = EXIT_FAILED
            elif exc is not None:
                log.error("stopping after an unexpected error in %s: %r", task.get_name(), exc)
                code = EXIT_FAILED
        await self.teardown()
        return code

    async def teardown(self) -> None:
        """Remove everything this run installed. A reconcile in progress finishes first (bounded),
        none starts after; one step that fails does not keep the others from running."""
        self._stopping = True
        try:
            await asyncio.wait_for(self._reconciling.acquire(), STOP_WAIT_S)
            locked = True
        except TimeoutError:
            log.warning("a reconcile did not finish in time; removing what was installed anyway")
            locked = False
        try:
            self.probes.close()
            for name, step in (
                ("the DNS set-up", self.domains.close),
                ("the routing-peer firewall", self.served.stop),
                ("the routes", self.routes.teardown),
            ):
                try:
                    await step()
                except Exception as exc:
                    log.warning("could not remove %s: %s", name, exc)
            if self.device is not None:
                await lifecycle.remove_device(self.device, self.ledger, self.netlink)
                log.info("removed WireGuard interface %s", self.device.interface)
                self.device = None
        finally:
            if locked:
                self._reconciling.release()

    # -- the map -------------------------------------------------------------------------------
    async def _apply(self, update: Update) -> None:
        m = update.map
        if self.device is None:
            stored = self.store.load()
            assert stored is not None, "a map arrives only after login"
            key = stored.private_key
            self.device = await self.system.install_device(self.cfg, self.ledger, self.netlink, key)
            self.wg = WireGuardReconciler(self.device)
            self.addresses = AddressReconciler(self.netlink, self.cfg.interface)
        self.map = m
        me = m.self_config.key
        self.selector.set_peers(
            {p.key: order_candidates(p.endpoints, self.local) for p in m.peers if p.key != me}, time.time()
        )
        self.routes.update(m, self._health_of, self._overlay_networks())
        self._track_candidates()
        try:
            await self._reconcile()
        except Exception as exc:
            # The map is kept: the device loop retries until the host takes it.
            log.warning("could not apply serial %d yet (%s); retrying", m.serial, exc)
            return
        log.debug(
            "applied serial %d (%s): %d peers", m.serial, "full" if update.full else "delta", len(m.peers)
        )

    async def _reconcile(self, recreate: Collection[str] = ()) -> None:
        """Bring WireGuard and the interface addresses in line with the map (only what differs)."""
        async with self._reconciling:
            if not self._stopping:
                await self._reconcile_now(recreate)

    async def _reconcile_now(self, recreate: Collection[str], routes_only: bool = False) -> None:
        """`routes_only`: the AllowedIPs and kernel routes of the plan, nothing else (a DNS answer
        taught an address: the answer waits for exactly that)."""
        assert self.map is not None and self.wg is not None and self.addresses is not None
        identity = self.link.identity
        assert identity is not None, "a map arrives only after login"
        desired = wireguard_peers(self.map, self.selector.endpoint, self.routes.plan.allowed)
        if recreate or desired != self.wg.owned:
            await self.wg.apply(desired, recreate)
        if routes_only:
            await self.routes.apply_kernel(self.management)
            return
        wanted = overlay_addresses(self.map, prefixlen(identity.ip) or 32, prefixlen(identity.ipv6))
        if wanted != self.addresses.owned:
            await self.addresses.apply(wanted)
            log.info("overlay addresses: %s", ", ".join(sorted(wanted)))
            await self.probes.bind([a.split("/")[0] for a in sorted(wanted)], self.cfg.interface)
        await self.routes.apply_kernel(self.management)
        # before the routing-peer side: a client whose nftables fail still resolves its routes
        await self._sync_domains(identity.ip.split("/")[0])
        if await self.served.apply(self.map):
            await self._refresh_checks()

    async def _sync_domains(self, overlay_ip: str) -> None:
        """The DNS interceptor and the host's resolver in line with the plan; a failure (port 53
        taken, resolv.conf not writable) is logged once and retried with the next reconcile."""
        assert self.map is not None
        try:
            await self.domains.sync(self.routes.plan.groups, self.map, overlay_ip, self._overlay_networks())
        except (OSError, HostDnsError) as exc:
            if not self._dns_failing:
                log.warning("domain routes: cannot set up DNS interception (%s); retrying", exc)
            self._dns_failing = True
            return
        self._dns_failing = False

    async def _domains_changed(self) -> None:
        """A DNS answer (or expiry) changed the learned addresses: route them before it returns.
        Shielded: a query's timeout (or the interceptor closing) must never cut a reconcile in
        half; it then completes without the query waiting for it."""
        if self._stopping or self.wg is None or self.map is None:
            return
        task = asyncio.create_task(self._route_learned(), name="route learned addresses")
        self._background.add(task)
        task.add_done_callback(self._finished)
        await asyncio.shield(task)

    async def _route_learned(self) -> None:
        async with self._reconciling:
            if not self._stopping:
                self.routes.replan()
                await self._reconcile_now((), routes_only=True)

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._background.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.warning("routing learned addresses failed (%s); retrying", task.exception())

    async def _refresh_checks(self) -> None:
        """The routing-peer requirements; failed ones are logged when they change."""
        before = {(c.name, c.ok) for c in self.served.checks}
        checks = await self.served.refresh_checks()
        self._checks_due = time.monotonic() + CHECKS_EVERY_S
        for check in checks:
            if not check.ok and (check.name, check.ok) not in before:
                log.warning("routing peer requirement %s fails: %s", check.name, check.detail)

    # -- routes ------------------------------------------------------------------------------
    def _overlay_networks(self) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
        identity = self.link.identity
        cidrs = [identity.ip, identity.ipv6] if identity else []
        return [ipaddress.ip_interface(c).network for c in cidrs if c]

    def _health_of(self, route: MapRoute) -> CandidateHealth:
        """What the probes and WireGuard know of a candidate's routing peer (see scoring)."""
        track = self.tracker.tracks.get(route.peer_key)
        path = self.selector.paths.get(route.peer_key)
        confirmed = path is not None and path.confirmed
        if track is None:
            return candidate_health(None, None, confirmed)
        return candidate_health(track.up, track.rtt_ms, confirmed)

    def _track_candidates(self) -> None:
        """Probe exactly the routing peers of the routes in use."""
        if self.map is None:
            return
        by_key = {p.key: p.ip for p in self.map.peers}
        self.tracker.set_targets({k: by_key[k] for k in self.routes.plan.probe_peers if k in by_key})

    async def _replan_and_apply(self) -> None:
        self._replan = False
        self.routes.replan()
        self._track_candidates()
        if self.wg is not None and self.map is not None:
            await self._reconcile()

    async def _resolve_management(self) -> None:
        """The server's addresses (a host name is looked up again every minute)."""
        host = self.cfg.server.rpartition(":")[0].strip("[]")
        try:
            self.management = [str(ipaddress.ip_address(host))]
            return
        except ValueError:
            pass
        if time.monotonic() - self._management_resolved < MANAGEMENT_RESOLVE_S and self.management:
            return
        try:
            infos = await asyncio.get_running_loop().getaddrinfo(host, None, type=socket.SOCK_STREAM)
        except OSError as exc:
            log.debug("cannot resolve the management server %s: %s", host, exc)
            return
        self.management = sorted({str(info[4][0]) for info in infos})
        self._management_resolved = time.monotonic()

    # -- loops ---------------------------------------------------------------------------------
    async def _loop(self, step: Callable[[], Awaitable[None]], interval: Callable[[], float]) -> None:
        """A step that fails is logged and retried next time: the data plane keeps running."""
        failing = False
        while True:
            await asyncio.sleep(interval())
            try:
                await step()
                failing = False
            except (lifecycle.StartupError, LinkRefused):
                raise
            except Exception as exc:
                if not failing:
                    log.warning("%s failed (%s); retrying", getattr(step, "__name__", "step"), exc)
                failing = True

    def _probe_interval(self) -> float:
        return self.cfg.probe_interval

    def _device_interval(self) -> float:
        return DEVICE_POLL_FAST_S if self.selector.pending() else DEVICE_POLL_S

    async def _probe_step(self) -> None:
        sends, transitions = self.tracker.tick(time.monotonic())
        for address, seq in sends:
            self.probes.send(address, seq)
        for t in transitions:
            self._log_transition(t)
        if transitions or self._replan:  # failover is decided here, at probe speed
            await self._replan_and_apply()

    def _answered(self, address: str, seq: int, now: float) -> None:
        transition = self.tracker.answer(address, seq, now)
        if transition is not None:
            self._log_transition(transition)
            self._replan = True

    def _log_transition(self, t: Transition) -> None:
        peer = self._peer_name(t.key)
        if t.up:
            log.info("peer %s answers probes", peer)
        else:
            log.warning("peer %s stopped answering probes (%d missed)", peer, self.tracker.down_after)

    def _peer_name(self, key: str) -> str:
        if self.map is not None:
            for p in self.map.peers:
                if p.key == key:
                    return f"{p.name} ({p.ip})"
        return key

    async def _device_step(self) -> None:
        if self.device is None or self.map is None:
            return
        # The handshakes are read and acted on under one hold of the lock: a recreate decided on
        # stats read before a handshake landed (while another reconcile held the lock) would drop
        # the session the remote peer just made, and a peer that cannot reach us first would wait
        # for WireGuard's 15 s rekey.
        async with self._reconciling:
            if self._stopping:
                return
            step = await self._endpoint_step()
            self.routes.replan()
            self._track_candidates()
            await self._reconcile_now(step.recreate)
        by_key = {p.key: p for p in self.map.peers}
        for key in step.kick:
            peer = by_key.get(key)
            if peer is not None:
                self.probes.send(peer.ip, 0)  # any packet starts a handshake; the answer is ignored

    async def _endpoint_step(self) -> Step:
        assert self.device is not None
        self.stats = {s.public_key: s for s in await self.device.peers()}
        now_mono, now = time.monotonic(), time.time()
        for key, track in self.tracker.tracks.items():
            # A probed peer silent for a while may have moved: look for it again, once per outage.
            if track.up is not False:
                self._suspected.discard(key)
            elif key not in self._suspected and now_mono - (track.changed_at or now_mono) > REKEY_TIMEOUT_S:
                self._suspected.add(key)
                self.selector.suspect(key, now)
        step = self.selector.step(now, self.stats)
        for key in step.confirmed:
            log.info("peer %s reachable at %s", self._peer_name(key), self.selector.endpoint(key))
        return step

    def status_report(self) -> StatusReport:
        return StatusReport(
            routes=tuple(self.domains.report(g.use) for g in self.routes.plan.groups),
            checks=tuple(RequirementCheck(c.name, c.ok, c.detail) for c in self.served.checks),
        )

    async def _report_step(self) -> None:
        """Report when something changed, after a reconnect, and every minute."""
        if self.map is None:
            return
        report = self.status_report()
        current = (report, self.link.status.full_maps)
        if current == self._reported and time.monotonic() < self._report_due:
            return
        if await self.link.report_status(report):
            self._reported = current
            self._report_due = time.monotonic() + REPORT_EVERY_S

    async def _address_step(self) -> None:
        await self._resolve_management()
        if self.served.checks and time.monotonic() >= self._checks_due:
            await self._refresh_checks()
        if await self._refresh_local():
            log.info("underlay endpoints now %s", ", ".join(self.own_endpoints) or "none")
            await self.link.report()

    async def _refresh_local(self) -> bool:
        try:
            self.local = await self.netlink.local_addresses()
        except NetlinkFailure as exc:
            log.debug("cannot list local addresses: %s", exc)
            return False
        own = own_candidates(self.local, self.cfg.listen_port, self.cfg.endpoints, self.cfg.interface)
        changed = own != self.own_endpoints
        self.own_endpoints = own
        return changed

    def _meta(self) -> Meta:
        import platform

        return Meta(
            hostname=self.cfg.hostname,
            kernel_version=platform.release(),
            agent_version=self.version,
            endpoints=list(self.own_endpoints),
            ipv6=ipv6_enabled(),
        )

    # -- status and commands (control socket) ---------------------------------------------------
    def status(self) -> dict[str, Any]:
        return status.build(self)

    def routes_list(self) -> list[dict[str, Any]]:
        names = {p.key: p.name for p in self.map.peers} if self.map else {}
        groups = self.routes.describe(names)
        for view, group in zip(self.routes.plan.groups, groups, strict=True):
            if is_domain_group(view):
                group["learned"] = self.domains.describe(view.ha_id)
        return groups

    async def routes_select(self, ids: list[str], append: bool = False, all: bool = False) -> list[str]:
        """Selects NetIDs (or all); the routes are in place when this returns."""
        if all:
            self.routes.select_all()
            errors: list[str] = []
        else:
            errors = self.routes.select(list(ids), append)
        await self._replan_and_apply()
        if errors and len(errors) == len(ids):
            raise CommandError("; ".join(errors))
        return errors

    async def routes_deselect(self, ids: list[str], all: bool = False) -> list[str]:
        if all:
            self.routes.deselect_all()
            errors: list[str] = []
        else:
            errors = self.routes.deselect(list(ids))
        await self._replan_and_apply()
        if errors and len(errors) == len(ids):
            raise CommandError("; ".join(errors))
        return errors
