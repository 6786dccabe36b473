"""Plain domain objects. Stores and APIs convert to and from these; nothing here does I/O."""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import IntEnum, StrEnum
from typing import Any

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

# TEST-NET-1: stored in place of a prefix on domain routes, harmless if an old client installs it.
DOMAIN_PLACEHOLDER = ipaddress.IPv4Network("192.0.2.0/32")
MIN_METRIC = 1
MAX_METRIC = 9999
MAX_NET_ID_CHARS = 40
ALL_GROUP_NAME = "All"


def net_string(network_type: int, network: str | None, domains: Sequence[str]) -> str:
    """A route's destination as people read it: the prefix, or the domains (NetBird's NetString)."""
    from meshroute.core.domains import safe_string

    if network_type == NetworkType.DOMAIN and domains:
        return safe_string(domains)
    return network if network is not None else "invalid Prefix"


def ha_unique_id(net_id: str, net_str: str) -> str:
    """`NetID|NetString`: the routes a client receives with the same ID are one HA group. The server
    (`Route.ha_unique_id`) and the agent (`MapRoute.ha_id`) both call this one function."""
    return f"{net_id}|{net_str}"


class NetworkType(IntEnum):
    INVALID = 0
    IPV4 = 1
    IPV6 = 2
    DOMAIN = 3

    @property
    def api_name(self) -> str:
        return {1: "IPv4", 2: "IPv6", 3: "Domain"}.get(int(self), "Invalid")


class Role(StrEnum):
    OWNER = "owner"
    ADMIN = "admin"
    NETWORK_ADMIN = "network_admin"
    AUDITOR = "auditor"
    USER = "user"


@dataclass(slots=True)
class Account:
    id: str
    domain: str
    network_v4: ipaddress.IPv4Network
    network_v6: ipaddress.IPv6Network
    network_serial: int
    created_at: datetime
    created_by: str
    peer_login_expiration_enabled: bool = False
    peer_login_expiration: int = 86400
    peer_inactivity_expiration_enabled: bool = False
    peer_inactivity_expiration: int = 600
    regular_users_view_blocked: bool = True


@dataclass(slots=True)
class User:
    id: str
    account_id: str
    role: Role
    name: str = ""
    email: str = ""
    is_service_user: bool = False
    blocked: bool = False
    auto_groups: list[str] = field(default_factory=list)
    issued: str = "api"
    created_at: datetime | None = None
    last_login: datetime | None = None


@dataclass(slots=True)
class PersonalAccessToken:
    id: str
    user_id: str
    name: str
    hashed_token: str
    expiration_date: datetime
    created_by: str
    created_at: datetime
    last_used: datetime | None = None


@dataclass(slots=True)
class WebSession:
    """A dashboard sign-in: what a session cookie stands for. The cookie's value is never stored,
    only its hash (`id_hash`); the session lives no longer than the token it was opened with."""

    id_hash: str
    account_id: str
    user_id: str
    token_id: str  # the personal access token signed in with: deleting it ends the session
    csrf: str  # the session's form token (every form of the dashboard carries it)
    created_at: datetime
    last_seen: datetime
    expires_at: datetime


@dataclass(slots=True)
class Peer:
    id: str
    account_id: str
    key: str  # WireGuard public key, base64
    ip: ipaddress.IPv4Address
    ipv6: ipaddress.IPv6Address | None
    name: str
    hostname: str
    dns_label: str
    created_at: datetime
    os: str = ""
    kernel_version: str = ""
    version: str = ""
    connection_ip: str = ""
    connected: bool = False
    last_seen: datetime | None = None
    last_login: datetime | None = None
    user_id: str = ""
    setup_key_id: str = ""
    ssh_enabled: bool = False
    login_expiration_enabled: bool = False
    inactivity_expiration_enabled: bool = False
    ephemeral: bool = False
    ipv6_capable: bool = False
    endpoints: list[str] = field(default_factory=list)


@dataclass(slots=True)
class Group:
    id: str
    account_id: str
    name: str
    peers: list[str] = field(default_factory=list)
    issued: str = "api"

    @property
    def is_all(self) -> bool:
        return self.name == ALL_GROUP_NAME


@dataclass(slots=True)
class SetupKey:
    id: str
    account_id: str
    name: str
    key_hash: str
    key_prefix: str  # first characters of the secret, for display ("A6160****")
    type: str  # "reusable" | "one-off"
    created_at: datetime
    updated_at: datetime
    expires_at: datetime | None
    revoked: bool = False
    used_times: int = 0
    last_used: datetime | None = None
    auto_groups: list[str] = field(default_factory=list)
    usage_limit: int = 0
    ephemeral: bool = False
    allow_extra_dns_labels: bool = False

    def state(self, now: datetime) -> str:
        if self.revoked:
            return "revoked"
        if self.expires_at is not None and self.expires_at <= now:
            return "expired"
        limit = 1 if self.type == "one-off" else self.usage_limit
        if limit > 0 and self.used_times >= limit:
            return "overused"
        return "valid"


@dataclass(slots=True)
class Route:
    id: str
    account_id: str
    net_id: str
    network: IPNetwork | None  # None: unset/invalid
    network_type: NetworkType
    description: str = ""
    domains: list[str] = field(default_factory=list)  # lower-case punycode
    peer: str = ""  # routing peer ID (single-peer route)
    peer_groups: list[str] = field(default_factory=list)
    enabled: bool = False
    masquerade: bool = False
    metric: int = 0
    keep_route: bool = False
    groups: list[str] = field(default_factory=list)  # distribution groups
    access_control_groups: list[str] = field(default_factory=list)
    skip_auto_apply: bool = False
    public_id: str = ""

    @property
    def is_dynamic(self) -> bool:
        return self.network_type == NetworkType.DOMAIN

    @property
    def kind(self) -> NetworkType | None:
        """The type the route is sent as: from its prefix (the stored type may disagree), DOMAIN
        for a domain route, None when it has no prefix and cannot be sent."""
        if self.network_type == NetworkType.DOMAIN:
            return NetworkType.DOMAIN
        if self.network is None:
            return None
        return NetworkType.IPV6 if self.network.version == 6 else NetworkType.IPV4

    def net_string(self) -> str:
        return net_string(
            self.network_type, str(self.network) if self.network is not None else None, self.domains
        )

    def ha_unique_id(self) -> str:
        """Routes sharing this ID form one high-availability group on a client."""
        return ha_unique_id(self.net_id, self.net_string())


@dataclass(slots=True)
class Event:
    id: int
    timestamp: datetime
    activity: int
    initiator_id: str
    target_id: str
    account_id: str
    meta: dict[str, Any]
