from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class PeerMeta(_message.Message):
    __slots__ = ("hostname", "os", "kernel_version", "agent_version", "endpoints", "ipv6")
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
    def __init__(self, hostname: _Optional[str] = ..., os: _Optional[str] = ..., kernel_version: _Optional[str] = ..., agent_version: _Optional[str] = ..., endpoints: _Optional[_Iterable[str]] = ..., ipv6: _Optional[bool] = ...) -> None: ...

class LoginRequest(_message.Message):
    __slots__ = ("wg_public_key", "setup_key", "meta")
    WG_PUBLIC_KEY_FIELD_NUMBER: _ClassVar[int]
    SETUP_KEY_FIELD_NUMBER: _ClassVar[int]
    META_FIELD_NUMBER: _ClassVar[int]
    wg_public_key: str
    setup_key: str
    meta: PeerMeta
    def __init__(self, wg_public_key: _Optional[str] = ..., setup_key: _Optional[str] = ..., meta: _Optional[_Union[PeerMeta, _Mapping]] = ...) -> None: ...

class LoginResponse(_message.Message):
    __slots__ = ("peer_id", "credential", "ip", "ipv6", "account_id", "serial")
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
    def __init__(self, peer_id: _Optional[str] = ..., credential: _Optional[str] = ..., ip: _Optional[str] = ..., ipv6: _Optional[str] = ..., account_id: _Optional[str] = ..., serial: _Optional[int] = ...) -> None: ...

class SyncRequest(_message.Message):
    __slots__ = ("known_serial",)
    KNOWN_SERIAL_FIELD_NUMBER: _ClassVar[int]
    known_serial: int
    def __init__(self, known_serial: _Optional[int] = ...) -> None: ...

class RemotePeer(_message.Message):
    __slots__ = ("id", "wg_public_key", "ip", "ipv6", "dns_label", "endpoints", "name")
    ID_FIELD_NUMBER: _ClassVar[int]
    WG_PUBLIC_KEY_FIELD_NUMBER: _ClassVar[int]
    IP_FIELD_NUMBER: _ClassVar[int]
    IPV6_FIELD_NUMBER: _ClassVar[int]
    DNS_LABEL_FIELD_NUMBER: _ClassVar[int]
    ENDPOINTS_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    id: str
    wg_public_key: str
    ip: str
    ipv6: str
    dns_label: str
    endpoints: _containers.RepeatedScalarFieldContainer[str]
    name: str
    def __init__(self, id: _Optional[str] = ..., wg_public_key: _Optional[str] = ..., ip: _Optional[str] = ..., ipv6: _Optional[str] = ..., dns_label: _Optional[str] = ..., endpoints: _Optional[_Iterable[str]] = ..., name: _Optional[str] = ...) -> None: ...

class Route(_message.Message):
    __slots__ = ("id", "net_id", "network", "domains", "network_type", "peer_key", "peer_id", "metric", "masquerade", "keep_route", "skip_auto_apply", "ha_id")
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
    HA_ID_FIELD_NUMBER: _ClassVar[int]
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
    ha_id: str
    def __init__(self, id: _Optional[str] = ..., net_id: _Optional[str] = ..., network: _Optional[str] = ..., domains: _Optional[_Iterable[str]] = ..., network_type: _Optional[int] = ..., peer_key: _Optional[str] = ..., peer_id: _Optional[str] = ..., metric: _Optional[int] = ..., masquerade: _Optional[bool] = ..., keep_route: _Optional[bool] = ..., skip_auto_apply: _Optional[bool] = ..., ha_id: _Optional[str] = ...) -> None: ...

class FirewallRule(_message.Message):
    __slots__ = ("route_id", "sources", "destination", "domains", "is_dynamic", "action", "protocol")
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
    def __init__(self, route_id: _Optional[str] = ..., sources: _Optional[_Iterable[str]] = ..., destination: _Optional[str] = ..., domains: _Optional[_Iterable[str]] = ..., is_dynamic: _Optional[bool] = ..., action: _Optional[str] = ..., protocol: _Optional[str] = ...) -> None: ...

