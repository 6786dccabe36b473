"""`/api/setup-keys`."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Response

from meshroute.core.errors import InvalidArgument
from meshroute.server.api import models
from meshroute.server.api.body import body_of, openapi_body
from meshroute.server.api.deps import Caller, Reads, Svc
from meshroute.server.api.render import json_response, setup_key_json
from meshroute.server.api.schemas import CreateSetupKeyRequest, SetupKeyRequest

router = APIRouter(prefix="/api/setup-keys", tags=["Setup Keys"])
CreateBody = Annotated[CreateSetupKeyRequest, Depends(body_of(CreateSetupKeyRequest))]
UpdateBody = Annotated[SetupKeyRequest, Depends(body_of(SetupKeyRequest))]


@router.get("", summary="List all setup keys", response_model=list[models.SetupKey])
def list_keys(user: Caller, reads: Reads) -> Response:
    return json_response([setup_key_json(k) for k in reads.setup_keys(user.account_id, user.id)])


@router.post(
    "",
    summary="Create a setup key",
    openapi_extra=openapi_body(CreateSetupKeyRequest),
    response_model=models.SetupKey,
)
def create_key(user: Caller, body: CreateBody, svc: Svc) -> Response:
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
    return json_response(setup_key_json(key, plain))


@router.get("/{key_id}", summary="Retrieve a setup key", response_model=models.SetupKey)
def get_key(key_id: str, user: Caller, reads: Reads) -> Response:
    return json_response(setup_key_json(reads.setup_key(user.account_id, user.id, key_id)))


@router.put(
    "/{key_id}",
    summary="Update a setup key",
    openapi_extra=openapi_body(SetupKeyRequest),
    response_model=models.SetupKey,
)
def update_key(key_id: str, user: Caller, body: UpdateBody, svc: Svc) -> Response:
    if body.revoked is None:
        raise InvalidArgument("'revoked' should be provided")
    key = svc.setup_keys.update(
        user.account_id, user.id, key_id, revoked=body.revoked, auto_groups=body.auto_groups or []
    )
    return json_response(setup_key_json(key))


@router.delete("/{key_id}", summary="Delete a setup key", response_model=models.Empty)
def delete_key(key_id: str, user: Caller, svc: Svc) -> Response:
    svc.setup_keys.delete(user.account_id, user.id, key_id)
    return json_response({})
