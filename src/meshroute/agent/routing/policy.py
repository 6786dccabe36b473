"""Policy routing on a client (reference §3.3): everything not marked as the agent's own
WireGuard traffic is looked up in table 7120 after the main table had its say.

    pref 104  to <management server address> lookup main     (the agent's own control traffic)
    pref 105  lookup main suppress_prefixlength 0              (more specific host routes win)
    pref 110  not fwmark 0x1bd00 lookup 7120                   (the mesh's routes)

Table 7120 holds one route per routed prefix (`dev mr0`), `unreachable` entries where traffic
must stop without leaking (a route whose routing peers are all gone without KeepRoute; IPv6
while an IPv4 exit node is in use on a peer without an IPv6 overlay). The rules and the table are
recorded in the ledger before they exist, so a crashed run's are removed at the next start.
"""

from __future__ import annotations

import asyncio
import errno
import ipaddress
import logging
import socket
from collections.abc import Iterable
from typing import Any

from pyroute2 import AsyncIPRoute
from pyroute2.netlink.exceptions import NetlinkError

from meshroute.agent.desired import CONTROL_PLANE_MARK
from meshroute.agent.ledger import Ledger
from meshroute.agent.routing import rtnl
from meshroute.agent.routing.rtnl import TableRoute

log = logging.getLogger(__name__)

TABLE = 7120
MAIN = 254
PREF_BYPASS, PREF_MAIN, PREF_TABLE = 104, 105, 110
FIB_RULE_INVERT = 0x2
SECTION = "routing"  # ledger section
FAMILIES = (socket.AF_INET, socket.AF_INET6)


def _family(address: str) -> int:
    return socket.AF_INET6 if ":" in address else socket.AF_INET


async def _rule(ipr: Any, action: str, family: int, **spec: Any) -> None:
    try:
        await ipr.rule(action, family=family, **spec)
    except NetlinkError as exc:
        gone_or_there = errno.EEXIST if action == "add" else errno.ENOENT
        if exc.code in (gone_or_there, errno.EAFNOSUPPORT, errno.EOPNOTSUPP):
            return
        raise


_STANDING = (
    {"table": MAIN, "priority": PREF_MAIN, "suppress_prefixlen": 0},
    {"table": TABLE, "priority": PREF_TABLE, "fwmark": CONTROL_PLANE_MARK, "flags": FIB_RULE_INVERT},
)


class PolicyRouting:
    def __init__(self, interface: str, ledger: Ledger) -> None:
        self.interface = interface
        self.ledger = ledger
        self.routes: set[TableRoute] = set()  # what this run put into the table
        self.bypass: set[str] = set()
        self.active = False

    async def setup(self) -> None:
        """The standing rules (both families), recorded first."""
        if self.active:
            return
        self._record()
        async with AsyncIPRoute() as ipr:
            for family in FAMILIES:
                for spec in _STANDING:
                    await _rule(ipr, "add", family, **spec)
        self.active = True

    def _record(self) -> None:
        self.ledger.record(SECTION, {"table": TABLE, "bypass": sorted(self.bypass)})

    async def set_bypass(self, addresses: Iterable[str]) -> None:
        """The management server's addresses keep the underlay path, also under an exit node."""
        wanted = {str(ipaddress.ip_address(a)) for a in addresses}
        if wanted == self.bypass:
            return
        added, removed = wanted - self.bypass, self.bypass - wanted
        self.bypass = wanted | removed  # recorded before they exist; trimmed after removal
        self._record()
        async with AsyncIPRoute() as ipr:
            for address in sorted(added):
                await _rule(ipr, "add", _family(address), **_bypass_spec(address))
            for address in sorted(removed):
                await _rule(ipr, "del", _family(address), **_bypass_spec(address))
        self.bypass = wanted
        self._record()

    async def apply(self, wanted: set[TableRoute]) -> tuple[int, int]:
        """Table 7120 to exactly `wanted`: one batch of removals, one of additions."""
        added = sorted(wanted - self.routes)
        removed = sorted(self.routes - wanted)
        if not added and not removed:
            return 0, 0
        oif = socket.if_nametoindex(self.interface)
        # A prefix that changes kind (unreachable <-> dev) is replaced in place by the add.
        replaced = {r.prefix for r in added}
        stale = [r for r in removed if r.prefix not in replaced]
        if stale:
            await asyncio.to_thread(rtnl.delete, stale, TABLE, oif)
        if added:
            await asyncio.to_thread(rtnl.add, added, TABLE, oif)
        self.routes = set(wanted)
        return len(added), len(removed)

    async def teardown(self) -> None:
        """Everything this run added: routes, rules; then the ledger entry."""
        if not self.active and not self.routes and not self.bypass:
            return
        await flush_table()
        async with AsyncIPRoute() as ipr:
            for address in sorted(self.bypass):
                await _rule(ipr, "del", _family(address), **_bypass_spec(address))
            for family in FAMILIES:
                for spec in _STANDING:
                    await _rule(ipr, "del", family, **spec)
        self.routes.clear()
        self.bypass.clear()
        self.active = False
        self.ledger.drop(SECTION)


def _bypass_spec(address: str) -> dict[str, Any]:
    bits = 128 if ":" in address else 32
    return {"table": MAIN, "priority": PREF_BYPASS, "dst": address, "dst_len": bits}


async def flush_table() -> int:
    """Every route of table 7120, both families (what a crashed run left, or this run's)."""
    found: list[TableRoute] = []
    async with AsyncIPRoute() as ipr:
        for family in FAMILIES:
            async for msg in await ipr.get_routes(family=family, table=TABLE):
                if msg.get_attr("RTA_TABLE") != TABLE:
                    continue
                dst = msg.get_attr("RTA_DST")
                prefix = (
                    f"{dst}/{msg['dst_len']}"
                    if dst
                    else ("::/0" if family == socket.AF_INET6 else "0.0.0.0/0")
                )
                found.append(TableRoute(prefix, unreachable=msg["type"] == rtnl.RTN_UNREACHABLE))
    if found:
        # The interface may be gone already: delete without naming it.
        await asyncio.to_thread(rtnl.delete, found, TABLE, 0)
    return len(found)


async def remove_leftovers(ledger: Ledger) -> list[str]:
    record = ledger.load().get(SECTION)
    if not record:
        return []
    flushed = await flush_table()
    async with AsyncIPRoute() as ipr:
        for address in record.get("bypass", []):
            await _rule(ipr, "del", _family(address), **_bypass_spec(str(address)))
        for family in FAMILIES:
            for spec in _STANDING:
                await _rule(ipr, "del", family, **spec)
    return [f"policy rules and {flushed} route(s) of table {TABLE}"]
