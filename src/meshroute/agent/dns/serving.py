"""A routing peer's domain routes: its DNS forwarder and the addresses it resolved, per route.

`DomainServing` runs `forwarder.Forwarder` on the peer's overlay addresses (port 22054, UDP and
TCP, IPv6 too when the peer has an overlay IPv6) while the map has a domain route this peer
serves. It answers the route's names only, only to the route's allowed sources (the map's dynamic
firewall rules), with the host's resolver: /etc/resolv.conf, or the name servers `upstreams()`
gives (the host's original ones while the client side's interceptor owns /etc/resolv.conf).

Every address it resolves is added, *before* the answer goes out, to the nftables sets of the
routes it was resolved for (`d<j>_v4`/`d<j>_v6`, see firewall/ruleset.py), in one transaction:
the client's first packet to it follows right after the answer. Without KeepRoute an element
times out TTL (already clamped) + grace after the last answer that held it; with KeepRoute it has
no timeout and stays until the route goes. At most `cap` addresses per route: more are refused
(and logged), so a flood of answers cannot grow a set without bound; the forwarder leaves a refused
address out of the client's answer (SERVFAIL if none is left), so no client routes traffic that
would be dropped here.

Expiry is left to the kernel's set timeouts, with no conntrack lookups: a connection opened while
its address was in the set keeps flowing after the element expires, because the forward chain
accepts `ct state established,related` before any set is consulted, and NAT (masquerade or not) is
decided on a flow's first packet only. Only *new* connections to an expired address are dropped,
and a client opens those after asking again (its cached answer expires before the element does,
by the grace period).

The ruleset is replaced as a whole when the map changes. This module keeps its own record of
(route, address) -> expiry, the same as the kernel's (the timeouts it wrote), so the rebuilt table
gets the still-valid elements with their remaining timeouts (`elements`), and the rule structure
alone decides whether to rebuild. A route that stops being served loses its record (the rebuild
that follows empties its set); one whose domains change loses the addresses resolved only for
names it no longer has; one whose KeepRoute changes keeps its addresses with new timeouts.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import math
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import dns.exception
import dns.nameserver

from meshroute.agent.dns.answers import Address, Answer, Network
from meshroute.agent.dns.forwarder import FORWARDER_PORT, Forwarder, HostResolver, Resolver
from meshroute.agent.dns.learned import DEFAULT_CAP, DEFAULT_GRACE_S, DEFAULT_MAX_TTL_S
from meshroute.agent.dns.match import DomainTable, Pattern
from meshroute.agent.dns.transport import Server
from meshroute.agent.firewall.nft import NftOps
from meshroute.agent.firewall.ruleset import (
    DEFAULT_TABLE,
    Element,
    ServedDomainRoute,
    add_elements,
    domain_set_name,
)
from meshroute.core.networkmap.types import NetworkMap

log = logging.getLogger(__name__)

Upstreams = Callable[[], list[tuple[str, int]]]
MAX_NAMES = 16  # names remembered per address, for status only


@dataclass(slots=True)
class _Learned:
    expires: float | None  # monotonic; None: no timeout (KeepRoute)
    names: set[str] = field(default_factory=set)


@dataclass(frozen=True, slots=True)
class _Write:
    route_id: str
    address: Address
    expires: float | None
    name: str
    refresh: bool  # already in the set, with an earlier expiry


class DomainServing:
    """The forwarder and the learned addresses of the domain routes served. ``lock`` serialises
    every change of the sets: a DNS answer's elements and the table's replacement (`RoutingPeer`
    holds it around `set_routes`, `elements` and applying the rebuilt table)."""

    def __init__(
        self,
        nft: NftOps,
        *,
        table: str = DEFAULT_TABLE,
        upstreams: Upstreams | None = None,
        grace: float = DEFAULT_GRACE_S,
        cap: int = DEFAULT_CAP,
        max_ttl: int = DEFAULT_MAX_TTL_S,
        port: int = FORWARDER_PORT,
        resolver: Resolver | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.nft = nft
        self.table = table
        self.upstreams = upstreams
        self.grace = grace
        self.cap = cap
        self.max_ttl = max_ttl
        self.port = port
        self.clock = clock
        self.lock = asyncio.Lock()
        self.routes: list[ServedDomainRoute] = []
        self.forwarder: Forwarder | None = None
        self._given = resolver  # tests; else the host's, from upstreams() or resolv.conf
        self._host: Resolver | None = None
        self._upstreams_used: list[tuple[str, int]] = []
        self._index: dict[str, int] = {}
        self._sources: dict[str, list[Network]] = {}
        self._learned: dict[str, dict[Address, _Learned]] = {}
        self._capped: set[str] = set()
        self._listen: list[Server] = []
        self._failure: str | None = None

    # -- the map -----------------------------------------------------------------------------
    def set_routes(self, routes: Sequence[ServedDomainRoute]) -> bool:
        """The routes served now (with ``lock`` held, just before their table is applied). Drops
        the record of a route that went; a route whose KeepRoute changed keeps its addresses with
        new timeouts (none with KeepRoute, the grace period without: clients still route them).
        True if the kernel's elements must change too: rebuild the table."""
        before = {r.route_id: r for r in self.routes}
        now = {r.route_id: r for r in routes}
        dropped = False
        at = self.clock()
        for rid in list(self._learned):
            if rid not in now:
                dropped = bool(self._learned.pop(rid)) or dropped
                self._capped.discard(rid)
                continue
            if now[rid].domains != before.get(rid, now[rid]).domains:
                dropped = self._keep_matching(rid, now[rid].domains) or dropped
            if now[rid].keep_route != before.get(rid, now[rid]).keep_route:
                for entry in self._learned[rid].values():
                    entry.expires = None if now[rid].keep_route else at + self.grace
                dropped = dropped or bool(self._learned[rid])
        self.routes = list(routes)
        self._index = {r.route_id: i for i, r in enumerate(self.routes)}
        self._sources = {
            r.route_id: [ipaddress.ip_network(s, strict=False) for s in r.sources] for r in routes
        }
        return dropped

    def _keep_matching(self, rid: str, domains: Sequence[str]) -> bool:
        """The route's domains changed: forget the addresses resolved only for names it no longer
        has (the route grants its names, nothing else). True if any went."""
        patterns = []
        for domain in domains:
            try:
                patterns.append(Pattern.parse(domain))
            except ValueError:
                continue
        learned = self._learned[rid]
        gone = [a for a, e in learned.items() if not any(p.matches(n) for p in patterns for n in e.names)]
        for address in gone:
            del learned[address]
        if len(learned) < self.cap:
            self._capped.discard(rid)
        return bool(gone)

    def elements(self) -> dict[str, list[Element]]:
        """Every still-valid learned address as set name -> elements with the remaining timeouts,
        for the table being rebuilt (with ``lock`` held)."""
        now = self.clock()
        out: dict[str, list[Element]] = {}
        for rid, index in self._index.items():
            for address, entry in sorted(self._valid(rid, now).items(), key=lambda item: _order(item[0])):
                name = domain_set_name(index, address.version)
                out.setdefault(name, []).append((str(address), _timeout(entry.expires, now)))
        return out

    async def serve(self, m: NetworkMap, overlay: Sequence[Network]) -> None:
        """Bring the forwarder in line with the routes of the last `set_routes`: started on the
        overlay addresses of ``m`` when there is a route, updated, or stopped when none is left. A
        failure to start is logged (once per reason) and tried again at the next call."""
        if not self.routes:
            await self._stop_forwarder()
            return
        me = m.self_config
        listen = [(me.ip, self.port), *([(me.ipv6, self.port)] if me.ipv6 else [])]
        if self.forwarder is not None and listen != self._listen:
            await self._stop_forwarder()  # the peer's overlay address changed
        try:
            resolver = self._current_resolver()
            forwarder = self.forwarder or await self._start(resolver, listen)
        except (OSError, dns.exception.DNSException) as exc:
            if str(exc) != self._failure:
                log.warning("cannot start the DNS forwarder for domain routes (retrying): %s", exc)
            self._failure = str(exc)
            return
        self._failure = None
        forwarder.resolver = resolver
        forwarder.table = self._table()
        forwarder.sources = list(overlay)
        forwarder.overlay = list(overlay)

    async def _start(self, resolver: Resolver, listen: list[Server]) -> Forwarder:
        forwarder = Forwarder(self.on_resolved, resolver, permitted=self._permitted, max_ttl=self.max_ttl)
        # freebind: the overlay address may be added to the interface a moment later
        await forwarder.start(listen, freebind=True)
        self.forwarder, self._listen = forwarder, listen
        log.info("DNS forwarder for domain routes on %s", ", ".join(f"{h}:{p}" for h, p in self.listening))
        return forwarder

    async def stop(self) -> None:
        """The forwarder closed and every record dropped (the caller removes the table)."""
        await self._stop_forwarder()
        async with self.lock:
            self.set_routes([])
            self._learned.clear()

    @property
    def listening(self) -> list[Server]:
        return self.forwarder.bound if self.forwarder is not None else []

    # -- answers -----------------------------------------------------------------------------
    async def on_resolved(self, route_ids: Sequence[str], answer: Answer) -> frozenset[Address]:
        """The forwarder's hook: the answer's addresses into the sets of ``route_ids``, in one nft
        transaction, before the answer is sent. Raises (the client gets SERVFAIL) if nft fails;
        the record changes only once nft took the elements. Returns the addresses no set of
        ``route_ids`` holds (their routes are at the cap, or no longer served): the forwarder
        leaves them out of the answer, since traffic to them would be dropped here."""
        if answer.ttl is None:
            return frozenset()
        async with self.lock:
            now = self.clock()
            writes: list[_Write] = []
            refused = answer.all_addresses()
            for rid in route_ids:
                route_writes, route_refused = self._plan(rid, answer, answer.ttl, now)
                writes += route_writes
                refused &= route_refused
            new: dict[str, list[Element]] = {}
            refresh: dict[str, list[Element]] = {}
            for w in writes:
                name = domain_set_name(self._index[w.route_id], w.address.version)
                (refresh if w.refresh else new).setdefault(name, []).append(
                    (str(w.address), _timeout(w.expires, now))
                )
            if writes:
                await self.nft.apply(add_elements(new, refresh, table=self.table))
            for w in writes:
                entry = self._learned.setdefault(w.route_id, {}).setdefault(w.address, _Learned(w.expires))
                entry.expires = w.expires
                if len(entry.names) < MAX_NAMES:
                    entry.names.add(w.name)
            return refused

    def _plan(
        self, rid: str, answer: Answer, ttl: int, now: float
    ) -> tuple[list[_Write], frozenset[Address]]:
        """What one route must write for an answer: new addresses (up to the cap) and those whose
        expiry moves on by more than half the grace period (a refresh costs a delete, ~13 ms; an
        element still outlives the answer's TTL by half the grace); and the addresses it cannot
        take. Names of addresses already held are noted here."""
        index = self._index.get(rid)
        if index is None:  # not served any more (the table changed while the query was out)
            return [], answer.all_addresses()
        route = self.routes[index]
        expires = None if route.keep_route else now + min(max(ttl, 0), self.max_ttl) + self.grace
        held = self._valid(rid, now)
        slack = self.grace / 2
        writes: list[_Write] = []
        refused: list[Address] = []
        added = 0  # new addresses only: a refresh takes no room
        for address in sorted(answer.all_addresses(), key=_order):
            old = held.get(address)
            if old is None:
                if len(held) + added >= self.cap:
                    refused.append(address)
                    continue
                added += 1
            elif old.expires is None or (expires is not None and expires <= old.expires + slack):
                if len(old.names) < MAX_NAMES:
                    old.names.add(answer.name)
                continue
            writes.append(_Write(rid, address, expires, answer.name, refresh=old is not None))
        if refused and rid not in self._capped:
            log.warning(
                "domain route %s holds %d addresses (the cap): %s for %s refused",
                rid,
                self.cap,
                ", ".join(map(str, refused)),
                answer.name,
            )
        if refused:
            self._capped.add(rid)
        return writes, frozenset(refused)

    def _valid(self, rid: str, now: float) -> dict[Address, _Learned]:
        """The route's record without what expired (the kernel dropped those elements itself)."""
        learned = self._learned.get(rid)
        if learned is None:
            return {}
        for address in [a for a, e in learned.items() if e.expires is not None and e.expires <= now]:
            del learned[address]
        if len(learned) < self.cap:
            self._capped.discard(rid)
        return learned

    # -- status ------------------------------------------------------------------------------
    def status(self) -> dict[str, dict[str, list[dict[str, Any]]]]:
        """Route ID -> name -> its addresses with the seconds left (None: kept), every served
        domain route included."""
        now = self.clock()
        out: dict[str, dict[str, list[dict[str, Any]]]] = {}
        for route in self.routes:
            names: dict[str, list[dict[str, Any]]] = {}
            for address, entry in sorted(
                self._valid(route.route_id, now).items(), key=lambda i: _order(i[0])
            ):
                remaining = None if entry.expires is None else round(entry.expires - now, 1)
                for name in sorted(entry.names):
                    names.setdefault(name, []).append({"address": str(address), "remaining": remaining})
            out[route.route_id] = dict(sorted(names.items()))
        return out

    # -- helpers -----------------------------------------------------------------------------
    def _permitted(self, client: str, route_id: str) -> bool:
        """The client's address is one of the route's allowed sources (firewall rules)."""
        try:
            address = ipaddress.ip_address(client)
        except ValueError:
            return False
        return any(
            address in net for net in self._sources.get(route_id, ()) if net.version == address.version
        )

    def _table(self) -> DomainTable:
        table = DomainTable()
        for route in self.routes:
            for domain in route.domains:
                try:
                    table.add(domain, route.route_id)
                except ValueError as exc:
                    log.debug("domain route %s: %s", route.route_id, exc)  # the server validates
        return table

    def _current_resolver(self) -> Resolver:
        """The given resolver, or the host's: `upstreams()` when it names servers (rebuilt when
        they change), else /etc/resolv.conf (read once)."""
        if self._given is not None:
            return self._given
        wanted = (self.upstreams() if self.upstreams else None) or []
        if self._host is None or wanted != self._upstreams_used:
            self._host = host_resolver(wanted)
            self._upstreams_used = list(wanted)
        return self._host

    async def _stop_forwarder(self) -> None:
        if self.forwarder is not None:
            await self.forwarder.stop()
            self.forwarder = None
            self._listen = []
            log.info("DNS forwarder for domain routes stopped")


def host_resolver(upstreams: Iterable[tuple[str, int]] = ()) -> HostResolver:
    """The host's resolver: the given (address, port) name servers, or /etc/resolv.conf's. Raises
    dns.exception.DNSException when resolv.conf names none."""
    servers = list(upstreams)
    if not servers:
        return HostResolver()
    resolver = HostResolver([host for host, _ in servers], port=servers[0][1])
    resolver.resolver.nameservers = [dns.nameserver.Do53Nameserver(host, port) for host, port in servers]
    return resolver


def _timeout(expires: float | None, now: float) -> int | None:
    """Whole seconds, rounded up: the kernel's element never leaves before the record's."""
    return None if expires is None else max(1, math.ceil(expires - now - 1e-6))  # not 361 for 360.0000001


def _order(address: Address) -> tuple[int, int]:
    return (address.version, int(address))
