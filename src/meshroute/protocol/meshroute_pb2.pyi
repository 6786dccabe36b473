from collections.abc import Iterable as _Iterable
from collections.abc import Mapping as _Mapping
from typing import ClassVar as _ClassVar

from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from google.protobuf.internal import containers as _containers

DESCRIPTOR: _descriptor.FileDescriptor

class PeerMeta(_message.Message):
    __slots__ = ("agent_version", "endpoints", "hostname", "ipv6", "kernel_version", "os")
    HOSTNAME_FIELD_NUMBER: _ClassVar[int]
    OS_FIELD_NUMBER: _ClassVar[int]
    KERNEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    AGENT_VERSION_FIELD_NUMBER: _ClassVar[int]
    ENDPOINTS_FIELD_NUMBER: _ClassVar[int]
    IPV6_FIELD_NUMBER: _ClassVar[int]
    hostname: str
    os: str
    kernel_version: str
    agent_version: str
    endpoints: _containers.RepeatedScalarFieldContainer[str]
    ipv6: bool
    def __init__(
        self,
        hostname: str | None = ...,
        os: str | None = ...,
        kernel_version: str | None = ...,
        agent_version: str | None = ...,
        endpoints: _Iterable[str] | None = ...,
        ipv6: bool | None = ...,
    ) -> None: ...

class LoginRequest(_message.Message):
    __slots__ = ("meta", "setup_key", "wg_public_key")
    WG_PUBLIC_KEY_FIELD_NUMBER: _ClassVar[int]
    SETUP_KEY_FIELD_NUMBER: _ClassVar[int]
    META_FIELD_NUMBER: _ClassVar[int]
    wg_public_key: str
    setup_key: str
    meta: PeerMeta
    def __init__(
        self,
        wg_public_key: str | None = ...,
        setup_key: str | None = ...,
        meta: PeerMeta | _Mapping | None = ...,
    ) -> None: ...

class LoginResponse(_message.Message):
    __slots__ = ("account_id", "credential", "ip", "ipv6", "peer_id", "serial")
    PEER_ID_FIELD_NUMBER: _ClassVar[int]
    CREDENTIAL_FIELD_NUMBER: _ClassVar[int]
    IP_FIELD_NUMBER: _ClassVar[int]
    IPV6_FIELD_NUMBER: _ClassVar[int]
    ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    SERIAL_FIELD_NUMBER: _ClassVar[int]
    peer_id: str
    credential: str
    ip: str
    ipv6: str
    account_id: str
    serial: int
    def __init__(
        self,
        peer_id: str | None = ...,
        credential: str | None = ...,
        ip: str | None = ...,
        ipv6: str | None = ...,
        account_id: str | None = ...,
        serial: int | None = ...,
    ) -> None: ...

class SyncRequest(_message.Message):
    __slots__ = ("known_serial",)
    KNOWN_SERIAL_FIELD_NUMBER: _ClassVar[int]
    known_serial: int
    def __init__(self, known_serial: int | None = ...) -> None: ...

class RemotePeer(_message.Message):
    __slots__ = ("dns_label", "endpoints", "id", "ip", "ipv6", "wg_public_key")
    ID_FIELD_NUMBER: _ClassVar[int]
    WG_PUBLIC_KEY_FIELD_NUMBER: _ClassVar[int]
    IP_FIELD_NUMBER: _ClassVar[int]
    IPV6_FIELD_NUMBER: _ClassVar[int]
    DNS_LABEL_FIELD_NUMBER: _ClassVar[int]
    ENDPOINTS_FIELD_NUMBER: _ClassVar[int]
    id: str
    wg_public_key: str
    ip: str
    ipv6: str
    dns_label: str
    endpoints: _containers.RepeatedScalarFieldContainer[str]
    def __init__(
        self,
        id: str | None = ...,
        wg_public_key: str | None = ...,
        ip: str | None = ...,
        ipv6: str | None = ...,
        dns_label: str | None = ...,
        endpoints: _Iterable[str] | None = ...,
    ) -> None: ...

class Route(_message.Message):
    __slots__ = (
        "domains",
        "id",
        "keep_route",
        "masquerade",
        "metric",
        "net_id",
        "network",
        "network_type",
        "peer_id",
        "peer_key",
        "skip_auto_apply",
    )
    ID_FIELD_NUMBER: _ClassVar[int]
    NET_ID_FIELD_NUMBER: _ClassVar[int]
    NETWORK_FIELD_NUMBER: _ClassVar[int]
    DOMAINS_FIELD_NUMBER: _ClassVar[int]
    NETWORK_TYPE_FIELD_NUMBER: _ClassVar[int]
    PEER_KEY_FIELD_NUMBER: _ClassVar[int]
    PEER_ID_FIELD_NUMBER: _ClassVar[int]
    METRIC_FIELD_NUMBER: _ClassVar[int]
    MASQUERADE_FIELD_NUMBER: _ClassVar[int]
    KEEP_ROUTE_FIELD_NUMBER: _ClassVar[int]
    SKIP_AUTO_APPLY_FIELD_NUMBER: _ClassVar[int]
    id: str
    net_id: str
    network: str
    domains: _containers.RepeatedScalarFieldContainer[str]
    network_type: int
    peer_key: str
    peer_id: str
    metric: int
    masquerade: bool
    keep_route: bool
    skip_auto_apply: bool
    def __init__(
        self,
        id: str | None = ...,
        net_id: str | None = ...,
        network: str | None = ...,
        domains: _Iterable[str] | None = ...,
        network_type: int | None = ...,
        peer_key: str | None = ...,
        peer_id: str | None = ...,
        metric: int | None = ...,
        masquerade: bool | None = ...,
        keep_route: bool | None = ...,
        skip_auto_apply: bool | None = ...,
    ) -> None: ...

