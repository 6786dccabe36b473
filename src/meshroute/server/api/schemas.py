"""Request models (NetBird's JSON: keys matched case-insensitively, null means absent, unknown
keys ignored, strict types) and renderers from core objects to NetBird's response shapes."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, model_validator

from meshroute.core import activity, permissions
from meshroute.core.domains import to_unicode
from meshroute.core.model import (
    Account,
    Event,
    Group,
    Peer,
    PersonalAccessToken,
    Route,
    SetupKey,
    User,
)


class RequestModel(BaseModel):
    model_config = ConfigDict(extra="ignore", strict=True)

    @model_validator(mode="before")
    @classmethod
    def _fold_keys(cls, data: Any) -> Any:
        # Go's encoding/json matches keys case-insensitively; NetBird clients rely on it.
        if isinstance(data, dict):
            return {k.lower() if isinstance(k, str) else k: v for k, v in data.items()}
        return data


class RouteRequest(RequestModel):
    description: str | None = None
    network_id: str | None = None
    enabled: bool | None = None
    peer: str | None = None
    peer_groups: list[str] | None = None
    network: str | None = None
    domains: list[str] | None = None
    metric: int | None = None
    masquerade: bool | None = None
    groups: list[str] | None = None
    keep_route: bool | None = None
    access_control_groups: list[str] | None = None
    skip_auto_apply: bool | None = None


class GroupRequest(RequestModel):
    name: str | None = None
    peers: list[str] | None = None
    resources: list[dict[str, Any]] | None = None


class PeerRequest(RequestModel):
    name: str | None = None
    ssh_enabled: bool | None = None
    login_expiration_enabled: bool | None = None
    inactivity_expiration_enabled: bool | None = None
    approval_required: bool | None = None


class CreateSetupKeyRequest(RequestModel):
    name: str | None = None
    type: str | None = None
    expires_in: int | None = None
    auto_groups: list[str] | None = None
    usage_limit: int | None = None
    ephemeral: bool | None = None
    allow_extra_dns_labels: bool | None = None


class SetupKeyRequest(RequestModel):
    revoked: bool | None = None
    auto_groups: list[str] | None = None


class UserCreateRequest(RequestModel):
    email: str | None = None
    name: str | None = None
    role: str | None = None
    auto_groups: list[str] | None = None
    is_service_user: bool | None = None


class UserRequest(RequestModel):
    role: str | None = None
    auto_groups: list[str] | None = None
    is_blocked: bool | None = None


class PersonalAccessTokenRequest(RequestModel):
    name: str | None = None
    expires_in: int | None = None


class AccountSettingsRequest(RequestModel):
    peer_login_expiration_enabled: bool | None = None
    peer_login_expiration: int | None = None
    peer_inactivity_expiration_enabled: bool | None = None
    peer_inactivity_expiration: int | None = None
    regular_users_view_blocked: bool | None = None


class AccountRequest(RequestModel):
    settings: AccountSettingsRequest | None = None


# -- rendering ----------------------------------------------------------------------------------
def ts(value: datetime | None) -> str:
    if value is None:
        return "0001-01-01T00:00:00Z"
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def route_json(r: Route) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": r.id,
        "network_type": r.network_type.api_name,
        "description": r.description,
        "network_id": r.net_id,
        "enabled": r.enabled,
        "peer": r.peer,
        "network": str(r.network) if r.network is not None else "invalid Prefix",
        "domains": [to_unicode(d) for d in r.domains] if r.domains else None,
        "metric": r.metric,
        "masquerade": r.masquerade,
        "groups": list(r.groups),
        "keep_route": r.keep_route,
        "skip_auto_apply": r.skip_auto_apply,
    }
    if r.peer_groups:
        out["peer_groups"] = list(r.peer_groups)
    if r.access_control_groups:
        out["access_control_groups"] = list(r.access_control_groups)
    return out


def group_json(g: Group, peer_names: dict[str, str]) -> dict[str, Any]:
    return {
        "id": g.id,
        "name": g.name,
        "peers_count": len(g.peers),
        "resources_count": 0,
        "issued": g.issued,
        "peers": [{"id": p, "name": peer_names.get(p, "")} for p in g.peers],
        "resources": [],
    }


def peer_json(
    p: Peer, groups: list[tuple[str, str]], group_sizes: dict[str, int], domain: str
) -> dict[str, Any]:
    return {
        "id": p.id,
        "name": p.name,
        "created_at": ts(p.created_at),
        "ip": str(p.ip),
        "ipv6": str(p.ipv6) if p.ipv6 else "",
        "connection_ip": p.connection_ip,
        "connected": p.connected,
        "last_seen": ts(p.last_seen),
        "os": p.os,
        "kernel_version": p.kernel_version,
        "geoname_id": 0,
        "version": p.version,
        "groups": [
            {
                "id": gid,
                "name": name,
                "peers_count": group_sizes.get(gid, 0),
                "resources_count": 0,
                "issued": "api",
            }
            for gid, name in groups
        ],
        "ssh_enabled": p.ssh_enabled,
        "user_id": p.user_id,
        "hostname": p.hostname,
        "ui_version": "",
        "dns_label": f"{p.dns_label}.{domain}",
        "login_expiration_enabled": p.login_expiration_enabled,
        "login_expired": False,
        "last_login": ts(p.last_login),
        "inactivity_expiration_enabled": p.inactivity_expiration_enabled,
        "approval_required": False,
        "country_code": "",
        "city_name": "",
        "serial_number": "",
        "extra_dns_labels": [],
        "ephemeral": p.ephemeral,
        "local_flags": {},
    }


def setup_key_json(k: SetupKey, plain: str | None = None) -> dict[str, Any]:
    now = datetime.now(UTC)
    state = k.state(now)
    return {
        "id": k.id,
        "key": plain if plain is not None else k.key_prefix + "****",
        "name": k.name,
        "expires": ts(k.expires_at),
        "type": k.type,
        "valid": state == "valid",
        "revoked": k.revoked,
        "used_times": k.used_times,
        "last_used": ts(k.last_used),
        "state": state,
        "auto_groups": list(k.auto_groups),
        "updated_at": ts(k.updated_at),
        "usage_limit": k.usage_limit,
        "ephemeral": k.ephemeral,
        "allow_extra_dns_labels": k.allow_extra_dns_labels,
    }


def user_json(u: User, current_id: str) -> dict[str, Any]:
    return {
        "id": u.id,
        "email": u.email,
        "name": u.name,
        "role": u.role.value,
        "status": "blocked" if u.blocked else "active",
        "last_login": ts(u.last_login),
        "auto_groups": list(u.auto_groups),
        "is_current": u.id == current_id,
        "is_service_user": u.is_service_user,
        "is_blocked": u.blocked,
        "pending_approval": False,
        "issued": u.issued,
        "permissions": {"is_restricted": False, "modules": permissions.module_permissions(u)},
    }


def pat_json(p: PersonalAccessToken) -> dict[str, Any]:
    return {
        "id": p.id,
        "name": p.name,
        "expiration_date": ts(p.expiration_date),
        "created_by": p.created_by,
        "created_at": ts(p.created_at),
        "last_used": ts(p.last_used),
    }


def event_json(e: Event, users: dict[str, User]) -> dict[str, Any]:
    initiator = users.get(e.initiator_id)
    return {
        "id": str(e.id),
        "timestamp": ts(e.timestamp),
        "activity": activity.message(e.activity),
        "activity_code": activity.string_code(e.activity),
        "initiator_id": e.initiator_id,
        "initiator_name": initiator.name if initiator else "",
        "initiator_email": initiator.email if initiator else "",
        "target_id": e.target_id,
        "meta": {k: _go_format(v) for k, v in e.meta.items()},
    }


def _go_format(v: Any) -> str:
    """Meta values rendered as Go's %v does: lists as `[a b]`."""
    if isinstance(v, list):
        return "[" + " ".join(_go_format(x) for x in v) + "]"
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v)


def account_json(a: Account, created_by: str) -> dict[str, Any]:
    return {
        "id": a.id,
        "settings": {
            "peer_login_expiration_enabled": a.peer_login_expiration_enabled,
            "peer_login_expiration": a.peer_login_expiration,
            "peer_inactivity_expiration_enabled": a.peer_inactivity_expiration_enabled,
            "peer_inactivity_expiration": a.peer_inactivity_expiration,
            "regular_users_view_blocked": a.regular_users_view_blocked,
            "groups_propagation_enabled": False,
            "jwt_groups_enabled": False,
            "routing_peer_dns_resolution_enabled": True,
            "dns_domain": a.domain,
            "network_range": str(a.network_v4),
            "network_range_v6": str(a.network_v6),
        },
        "domain": a.domain,
        "domain_category": "private",
        "created_at": ts(a.created_at),
        "created_by": created_by,
        "onboarding": {"signup_form_pending": False, "onboarding_flow_pending": False},
        "network_serial": a.network_serial,
    }
