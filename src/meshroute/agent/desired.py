"""The agent's desired state, computed from the network map. Pure functions."""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Mapping, Sequence

from meshroute.agent.wireguard.model import PeerConfig
from meshroute.core.networkmap.types import NetworkMap

# The mark on the agent's own WireGuard (underlay) packets. Policy routing for routes and exit
# nodes sends everything unmarked into the tunnel; marked packets take the main table, so the
# tunnel can never carry itself. The reference uses the same value (0x1BD00).
CONTROL_PLANE_MARK = 0x1BD00


def overlay_addresses(m: NetworkMap, v4_prefixlen: int, v6_prefixlen: int | None) -> set[str]:
    """The interface addresses: IPv4 always, IPv6 when the server gave this peer one."""
    me = m.self_config
    out = {f"{me.ip}/{v4_prefixlen}"}
    if me.ipv6 and v6_prefixlen is not None:
        out.add(f"{me.ipv6}/{v6_prefixlen}")
    return out


def wireguard_peers(
    m: NetworkMap,
    endpoint_of: Callable[[str], str | None],
    routed: Mapping[str, Sequence[str]] | None = None,
) -> dict[str, PeerConfig]:
    """Every other peer with its overlay /32 (and /128) as AllowedIPs, plus the routed prefixes
    it carries for this peer (`routed`, by key: the route plan's watchers decide)."""
    peers = {}
    for p in m.peers:
        if p.key == m.self_config.key:
            continue
        allowed = [f"{p.ip}/32", *(routed or {}).get(p.key, ())]
        if p.ipv6:
            allowed.append(f"{p.ipv6}/128")
        peers[p.key] = PeerConfig(p.key, tuple(sorted(set(allowed))), endpoint_of(p.key))
    return peers


def prefixlen(cidr: str) -> int | None:
    """`100.64.3.7/16` -> 16; "" -> None."""
    return ipaddress.ip_interface(cidr).network.prefixlen if cidr else None
