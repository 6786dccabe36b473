"""Request plumbing shared by every endpoint: who is calling, and the services."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from meshroute.core.errors import Unauthorized
from meshroute.core.model import User
from meshroute.server.services import Services


def services(request: Request) -> Services:
    svc: Services = request.app.state.services
    return svc


def caller(request: Request) -> User:
    """`Authorization: Token <PAT>` (or `Bearer <PAT>`); scheme case-insensitive, exactly 2 parts."""
    parts = request.headers.get("authorization", "").split(" ")
    if len(parts) != 2 or parts[0].lower() not in ("token", "bearer") or not parts[1]:
        raise Unauthorized("no valid authentication provided")
    return services(request).users.authenticate(parts[1])


Svc = Annotated[Services, Depends(services)]
Caller = Annotated[User, Depends(caller)]
