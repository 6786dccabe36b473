"""Underlay endpoints: which of ours to report, and which of a remote peer's to use.

Every agent reports its candidates (`--endpoint` values first, then the addresses of its other
interfaces with the WireGuard port). For each remote peer the agent tries the candidates in
order of likely reachability, one at a time, until a WireGuard handshake succeeds, and keeps the
one that works. If the remote peer reaches us first from another address, WireGuard moves to it
("roaming") and we keep that. NAT traversal and relays are out of scope. Pure: no sockets.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from meshroute.agent.netlink import LocalAddress
from meshroute.agent.wireguard.model import PeerStats
from meshroute.core.agent_input import MAX_ENDPOINTS

HANDSHAKE_WAIT_S = 1.0  # a handshake answers within one RTT; a candidate silent this long failed
RETRY_FIRST_S = 5.0  # after a full round of failed candidates, wait before the next round...
RETRY_CAP_S = 60.0  # ...doubling up to this


def format_endpoint(ip: ipaddress.IPv4Address | ipaddress.IPv6Address, port: int) -> str:
    return f"[{ip}]:{port}" if ip.version == 6 else f"{ip}:{port}"


def parse_endpoint(endpoint: str) -> tuple[ipaddress.IPv4Address | ipaddress.IPv6Address, int]:
    """`1.2.3.4:51820` or `[fd00::1]:51820`; ValueError otherwise."""
    host, sep, port = endpoint.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"expected IP:PORT, got {endpoint!r}")
    if ":" in host and not (host.startswith("[") and host.endswith("]")):
        raise ValueError(f"an IPv6 endpoint is written [ADDRESS]:PORT, got {endpoint!r}")
    return ipaddress.ip_address(host.strip("[]")), int(port)


def _usable(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    return not (ip.is_loopback or ip.is_link_local or ip.is_multicast or ip.is_unspecified)


def own_candidates(
    addresses: Iterable[LocalAddress], listen_port: int, extra: Sequence[str], overlay_interface: str
) -> list[str]:
    """What this agent reports: `extra` as given, then IPv4 then IPv6 interface addresses."""
    found = []
    for a in addresses:
        ip = ipaddress.ip_address(a.address)
        if a.interface != overlay_interface and _usable(ip):
            found.append((ip.version, format_endpoint(ip, listen_port)))
    ordered = list(extra) + [ep for _, ep in sorted(found, key=lambda item: item[0])]
    # The server takes at most MAX_ENDPOINTS (a host with many bridges would exceed it).
    return list(dict.fromkeys(ordered))[:MAX_ENDPOINTS]


def order_candidates(candidates: Iterable[str], local: Iterable[LocalAddress]) -> tuple[str, ...]:
    """A peer's candidates, most likely reachable first: on one of our own subnets, then of a
    family we have addresses of, then the rest; otherwise in the order the peer gave."""
    networks = [a.network for a in local if _usable(ipaddress.ip_address(a.address))]
    families = {n.version for n in networks}

    def rank(endpoint: str) -> int:
        try:
            ip, _ = parse_endpoint(endpoint)
        except ValueError:
            return 3
        if any(ip.version == n.version and ip in n for n in networks):
            return 0
        return 1 if ip.version in families else 2

    valid = [c for c in dict.fromkeys(candidates) if rank(c) < 3]
    return tuple(sorted(valid, key=rank))


@dataclass(slots=True)
class Path:
    """How we reach one peer: its candidates and where we are in trying them."""

    candidates: tuple[str, ...]
    index: int = 0
    confirmed: bool = False  # a handshake succeeded on the current endpoint
    roamed: str | None = None  # where WireGuard moved the peer to (it reached us from there)
    trying_since: float | None = None  # wall clock: waiting for a handshake on the current one
    failed_rounds: int = 0
    next_round: float = 0.0
    min_handshake: float = 0.0  # older handshakes prove nothing (the peer was suspected since)
    fresh: bool = False  # drop WireGuard's handshake state before the next attempt

    @property
    def endpoint(self) -> str | None:
        if self.roamed is not None:
            return self.roamed
        return self.candidates[self.index] if self.candidates else None


@dataclass(slots=True)
class Step:
    """What the agent should do now: move peers to a new endpoint with fresh handshake state
    (`recreate`), and send a packet to peers to start a handshake (`kick`)."""

    recreate: list[str] = field(default_factory=list)
    kick: list[str] = field(default_factory=list)
    confirmed: list[str] = field(default_factory=list)  # reached just now (for the log)


class EndpointSelector:
    def __init__(self) -> None:
        self.paths: dict[str, Path] = {}

    def endpoint(self, key: str) -> str | None:
        path = self.paths.get(key)
        return path.endpoint if path else None

    def set_peers(self, candidates: Mapping[str, tuple[str, ...]], now: float) -> None:
        """The peers of the map and their ordered candidates. A peer whose candidates changed
        keeps a working endpoint that is still among them; otherwise it starts over, and the
        handshakes of its old endpoint prove nothing about the new ones."""
        for key in self.paths.keys() - candidates.keys():
            del self.paths[key]
        for key, cands in candidates.items():
            path = self.paths.get(key)
            if path is None:
                self.paths[key] = Path(cands)
            elif path.candidates != cands:
                current = path.endpoint
                if path.roamed is None and current not in cands:
                    self.paths[key] = Path(cands, next_round=now, min_handshake=now, fresh=True)
                else:
                    path.candidates = cands
                    path.index = cands.index(current) if current in cands else 0

    def pending(self) -> bool:
        """Some peer waits for a handshake right now (poll the device often)."""
        return any(p.trying_since is not None for p in self.paths.values())

    def suspect(self, key: str, now: float) -> None:
        """The peer stopped answering: search its candidates again from the first."""
        path = self.paths.get(key)
        if path is not None and path.confirmed:
            self.paths[key] = Path(path.candidates, next_round=now, min_handshake=now, fresh=True)

    def step(self, now: float, stats: Mapping[str, PeerStats]) -> Step:
        out = Step()
        for key, path in self.paths.items():
            st = stats.get(key)
            handshake = st.last_handshake if st is not None else None
            if handshake is not None and handshake >= path.min_handshake:
                if not path.confirmed:
                    out.confirmed.append(key)
                self._confirm(path, st)
                continue
            if path.confirmed:
                continue
            self._advance(key, path, now, out)
        return out

    @staticmethod
    def _confirm(path: Path, st: PeerStats | None) -> None:
        path.confirmed, path.trying_since, path.failed_rounds = True, None, 0
        actual = st.endpoint if st is not None else None
        if actual and actual != path.endpoint:
            path.roamed = actual

    @staticmethod
    def _advance(key: str, path: Path, now: float, out: Step) -> None:
        if not path.candidates:
            return
        if path.trying_since is None:
            if now >= path.next_round:
                path.trying_since = now
                if path.fresh:
                    path.fresh = False
                    out.recreate.append(key)
                out.kick.append(key)
            return
        if now - path.trying_since < HANDSHAKE_WAIT_S:
            return
        if path.index + 1 < len(path.candidates):
            path.index += 1
            path.trying_since = now
            out.recreate.append(key)
            out.kick.append(key)
            return
        # A full round failed: back to the first candidate, and wait longer each round. Only the
        # endpoint moves: by the next round WireGuard may start a handshake again anyway, and a
        # session the remote peer made with us meanwhile must not be dropped.
        path.failed_rounds += 1
        path.trying_since = None
        path.next_round = now + min(RETRY_CAP_S, RETRY_FIRST_S * 2 ** (path.failed_rounds - 1))
        path.index = 0
