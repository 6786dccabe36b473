"""The client's local DNS server: names of domain routes go to a routing peer, the rest upstream.

The host's resolver points here (`hostconfig`): `127.0.0.77:53` by default, and in systemd-resolved
mode the overlay address (port 53), where only the host itself may ask (queries from any other
source are dropped: this is no resolver for the mesh).

For each query (UDP or TCP):

- a name that matches a domain route (`match.DomainTable`, values = HA IDs in preference order) is
  sent, unchanged, to the forwarder of the routing peer chosen for its HA group
  (`await resolver_for(ha_id)` gives its overlay address and port; None for every group: SERVFAIL).
  UDP first, TCP when the answer is truncated, `timeout` (5 s) for the whole exchange; no answer,
  or one that does not parse: SERVFAIL. The answer's addresses (CNAME chains attributed to the
  question name, `answers.extract`) go to `await on_answer(ha_id, answer)`, which installs the
  routes and AllowedIPs, and only **then** does the reply go back to the application, unchanged:
  its first connection already takes the tunnel. If `on_answer` fails (or takes longer than
  `timeout`) the application gets SERVFAIL instead of an address it could not reach; addresses it
  could not route (the route is full) are left out of the reply (SERVFAIL if none is left), so
  traffic to a route's name never takes the underlay.
- every other query is sent, byte for byte, to the host's original name servers (`upstreams`),
  in order, the way glibc does: the next one when one does not answer or answers SERVFAIL, NOTIMP
  or REFUSED; the last answer is passed on as it is (none at all: SERVFAIL). IDs, flags and EDNS
  are never touched.

Nothing is cached here: applications and the host's stub cache what they cache, as before.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field

import dns.exception
import dns.message
import dns.name
import dns.rcode

from meshroute.agent.dns import transport
from meshroute.agent.dns.answers import (
    Address,
    Answer,
    Family,
    Network,
    extract,
    extract_wire,
    without_addresses,
)
from meshroute.agent.dns.match import DomainTable
from meshroute.agent.dns.transport import Client, DnsServer, ExchangeError, Server, error_reply

log = logging.getLogger(__name__)

INTERCEPTOR_ADDRESS = "127.0.0.77"
DNS_PORT = 53
DEFAULT_TIMEOUT_S = 5.0
DEFAULT_UPSTREAM_TIMEOUT_S = 2.0
REPLAY_CONCURRENCY = 16
_RETRY_NEXT = frozenset({dns.rcode.SERVFAIL, dns.rcode.NOTIMP, dns.rcode.REFUSED})
_CLASS_IN = 1

ResolverFor = Callable[[str], Awaitable[Server | None]]
# -> the answer's addresses that are not routed (left out of the application's answer)
OnAnswer = Callable[[str, Answer], Awaitable[frozenset[Address]]]


@dataclass(frozen=True, slots=True)
class Question:
    """The one question of a raw query, read without a full parse (the hot path)."""

    name: str  # lower-case, no trailing dot ("" for the root)
    labels: tuple[bytes, ...]
    rdtype: int
    rdclass: int

    def dns_name(self) -> dns.name.Name:
        return dns.name.Name([*self.labels, b""])


def parse_question(wire: bytes) -> Question | None:
    """The question of a standard query with exactly one, or None (then it is not ours to
    intercept: it goes upstream as it is). Labels must be plain text without dots."""
    if len(wire) < transport.HEADER + 5 or wire[2] & 0xF8 or wire[4:6] != b"\x00\x01":
        return None  # a response, another opcode than QUERY, or not one question
    pos = transport.HEADER
    labels: list[bytes] = []
    while True:
        if pos >= len(wire):
            return None
        size = wire[pos]
        if size == 0:
            pos += 1
            break
        if size & 0xC0 or pos + 1 + size > len(wire):
            return None  # compression in a question, or cut short
        label = wire[pos + 1 : pos + 1 + size]
        if b"." in label or not label.isascii():
            return None
        labels.append(label)
        pos += 1 + size
    if pos + 4 > len(wire):
        return None
    rdtype = int.from_bytes(wire[pos : pos + 2], "big")
    rdclass = int.from_bytes(wire[pos + 2 : pos + 4], "big")
    return Question(b".".join(labels).decode("ascii").lower(), tuple(labels), rdtype, rdclass)


@dataclass(slots=True)
class InterceptorStats:
    intercepted: int = 0  # queries for domain-route names
    answered: int = 0  # ... answered by a routing peer's forwarder
    no_routing_peer: int = 0  # ... SERVFAIL: no routing peer for the group
    failed: int = 0  # ... SERVFAIL: the forwarder did not answer, or on_answer failed
    passed: int = 0  # queries sent to the host's upstreams
    upstream_failed: int = 0  # ... SERVFAIL: no upstream answered
    dropped: int = 0  # queries from a source that may not ask


@dataclass(slots=True)
class Interceptor:
    """`start()` binds, `stop()` closes; `table` and `upstreams` may be replaced at any time."""

    resolver_for: ResolverFor
    on_answer: OnAnswer
    upstreams: list[Server]
    table: DomainTable = field(default_factory=DomainTable)
    timeout: float = DEFAULT_TIMEOUT_S
    upstream_timeout: float = DEFAULT_UPSTREAM_TIMEOUT_S
    overlay: list[Network] = field(default_factory=list)  # answers inside it are never routed
    stats: InterceptorStats = field(default_factory=InterceptorStats)
    _server: DnsServer | None = field(default=None, init=False, repr=False)
    _again: set[asyncio.Task[int]] = field(default_factory=set, init=False, repr=False)

    def __post_init__(self) -> None:
        self.set_upstreams(self.upstreams)

    async def start(self, listen: Iterable[Server] = ((INTERCEPTOR_ADDRESS, DNS_PORT),)) -> list[Server]:
        """Listen on every (address, port), UDP and TCP; port 0 picks a free one (tests). Returns
        what is bound. On failure nothing stays bound."""
        self._server = await DnsServer.open(self._handle, listen)
        return list(self._server.bound)

    @property
    def bound(self) -> list[Server]:
        return list(self._server.bound) if self._server else []

    async def stop(self) -> None:
        if self._server is not None:  # first: no answer in flight may start another ask-again
            await self._server.close()
            self._server = None
        while self._again:
            tasks = list(self._again)
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            self._again.difference_update(tasks)

    def set_upstreams(self, upstreams: Iterable[Server]) -> None:
        """The host's name servers, without this interceptor itself (no loops)."""
        own = set(self.bound) | {(INTERCEPTOR_ADDRESS, DNS_PORT)}
        self.upstreams = [u for u in upstreams if u not in own]

    # -- queries ---------------------------------------------------------------------------------
    async def _handle(self, wire: bytes, client: Client) -> bytes | None:
        if not _may_ask(client):
            self.stats.dropped += 1
            return None
        return await self.handle(wire, client.tcp)

    async def handle(self, wire: bytes, tcp: bool = False) -> bytes | None:
        """The reply to one raw query (None: no reply at all)."""
        question = parse_question(wire)
        if question is None:
            # Not a plain one-question query (or not one at all): upstream, if it is DNS.
            try:
                dns.message.from_wire(wire)
            except dns.exception.DNSException:
                return error_reply(wire, dns.rcode.FORMERR)
        elif question.rdclass == _CLASS_IN:
            found = self.table.lookup(question.name)
            if found is not None:
                return await self._intercept(wire, question, found.values, tcp)
        return await self._pass(wire, tcp)

    async def _intercept(
        self, wire: bytes, question: Question, groups: Sequence[str], tcp: bool
    ) -> bytes | None:
        self.stats.intercepted += 1
        chosen: tuple[str, Server] | None = None
        for ha_id in groups:
            server = await self.resolver_for(ha_id)
            if server is not None:
                chosen = (ha_id, server)
                break
        if chosen is None:
            self.stats.no_routing_peer += 1
            log.debug("%s: no routing peer for %s: SERVFAIL", question.name, ", ".join(groups))
            return error_reply(wire, dns.rcode.SERVFAIL)
        ha_id, server = chosen
        try:
            async with asyncio.timeout(self.timeout):
                reply = await transport.exchange(wire, server, self.timeout, tcp=tcp)
                try:
                    answer = extract_wire(reply, question.labels, self.overlay)
                except ValueError:  # unusual wire form: dnspython decides (DNSException if garbage)
                    answer = extract(dns.message.from_wire(reply), question.dns_name(), self.overlay)
                for address, why in answer.rejected:
                    log.info("%s: not routing %s from the answer (%s)", question.name, address, why)
                if not answer.empty:
                    unrouted = await self.on_answer(ha_id, answer)
                    if await self.resolver_for(ha_id) != server:
                        self._ask_again(ha_id, answer)
                    if unrouted:
                        if unrouted >= answer.all_addresses():
                            self.stats.failed += 1
                            return error_reply(wire, dns.rcode.SERVFAIL)
                        reply = _without(reply, unrouted)
        except (ExchangeError, dns.exception.DNSException, TimeoutError) as exc:
            self.stats.failed += 1
            log.info("%s via %s: %s: SERVFAIL", question.name, transport.show_server(server), _why(exc))
            return error_reply(wire, dns.rcode.SERVFAIL)
        except Exception:
            self.stats.failed += 1
            log.exception("%s: installing the answer's routes failed: SERVFAIL", question.name)
            return error_reply(wire, dns.rcode.SERVFAIL)
        self.stats.answered += 1
        return reply

    def _ask_again(self, ha_id: str, answer: Answer) -> None:
        """The group failed over while the query was out: the failover's replay did not know the
        name yet, and the new routing peer's sets lack what the old one answered."""
        questions = [(answer.name, family) for family in sorted(answer.addresses)]
        task = asyncio.create_task(self.replay(ha_id, questions), name=f"ask again {answer.name}")
        self._again.add(task)
        task.add_done_callback(self._again.discard)

    async def replay(
        self, ha_id: str, questions: Iterable[tuple[str, Family]], concurrency: int = REPLAY_CONCURRENCY
    ) -> int:
        """Ask the group's (new) routing peer again for names the group learned from, and hand the
        answers to `on_answer` as usual: after a failover this fills the new routing peer's sets
        with the addresses the client already routes (its forwarder adds what it resolves), so
        connections to them keep flowing, and it updates what the client learned. Returns how many
        questions were answered."""
        server = await self.resolver_for(ha_id)
        if server is None:
            return 0
        limit = asyncio.Semaphore(concurrency)

        async def one(name: str, family: Family) -> bool:
            query = dns.message.make_query(name, "A" if family == 4 else "AAAA")
            async with limit:
                try:
                    async with asyncio.timeout(self.timeout):
                        reply = await transport.exchange(query.to_wire(), server, self.timeout)
                        answer = extract(dns.message.from_wire(reply), query.question[0].name, self.overlay)
                        if not answer.empty:
                            await self.on_answer(ha_id, answer)
                except Exception as exc:
                    log.info("asking %s again for %s: %s", transport.show_server(server), name, _why(exc))
                    return False
            return True

        results = await asyncio.gather(*(one(n, f) for n, f in questions))
        return sum(results)

    async def _pass(self, wire: bytes, tcp: bool) -> bytes | None:
        self.stats.passed += 1
        last: bytes | None = None
        for server in self.upstreams:
            try:
                reply = await transport.exchange(wire, server, self.upstream_timeout, tcp=tcp)
            except ExchangeError as exc:
                log.debug("upstream %s: %s", transport.show_server(server), exc)
                continue
            if transport.rcode_of(reply) not in _RETRY_NEXT:
                return reply
            last = reply
        if last is not None:
            return last
        self.stats.upstream_failed += 1
        return error_reply(wire, dns.rcode.SERVFAIL)


def _why(exc: BaseException) -> str:
    return str(exc) or ("timeout" if isinstance(exc, TimeoutError) else type(exc).__name__)


def _may_ask(client: Client) -> bool:
    """Loopback listeners serve the host; others (the overlay address) only the host itself."""
    try:
        source = ipaddress.ip_address(client.host)
    except ValueError:
        return False
    return source.is_loopback or client.host == client.local


def _without(reply: bytes, unrouted: frozenset[Address]) -> bytes:
    message = dns.message.from_wire(reply)
    message.answer = without_addresses(message.answer, unrouted)
    return message.to_wire(max_size=transport.MAX_MESSAGE)  # the server truncates for UDP
