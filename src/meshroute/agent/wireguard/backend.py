"""The WireGuard device as the agent sees it, whichever implementation holds it."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from meshroute.agent.wireguard.model import DeviceSettings, PeerOp, PeerStats


class BackendUnavailable(Exception):
    """This kind of WireGuard cannot run here; the message says what to install or choose."""


class WireGuardDevice(Protocol):
    kind: str  # "kernel" | "userspace"
    interface: str

    async def configure(self, settings: DeviceSettings | None, ops: Sequence[PeerOp]) -> None:
        """One transaction: device settings (when given) and every peer change."""

    async def peers(self) -> list[PeerStats]: ...

    async def close(self) -> None:
        """Remove the interface (and stop what runs it). Safe to call twice."""

    def owner_record(self) -> dict[str, object]:
        """What a later start needs to remove this device after a crash."""
