"""Peer health: an active UDP echo over the overlay, for the peers that need fast failure
detection (routing peers the agent may send traffic through).

Every agent answers probes on its overlay addresses (port 51830, bound to the WireGuard
interface, so only mesh peers reach it). A probed peer is *up* after one answer and *down*
after `down_after` probes in a row went unanswered (default 3 at 200 ms: down within 0.8 s).
The tracker is pure; `ProbeSocket` is the system part.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import struct
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import cast

log = logging.getLogger(__name__)

PROBE_PORT = 51830
_MAGIC = b"MRP1"
_REQUEST, _REPLY = 1, 2
_PACKET = struct.Struct("!4sB3xIQ")  # magic, kind, seq, sender's monotonic ns (echoed back)
_KEEP_SENT = 16  # a late answer to one of the last probes still proves the path works


@dataclass(slots=True)
class ProbeTrack:
    address: str  # the peer's overlay address probes go to
    up: bool | None = None  # None until the first answer or the first verdict
    missed: int = 0
    rtt_ms: float | None = None
    last_reply: float | None = None  # monotonic
    changed_at: float | None = None  # monotonic, last up/down change
    sent: dict[int, float] = field(default_factory=dict)  # seq -> monotonic send time
    answered_last: bool = True


@dataclass(frozen=True, slots=True)
class Transition:
    key: str
    up: bool


class ProbeTracker:
    """Which peers are probed and what their answers say. Pure: the caller sends and receives."""

    def __init__(self, down_after: int = 3) -> None:
        if down_after < 1:
            raise ValueError("down_after must be at least 1")
        self.down_after = down_after
        self.tracks: dict[str, ProbeTrack] = {}
        self._by_address: dict[str, str] = {}
        self._seq = 0

    def set_targets(self, targets: Mapping[str, str]) -> None:
        """Peer key -> overlay address. A peer that stays keeps its history."""
        for key in self.tracks.keys() - targets.keys():
            del self.tracks[key]
        for key, address in targets.items():
            track = self.tracks.get(key)
            if track is None or track.address != address:
                self.tracks[key] = ProbeTrack(address)
        self._by_address = {t.address: k for k, t in self.tracks.items()}

    def tick(self, now: float) -> tuple[list[tuple[str, int]], list[Transition]]:
        """One probe interval: count the unanswered, decide who is down, and return the probes
        to send now as (address, seq)."""
        sends: list[tuple[str, int]] = []
        transitions: list[Transition] = []
        for key, track in self.tracks.items():
            if not track.answered_last:
                track.missed += 1
                if track.missed >= self.down_after and track.up is not False:
                    track.up, track.changed_at = False, now
                    transitions.append(Transition(key, False))
            self._seq = (self._seq + 1) & 0xFFFFFFFF
            track.sent[self._seq] = now
            if len(track.sent) > _KEEP_SENT:
                del track.sent[min(track.sent)]
            track.answered_last = False
            sends.append((track.address, self._seq))
        return sends, transitions

    def answer(self, address: str, seq: int, now: float) -> Transition | None:
        key = self._by_address.get(address)
        track = self.tracks.get(key) if key is not None else None
        if key is None or track is None or seq not in track.sent:
            return None
        sent = track.sent.pop(seq)
        track.rtt_ms = (now - sent) * 1000
        track.last_reply, track.missed, track.answered_last = now, 0, True
        if track.up is not True:
            track.up, track.changed_at = True, now
            return Transition(key, True)
        return None


class ProbeSocket:
    """UDP on the overlay addresses: answers everyone's probes and hands answers to ours."""

    def __init__(self, on_answer: Callable[[str, int, float], None]) -> None:
        self._on_answer = on_answer
        self._transports: dict[str, asyncio.DatagramTransport] = {}

    async def bind(self, addresses: list[str], device: str) -> None:
        """Listen on exactly these addresses (idempotent; rebinds when they change)."""
        for address in list(self._transports.keys() - set(addresses)):
            self._transports.pop(address).close()
        loop = asyncio.get_running_loop()
        for address in addresses:
            if address in self._transports:
                continue
            family = socket.AF_INET6 if ":" in address else socket.AF_INET
            sock = socket.socket(family, socket.SOCK_DGRAM)
            try:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, device.encode())
                sock.bind((address, PROBE_PORT))
            except OSError as exc:
                sock.close()
                log.warning("cannot answer probes on %s port %d: %s", address, PROBE_PORT, exc)
                continue
            transport, _ = await loop.create_datagram_endpoint(lambda: _Protocol(self), sock=sock)
            self._transports[address] = transport

    def send(self, address: str, seq: int) -> None:
        family_v6 = ":" in address
        transport = next((t for a, t in self._transports.items() if (":" in a) == family_v6), None)
        if transport is not None:
            packet = _PACKET.pack(_MAGIC, _REQUEST, seq, time.monotonic_ns())
            transport.sendto(packet, (address, PROBE_PORT))

    def close(self) -> None:
        for transport in self._transports.values():
            transport.close()
        self._transports.clear()

    def _received(self, data: bytes, addr: tuple[str, int], transport: asyncio.DatagramTransport) -> None:
        if len(data) != _PACKET.size:
            return
        magic, kind, seq, stamp = _PACKET.unpack(data)
        if magic != _MAGIC:
            return
        if kind == _REQUEST:
            transport.sendto(_PACKET.pack(_MAGIC, _REPLY, seq, stamp), addr)
        elif kind == _REPLY:
            self._on_answer(addr[0], seq, time.monotonic())


class _Protocol(asyncio.DatagramProtocol):
    def __init__(self, owner: ProbeSocket) -> None:
        self.owner = owner
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # (the selector loop's datagram transport does not subclass DatagramTransport in 3.11)
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        if self.transport is not None:
            self.owner._received(data, addr, self.transport)

    def error_received(self, exc: Exception) -> None:
        log.debug("probe socket: %s", exc)