class FirewallRule(_message.Message):
    __slots__ = ("action", "destination", "domains", "is_dynamic", "protocol", "route_id", "sources")
    ROUTE_ID_FIELD_NUMBER: _ClassVar[int]
    SOURCES_FIELD_NUMBER: _ClassVar[int]
    DESTINATION_FIELD_NUMBER: _ClassVar[int]
    DOMAINS_FIELD_NUMBER: _ClassVar[int]
    IS_DYNAMIC_FIELD_NUMBER: _ClassVar[int]
    ACTION_FIELD_NUMBER: _ClassVar[int]
    PROTOCOL_FIELD_NUMBER: _ClassVar[int]
    route_id: str
    sources: _containers.RepeatedScalarFieldContainer[str]
    destination: str
    domains: _containers.RepeatedScalarFieldContainer[str]
    is_dynamic: bool
    action: str
    protocol: str
    def __init__(
        self,
        route_id: str | None = ...,
        sources: _Iterable[str] | None = ...,
        destination: str | None = ...,
        domains: _Iterable[str] | None = ...,
        is_dynamic: bool | None = ...,
        action: str | None = ...,
        protocol: str | None = ...,
    ) -> None: ...

class SelfConfig(_message.Message):
    __slots__ = ("dns_label", "id", "ip", "ipv6", "network", "network_v6", "wg_public_key")
    ID_FIELD_NUMBER: _ClassVar[int]
    WG_PUBLIC_KEY_FIELD_NUMBER: _ClassVar[int]
    IP_FIELD_NUMBER: _ClassVar[int]
    IPV6_FIELD_NUMBER: _ClassVar[int]
    DNS_LABEL_FIELD_NUMBER: _ClassVar[int]
    NETWORK_FIELD_NUMBER: _ClassVar[int]
    NETWORK_V6_FIELD_NUMBER: _ClassVar[int]
    id: str
    wg_public_key: str
    ip: str
    ipv6: str
    dns_label: str
    network: str
    network_v6: str
    def __init__(
        self,
        id: str | None = ...,
        wg_public_key: str | None = ...,
        ip: str | None = ...,
        ipv6: str | None = ...,
        dns_label: str | None = ...,
        network: str | None = ...,
        network_v6: str | None = ...,
    ) -> None: ...

class NetworkMap(_message.Message):
    __slots__ = ("peers", "routes", "rules", "self", "serial")
    SERIAL_FIELD_NUMBER: _ClassVar[int]
    SELF_FIELD_NUMBER: _ClassVar[int]
    PEERS_FIELD_NUMBER: _ClassVar[int]
    ROUTES_FIELD_NUMBER: _ClassVar[int]
    RULES_FIELD_NUMBER: _ClassVar[int]
    serial: int
    self: SelfConfig
    peers: _containers.RepeatedCompositeFieldContainer[RemotePeer]
    routes: _containers.RepeatedCompositeFieldContainer[Route]
    rules: _containers.RepeatedCompositeFieldContainer[FirewallRule]
    def __init__(
        self_,
        serial: int | None = ...,
        self: SelfConfig | _Mapping | None = ...,
        peers: _Iterable[RemotePeer | _Mapping] | None = ...,
        routes: _Iterable[Route | _Mapping] | None = ...,
        rules: _Iterable[FirewallRule | _Mapping] | None = ...,
    ) -> None: ...

class MapDelta(_message.Message):
    __slots__ = (
        "peers_removed",
        "peers_upserted",
        "prev_serial",
        "routes_removed",
        "routes_upserted",
        "rules",
        "rules_changed",
        "self",
        "serial",
    )
    SERIAL_FIELD_NUMBER: _ClassVar[int]
    SELF_FIELD_NUMBER: _ClassVar[int]
    PEERS_UPSERTED_FIELD_NUMBER: _ClassVar[int]
    PEERS_REMOVED_FIELD_NUMBER: _ClassVar[int]
    ROUTES_UPSERTED_FIELD_NUMBER: _ClassVar[int]
    ROUTES_REMOVED_FIELD_NUMBER: _ClassVar[int]
    RULES_CHANGED_FIELD_NUMBER: _ClassVar[int]
    RULES_FIELD_NUMBER: _ClassVar[int]
    PREV_SERIAL_FIELD_NUMBER: _ClassVar[int]
    serial: int
    self: SelfConfig
    peers_upserted: _containers.RepeatedCompositeFieldContainer[RemotePeer]
    peers_removed: _containers.RepeatedScalarFieldContainer[str]
    routes_upserted: _containers.RepeatedCompositeFieldContainer[Route]
    routes_removed: _containers.RepeatedScalarFieldContainer[str]
    rules_changed: bool
    rules: _containers.RepeatedCompositeFieldContainer[FirewallRule]
    prev_serial: int
    def __init__(
        self_,
        serial: int | None = ...,
        self: SelfConfig | _Mapping | None = ...,
        peers_upserted: _Iterable[RemotePeer | _Mapping] | None = ...,
        peers_removed: _Iterable[str] | None = ...,
        routes_upserted: _Iterable[Route | _Mapping] | None = ...,
        routes_removed: _Iterable[str] | None = ...,
        rules_changed: bool | None = ...,
        rules: _Iterable[FirewallRule | _Mapping] | None = ...,
        prev_serial: int | None = ...,
    ) -> None: ...

class SyncResponse(_message.Message):
    __slots__ = ("delta", "full")
    FULL_FIELD_NUMBER: _ClassVar[int]
    DELTA_FIELD_NUMBER: _ClassVar[int]
    full: NetworkMap
    delta: MapDelta
    def __init__(
        self, full: NetworkMap | _Mapping | None = ..., delta: MapDelta | _Mapping | None = ...
    ) -> None: ...
