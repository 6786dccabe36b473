"""Request models (NetBird's JSON: keys matched case-insensitively, null means absent, unknown
keys ignored, strict types). Responses are in `models.py`, rendered by `render.py`.

The limits given with `_doc` are documented only (in the served OpenAPI document): the services
check them, with NetBird's messages and status (422), after authentication and permissions. A
body that breaks them at parse time would answer 400 and in another order.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from meshroute.core.limits import MAX_GROUP_IDS, MAX_INT32, MAX_NAME, MAX_PEER_IDS
from meshroute.core.model import MAX_METRIC, MAX_NET_ID_CHARS, MIN_METRIC

_DAY = 86400


def _doc(description: str = "", /, **limits: int) -> Any:
    """An optional field, documented with its limits (see the module's docstring)."""
    extra: dict[str, Any] = {**limits, **({"description": description} if description else {})}
    return Field(default=None, json_schema_extra=extra)


_GROUPS = {"maxItems": MAX_GROUP_IDS}
_NAME = {"maxLength": MAX_NAME}


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
    network_id: str | None = _doc(minLength=1, maxLength=MAX_NET_ID_CHARS)
    enabled: bool | None = None
    peer: str | None = _doc("the routing peer; give this or peer_groups")
    peer_groups: list[str] | None = _doc("groups of routing peers; give this or peer", **_GROUPS)
    network: str | None = _doc("a CIDR prefix; give this or domains")
    domains: list[str] | None = _doc("domain names; give this or network")
    metric: int | None = _doc(minimum=MIN_METRIC, maximum=MAX_METRIC)
    masquerade: bool | None = None
    groups: list[str] | None = _doc("distribution groups", **_GROUPS)
    keep_route: bool | None = None
    access_control_groups: list[str] | None = _doc(**_GROUPS)
    skip_auto_apply: bool | None = None


class GroupRequest(RequestModel):
    name: str | None = _doc(minLength=1, **_NAME)
    peers: list[str] | None = _doc(maxItems=MAX_PEER_IDS)
    resources: list[dict[str, Any]] | None = _doc("accepted and ignored: meshroute has no resources")


class PeerRequest(RequestModel):
    name: str | None = _doc(minLength=1, **_NAME)
    ssh_enabled: bool | None = None
    login_expiration_enabled: bool | None = None
    inactivity_expiration_enabled: bool | None = None
    approval_required: bool | None = _doc("accepted and ignored")


class CreateSetupKeyRequest(RequestModel):
    name: str | None = _doc(minLength=1, **_NAME)
    type: str | None = _doc("reusable or one-off")
    expires_in: int | None = _doc("seconds: 0 (never) or 86400 to 31536000", minimum=0, maximum=365 * _DAY)
    auto_groups: list[str] | None = _doc(**_GROUPS)
    usage_limit: int | None = _doc("0: unlimited", minimum=0, maximum=MAX_INT32)
    ephemeral: bool | None = None
    allow_extra_dns_labels: bool | None = None


class SetupKeyRequest(RequestModel):
    revoked: bool | None = _doc("required; a revoked key cannot be un-revoked")
    auto_groups: list[str] | None = _doc(**_GROUPS)


class UserCreateRequest(RequestModel):
    email: str | None = _doc(**_NAME)
    name: str | None = _doc(minLength=1, **_NAME)
    role: str | None = _doc("required: admin, network_admin, auditor or user")
    auto_groups: list[str] | None = _doc(**_GROUPS)
    is_service_user: bool | None = _doc("must be true: people come from an identity provider")


class UserRequest(RequestModel):
    role: str | None = _doc("required: owner (unchanged), admin, network_admin, auditor or user")
    auto_groups: list[str] | None = _doc(**_GROUPS)
    is_blocked: bool | None = None


class PersonalAccessTokenRequest(RequestModel):
    name: str | None = _doc(minLength=1, **_NAME)
    expires_in: int | None = _doc("days", minimum=1, maximum=365)


class AccountSettingsRequest(RequestModel):
    peer_login_expiration_enabled: bool | None = None
    peer_login_expiration: int | None = _doc("seconds", minimum=3600, maximum=180 * _DAY)
    peer_inactivity_expiration_enabled: bool | None = None
    peer_inactivity_expiration: int | None = _doc("seconds", minimum=600, maximum=180 * _DAY)
    regular_users_view_blocked: bool | None = None


class AccountRequest(RequestModel):
    settings: AccountSettingsRequest | None = _doc("the settings to change; the others are kept")
