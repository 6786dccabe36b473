"""Reconcilers (DESIGN rule 4): desired state in, the difference against what the agent owns out,
applied as one batch per subsystem. They hold what they applied, so a delta touching one peer
changes only that peer."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Protocol

from meshroute.agent.wireguard.backend import WireGuardDevice
from meshroute.agent.wireguard.model import PeerConfig, PeerOp, diff_peers


class WireGuardReconciler:
    def __init__(self, device: WireGuardDevice) -> None:
        self.device = device
        self.owned: dict[str, PeerConfig] = {}

    async def apply(self, desired: Mapping[str, PeerConfig], recreate: Collection[str] = ()) -> list[PeerOp]:
        """One device transaction. `recreate`: peers to rebuild with fresh handshake state (a new
        endpoint to try at once)."""
        ops = [op for op in diff_peers(self.owned, desired) if op.remove or op.public_key not in recreate]
        for key in sorted(set(recreate) & desired.keys()):
            want = desired[key]
            ops.append(PeerOp(key, recreate=True, endpoint=want.endpoint, allowed_ips=want.allowed_ips))
        if ops:
            await self.device.configure(None, ops)
        self.owned = dict(desired)
        return ops


class AddressOps(Protocol):
    async def add_address(self, name: str, cidr: str) -> None: ...

    async def remove_address(self, name: str, cidr: str) -> None: ...


class AddressReconciler:
    def __init__(self, netlink: AddressOps, interface: str) -> None:
        self.netlink = netlink
        self.interface = interface
        self.owned: set[str] = set()

    async def apply(self, desired: set[str]) -> tuple[list[str], list[str]]:
        added, removed = sorted(desired - self.owned), sorted(self.owned - desired)
        for cidr in removed:
            await self.netlink.remove_address(self.interface, cidr)
            self.owned.discard(cidr)
        for cidr in added:
            await self.netlink.add_address(self.interface, cidr)
            self.owned.add(cidr)
        return added, removed
