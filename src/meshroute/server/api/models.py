"""Response bodies as the OpenAPI document describes them: NetBird's shapes (its `openapi.yml`),
field for field. Handlers render with `render.py` and encode once; these models document what
they send, and the integration suite checks every response against them (`extra="forbid"`: a key
the document does not name fails). A field with a default is left out when it has no value."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from meshroute.core.explain import Use
from meshroute.core.overlaps import OverlapKind
from meshroute.core.route_status import STALE, UNKNOWN
from meshroute.core.status import RouteState


class _Out(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ErrorBody(_Out):
    """Every error: a message meant for people and the HTTP status again."""

    message: str
    code: int = Field(ge=400, le=599)


class Empty(_Out):
    """What a deletion answers."""


class Route(_Out):
    id: str
    network_type: str = Field(description="IPv4, IPv6 or Domain")
    description: str
    network_id: str = Field(min_length=1, max_length=40)
    enabled: bool
    peer: str = Field(description="the routing peer of a single-peer route; empty otherwise")
    peer_groups: list[str] = Field(default=[], description="left out when the route has no peer groups")
    network: str = Field(description="the prefix; 192.0.2.0/32 for domain routes")
    domains: list[str] | None = Field(description="Unicode domain names of a domain route, else null")
    metric: int = Field(ge=1, le=9999)
    masquerade: bool
    groups: list[str]
    keep_route: bool
    access_control_groups: list[str] = Field(default=[], description="left out when empty")
    skip_auto_apply: bool


class RouteClientStatus(_Out):
    """One client peer of a route (meshroute's own): the routing peer it uses now, as its agent
    last reported it for the route's HA group."""

    peer_id: str
    peer_name: str
    state: str = Field(
        json_schema_extra={"enum": [*(s.value for s in RouteState), UNKNOWN, STALE]},
        description="as reported: routing (a routing peer carries it), kept (no usable routing peer; "
        "KeepRoute holds the last one), no_routing_peer, deselected (by the user on the peer), "
        "not_routed (a prefix or kind the agent does not route); unknown: nothing reported for the "
        "route yet; stale: the peer's agent is not connected now",
    )
    routing_peer_id: str | None = Field(
        description="the routing peer carrying the route for this peer now; null when none, unknown or stale"
    )
    routing_peer_name: str | None = Field(description="its name; null when none or not a peer any more")
    last_routing_peer_id: str | None = Field(
        description="the routing peer in the peer's last report (also when stale); null when none"
    )
    last_routing_peer_name: str | None
    updated_at: datetime | None = Field(description="when the peer's report last changed; null when unknown")
    learned_addresses: int | None = Field(
        default=None,
        description="domain routes: how many addresses the peer learned from DNS answers and routes "
        "(its last report); null for other routes and when unknown",
    )


class GroupPeer(_Out):
    id: str
    name: str


class ExplainCandidate(_Out):
    """One routing peer of an HA group, as the peer's agent would rank it."""

    route_id: str
    routing_peer_id: str
    routing_peer_name: str
    metric: int
    connected: bool = Field(description="the routing peer's agent is connected to the management server")
    auto_apply: bool = Field(description="SkipAutoApply off (what counts for exit nodes)")
    allowed: bool = Field(description="the routing peer accepts this peer's traffic (access-control groups)")


class ExplainRoute(_Out):
    """An HA group the peer receives that covers the destination."""

    network_id: str
    network: str = Field(
        description="the prefix the peer installs (::/0 for an exit node's twin), or the domains"
    )
    route_ids: list[str]
    match: str = Field(description="how it covers the destination")
    use: str = Field(
        json_schema_extra={"enum": [u.value for u in Use]},
        description="used (carries the destination), standby (same prefix, not chosen), shadowed (a more "
        "specific route wins), deselected (on the peer), not_selected (an exit node not in use), refused "
        "(a prefix the agent never routes), not_routed (the agent reported that it does not route it)",
    )
    note: str
    routing_peer_id: str | None = Field(description="carrying it now as reported, or predicted to")
    routing_peer_name: str | None
    reported: str | None = Field(
        description="the state the peer's agent reported for it; stale while the agent is away; null: none"
    )
    keep_route: bool
    exit_node: bool
    candidates: list[ExplainCandidate] = Field(description="best first")


class ExplainNotReceived(_Out):
    """A route that covers the destination but does not reach the peer."""

    route_id: str
    network_id: str
    network: str
    reasons: list[str]


class RouteExplanation(_Out):
    """Which route a peer uses for a destination, and why (meshroute's own)."""

    peer_id: str
    peer_name: str
    destination: str
    destination_kind: str = Field(json_schema_extra={"enum": ["address", "name"]})
    verdict: str
    winner: ExplainRoute | None = Field(description="the route in use; null when none is")
    routes: list[ExplainRoute] = Field(
        description="every covering route the peer receives, in the agent's order"
    )
    not_received: list[ExplainNotReceived]
    notes: list[str]


class OverlapRoute(_Out):
    id: str
    network_id: str
    network: str
    domains: list[str] | None
    metric: int


class RouteOverlap(_Out):
    """Two enabled routes whose destinations overlap (meshroute's own)."""

    kind: str = Field(json_schema_extra={"enum": [k.value for k in OverlapKind]})
    shared: str = Field(description="the common part: a prefix or a domain name")
    routes: list[OverlapRoute] = Field(
        min_length=2, max_length=2, description="the one a peer receiving both uses for it, then the other"
    )
    peers_receiving_both: int
    peers: list[GroupPeer] = Field(description="the first peers (by name) that receive both, at most 20")
    effect: str


class Resource(_Out):
    id: str
    type: str


class Group(_Out):
    id: str
    name: str
    peers_count: int
    resources_count: int
    issued: str
    peers: list[GroupPeer]
    resources: list[Resource]


class GroupMinimum(_Out):
    id: str
    name: str
    peers_count: int
    resources_count: int
    issued: str


class RequirementCheck(_Out):
    """A routing peer's requirement check, as its agent reported it."""

    name: str
    ok: bool
    detail: str


class Peer(_Out):
    id: str
    name: str
    created_at: datetime
    ip: str
    ipv6: str = Field(default="", description="left out unless the peer is IPv6-capable")
    connection_ip: str
    connected: bool
    last_seen: datetime
    os: str
    kernel_version: str
    geoname_id: int
    version: str
    groups: list[GroupMinimum]
    ssh_enabled: bool
    user_id: str
    hostname: str
    ui_version: str
    dns_label: str
    login_expiration_enabled: bool
    login_expired: bool
    last_login: datetime
    inactivity_expiration_enabled: bool
    approval_required: bool
    country_code: str
    city_name: str
    serial_number: str
    extra_dns_labels: list[str]
    ephemeral: bool
    local_flags: dict[str, Any]
    routing_peer_checks: list[RequirementCheck] = Field(
        default=[],
        description="meshroute's own: the requirement checks in the peer's last status report (a "
        "routing peer's; empty on a peer that serves nothing). Left out when the peer's agent never "
        "reported, and always left out of the list of peers (GET /api/peers)",
    )
    routing_peer_checks_updated_at: datetime | None = Field(
        default=None, description="when the peer's status report last changed; left out with the checks"
    )


class PeerBatch(Peer):
    """A peer in the list, with how many peers it may reach."""

    accessible_peers_count: int


class MapPeer(_Out):
    id: str
    wg_public_key: str
    ip: str
    ipv6: str | None
    dns_label: str
    endpoints: list[str]


class MapSelf(MapPeer):
    """The peer itself, with the account's overlay networks."""

    network: str
    network_v6: str


class MapRoute(_Out):
    id: str
    network_id: str
    network: str
    domains: list[str]
    network_type: int
    peer_id: str
    peer_key: str
    metric: int
    masquerade: bool
    keep_route: bool
    skip_auto_apply: bool


class MapRule(_Out):
    route_id: str
    sources: list[str]
    destination: str
    domains: list[str]
    is_dynamic: bool
    action: str
    protocol: str


class NetworkMap(_Out):
    """What the peer receives from agent sync (meshroute's own endpoint)."""

    serial: int
    self: MapSelf
    peers: list[MapPeer]
    routes: list[MapRoute]
    firewall_rules: list[MapRule]
    routes_received: list[str]
    routes_served: list[str]


class SetupKey(_Out):
    id: str
    key: str = Field(description="the secret in full only in the answer to its creation")
    name: str
    expires: datetime
    type: str = Field(description="reusable or one-off")
    valid: bool
    revoked: bool
    used_times: int
    last_used: datetime
    state: str = Field(description="valid, overused, expired or revoked")
    auto_groups: list[str]
    updated_at: datetime
    usage_limit: int
    ephemeral: bool
    allow_extra_dns_labels: bool


class UserPermissions(_Out):
    is_restricted: bool
    modules: dict[str, dict[str, bool]]


class User(_Out):
    id: str
    email: str
    name: str
    role: str
    status: str
    last_login: datetime
    auto_groups: list[str]
    is_current: bool
    is_service_user: bool
    is_blocked: bool
    pending_approval: bool
    issued: str
    permissions: UserPermissions


class PersonalAccessToken(_Out):
    id: str
    name: str
    expiration_date: datetime
    created_by: str
    created_at: datetime
    last_used: datetime


class PersonalAccessTokenGenerated(_Out):
    plain_token: str = Field(description="shown only in this answer")
    personal_access_token: PersonalAccessToken


class AccountSettings(_Out):
    peer_login_expiration_enabled: bool
    peer_login_expiration: int = Field(ge=3600, le=180 * 86400)
    peer_inactivity_expiration_enabled: bool
    peer_inactivity_expiration: int = Field(ge=600, le=180 * 86400)
    regular_users_view_blocked: bool
    groups_propagation_enabled: bool
    jwt_groups_enabled: bool
    routing_peer_dns_resolution_enabled: bool
    dns_domain: str
    network_range: str
    network_range_v6: str


class AccountOnboarding(_Out):
    signup_form_pending: bool
    onboarding_flow_pending: bool


class Account(_Out):
    id: str
    settings: AccountSettings
    domain: str
    domain_category: str
    created_at: datetime
    created_by: str
    onboarding: AccountOnboarding
    network_serial: int


class Event(_Out):
    id: str
    timestamp: datetime
    activity: str
    activity_code: str
    initiator_id: str
    initiator_name: str
    initiator_email: str
    target_id: str
    meta: dict[str, str]