class SelfConfig(_message.Message):
    __slots__ = ("id", "wg_public_key", "ip", "ipv6", "dns_label", "network", "network_v6", "name")
    ID_FIELD_NUMBER: _ClassVar[int]
    WG_PUBLIC_KEY_FIELD_NUMBER: _ClassVar[int]
    IP_FIELD_NUMBER: _ClassVar[int]
    IPV6_FIELD_NUMBER: _ClassVar[int]
    DNS_LABEL_FIELD_NUMBER: _ClassVar[int]
    NETWORK_FIELD_NUMBER: _ClassVar[int]
    NETWORK_V6_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    id: str
    wg_public_key: str
    ip: str
    ipv6: str
    dns_label: str
    network: str
    network_v6: str
    name: str
    def __init__(self, id: _Optional[str] = ..., wg_public_key: _Optional[str] = ..., ip: _Optional[str] = ..., ipv6: _Optional[str] = ..., dns_label: _Optional[str] = ..., network: _Optional[str] = ..., network_v6: _Optional[str] = ..., name: _Optional[str] = ...) -> None: ...

class NetworkMap(_message.Message):
    __slots__ = ("serial", "self", "peers", "routes", "rules")
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
    def __init__(self_, serial: _Optional[int] = ..., self: _Optional[_Union[SelfConfig, _Mapping]] = ..., peers: _Optional[_Iterable[_Union[RemotePeer, _Mapping]]] = ..., routes: _Optional[_Iterable[_Union[Route, _Mapping]]] = ..., rules: _Optional[_Iterable[_Union[FirewallRule, _Mapping]]] = ...) -> None: ...

class MapDelta(_message.Message):
    __slots__ = ("serial", "self", "peers_upserted", "peers_removed", "routes_upserted", "routes_removed", "rules_changed", "rules", "prev_serial")
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
    def __init__(self_, serial: _Optional[int] = ..., self: _Optional[_Union[SelfConfig, _Mapping]] = ..., peers_upserted: _Optional[_Iterable[_Union[RemotePeer, _Mapping]]] = ..., peers_removed: _Optional[_Iterable[str]] = ..., routes_upserted: _Optional[_Iterable[_Union[Route, _Mapping]]] = ..., routes_removed: _Optional[_Iterable[str]] = ..., rules_changed: _Optional[bool] = ..., rules: _Optional[_Iterable[_Union[FirewallRule, _Mapping]]] = ..., prev_serial: _Optional[int] = ...) -> None: ...

class SyncResponse(_message.Message):
    __slots__ = ("full", "delta")
    FULL_FIELD_NUMBER: _ClassVar[int]
    DELTA_FIELD_NUMBER: _ClassVar[int]
    full: NetworkMap
    delta: MapDelta
    def __init__(self, full: _Optional[_Union[NetworkMap, _Mapping]] = ..., delta: _Optional[_Union[MapDelta, _Mapping]] = ...) -> None: ...

class RouteUse(_message.Message):
    __slots__ = ("ha_id", "route_ids", "routing_peer_id", "state", "learned")
    HA_ID_FIELD_NUMBER: _ClassVar[int]
    ROUTE_IDS_FIELD_NUMBER: _ClassVar[int]
    ROUTING_PEER_ID_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    LEARNED_FIELD_NUMBER: _ClassVar[int]
    ha_id: str
    route_ids: _containers.RepeatedScalarFieldContainer[str]
    routing_peer_id: str
    state: str
    learned: int
    def __init__(self, ha_id: _Optional[str] = ..., route_ids: _Optional[_Iterable[str]] = ..., routing_peer_id: _Optional[str] = ..., state: _Optional[str] = ..., learned: _Optional[int] = ...) -> None: ...

class RequirementCheck(_message.Message):
    __slots__ = ("name", "ok", "detail")
    NAME_FIELD_NUMBER: _ClassVar[int]
    OK_FIELD_NUMBER: _ClassVar[int]
    DETAIL_FIELD_NUMBER: _ClassVar[int]
    name: str
    ok: bool
    detail: str
    def __init__(self, name: _Optional[str] = ..., ok: _Optional[bool] = ..., detail: _Optional[str] = ...) -> None: ...

class StatusReport(_message.Message):
    __slots__ = ("routes", "checks")
    ROUTES_FIELD_NUMBER: _ClassVar[int]
    CHECKS_FIELD_NUMBER: _ClassVar[int]
    routes: _containers.RepeatedCompositeFieldContainer[RouteUse]
    checks: _containers.RepeatedCompositeFieldContainer[RequirementCheck]
    def __init__(self, routes: _Optional[_Iterable[_Union[RouteUse, _Mapping]]] = ..., checks: _Optional[_Iterable[_Union[RequirementCheck, _Mapping]]] = ...) -> None: ...

class StatusAck(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...
