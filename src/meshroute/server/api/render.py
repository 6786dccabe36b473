"""Core objects to NetBird's response shapes (`models.py` documents them), and the one JSON
encoder of the API (orjson: the long lists encode several times faster than with `json`)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import orjson
from fastapi import Response

from meshroute.core import activity, permissions
from meshroute.core.domains import to_unicode
from meshroute.core.model import Account, Event, Group, PersonalAccessToken, Route, SetupKey, User
from meshroute.core.route_status import PeerStatus
from meshroute.server.store.summaries import PeerSummary
from meshroute.server.views import GroupRef, PeerList, RouteStatus

NEVER = "0001-01-01T00:00:00Z"  # Go's zero time, which NetBird writes for "never"
JSON_MEDIA_TYPE = "application/json"


def encode(content: Any) -> bytes:
    """JSON as the API writes it: compact UTF-8, times in UTC with `Z`."""
    return orjson.dumps(content, option=orjson.OPT_UTC_Z)


def json_response(content: Any) -> Response:
    """A 200 answer, encoded once (FastAPI does not encode a Response again)."""
    return Response(encode(content), media_type=JSON_MEDIA_TYPE)


def ts(value: datetime | None) -> datetime | str:
    """A time as NetBird writes it (RFC 3339 in UTC, `Z`; the encoder formats datetimes so), or
    Go's zero time for none."""
    return NEVER if value is None else value.astimezone(UTC)


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


def peer_json(p: PeerSummary, groups: Sequence[GroupRef] | orjson.Fragment, domain: str) -> dict[str, Any]:
    """`groups`: the peer's groups, or their encoding (`groups_fragment`: one per distinct list)."""
    out: dict[str, Any] = {
        "id": p.id,
        "name": p.name,
        "created_at": ts(p.created_at),
        "ip": p.ip,
        "connection_ip": p.connection_ip,
        "connected": p.connected,
        "last_seen": ts(p.last_seen),
        "os": p.os,
        "kernel_version": p.kernel_version,
        "geoname_id": 0,
        "version": p.version,
        "groups": groups if isinstance(groups, orjson.Fragment) else [_group_minimum(g) for g in groups],
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
    # The IPv6 the peer really uses, as in its network map: none unless it is IPv6-capable (the
    # address allocated at registration waits until then). NetBird omits the field when unset.
    if p.ipv6_capable and p.ipv6:
        out["ipv6"] = p.ipv6
    return out


def peer_detail_json(found: PeerList) -> dict[str, Any]:
    """`GET /api/peers/{id}`: the peer, with the requirement checks of its last status report."""
    p = found.peers[0]
    out = peer_json(p, found.groups_of.get(p.id, ()), found.domain)
    if found.status is not None:
        out.update(status_checks_json(found.status))
    return out


def status_checks_json(status: PeerStatus) -> dict[str, Any]:
    return {
        "routing_peer_checks": [
            {"name": c.name, "ok": c.ok, "detail": c.detail} for c in status.report.checks
        ],
        "routing_peer_checks_updated_at": ts(status.updated_at),
    }


def route_status_json(found: RouteStatus) -> list[dict[str, Any]]:
    names = found.peer_names
    return [
        {
            "peer_id": c.peer_id,
            "peer_name": names.get(c.peer_id, ""),
            "state": c.state,
            "routing_peer_id": c.routing_peer_id,
            "routing_peer_name": names.get(c.routing_peer_id) if c.routing_peer_id else None,
            "last_routing_peer_id": c.last_routing_peer_id,
            "last_routing_peer_name": names.get(c.last_routing_peer_id) if c.last_routing_peer_id else None,
            "updated_at": None if c.updated_at is None else ts(c.updated_at),
            "learned_addresses": c.learned_addresses,
        }
        for c in found.clients
    ]


def _group_minimum(g: GroupRef) -> dict[str, Any]:
    return {"id": g.id, "name": g.name, "peers_count": g.peers_count, "resources_count": 0, "issued": "api"}


def peer_list(found: PeerList) -> bytes:
    """`GET /api/peers`, encoded: the one long list of the API (25,000 peers are ~20 MB of JSON).
    Peers share their group lists (the view interns them), so each distinct list is encoded once
    and spliced in; the rest is one pass of plain dicts through orjson."""
    fragments: dict[int, orjson.Fragment] = {}
    none: tuple[GroupRef, ...] = ()
    items = []
    for p in found.peers:
        groups = found.groups_of.get(p.id, none)
        fragment = fragments.get(id(groups))
        if fragment is None:
            fragment = fragments[id(groups)] = orjson.Fragment(encode([_group_minimum(g) for g in groups]))
        item = peer_json(p, fragment, found.domain)
        item["accessible_peers_count"] = found.accessible_peers_count
        items.append(item)
    return encode(items)


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
