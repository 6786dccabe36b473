"""Request plumbing shared by every endpoint: who is calling, the services and the views."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from meshroute.core.errors import Unauthorized
from meshroute.core.model import User
from meshroute.server.services import Services
from meshroute.server.throttle import AuthThrottle
from meshroute.server.views import Views


def services(request: Request) -> Services:
    svc: Services = request.app.state.services
    return svc


def views(request: Request) -> Views:
    found: Views = request.app.state.views
    return found


def caller(request: Request) -> User:
    """`Authorization: Token <PAT>` (or `Bearer <PAT>`); scheme case-insensitive, exactly 2 parts."""
    parts = request.headers.get("authorization", "").split(" ")
    if len(parts) != 2 or parts[0].lower() not in ("token", "bearer") or not parts[1]:
        raise Unauthorized("no valid authentication provided")
    throttle: AuthThrottle = request.app.state.auth_throttle
    source = request.client.host if request.client else ""
    throttle.check(source)
    try:
        return services(request).users.authenticate(parts[1])
    except Unauthorized:
        throttle.failed(source)
        raise


Svc = Annotated[Services, Depends(services)]
Reads = Annotated[Views, Depends(views)]
Caller = Annotated[User, Depends(caller)]
