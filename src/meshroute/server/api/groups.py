"""`/api/groups`."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query

from meshroute.core.model import Group
from meshroute.server.api.body import body_of, openapi_body
from meshroute.server.api.deps import Caller, Svc
from meshroute.server.api.schemas import GroupRequest, group_json
from meshroute.server.services import Services

router = APIRouter(prefix="/api/groups", tags=["Groups"])
Body = Annotated[GroupRequest, Depends(body_of(GroupRequest))]


def _render(svc: Services, account_id: str, groups: list[Group]) -> list[dict[str, Any]]:
    with svc.uow.read(account_id) as tx:
        names = {p.id: p.name for p in tx.peers_by_id(pid for g in groups for pid in g.peers).values()}
    return [group_json(g, names) for g in groups]


@router.get("", summary="List all groups")
def list_groups(user: Caller, svc: Svc, name: Annotated[str | None, Query()] = None) -> list[dict[str, Any]]:
    # An empty ?name= is no filter, as in NetBird.
    return _render(svc, user.account_id, svc.groups.list_all(user.account_id, user.id, name or None))


@router.post("", summary="Create a group", openapi_extra=openapi_body(GroupRequest))
def create_group(user: Caller, body: Body, svc: Svc) -> dict[str, Any]:
    group = svc.groups.create(user.account_id, user.id, body.name or "", body.peers or [])
    return _render(svc, user.account_id, [group])[0]


@router.get("/{group_id}", summary="Retrieve a group")
def get_group(group_id: str, user: Caller, svc: Svc) -> dict[str, Any]:
    return _render(svc, user.account_id, [svc.groups.get(user.account_id, user.id, group_id)])[0]


@router.put(
    "/{group_id}", summary="Update a group (full replacement)", openapi_extra=openapi_body(GroupRequest)
)
def update_group(group_id: str, user: Caller, body: Body, svc: Svc) -> dict[str, Any]:
    group = svc.groups.update(user.account_id, user.id, group_id, body.name or "", body.peers or [])
    return _render(svc, user.account_id, [group])[0]


@router.delete("/{group_id}", summary="Delete a group")
def delete_group(group_id: str, user: Caller, svc: Svc) -> dict[str, Any]:
    svc.groups.delete(user.account_id, user.id, group_id)
    return {}
