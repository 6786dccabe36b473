"""The routing-peer side of the agent: the nftables ruleset that filters and masquerades what it
forwards for the routes it serves (ruleset.py: pure; nft.py: applying it), IP forwarding while it
serves routes (forwarding.py), the seed's "Routing Peer Requirements" (requirements.py), and for
domain routes the DNS forwarder and the addresses it resolved (agent/dns/serving.py).

How the engine drives it::

    await restore_leftovers(ledger)        # at start, before lifecycle.remove_leftovers clears the ledger
    peer = RoutingPeer(ledger, cfg.interface, mtu=cfg.mtu)
    await peer.apply(network_map)          # every map, once the overlay interface exists
    checks = await peer.refresh_checks()   # after a map, and now and then (the host may change)
    await peer.stop()                      # clean stop: forwarding back as it was, table removed

The table is applied on every peer, also one that serves nothing: forwarded traffic from the overlay is
then dropped, as the reference's ACL forward chain does. Forwarding is only turned on per family while
a route of that family is served (a domain route counts for each family it has sources of), after the
ruleset that filters it is in place, and turned back before a ruleset that no longer covers it is
applied. `apply` runs every second or so (the engine's device loop): it compares documents built
without the domain sets' elements, so what the DNS forwarder learns never forces a rebuild, and a
rebuild puts those elements back in.
"""

from __future__ import annotations

import ipaddress
import logging
import time
from collections.abc import Callable, Sequence
from typing import Any

from meshroute.agent.firewall import forwarding as fwd
from meshroute.agent.firewall import requirements
from meshroute.agent.firewall.forwarding import Forwarding, ProcSys, Sysctl, SysctlError
from meshroute.agent.firewall.nft import Nftables, NftError, NftOps
from meshroute.agent.firewall.requirements import Check
from meshroute.agent.firewall.ruleset import (
    DEFAULT_MTU,
    DEFAULT_TABLE,
    FAMILY,
    Document,
    Network,
    ServedDomainRoute,
    ServedRoute,
    build,
    served_domain_routes,
    served_routes,
    with_elements,
)
from meshroute.agent.ledger import Ledger
from meshroute.core.networkmap.types import NetworkMap

# a module, not its names: agent.dns.serving imports this package's modules in turn
from meshroute.agent.dns import forwarder as dns_forwarder  # isort: skip
from meshroute.agent.dns import learned as dns_learned  # isort: skip
from meshroute.agent.dns import serving as dns_serving  # isort: skip

log = logging.getLogger(__name__)

SECTION = "nftables"  # ledger section: the table to delete after a crash

__all__ = [
    "Check",
    "Forwarding",
    "NftError",
    "Nftables",
    "RoutingPeer",
    "ServedDomainRoute",
    "ServedRoute",
    "SysctlError",
    "build",
    "restore_leftovers",
    "served_domain_routes",
    "served_routes",
]


