"""Domain routes on a client at run time: the interceptor, the host's resolver pointed at it, and
the addresses learned from the answers, which the route plan turns into /32 (/128) kernel routes
and AllowedIPs of the HA group's routing peer.

The engine calls `sync` after every plan (with the plan's groups): it starts the interceptor and
points the host at it while some domain route is selected, tells the interceptor which routing
peer's forwarder answers for each HA group, and stops and restores everything when none is left.
An answer changes the learned addresses (`on_answer`); when it adds or removes one, `changed` (the
engine's replan and reconcile) runs before the interceptor hands the answer to the application, so
the application's first packet already takes the tunnel.

After a failover (the group's routing peer changes, or one is usable again) the names the group
learned are asked again at the new routing peer's forwarder (`Interceptor.replay`): its nftables
sets then hold the addresses the client routes through it, so connections to them keep working
without waiting for the application's next lookup. An answer still on its way from the old routing
peer when the group failed over is asked again at the new one, too (the interceptor does this).

Expiry (`expire`, every second): learned addresses past their TTL + grace are removed unless a
connection to them is in conntrack (the agent's own nftables table on every peer uses `ct state`,
so the kernel tracks connections in the agent's namespace); such addresses are looked at again
30 s later. An address that drops out of a later answer goes the same way: at once when unused.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import logging
import time
from collections.abc import Awaitable, Callable, Collection, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any, Protocol

from meshroute.agent.dns.answers import Address, Answer
from meshroute.agent.dns.forwarder import FORWARDER_PORT
from meshroute.agent.dns.hostconfig import (
    MODE_RESOLVED,
    HostDnsError,
    ManagedResolvConf,
    ResolvedLink,
    detect,
)
from meshroute.agent.dns.interceptor import DNS_PORT, INTERCEPTOR_ADDRESS, Interceptor
from meshroute.agent.dns.inuse import ConntrackUnavailable, connections_to
from meshroute.agent.dns.learned import DEFAULT_CAP, DEFAULT_GRACE_S, LearnedAddresses
from meshroute.agent.dns.match import DomainTable
from meshroute.agent.dns.transport import Server
from meshroute.agent.identity import write_private
from meshroute.agent.ledger import Ledger
from meshroute.agent.routes.plan import GroupView
from meshroute.core.model import NetworkType
from meshroute.core.networkmap.types import MapPeer, NetworkMap
from meshroute.core.status import RouteUse

Network = ipaddress.IPv4Network | ipaddress.IPv6Network

log = logging.getLogger(__name__)

LEARNED_FILE = "learned-addresses.json"  # in the state directory
RECORD_VERSION = 1
RECORD_REFRESH_S = 10.0  # expiries that only moved on are written at most this often

InUse = Callable[[Collection[str]], Awaitable[frozenset[str]]]


class HostDns(Protocol):
    """Where the host's resolver is pointed (`hostconfig`, or a fake in unit tests)."""

    @property
    def installed(self) -> bool: ...

    @property
    def upstreams(self) -> list[Server]: ...


def is_domain_group(group: GroupView) -> bool:
    return group.candidates[0].network_type == NetworkType.DOMAIN


