"""`/api/accounts` and `/api/events/audit`."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Response

from meshroute.core.errors import InvalidArgument
from meshroute.server.api import models
from meshroute.server.api.body import body_of, openapi_body
from meshroute.server.api.deps import Caller, Reads, Svc
from meshroute.server.api.render import account_json, event_json, json_response
from meshroute.server.api.schemas import AccountRequest
from meshroute.server.services.accounts import SettingsUpdate

router = APIRouter(prefix="/api", tags=["Accounts", "Events"])
Body = Annotated[AccountRequest, Depends(body_of(AccountRequest))]


@router.get("/accounts", summary="List the caller's account", response_model=list[models.Account])
def list_accounts(user: Caller, reads: Reads) -> Response:
    account = reads.account(user.account_id, user.id)
    return json_response([account_json(account, account.created_by)])


@router.put(
    "/accounts/{account_id}",
    summary="Update account settings (those given; the others are kept)",
    openapi_extra=openapi_body(AccountRequest),
    response_model=models.Account,
)
def update_account(account_id: str, user: Caller, body: Body, svc: Svc) -> Response:
    if body.settings is None:
        raise InvalidArgument("settings should be provided")
    s = body.settings
    upd = SettingsUpdate(
        peer_login_expiration_enabled=s.peer_login_expiration_enabled,
        peer_login_expiration=s.peer_login_expiration,
        peer_inactivity_expiration_enabled=s.peer_inactivity_expiration_enabled,
        peer_inactivity_expiration=s.peer_inactivity_expiration,
        regular_users_view_blocked=s.regular_users_view_blocked,
    )
    account = svc.accounts.update_settings(user.account_id, user.id, account_id, upd)
    return json_response(account_json(account, account.created_by))


@router.get("/events/audit", summary="List audit events, newest first", response_model=list[models.Event])
@router.get("/events", summary="List audit events (alias)", include_in_schema=False)
def list_events(user: Caller, reads: Reads, limit: Annotated[int, Query(ge=1, le=10000)] = 10000) -> Response:
    events, users = reads.events(user.account_id, user.id, limit)
    return json_response([event_json(e, users) for e in events])