class RoutingPeer:
    """Ruleset, forwarding and the domain routes' DNS forwarder in line with the map; what it applied,
    for the next diff.

    ``upstreams``: the name servers the DNS forwarder asks, when it returns any (the host's original
    ones while the client side's interceptor owns /etc/resolv.conf); else /etc/resolv.conf's.
    ``overlay``: the mesh's networks (who may ask the forwarder; answers inside them are never
    routed); without it, the overlay addresses of the map's peers. ``dns_grace``: how long a
    resolved address outlives its TTL. ``dns_port``, ``resolver`` and ``clock`` are for tests.
    """

    def __init__(
        self,
        ledger: Ledger,
        interface: str,
        *,
        mtu: int = DEFAULT_MTU,
        table: str = DEFAULT_TABLE,
        nft: NftOps | None = None,
        sysctl: Sysctl | None = None,
        upstreams: Callable[[], list[tuple[str, int]]] | None = None,
        overlay: Callable[[], Sequence[Network]] | None = None,
        dns_grace: float = dns_learned.DEFAULT_GRACE_S,
        dns_cap: int = dns_learned.DEFAULT_CAP,
        dns_port: int = dns_forwarder.FORWARDER_PORT,
        resolver: dns_forwarder.Resolver | None = None,
        clock: Callable[[], float] | None = None,
    ) -> None:
        self.ledger = ledger
        self.interface = interface
        self.mtu = mtu
        self.table = table
        self.nft: NftOps = nft or Nftables()
        self.sysctl: Sysctl = sysctl or ProcSys()
        self.forwarding = Forwarding(ledger, interface, self.sysctl)
        self.overlay = overlay
        self.dns = dns_serving.DomainServing(
            self.nft,
            table=table,
            upstreams=upstreams,
            grace=dns_grace,
            cap=dns_cap,
            port=dns_port,
            resolver=resolver,
            clock=clock or time.monotonic,
        )
        self.routes: list[ServedRoute] = []
        self.domain_routes: list[ServedDomainRoute] = []
        self.applied: Document | None = None
        self.checks: list[Check] = []

    async def apply(self, m: NetworkMap) -> bool:
        """Bring the ruleset (one transaction, only when it differs), forwarding and the DNS forwarder
        in line with the routes this peer serves in ``m``; True if the ruleset changed.
        NftError/SysctlError: retry later."""
        routes = served_routes(m)
        domains = served_domain_routes(m)
        document = build(self.interface, routes, table=self.table, mtu=self.mtu, domains=domains)
        v4 = any(r.prefix.version == 4 for r in routes) or any(d.sources_of(4) for d in domains)
        v6 = any(r.prefix.version == 6 for r in routes) or any(d.sources_of(6) for d in domains)
        held = self.forwarding.held
        self.forwarding.want(v4 and "ipv4" in held, v6 and "ipv6" in held)  # only turns off
        async with self.dns.lock:  # no DNS answer adds elements while the table is replaced
            previous = list(self.dns.routes)
            dropped = self.dns.set_routes(domains)
            changed = dropped or document != self.applied
            if changed:
                self.ledger.record(SECTION, {"family": FAMILY, "table": self.table})  # before it exists
                try:
                    await self.nft.apply(with_elements(document, self.dns.elements()))
                except BaseException:
                    self.applied = None  # rebuild next time, even if only the elements had to change
                    # the kernel still has the old table: answers must fill its sets, not the
                    # ones of the table that failed (set names are positions, not route IDs)
                    self.dns.set_routes(previous)
                    raise
                self.applied = document
                log.info(
                    "nftables: %d served route(s), %d domain route(s) in table %s %s",
                    len(routes),
                    len(domains),
                    FAMILY,
                    self.table,
                )
        self.forwarding.want(v4, v6)
        self.routes = routes
        self.domain_routes = domains
        await self.dns.serve(m, self._overlay(m))  # after the table: its sets exist
        return changed

    def domain_status(self) -> dict[str, dict[str, list[dict[str, Any]]]]:
        """Route ID -> resolved name -> its addresses (``address``, ``remaining`` seconds; None:
        kept by KeepRoute), for every domain route served."""
        return self.dns.status()

    async def refresh_checks(self) -> list[Check]:
        """The requirement checks for what is served now (an empty list when nothing is)."""
        self.checks = await requirements.check(
            self.routes, self.interface, sysctl=self.sysctl, nft=self.nft, own_table=self.table
        )
        return self.checks

    async def stop(self) -> None:
        """The DNS forwarder closed, forwarding back as it was, then the table removed (in that
        order: nothing is forwarded unfiltered in between). A value that cannot be written back is
        logged; the table still goes."""
        await self.dns.stop()
        try:
            self.forwarding.release()
        except SysctlError as exc:
            log.warning("could not restore forwarding: %s", exc)
        if self.applied is not None or SECTION in self.ledger.sections:
            await self.nft.remove(self.table, FAMILY)
        self.applied = None
        self.routes = []
        self.domain_routes = []
        self.checks = []
        self.ledger.drop(SECTION)

    def _overlay(self, m: NetworkMap) -> list[Network]:
        given = list(self.overlay()) if self.overlay else []
        if given:
            return given
        peers = (m.self_config, *m.peers)
        hosts = [p.ip for p in peers] + [p.ipv6 for p in peers if p.ipv6]
        return [ipaddress.ip_network(h) for h in sorted(set(hosts))]


async def restore_leftovers(
    ledger: Ledger, *, nft: NftOps | None = None, sysctl: Sysctl | None = None
) -> list[str]:
    """Undo what an earlier run recorded and did not undo (it crashed): forwarding values back, its
    table deleted. Returns what was done. Call at start, before the ledger file is cleared."""
    done = [f"sysctl {change}" for change in fwd.restore_leftovers(ledger, sysctl)]
    record = ledger.load().get(SECTION) or {}
    table, family = record.get("table"), record.get("family", FAMILY)
    valid = isinstance(table, str) and isinstance(family, str)
    if valid and await (nft or Nftables()).remove(str(table), str(family)):
        done.append(f"nftables table {family} {table}")
    ledger.drop(SECTION)
    return done
