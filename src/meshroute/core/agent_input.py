"""What an agent may tell the server (its `Login` meta, its status reports), checked before
anything reaches a store.

Every other peer of the account receives a peer's endpoints in its network map, so an agent
that reported thousands of long endpoints made every map in its account megabytes large (and
two such peers pushed them past gRPC's 4 MB message limit). Text that no store keeps the same
way (NUL: stored on SQLite, refused by PostgreSQL) or that is no text at all (lone surrogates,
control characters) is refused on every store alike.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Sequence

from meshroute.core.domains import MAX_DOMAINS
from meshroute.core.errors import InvalidArgument
from meshroute.core.limits import MAX_NAME
from meshroute.core.model import MAX_NET_ID_CHARS
from meshroute.core.networkmap.types import V6_DEFAULT_ID_SUFFIX, V6_NET_ID_SUFFIX
from meshroute.core.status import RouteState, StatusReport

MAX_HOSTNAME = MAX_NAME
MAX_OS = MAX_NAME
MAX_KERNEL_VERSION = MAX_NAME
MAX_AGENT_VERSION = 64
# A real agent reports a handful of underlay addresses (one per interface, IPv4 and IPv6).
MAX_ENDPOINTS = 32
# The longest valid endpoint: a 253-character DNS name, ':' and a 5-digit port.
MAX_ENDPOINT_CHARS = 259

# A status report (`ReportStatus`, sent on every change and every minute): an agent reports each HA
# group it receives (a thousand is far beyond any real account) and a handful of requirement checks.
MAX_ROUTE_USES = 1_000
MAX_CHECKS = 64
MAX_ROUTE_IDS = 10_000  # the candidates of all the HA groups of one report together
MAX_PEER_ID = 64  # the width of the peer ID column
# `<route>:<peer>` and the IPv6 twin's suffix; route and peer IDs are at most 64 characters.
MAX_MAP_ROUTE_ID = 64 + 1 + MAX_PEER_ID + len(V6_DEFAULT_ID_SUFFIX)
# `NetID|destination`: the longest destination is 32 domains of 253 characters, joined by ", ".
MAX_HA_ID = MAX_NET_ID_CHARS + len(V6_NET_ID_SUFFIX) + 1 + MAX_DOMAINS * 253 + (MAX_DOMAINS - 1) * 2
MAX_CHECK_NAME = 64
MAX_CHECK_DETAIL = 1024

# C0 and C1 control characters (NUL included), DEL, and surrogate code points: none belongs in
# a single-line name, and a lone surrogate cannot even be encoded as UTF-8.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_SURROGATE = re.compile(r"[\ud800-\udfff]")
_LABEL = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?$")
_ZONE = re.compile(r"^[A-Za-z0-9_.-]{1,15}$")  # an interface name, as in [fe80::1%eth0]


def check_text(value: str, what: str, limit: int) -> None:
    if len(value) > limit:
        raise InvalidArgument(f"{what} should not be longer than {limit} characters")
    if _CONTROL.search(value):
        raise InvalidArgument(f"{what} must not contain control characters (NUL included)")
    if _SURROGATE.search(value):
        raise InvalidArgument(f"{what} must be valid Unicode (no lone surrogates)")


def _valid_host(host: str) -> bool:
    if host.startswith("[") and host.endswith("]"):
        address, percent, zone = host[1:-1].partition("%")
        if percent and not _ZONE.match(zone):
            return False
        try:
            return isinstance(ipaddress.ip_address(address), ipaddress.IPv6Address)
        except ValueError:
            return False
    try:
        return isinstance(ipaddress.ip_address(host), ipaddress.IPv4Address)
    except ValueError:
        pass
    # A DNS name. All-numeric dotted names are mistyped IPv4 addresses, not names.
    labels = host.removesuffix(".").split(".")
    if len(host) > 253 or all(label.isdigit() for label in labels):
        return False
    return all(_LABEL.match(label) for label in labels)


def check_endpoint(value: str) -> None:
    """HOST:PORT: an IPv4 address, a bracketed IPv6 address (optionally with a zone) or a DNS
    name, and a port from 1 to 65535."""
    check_text(value, "endpoint", MAX_ENDPOINT_CHARS)
    host, sep, port = value.rpartition(":")
    valid_port = port.isascii() and port.isdigit() and len(port) <= 5 and 0 < int(port) < 65536
    if not sep or not valid_port or not _valid_host(host):
        raise InvalidArgument(
            f"endpoint {value[:64]!a} is not HOST:PORT (an IPv4 address, a bracketed IPv6 "
            "address or a DNS name, and a port from 1 to 65535)"
        )


def check_agent_meta(
    *, hostname: str, os: str, kernel_version: str, agent_version: str, endpoints: Sequence[str]
) -> None:
    """Raises InvalidArgument naming the first field that breaks a rule."""
    check_text(hostname, "hostname", MAX_HOSTNAME)
    check_text(os, "os", MAX_OS)
    check_text(kernel_version, "kernel version", MAX_KERNEL_VERSION)
    check_text(agent_version, "agent version", MAX_AGENT_VERSION)
    if len(endpoints) > MAX_ENDPOINTS:
        raise InvalidArgument(f"endpoints should not have more than {MAX_ENDPOINTS} entries")
    for endpoint in endpoints:
        check_endpoint(endpoint)


def route_state(value: str) -> RouteState:
    """A state of the wire, or InvalidArgument naming it and the known ones."""
    try:
        return RouteState(value)
    except ValueError:
        known = ", ".join(s.value for s in RouteState)
        raise InvalidArgument(f"unknown route state {value[:32]!a}: expected one of {known}") from None


def check_status_report(report: StatusReport) -> None:
    """Raises InvalidArgument naming the first part of the report that breaks a rule."""
    if len(report.routes) > MAX_ROUTE_USES:
        raise InvalidArgument(f"a status report should not have more than {MAX_ROUTE_USES} route uses")
    if len(report.checks) > MAX_CHECKS:
        raise InvalidArgument(f"a status report should not have more than {MAX_CHECKS} requirement checks")
    if sum(len(use.route_ids) for use in report.routes) > MAX_ROUTE_IDS:
        raise InvalidArgument(f"a status report should not name more than {MAX_ROUTE_IDS} route IDs")
    for use in report.routes:
        check_text(use.ha_id, "HA ID", MAX_HA_ID)
        for route_id in use.route_ids:
            check_text(route_id, "route ID", MAX_MAP_ROUTE_ID)
        check_text(use.routing_peer_id, "routing peer ID", MAX_PEER_ID)
        route_state(use.state)
    for check in report.checks:
        check_text(check.name, "requirement check name", MAX_CHECK_NAME)
        check_text(check.detail, "requirement check detail", MAX_CHECK_DETAIL)
