"""`/api/groups`."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Response

from meshroute.server.api import models
from meshroute.server.api.body import body_of, openapi_body
from meshroute.server.api.deps import Caller, Reads, Svc
from meshroute.server.api.render import group_json, json_response
from meshroute.server.api.schemas import GroupRequest
from meshroute.server.views import GroupList

router = APIRouter(prefix="/api/groups", tags=["Groups"])
Body = Annotated[GroupRequest, Depends(body_of(GroupRequest))]


def _render(found: GroupList) -> list[dict[str, Any]]:
    return [group_json(g, found.peer_names) for g in found.groups]


@router.get("", summary="List all groups", response_model=list[models.Group])
def list_groups(
    user: Caller,
    reads: Reads,
    name: Annotated[str | None, Query(description="the group so named")] = None,
) -> Response:
    return json_response(_render(reads.groups(user.account_id, user.id, name or "")))


@router.post(
    "", summary="Create a group", openapi_extra=openapi_body(GroupRequest), response_model=models.Group
)
def create_group(user: Caller, body: Body, svc: Svc, reads: Reads) -> Response:
    group = svc.groups.create(user.account_id, user.id, body.name or "", body.peers or [])
    return json_response(_render(reads.peer_names(user.account_id, [group]))[0])


@router.get("/{group_id}", summary="Retrieve a group", response_model=models.Group)
def get_group(group_id: str, user: Caller, reads: Reads) -> Response:
    return json_response(_render(reads.group(user.account_id, user.id, group_id))[0])


@router.put(
    "/{group_id}",
    summary="Update a group (full replacement)",
    openapi_extra=openapi_body(GroupRequest),
    response_model=models.Group,
)
def update_group(group_id: str, user: Caller, body: Body, svc: Svc, reads: Reads) -> Response:
    group = svc.groups.update(user.account_id, user.id, group_id, body.name or "", body.peers or [])
    return json_response(_render(reads.peer_names(user.account_id, [group]))[0])


@router.delete("/{group_id}", summary="Delete a group", response_model=models.Empty)
def delete_group(group_id: str, user: Caller, svc: Svc) -> Response:
    svc.groups.delete(user.account_id, user.id, group_id)
    return json_response({})
