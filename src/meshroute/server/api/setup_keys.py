"""`/api/setup-keys`."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends

from meshroute.core.errors import InvalidArgument
from meshroute.server.api.body import body_of, openapi_body
from meshroute.server.api.deps import Caller, Svc
from meshroute.server.api.schemas import CreateSetupKeyRequest, SetupKeyRequest, setup_key_json

router = APIRouter(prefix="/api/setup-keys", tags=["Setup Keys"])
CreateBody = Annotated[CreateSetupKeyRequest, Depends(body_of(CreateSetupKeyRequest))]
UpdateBody = Annotated[SetupKeyRequest, Depends(body_of(SetupKeyRequest))]


@router.get("", summary="List all setup keys")
def list_keys(user: Caller, svc: Svc) -> list[dict[str, Any]]:
    return [setup_key_json(k) for k in svc.setup_keys.list_all(user.account_id, user.id)]


@router.post("", summary="Create a setup key", openapi_extra=openapi_body(CreateSetupKeyRequest))
def create_key(user: Caller, body: CreateBody, svc: Svc) -> dict[str, Any]:
    key, plain = svc.setup_keys.create(
        user.account_id,
        user.id,
        name=body.name or "",
        key_type=body.type or "",
        expires_in=body.expires_in or 0,
        auto_groups=body.auto_groups or [],
        usage_limit=body.usage_limit or 0,
        ephemeral=bool(body.ephemeral),
        allow_extra_dns_labels=bool(body.allow_extra_dns_labels),
    )
    return setup_key_json(key, plain)


@router.get("/{key_id}", summary="Retrieve a setup key")
def get_key(key_id: str, user: Caller, svc: Svc) -> dict[str, Any]:
    return setup_key_json(svc.setup_keys.get(user.account_id, user.id, key_id))


@router.put("/{key_id}", summary="Update a setup key", openapi_extra=openapi_body(SetupKeyRequest))
def update_key(key_id: str, user: Caller, body: UpdateBody, svc: Svc) -> dict[str, Any]:
    if body.revoked is None:
        raise InvalidArgument("'revoked' should be provided")
    key = svc.setup_keys.update(
        user.account_id, user.id, key_id, revoked=body.revoked, auto_groups=body.auto_groups or []
    )
    return setup_key_json(key)


@router.delete("/{key_id}", summary="Delete a setup key")
def delete_key(key_id: str, user: Caller, svc: Svc) -> dict[str, Any]:
    svc.setup_keys.delete(user.account_id, user.id, key_id)
    return {}
