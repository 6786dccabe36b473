"""`/api/accounts` and `/api/events/audit`."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query

from meshroute.core.errors import InvalidArgument
from meshroute.server.api.body import body_of, openapi_body
from meshroute.server.api.deps import Caller, Svc
from meshroute.server.api.schemas import AccountRequest, account_json, event_json
from meshroute.server.services.accounts import SettingsUpdate

router = APIRouter(prefix="/api", tags=["Accounts", "Events"])
Body = Annotated[AccountRequest, Depends(body_of(AccountRequest))]


@router.get("/accounts", summary="List the caller's account")
def list_accounts(user: Caller, svc: Svc) -> list[dict[str, Any]]:
    account = svc.accounts.get(user.account_id, user.id)
    return [account_json(account, account.created_by)]


@router.put(
    "/accounts/{account_id}", summary="Update account settings", openapi_extra=openapi_body(AccountRequest)
)
def update_account(account_id: str, user: Caller, body: Body, svc: Svc) -> dict[str, Any]:
    if body.settings is None:
        raise InvalidArgument("settings should be provided")
    current = svc.accounts.get(user.account_id, user.id)
    s = body.settings

    def pick(value: Any, default: Any) -> Any:
        return default if value is None else value

    upd = SettingsUpdate(
        peer_login_expiration_enabled=pick(
            s.peer_login_expiration_enabled, current.peer_login_expiration_enabled
        ),
        peer_login_expiration=pick(s.peer_login_expiration, current.peer_login_expiration),
        peer_inactivity_expiration_enabled=pick(
            s.peer_inactivity_expiration_enabled, current.peer_inactivity_expiration_enabled
        ),
        peer_inactivity_expiration=pick(s.peer_inactivity_expiration, current.peer_inactivity_expiration),
        regular_users_view_blocked=pick(s.regular_users_view_blocked, current.regular_users_view_blocked),
    )
    account = svc.accounts.update_settings(user.account_id, user.id, account_id, upd)
    return account_json(account, account.created_by)


@router.get("/events/audit", summary="List audit events, newest first")
@router.get("/events", summary="List audit events (alias)", include_in_schema=False)
def list_events(
    user: Caller, svc: Svc, limit: Annotated[int, Query(ge=1, le=10000)] = 10000
) -> list[dict[str, Any]]:
    events, users = svc.accounts.events(user.account_id, user.id, limit)
    return [event_json(e, users) for e in events]
