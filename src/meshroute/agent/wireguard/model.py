"""What a WireGuard device should hold, what it reports, and the minimal change between two
peer sets. Pure: no sockets, no processes."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

# REKEY_TIMEOUT and REJECT_AFTER_TIME of the WireGuard protocol (seconds): a handshake is retried
# every 5 s, and a session is dead 180 s after its handshake.
REKEY_TIMEOUT_S = 5.0
REJECT_AFTER_TIME_S = 180.0


@dataclass(frozen=True, slots=True)
class DeviceSettings:
    private_key: str  # base64
    listen_port: int
    fwmark: int


@dataclass(frozen=True, slots=True)
class PeerConfig:
    public_key: str  # base64
    allowed_ips: tuple[str, ...]  # sorted CIDRs
    endpoint: str | None = None  # HOST:PORT, [v6]:PORT


@dataclass(frozen=True, slots=True)
class PeerOp:
    """One peer's change inside a device transaction. `recreate` drops the peer's session and
    handshake state first (WireGuard waits 5 s between handshake attempts to the same peer; a
    new peer object may try a new endpoint at once)."""

    public_key: str
    remove: bool = False
    recreate: bool = False
    endpoint: str | None = None  # set when it changes (or on create/recreate)
    allowed_ips: tuple[str, ...] | None = None  # replaces the list when not None
    add_allowed_ips: tuple[str, ...] = ()  # appended (taken away from whichever peer has them)


@dataclass(frozen=True, slots=True)
class PeerStats:
    """What the device reports about one peer."""

    public_key: str
    endpoint: str | None = None
    last_handshake: float | None = None  # wall-clock seconds, None if never
    rx_bytes: int = 0
    tx_bytes: int = 0
    allowed_ips: tuple[str, ...] = field(default=())


def diff_peers(current: Mapping[str, PeerConfig], desired: Mapping[str, PeerConfig]) -> list[PeerOp]:
    """The operations that turn `current` into `desired`, touching only what differs.

    An AllowedIP belongs to one peer at a time: appending it to a peer takes it from any other in
    the same step. So a prefix that moves between peers (a failover) is only *appended* to its new
    peer, before anything else in the transaction, and the old peer needs no change for it: no
    moment without an owner, and no peer's list is ever rewritten for a move. A list is replaced
    only when a peer really loses something.
    """
    gains: list[PeerOp] = []
    rest: list[PeerOp] = []
    moved: set[str] = set()
    for key in sorted(desired):
        want, have = desired[key], current.get(key)
        if have is None:
            rest.append(PeerOp(key, endpoint=want.endpoint, allowed_ips=want.allowed_ips))
            continue
        added = set(want.allowed_ips) - set(have.allowed_ips)
        if added and set(have.allowed_ips) <= set(want.allowed_ips):
            moved |= added
    for key in sorted(desired):
        want, have = desired[key], current.get(key)
        if have is None or want == have:
            continue
        # WireGuard cannot forget an endpoint: "none wanted" leaves the old one in place.
        endpoint = want.endpoint if want.endpoint != have.endpoint else None
        kept, wanted = set(have.allowed_ips), set(want.allowed_ips)
        if kept <= wanted:
            appended = tuple(sorted(wanted - kept))
            if endpoint is not None or appended:
                gains.append(PeerOp(key, endpoint=endpoint, add_allowed_ips=appended))
        elif kept - wanted <= moved and wanted <= kept:
            if endpoint is not None:  # what it lost went to another peer in this transaction
                rest.append(PeerOp(key, endpoint=endpoint))
        else:
            rest.append(PeerOp(key, endpoint=endpoint, allowed_ips=want.allowed_ips))
    removals = [PeerOp(key, remove=True) for key in sorted(current.keys() - desired.keys())]
    return [*gains, *rest, *removals]
