"""The routing peer's DNS forwarder: resolves the names of the domain routes it serves, for the
clients of those routes, and hands every address it resolved to the engine before it answers.

It listens on the peer's overlay address, port 22054 (the reference's port), UDP and TCP. Clients
reach it directly: a client's interceptor sends the queries of a domain route to
`<chosen routing peer's overlay IPv4>:22054` through the tunnel (the overlay /32 is an AllowedIP of
every peer, so no route or DNAT is needed; the reference's 5353 -> 22054 DNAT is not used). If the
routing peer filters input on the WireGuard interface, UDP and TCP 22054 from the overlay must be
accepted there.

For each query:

- only standard queries of class IN with one question; others get FORMERR, NOTIMP or REFUSED;
- only from the mesh (`sources`, the overlay networks) and only for names that match the domains
  of a served route (`match.DomainTable`, values = route IDs); and, when `permitted` is given, only
  for the routes whose access control lets that client in. Anything else: REFUSED, so this is no
  open resolver and no oracle for names a client may not use;
- resolved with the host's resolver (`Resolver`: dnspython's, from /etc/resolv.conf or given name
  servers). The reply carries the upstream's answer and authority records (CNAME chain, SOA for
  negative answers), every TTL clamped to `max_ttl`, and its RCODE (NXDOMAIN stays NXDOMAIN). No
  answer from upstream: SERVFAIL;
- the addresses in that reply (`answers.extract`, the same rule as the client's) go to
  `await on_resolved(route_ids, answer)` **before** the reply is sent: the engine adds them to the
  nftables set of every matching route the client may use, so the client's first packet to them is
  forwarded. If that fails, SERVFAIL. Addresses no such set can take (the route holds its cap)
  are left out of the reply, SERVFAIL if none is left: a client never routes what would be
  dropped. Other query types (MX, TXT, SRV, HTTPS...) are answered the same way (they teach
  nothing unless they carry A/AAAA records of the question's chain); meta types (ANY, AXFR, IXFR)
  get NOTIMP.
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import dns.asyncresolver
import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.opcode
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.resolver
import dns.rrset

from meshroute.agent.dns import transport
from meshroute.agent.dns.answers import Address, Answer, Network, extract, without_addresses
from meshroute.agent.dns.learned import DEFAULT_MAX_TTL_S
from meshroute.agent.dns.match import DomainTable
from meshroute.agent.dns.transport import Client, DnsServer, Server, error_reply

log = logging.getLogger(__name__)

FORWARDER_PORT = 22054
DEFAULT_TIMEOUT_S = 5.0

# -> the addresses none of the routes could take (left out of the answer)
OnResolved = Callable[[Sequence[str], Answer], Awaitable[frozenset[Address]]]
Permitted = Callable[[str, str], bool]  # (client address, route ID) -> may it use the route


class ResolveError(Exception):
    """The host's resolver gave no answer (timeouts, every name server failed)."""


class Resolver(Protocol):
    async def resolve(self, qname: dns.name.Name, rdtype: int) -> dns.message.Message:
        """The upstream's response (NXDOMAIN and NODATA included); ResolveError without one."""
        ...


class HostResolver:
    """dnspython's stub resolver: /etc/resolv.conf's name servers (`resolv_conf`), or the given
    ones (the host's original servers while `hostconfig` points /etc/resolv.conf at the
    interceptor). No search list: the question is always absolute."""

    def __init__(
        self,
        nameservers: Sequence[str] | None = None,
        *,
        port: int = 53,
        timeout: float = DEFAULT_TIMEOUT_S,
        resolv_conf: str = "/etc/resolv.conf",
    ) -> None:
        if nameservers:
            self.resolver = dns.asyncresolver.Resolver(configure=False)
            self.resolver.nameservers = list(nameservers)
        else:
            self.resolver = dns.asyncresolver.Resolver(filename=resolv_conf)
        self.resolver.port = port
        self.resolver.lifetime = timeout
        self.resolver.timeout = min(timeout, 2.0)

    async def resolve(self, qname: dns.name.Name, rdtype: int) -> dns.message.Message:
        try:
            answer = await self.resolver.resolve(
                qname, dns.rdatatype.RdataType.make(rdtype), raise_on_no_answer=False, search=False
            )
        except dns.resolver.NXDOMAIN as exc:
            responses = exc.kwargs.get("responses") or {}
            response = responses.get(qname)
            if isinstance(response, dns.message.Message):
                return response
            raise ResolveError(f"{qname}: NXDOMAIN without a response") from None
        except dns.exception.DNSException as exc:
            raise ResolveError(f"{qname}: {exc}") from None
        response = answer.response
        if not isinstance(response, dns.message.Message):
            raise ResolveError(f"{qname}: no response")
        return response


