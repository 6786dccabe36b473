"""The web dashboard, served by `meshroute server` at `/` beside the REST API (`/api`): server-rendered
pages (Jinja2, `templates/`) with htmx for partial updates (vendored in `static/`, pinned), readable
without JavaScript. A personal access token is exchanged for a server-side session
(`services.sessions`, `session.py`); every write goes through the same services as the REST API,
so permissions, validation and events are identical; reads go through the views.

- `session.py`: cookies, who is signed in, CSRF; `forms.py`: form bodies; `render.py`: templates
  and the headers of every page; `routing.py`: errors as pages; `data.py`: what pages show of an
  account; `diagram.py`: a route's SVG; `pages/`: one module per part of the dashboard.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import cast

from fastapi import FastAPI, Request
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException
from starlette.responses import Response

from meshroute.server.web.pages import auth, events, explain, groups, peers, route_form, routes, setup_keys
from meshroute.server.web.render import page

STATIC = Path(__file__).parent / "static"


def install(app: FastAPI, public_url: str | None = None) -> None:
    """Add the dashboard to the REST app (`server.assembly` calls this once). `public_url`: the
    address people reach the dashboard at, when it differs from what the requests say (behind a
    proxy); an `https://` one makes the session cookie Secure."""
    app.state.public_url = public_url
    app.mount("/static", StaticFiles(directory=STATIC), name="dashboard-static")
    # route_form before routes: `/routes/new` is not a route ID
    for module in (auth, route_form, routes, explain, peers, groups, setup_keys, events):
        app.include_router(module.router)
    _html_errors(app)


def _html_errors(app: FastAPI) -> None:
    """A page (not the API's JSON) for a path or method the dashboard does not have."""
    api_handler = cast(
        Callable[[Request, Exception], Awaitable[Response]], app.exception_handlers[HTTPException]
    )

    async def handler(request: Request, exc: Exception) -> Response:
        if request.url.path.startswith("/api") or not isinstance(exc, HTTPException):
            return await api_handler(request, exc)
        message = "no such page" if exc.status_code == 404 else str(exc.detail).lower()
        return page(
            request, "error.html", None, code=exc.status_code, status_code=exc.status_code, message=message
        )

    app.add_exception_handler(HTTPException, handler)
