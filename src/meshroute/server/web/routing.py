"""How dashboard handlers answer what goes wrong: no session -> the sign-in page (then back), a
typed error -> a page with the API's message and status, anything else -> a plain 500 page (the
details go to the log only). Handlers raise; `PageRoute` turns it into a page."""

from __future__ import annotations

import logging
from collections.abc import Callable, Coroutine
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Request, Response
from fastapi.responses import RedirectResponse
from fastapi.routing import APIRoute

from meshroute.core.errors import MeshrouteError
from meshroute.server.api.errors import http_status, public_message
from meshroute.server.web.render import page
from meshroute.server.web.session import SIGNIN_PATH, SignInRequired, is_htmx

log = logging.getLogger(__name__)
Handler = Callable[[Request], Coroutine[Any, Any, Response]]


def safe_next(target: str) -> str:
    """A local path to return to (never another site: `//host` and `\\` are refused)."""
    if (
        not target.startswith("/")
        or target.startswith("//")
        or "\\" in target
        or target.startswith(SIGNIN_PATH)
    ):
        return "/routes"
    return target


def see_other(request: Request, target: str) -> Response:
    """After a POST: the browser loads `target` (htmx: the whole page is loaded there)."""
    if is_htmx(request):
        return Response(status_code=204, headers={"HX-Redirect": target})
    return RedirectResponse(target, status_code=303)


def to_sign_in(request: Request, message: str = "") -> Response:
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    if request.method != "GET" or is_htmx(request):
        target = "/routes"
    url = f"{SIGNIN_PATH}?next={quote(safe_next(target), safe='/')}" + ("&ended=1" if message else "")
    if is_htmx(request):
        return Response(status_code=204, headers={"HX-Redirect": url})
    return RedirectResponse(url, status_code=303)


def error_page(request: Request, exc: MeshrouteError) -> Response:
    status = http_status(exc)
    who = getattr(request.state, "visitor", None)
    return page(request, "error.html", who, code=status, status_code=status, message=public_message(exc))


class PageRoute(APIRoute):
    """A dashboard route: its errors become pages (see the module docstring)."""

    def get_route_handler(self) -> Handler:
        handler = super().get_route_handler()

        async def answer(request: Request) -> Response:
            try:
                return await handler(request)
            except SignInRequired as exc:
                return to_sign_in(request, exc.message)
            except MeshrouteError as exc:
                return error_page(request, exc)
            except Exception:
                log.exception("dashboard page %s %s failed", request.method, request.url.path)
                return page(
                    request, "error.html", None, code=500, status_code=500, message="internal server error"
                )

        return answer


def page_router() -> APIRouter:
    return APIRouter(route_class=PageRoute, include_in_schema=False)
