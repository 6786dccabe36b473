"""Sign-in (a personal access token for a session cookie) and sign-out.

The token is read from the form body only, checked as the REST API checks it (and throttled per
client address like it), and never written anywhere: not in a URL, a log, a page or a cookie.
"""

from __future__ import annotations

import logging

from fastapi import Depends, Request, Response
from fastapi.responses import RedirectResponse

from meshroute.core.errors import MeshrouteError, PermissionDenied, TooManyRequests, Unauthorized
from meshroute.server.api.errors import http_status, public_message
from meshroute.server.throttle import AuthThrottle
from meshroute.server.web.forms import Form, form_body
from meshroute.server.web.render import page
from meshroute.server.web.routing import page_router, safe_next, see_other
from meshroute.server.web.session import (
    CSRF_FIELD,
    SESSION_COOKIE,
    SIGNIN_COOKIE,
    SIGNIN_PATH,
    Post,
    clear_cookie,
    new_signin_token,
    services,
    set_cookie,
    tokens_match,
)

log = logging.getLogger(__name__)
router = page_router()


@router.get("/")
def home() -> Response:
    return RedirectResponse("/routes", status_code=303)


@router.get(SIGNIN_PATH)
def sign_in_page(request: Request, next: str = "/routes", ended: str = "") -> Response:
    return _sign_in_form(request, safe_next(next), ended=bool(ended))


def _sign_in_form(
    request: Request, target: str, *, error: str = "", status: int = 200, ended: bool = False
) -> Response:
    token = new_signin_token()
    response = page(
        request, "signin.html", None, code=status, form_token=token, next=target, error=error, ended=ended
    )
    set_cookie(request, response, SIGNIN_COOKIE, token, path=SIGNIN_PATH)
    return response


@router.post(SIGNIN_PATH)
def sign_in(request: Request, form: Form = Depends(form_body)) -> Response:
    target = safe_next(form.get("next", "/routes"))
    if not tokens_match(form.get(CSRF_FIELD), request.cookies.get(SIGNIN_COOKIE, "")):
        return _sign_in_form(request, target, error="The sign-in form has expired: try again.", status=403)
    throttle: AuthThrottle = request.app.state.auth_throttle
    source = request.client.host if request.client else ""
    try:
        throttle.check(source)
        try:
            signed = services(request).sessions.sign_in(form.get("token"))
        except Unauthorized:
            throttle.failed(source)
            raise
    except (Unauthorized, PermissionDenied, TooManyRequests) as exc:
        return _sign_in_form(request, target, error=_refusal(exc), status=http_status(exc))
    log.info("user %s signed in to the dashboard", signed.user.id)
    response = RedirectResponse(target, status_code=303)
    set_cookie(request, response, SESSION_COOKIE, signed.secret)
    clear_cookie(request, response, SIGNIN_COOKIE, path=SIGNIN_PATH)
    return response


def _refusal(exc: MeshrouteError) -> str:
    if isinstance(exc, Unauthorized):
        return f"That token was not accepted ({public_message(exc)}): paste a valid personal access token."
    if isinstance(exc, TooManyRequests):
        return f"Too many failed sign-ins from your address: try again in {exc.retry_after} s."
    return f"Signing in was refused: {public_message(exc)}."


@router.post("/signout")
def sign_out(request: Request, post: Post) -> Response:
    services(request).sessions.sign_out(request.cookies.get(SESSION_COOKIE, ""))
    log.info("user %s signed out of the dashboard", post.visitor.user.id)
    response = see_other(request, SIGNIN_PATH)
    clear_cookie(request, response, SESSION_COOKIE)
    return response
