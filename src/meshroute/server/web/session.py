"""Who is looking at the dashboard, and whether a form really comes from it.

- The session cookie holds only a random secret (`services.sessions`); it is HttpOnly,
  SameSite=Strict, Path=/, and Secure when the dashboard is reached over TLS: the server was told
  its public address is `https://...` (`--public-url`), or the request itself came over HTTPS (a
  TLS-terminating proxy on the same host sets `X-Forwarded-Proto`, which uvicorn trusts from
  127.0.0.1).
- Every form carries the session's CSRF token; a POST whose token does not match, or whose
  `Origin` is another site, changes nothing (403). The sign-in form, before any session, carries a
  token that must match a short-lived cookie of its own (double submit).
"""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass
from typing import Annotated
from urllib.parse import urlsplit

from fastapi import Depends, Request, Response

from meshroute.core import permissions
from meshroute.core.errors import PermissionDenied, Unauthorized
from meshroute.core.model import User, WebSession
from meshroute.core.permissions import Op
from meshroute.server.services import Services
from meshroute.server.views import Views
from meshroute.server.web.forms import Form, form_body

SESSION_COOKIE = "meshroute_session"
SIGNIN_COOKIE = "meshroute_signin"  # the sign-in form's own CSRF token (double submit)
SIGNIN_PATH = "/signin"
CSRF_FIELD = "csrf_token"


class SignInRequired(Exception):
    """No live session: the visitor is sent to the sign-in page (then back to `next`)."""

    def __init__(self, message: str = "") -> None:
        super().__init__(message)
        self.message = message


class ForgedRequest(PermissionDenied):
    """A POST without this session's form token, or from another site."""


@dataclass(frozen=True, slots=True)
class Visitor:
    user: User
    session: WebSession

    @property
    def csrf(self) -> str:
        return self.session.csrf

    def can(self, module: str, op: str = "update") -> bool:
        """Whether the user may change (`op`) things of `module`: write controls are shown only then."""
        return not self.user.blocked and permissions.allowed(self.user, module, Op(op))


def services(request: Request) -> Services:
    found: Services = request.app.state.services
    return found


def views(request: Request) -> Views:
    found: Views = request.app.state.views
    return found


def secure_cookies(request: Request) -> bool:
    public_url: str | None = request.app.state.public_url
    return (public_url or "").startswith("https://") or request.url.scheme == "https"


def set_cookie(request: Request, response: Response, name: str, value: str, path: str = "/") -> None:
    response.set_cookie(
        name, value, path=path, httponly=True, samesite="strict", secure=secure_cookies(request)
    )


def clear_cookie(request: Request, response: Response, name: str, path: str = "/") -> None:
    response.delete_cookie(name, path=path, httponly=True, samesite="strict", secure=secure_cookies(request))


def visitor(request: Request) -> Visitor:
    secret = request.cookies.get(SESSION_COOKIE, "")
    if not secret:
        raise SignInRequired()
    try:
        session, user = services(request).sessions.resolve(secret)
    except (Unauthorized, PermissionDenied) as exc:
        raise SignInRequired(exc.message) from None
    found = Visitor(user, session)
    request.state.visitor = found  # for an error page to show the navigation
    return found


def same_origin(request: Request) -> bool:
    """A browser's `Origin` (when it sends one) names this server: its host, or the public URL's."""
    origin = request.headers.get("origin")
    if origin is None:
        return True
    host = urlsplit(origin).netloc
    allowed = {request.headers.get("host", "")}
    public_url: str | None = request.app.state.public_url
    if public_url:
        allowed.add(urlsplit(public_url).netloc)
    return origin != "null" and host in allowed


def tokens_match(given: str, expected: str) -> bool:
    return bool(given) and bool(expected) and hmac.compare_digest(given.encode(), expected.encode())


@dataclass(frozen=True, slots=True)
class Posted:
    """A form posted by the signed-in visitor, its CSRF token checked."""

    visitor: Visitor
    form: Form


def posted(
    request: Request, who: Annotated[Visitor, Depends(visitor)], form: Annotated[Form, Depends(form_body)]
) -> Posted:
    if not same_origin(request) or not tokens_match(form.get(CSRF_FIELD), who.csrf):
        raise ForgedRequest(
            "this form was not sent by this dashboard, or it has expired: reload the page and try again"
        )
    return Posted(who, form)


def new_signin_token() -> str:
    return secrets.token_urlsafe(24)


def is_htmx(request: Request) -> bool:
    return request.headers.get("hx-request") == "true"


Viewer = Annotated[Visitor, Depends(visitor)]
Post = Annotated[Posted, Depends(posted)]
