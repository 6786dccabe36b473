"""Which prefixes a client never routes through the mesh (reference agent-behaviour §2.6), as one
pure rule: route explain (`core.explain`) asks it on the server; the agent's route plan applies
the same rule (`agent/routes/plan.py`)."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

from meshroute.core.model import IPNetwork


def route_refusal(prefix: str, overlay: Iterable[IPNetwork]) -> str | None:
    """Why a prefix may not be routed through the mesh, or None: loopback, link-local, multicast,
    an unspecified address with a prefix length, or a prefix that overlaps the mesh's own overlay
    network (an exit node's /0 excepted)."""
    try:
        net = ipaddress.ip_network(prefix)
    except ValueError:
        return "not a valid prefix"
    address = net.network_address
    if address.is_loopback:
        return "loopback"
    if address.is_link_local:
        return "link-local"
    if address.is_multicast:
        return "multicast"
    if address.is_unspecified and net.prefixlen:
        return "unspecified address"
    for own in overlay:
        if own.version == net.version and net.overlaps(own) and net.prefixlen:
            return f"inside the mesh's own network {own}"
    return None
