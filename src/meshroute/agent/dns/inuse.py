"""Which learned addresses a connection still uses, from conntrack (for `LearnedAddresses.expire`).

A connection uses an address when a conntrack entry has it as the destination of its original
direction (a TCP connection only until it is closed: TIME_WAIT and CLOSE entries do not count): on
a client the applications' flows to it, on a routing peer the clients' flows it forwards to it
(masquerading changes the reply direction only). One dump of the table per expiry
pass, and only when something is due (`LearnedAddresses.due(now)` is not empty).

Conntrack only tracks in a network namespace where some netfilter rule uses it: a routing peer's
table does (`ct state`); on a client the engine must load a rule that does (any chain of its own
table with a `ct` expression) while it has domain routes, or every address looks unused and
expires on its TTL alone.
"""

from __future__ import annotations

import asyncio
from collections.abc import Collection

from pyroute2 import Conntrack


class ConntrackUnavailable(Exception):
    """The conntrack table cannot be read here (no module, no permission)."""


# TCP connections that are over: conntrack keeps TIME_WAIT entries for two minutes, which must not
# keep an address routed that long after its last connection closed
_TCP_OVER = frozenset({7, 8})  # TCP_CONNTRACK_TIME_WAIT, TCP_CONNTRACK_CLOSE


def _destinations() -> set[str]:
    try:
        with Conntrack() as ct:
            return {
                str(entry.tuple_orig.daddr)
                for entry in ct.dump_entries()
                if entry.tuple_orig.daddr
                and (entry.protoinfo is None or entry.protoinfo.state not in _TCP_OVER)
            }
    except Exception as exc:  # pyroute2 raises NetlinkError, OSError, ... depending on what is missing
        raise ConntrackUnavailable(f"cannot read conntrack: {exc}") from None


async def connections_to(addresses: Collection[str]) -> frozenset[str]:
    """The addresses among `addresses` that some tracked connection goes to (a thread reads the
    table: tens of milliseconds for a large one must not stall the DNS path)."""
    if not addresses:
        return frozenset()
    destinations = await asyncio.to_thread(_destinations)
    return frozenset(a for a in addresses if a in destinations)