class DomainRoutes:
    def __init__(
        self,
        ledger: Ledger,
        interface: str,
        changed: Callable[[], Awaitable[None]],
        *,
        grace: float = DEFAULT_GRACE_S,
        cap: int = DEFAULT_CAP,
        host: ManagedResolvConf | ResolvedLink | None = None,
        listen: Sequence[Server] | None = None,
        port: int = DNS_PORT,
        in_use: InUse = connections_to,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
        record: Path | None = None,
        forwarder_of: Callable[[MapPeer], Server] = lambda p: (p.ip, FORWARDER_PORT),
    ) -> None:
        self.ledger = ledger
        self.interface = interface
        self.changed = changed
        self.learned = LearnedAddresses(grace=grace, cap=cap)
        self.host = host
        self.listen = list(listen) if listen is not None else None
        self.port = port  # without `listen`: the interceptor's port (tests: 0)
        self.in_use = in_use
        self.clock = clock
        self.forwarder_of = forwarder_of  # a routing peer's forwarder (tests: elsewhere)
        self.interceptor: Interceptor | None = None
        self.keep: dict[str, bool] = {}  # HA ID -> keep_route, for the selected domain groups
        self.targets: dict[str, Server | None] = {}  # HA ID -> its routing peer's forwarder
        self._replays: set[asyncio.Task[int]] = set()
        self._conntrack_warned = False
        self.wall = wall
        self.record = record  # the learned addresses across restarts (None: memory only)
        self._restored: set[str] = set()  # groups read from the record, not asked again yet
        self._dirty = False  # the learned set changed: write the record within a second
        self._refreshed = False  # only expiries moved on: write it within RECORD_REFRESH_S
        self._written = 0.0
        self._writing = asyncio.Lock()
        if record is not None:
            self._load(record)

    @property
    def active(self) -> bool:
        return self.interceptor is not None

    def host_upstreams(self) -> list[Server]:
        """The host's own name servers while its resolver points at the interceptor (else none:
        the host's resolv.conf is as it was)."""
        if self.host is not None and self.host.installed and isinstance(self.host, ManagedResolvConf):
            return self.host.upstreams
        return []

    def addresses(self, ha_id: str) -> frozenset[str]:
        """Host prefixes learned for a group: what the plan routes for it."""
        return self.learned.addresses(ha_id)

    # -- the plan's groups ---------------------------------------------------------------------
    async def sync(
        self, groups: Sequence[GroupView], m: NetworkMap, overlay_ip: str, overlay: Sequence[Network] = ()
    ) -> None:
        """Interceptor, host set-up and per-group forwarders in line with the plan. HostDnsError
        or OSError: the engine retries with the next reconcile. `overlay`: the mesh's networks
        (an answer's address inside them is never routed: it would take a peer's own address)."""
        wanted = [g for g in groups if g.installed and is_domain_group(g)]
        for ha in set(self.learned.groups()) - {g.ha_id for g in wanted}:
            self.learned.forget(ha)  # deselected or gone: nothing of it is routed any more
            self._dirty = True
        self._restored &= {g.ha_id for g in wanted}
        if not wanted:
            await self.stop()
            return
        now = self.clock()
        for g in wanted:
            keep = g.candidates[0].keep_route
            if self.keep.get(g.ha_id, keep) != keep:
                self.learned.set_keep_route(g.ha_id, keep, now)
                self._replay(g.ha_id)  # the routing peer rebuilt the route's set: fill it again
                self._dirty = True
            self.keep[g.ha_id] = keep
        self.keep = {g.ha_id: self.keep[g.ha_id] for g in wanted}
        peers = {p.key: p for p in m.peers}
        targets: dict[str, Server | None] = {}
        for g in wanted:
            chosen = next((r for r in g.candidates if r.id == g.chosen), None)
            peer = peers.get(chosen.peer_key) if chosen is not None else None
            targets[g.ha_id] = self.forwarder_of(peer) if peer is not None else None
        for ha, target in targets.items():
            if target is not None and ha in self.targets and self.targets[ha] != target:
                self._replay(ha)  # a failover, or a routing peer usable again
                self._restored.discard(ha)  # that asks for the restored names too
        self.targets = targets
        await self._follow_overlay(overlay_ip)
        await self._start(overlay_ip)
        assert self.interceptor is not None
        self.interceptor.overlay = list(overlay)
        self.interceptor.table = _table(wanted)
        for ha in sorted(self._restored):
            if targets.get(ha) is not None:
                # what this client routes from before the restart: the routing peer's sets too
                self._restored.discard(ha)
                self._replay(ha)
        if isinstance(self.host, ManagedResolvConf) and self.host.drifted():
            # queries would bypass the interceptor (and route names leak to the underlay)
            log.warning(
                "%s was rewritten by something else: pointing it at the interceptor again", self.host.path
            )
            self.host.adopt()
            self.interceptor.set_upstreams(self.host.upstreams)
        if isinstance(self.host, ResolvedLink):
            await self.host.apply(overlay_ip, self.interceptor.table.zones())

    async def _follow_overlay(self, overlay_ip: str) -> None:
        """With systemd-resolved the interceptor listens on the overlay address: when the server
        gives this peer another one, it moves there (resolved is pointed there right after)."""
        icpt = self.interceptor
        if icpt is None or self.listen is not None or not isinstance(self.host, ResolvedLink):
            return
        if icpt.bound and icpt.bound[0][0] != overlay_ip:
            await icpt.stop()
            self.interceptor = None
            log.info("overlay address now %s: moving the DNS interceptor there", overlay_ip)

    async def _start(self, overlay_ip: str) -> None:
        if self.interceptor is not None:
            return
        host = self.host
        if host is None:
            host = self.host = (
                ResolvedLink(self.ledger, self.interface)
                if detect() == MODE_RESOLVED
                else ManagedResolvConf(self.ledger)
            )
        listen = self.listen
        if listen is None:
            address = overlay_ip if host.mode == MODE_RESOLVED else INTERCEPTOR_ADDRESS
            listen = [(address, self.port)]
        interceptor = Interceptor(self._forwarder, self._on_answer, host.upstreams)
        await interceptor.start(listen)
        if isinstance(host, ManagedResolvConf):
            try:
                host.install()
            except HostDnsError:
                await interceptor.stop()
                raise
            interceptor.set_upstreams(host.upstreams)
        self.interceptor = interceptor
        log.info("DNS interceptor on %s", ", ".join(f"{h}:{p}" for h, p in interceptor.bound))

    async def close(self) -> None:
        """The agent stops: what was learned is written down for the next start (applications
        still hold those answers), then everything stops."""
        await self.flush(force=True)
        await self.stop(forget_record=False)

    async def stop(self, forget_record: bool = True) -> None:
        """Interceptor closed and the host's resolver as it was; nothing learned is kept (nor,
        unless the agent is only stopping, in the record)."""
        for task in self._replays:
            if task is not asyncio.current_task():
                task.cancel()
        self._replays.clear()
        if isinstance(self.host, ManagedResolvConf):
            self.host.restore()
        elif isinstance(self.host, ResolvedLink):
            await self.host.revert()
        if self.interceptor is not None:
            await self.interceptor.stop()
            self.interceptor = None
            log.info("DNS interceptor stopped")
        for ha in self.learned.groups():
            self.learned.forget(ha)
        self.keep.clear()
        self.targets.clear()
        self._restored.clear()
        async with self._writing:  # after a write under way, never before it
            if forget_record and self.record is not None:
                self.record.unlink(missing_ok=True)
            self._dirty = self._refreshed = False

    # -- the interceptor's callbacks -----------------------------------------------------------
    async def _forwarder(self, ha_id: str) -> Server | None:
        return self.targets.get(ha_id)

    async def _on_answer(self, ha_id: str, answer: Answer) -> frozenset[Address]:
        """Learn the answer's addresses (routed before this returns); returns those the group could
        not take (at its cap with KeepRoute): the interceptor keeps them from the application."""
        keep = self.keep.get(ha_id)
        if keep is None:
            return frozenset()  # the group went away while the query was out: no route name now
        busy: frozenset[str] = frozenset()
        dropping = [] if keep else self.learned.dropping(ha_id, answer)
        if dropping:
            busy = await self._busy(dropping)
        result = self.learned.learn_answer(ha_id, answer, self.clock(), keep, lambda a: a in busy)
        if result.changed:
            self._dirty = True
        else:
            self._refreshed = True
        if result.refused:
            log.warning(
                "%s: %d address(es) not routed and left out of the answer: the route holds its maximum of %d",
                answer.name,
                len(result.refused),
                self.learned.cap,
            )
        if result.changed:
            await self.changed()
        return frozenset(ipaddress.ip_address(a) for a in result.refused)

    def _replay(self, ha_id: str) -> None:
        questions = self.learned.questions(ha_id)
        if not questions or self.interceptor is None:
            return
        task = asyncio.create_task(self.interceptor.replay(ha_id, questions), name=f"replay {ha_id}")
        self._replays.add(task)
        task.add_done_callback(self._replays.discard)

    # -- expiry --------------------------------------------------------------------------------
    async def expire(self) -> None:
        """Remove what is past its TTL + grace and unused (the engine calls this every second),
        and write the record when something changed since the last second."""
        await self.flush()
        now = self.clock()
        due = self.learned.due(now)
        if not due:
            return
        busy = await self._busy(due)
        removed = self.learned.expire(now, lambda a: a in busy)
        self._dirty = self._dirty or bool(removed)
        if removed:
            count = sum(len(v) for v in removed.values())
            log.info("%d learned address(es) expired", count)
            await self.changed()

    async def _busy(self, addresses: Collection[str]) -> frozenset[str]:
        try:
            return await self.in_use(addresses)
        except ConntrackUnavailable as exc:
            if not self._conntrack_warned:
                log.warning("%s: learned addresses expire on their TTL alone", exc)
                self._conntrack_warned = True
            return frozenset()

    # -- the record across restarts ------------------------------------------------------------
    async def flush(self, force: bool = False) -> None:
        """Write the record when the learned set changed, when only expiries moved on and the last
        write is RECORD_REFRESH_S old, or (`force`) whenever either happened. The file is written
        off the event loop; a failure is logged (it only costs continuity)."""
        async with self._writing:
            if self.record is None or not (self._dirty or self._refreshed):
                return
            now = self.clock()
            if not (force or self._dirty or now - self._written >= RECORD_REFRESH_S):
                return
            wall = self.wall()
            groups = {
                ha: {"keep_route": self.keep.get(ha, False), "entries": self.learned.dump(ha, now, wall)}
                for ha in self.learned.groups()
            }
            text = json.dumps({"version": RECORD_VERSION, "groups": groups}) + "\n"
            self._dirty = self._refreshed = False
            self._written = now
            try:
                await asyncio.to_thread(write_private, self.record, text)
            except OSError as exc:
                log.warning("cannot write %s: %s", self.record, exc)

    def _load(self, record: Path) -> None:
        """The record of the last run: routed again from the first plan (applications still hold
        those answers), and asked again at the routing peer once it is known."""
        try:
            data = json.loads(record.read_text())
            groups = data["groups"] if data.get("version") == RECORD_VERSION else {}
            items = [(str(ha), bool(g["keep_route"]), g["entries"]) for ha, g in groups.items()]
        except FileNotFoundError:
            return
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            log.warning("ignoring %s (%s): learned addresses start empty", record, exc)
            return
        now, wall, count = self.clock(), self.wall(), 0
        for ha, keep, rows in items:
            restored = self.learned.restore(ha, rows if isinstance(rows, list) else [], now, wall)
            if restored:
                self.keep[ha] = keep
                self._restored.add(ha)
                count += restored
        if count:
            log.info("%d learned address(es) of %d domain route(s) restored", count, len(self._restored))

    # -- what status shows -----------------------------------------------------------------------
    def report(self, use: RouteUse) -> RouteUse:
        return replace(use, learned=self.learned.count(use.ha_id))

    def describe(self, ha_id: str) -> dict[str, list[dict[str, Any]]]:
        """Name -> its addresses with the seconds left (None: kept), for `routes list`."""
        return {
            name: [
                {"prefix": v.prefix, "family": v.family, "remaining": v.remaining, "current": v.current}
                for v in views
            ]
            for name, views in self.learned.snapshot(ha_id, self.clock()).items()
        }


def _table(groups: Sequence[GroupView]) -> DomainTable:
    """Pattern -> HA IDs, the group with the lower metric first (the interceptor asks the first
    one that has a routing peer). A pattern this agent cannot read is left out, not fatal."""
    table = DomainTable()
    for g in sorted(groups, key=lambda g: (min(r.metric for r in g.candidates), g.ha_id)):
        for domain in g.domains:
            try:
                table.add(domain, g.ha_id)
            except ValueError as exc:
                log.warning("route %s: domain %r not intercepted: %s", g.net_id, domain, exc)
    return table
