"""Routes in one table, many per system call: RTM_NEWROUTE / RTM_DELROUTE messages batched on one
rtnetlink socket, acknowledged in bulk.

pyroute2 sends one request and waits for its answer per route: 10,000 routes took 3.5 s here
(0.35 ms each). Batching 256 messages per send() does the same in about 0.2 s, which is what an
agent with a large route-heavy account needs. Stdlib only; the message layout is rtnetlink's
(include/uapi/linux/rtnetlink.h).
"""

from __future__ import annotations

import errno
import ipaddress
import socket
import struct
from collections.abc import Sequence
from dataclasses import dataclass

NLMSG_ERROR = 2
RTM_NEWROUTE, RTM_DELROUTE = 24, 25
NLM_F_REQUEST, NLM_F_ACK, NLM_F_REPLACE, NLM_F_CREATE = 0x1, 0x4, 0x100, 0x400
RTA_DST, RTA_OIF, RTA_TABLE = 1, 4, 15
RT_TABLE_COMPAT = 252  # rtm_table when the real ID (> 255) is in RTA_TABLE
RTPROT_STATIC = 4
RT_SCOPE_UNIVERSE, RT_SCOPE_LINK, RT_SCOPE_NOWHERE = 0, 253, 255
RTN_UNICAST, RTN_UNREACHABLE = 1, 7
BATCH = 256

_NLMSGHDR = struct.Struct("=IHHII")
_RTMSG = struct.Struct("=BBBBBBBBI")


@dataclass(frozen=True, slots=True, order=True)
class TableRoute:
    """`prefix dev <interface>`, or an `unreachable` prefix (no interface)."""

    prefix: str
    unreachable: bool = False

    @property
    def family(self) -> int:
        return socket.AF_INET6 if ":" in self.prefix else socket.AF_INET


class RouteBatchError(Exception):
    def __init__(self, failures: list[tuple[TableRoute, int]]) -> None:
        self.failures = failures
        shown = ", ".join(f"{r.prefix}: {errno.errorcode.get(e, e)}" for r, e in failures[:5])
        more = f" (and {len(failures) - 5} more)" if len(failures) > 5 else ""
        super().__init__(f"{len(failures)} route change(s) failed: {shown}{more}")


def _attr(kind: int, payload: bytes) -> bytes:
    data = struct.pack("=HH", 4 + len(payload), kind) + payload
    return data + b"\0" * (-len(data) % 4)


def _message(kind: int, flags: int, seq: int, route: TableRoute, table: int, oif: int) -> bytes:
    net = ipaddress.ip_network(route.prefix)
    rtm_table = table if table < 256 else RT_TABLE_COMPAT
    if kind == RTM_DELROUTE:
        # As `ip route del` asks: any protocol, scope and type match (routes left by others too).
        protocol, scope, rtm_type = 0, RT_SCOPE_NOWHERE, 0
    else:
        protocol = RTPROT_STATIC
        rtm_type = RTN_UNREACHABLE if route.unreachable else RTN_UNICAST
        scope = RT_SCOPE_UNIVERSE if route.unreachable else RT_SCOPE_LINK
    body = _RTMSG.pack(route.family, net.prefixlen, 0, 0, rtm_table, protocol, scope, rtm_type, 0)
    if net.prefixlen:
        body += _attr(RTA_DST, net.network_address.packed)
    if not route.unreachable and oif:  # (no interface: a removal that matches any)
        body += _attr(RTA_OIF, struct.pack("=I", oif))
    body += _attr(RTA_TABLE, struct.pack("=I", table))
    return _NLMSGHDR.pack(_NLMSGHDR.size + len(body), kind, flags, seq, 0) + body


def _send(
    kind: int, flags: int, routes: Sequence[TableRoute], table: int, oif: int
) -> list[tuple[TableRoute, int]]:
    """Every message acknowledged; returns the failures as (route, errno)."""
    failures: list[tuple[TableRoute, int]] = []
    with socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, socket.NETLINK_ROUTE) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        sock.bind((0, 0))
        for start in range(0, len(routes), BATCH):
            part = routes[start : start + BATCH]
            sock.sendall(
                b"".join(_message(kind, flags, start + i + 1, r, table, oif) for i, r in enumerate(part))
            )
            pending = len(part)
            while pending:
                data = sock.recv(1 << 20)
                offset = 0
                while offset + _NLMSGHDR.size <= len(data):
                    length, msg_type, _, seq, _ = _NLMSGHDR.unpack_from(data, offset)
                    if msg_type == NLMSG_ERROR:
                        pending -= 1
                        (code,) = struct.unpack_from("=i", data, offset + _NLMSGHDR.size)
                        if code:
                            failures.append((routes[seq - 1], -code))
                    offset += (length + 3) & ~3
    return failures


def add(routes: Sequence[TableRoute], table: int, oif: int) -> None:
    """Create or replace (so a leftover never fails the add)."""
    failures = _send(
        RTM_NEWROUTE, NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_REPLACE, routes, table, oif
    )
    if failures:
        raise RouteBatchError(failures)


def delete(routes: Sequence[TableRoute], table: int, oif: int) -> None:
    """Remove; a route that is already gone counts as removed."""
    failures = [
        f for f in _send(RTM_DELROUTE, NLM_F_REQUEST | NLM_F_ACK, routes, table, oif) if f[1] != errno.ESRCH
    ]
    if failures:
        raise RouteBatchError(failures)
