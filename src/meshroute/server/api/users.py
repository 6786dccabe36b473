"""`/api/users`, `/api/users/current` and `/api/users/{id}/tokens`."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Response

from meshroute.core.errors import InvalidArgument
from meshroute.server.api import models
from meshroute.server.api.body import body_of, openapi_body
from meshroute.server.api.deps import Caller, Reads, Svc
from meshroute.server.api.render import json_response, pat_json, user_json
from meshroute.server.api.schemas import PersonalAccessTokenRequest, UserCreateRequest, UserRequest

router = APIRouter(prefix="/api/users", tags=["Users", "Tokens"])
CreateBody = Annotated[UserCreateRequest, Depends(body_of(UserCreateRequest))]
UpdateBody = Annotated[UserRequest, Depends(body_of(UserRequest))]
TokenBody = Annotated[PersonalAccessTokenRequest, Depends(body_of(PersonalAccessTokenRequest))]


@router.get("", summary="List all users", response_model=list[models.User])
def list_users(
    user: Caller,
    reads: Reads,
    service_user: Annotated[bool | None, Query(description="only service users, or only people")] = None,
) -> Response:
    return json_response([user_json(u, user.id) for u in reads.users(user.account_id, user.id, service_user)])


@router.get("/current", summary="Retrieve the current user", response_model=models.User)
def current_user(user: Caller) -> Response:
    return json_response(user_json(user, user.id))


@router.post(
    "",
    summary="Create a service user",
    openapi_extra=openapi_body(UserCreateRequest),
    response_model=models.User,
)
def create_user(user: Caller, body: CreateBody, svc: Svc) -> Response:
    if body.role is None:
        raise InvalidArgument("role should be provided")
    created = svc.users.create(
        user.account_id,
        user.id,
        role=body.role,
        name=body.name or "",
        email=body.email or "",
        auto_groups=body.auto_groups or [],
        is_service_user=bool(body.is_service_user),
    )
    return json_response(user_json(created, user.id))


@router.put(
    "/{user_id}", summary="Update a user", openapi_extra=openapi_body(UserRequest), response_model=models.User
)
def update_user(user_id: str, user: Caller, body: UpdateBody, svc: Svc) -> Response:
    if body.role is None:
        raise InvalidArgument("role should be provided")
    updated = svc.users.update(
        user.account_id,
        user.id,
        user_id,
        role=body.role,
        auto_groups=body.auto_groups or [],
        blocked=bool(body.is_blocked),
    )
    return json_response(user_json(updated, user.id))


@router.delete("/{user_id}", summary="Delete a user", response_model=models.Empty)
def delete_user(user_id: str, user: Caller, svc: Svc) -> Response:
    svc.users.delete(user.account_id, user.id, user_id)
    return json_response({})


@router.get(
    "/{user_id}/tokens",
    summary="List a user's personal access tokens",
    response_model=list[models.PersonalAccessToken],
)
def list_tokens(user_id: str, user: Caller, reads: Reads) -> Response:
    return json_response([pat_json(p) for p in reads.tokens(user.account_id, user.id, user_id)])


@router.post(
    "/{user_id}/tokens",
    summary="Create a personal access token",
    openapi_extra=openapi_body(PersonalAccessTokenRequest),
    response_model=models.PersonalAccessTokenGenerated,
)
def create_token(user_id: str, user: Caller, body: TokenBody, svc: Svc) -> Response:
    pat, plain = svc.users.create_token(
        user.account_id, user.id, user_id, body.name or "", body.expires_in or 0
    )
    return json_response({"plain_token": plain, "personal_access_token": pat_json(pat)})


@router.get(
    "/{user_id}/tokens/{token_id}",
    summary="Retrieve a personal access token",
    response_model=models.PersonalAccessToken,
)
def get_token(user_id: str, token_id: str, user: Caller, reads: Reads) -> Response:
    return json_response(pat_json(reads.token(user.account_id, user.id, user_id, token_id)))


@router.delete(
    "/{user_id}/tokens/{token_id}", summary="Delete a personal access token", response_model=models.Empty
)
def delete_token(user_id: str, token_id: str, user: Caller, svc: Svc) -> Response:
    svc.users.delete_token(user.account_id, user.id, user_id, token_id)
    return json_response({})