@dataclass(slots=True)
class ForwarderStats:
    answered: int = 0
    refused: int = 0
    failed: int = 0  # SERVFAIL: no upstream answer, or on_resolved failed


@dataclass(slots=True)
class Forwarder:
    """`start()` binds, `stop()` closes; `table` (pattern -> route IDs) may be replaced any time."""

    on_resolved: OnResolved
    resolver: Resolver
    table: DomainTable = field(default_factory=DomainTable)
    sources: list[Network] = field(default_factory=list)  # who may ask (empty: anybody)
    overlay: list[Network] = field(default_factory=list)  # addresses never added to a set
    permitted: Permitted | None = None
    max_ttl: int = DEFAULT_MAX_TTL_S
    timeout: float = DEFAULT_TIMEOUT_S
    stats: ForwarderStats = field(default_factory=ForwarderStats)
    _server: DnsServer | None = field(default=None, init=False, repr=False)

    async def start(self, listen: Iterable[Server], *, freebind: bool = False) -> list[Server]:
        """Listen on every (address, port): the overlay IPv4 (and IPv6) with FORWARDER_PORT."""
        self._server = await DnsServer.open(self._handle, listen, freebind=freebind)
        return list(self._server.bound)

    @property
    def bound(self) -> list[Server]:
        return list(self._server.bound) if self._server else []

    async def stop(self) -> None:
        if self._server is not None:
            await self._server.close()
            self._server = None

    async def _handle(self, wire: bytes, client: Client) -> bytes | None:
        return await self.handle(wire, client.host)

    async def handle(self, wire: bytes, client: str) -> bytes | None:
        """The reply to one raw query from `client` (its address)."""
        try:
            query = dns.message.from_wire(wire)
        except dns.exception.DNSException:
            return error_reply(wire, dns.rcode.FORMERR)
        if query.flags & dns.flags.QR:
            return None
        if query.opcode() != dns.opcode.QUERY:
            return self._reply(query, dns.rcode.NOTIMP)
        if len(query.question) != 1:
            return self._reply(query, dns.rcode.FORMERR)
        question = query.question[0]
        routes = self._routes(question.name, client) if question.rdclass == dns.rdataclass.IN else []
        if not routes:
            self.stats.refused += 1
            return self._reply(query, dns.rcode.REFUSED)
        if dns.rdatatype.is_metatype(question.rdtype):  # ANY, AXFR, ...: not through a stub resolver
            return self._reply(query, dns.rcode.NOTIMP)
        try:
            upstream = await self.resolver.resolve(question.name, question.rdtype)
        except ResolveError as exc:
            self.stats.failed += 1
            log.info("cannot resolve %s for %s: %s", question.name, client, exc)
            return self._reply(query, dns.rcode.SERVFAIL)
        reply = dns.message.make_response(query, recursion_available=True)
        reply.set_rcode(upstream.rcode())
        reply.answer = [self._clamped(rrset) for rrset in upstream.answer]
        reply.authority = [self._clamped(rrset) for rrset in upstream.authority]
        answer = extract(reply, question.name, self.overlay)
        if not answer.empty:
            try:
                refused = await self.on_resolved(routes, answer)
            except Exception:
                self.stats.failed += 1
                log.exception("adding the addresses of %s to %s failed", answer.name, ", ".join(routes))
                return self._reply(query, dns.rcode.SERVFAIL)
            if refused:
                if refused >= answer.all_addresses():
                    self.stats.failed += 1
                    return self._reply(query, dns.rcode.SERVFAIL)
                reply.answer = without_addresses(reply.answer, refused)
        self.stats.answered += 1
        return reply.to_wire(max_size=transport.MAX_MESSAGE)  # the server truncates for UDP

    def _routes(self, name: dns.name.Name, client: str) -> list[str]:
        """The served routes whose domains cover `name` and that `client` may use."""
        try:
            source = ipaddress.ip_address(client)
        except ValueError:
            return []
        if self.sources and not any(source in net for net in self.sources if net.version == source.version):
            return []
        routes: list[str] = []
        for found in self.table.lookup_all(name.to_text(omit_final_dot=True)):
            for route_id in found.values:
                if route_id not in routes and (self.permitted is None or self.permitted(client, route_id)):
                    routes.append(route_id)
        return routes

    def _clamped(self, rrset: dns.rrset.RRset) -> dns.rrset.RRset:
        return dns.rrset.from_rdata_list(rrset.name, min(rrset.ttl, self.max_ttl), list(rrset))

    @staticmethod
    def _reply(query: dns.message.Message, rcode: int) -> bytes:
        reply = dns.message.make_response(query, recursion_available=True)
        reply.set_rcode(dns.rcode.Rcode(rcode))
        return reply.to_wire()
