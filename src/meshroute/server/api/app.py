"""The FastAPI application: routers, error mapping, body-size limit, served OpenAPI document and
the API browser (Swagger UI, served from the package: it works without the internet)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles
from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from meshroute import __version__
from meshroute.server.api import (
    accounts,
    errors,
    groups,
    models,
    not_implemented,
    peers,
    routes,
    setup_keys,
    users,
)
from meshroute.server.services import Services
from meshroute.server.throttle import AuthThrottle
from meshroute.server.views import Views

log = logging.getLogger(__name__)
Lifespan = Callable[[FastAPI], AbstractAsyncContextManager[None]]

MAX_BODY = 1 << 20  # 1 MiB: far above any real request, far below what could hurt the server
SWAGGER_UI = Path(__file__).parent / "vendor" / "swagger-ui"  # pinned; see VERSION there
DOCS_ASSETS = "/api/docs/assets"

# Every operation may fail so (and 422 replaces FastAPI's own validation-error body, which this
# server never sends): documented once for all.
_ERROR = {"model": models.ErrorBody}
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: {**_ERROR, "description": "The request cannot be parsed"},
    401: {**_ERROR, "description": "No valid token"},
    403: {**_ERROR, "description": "The caller may not do this"},
    404: {**_ERROR, "description": "Not found"},
    422: {**_ERROR, "description": "The request breaks a rule"},
    429: {**_ERROR, "description": "Too many failed authentications from this address"},
    "default": {**_ERROR, "description": "Any other error (409, 412, 413, 500)"},
}


class RequestGuard:
    """Answers 413 once a request body passes MAX_BODY (declared or streamed) and 400 to NUL in URLs."""

    def __init__(self, app: ASGIApp, limit: int = MAX_BODY) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if "\x00" in scope.get("path", "") or b"%00" in scope.get("query_string", b""):
            await _reply(send, 400, b'{"message":"NUL characters are not allowed in URLs","code":400}')
            return
        for name, value in scope.get("headers", []):
            if name == b"content-length" and value.isdigit() and int(value) > self.limit:
                await self._reject(send)
                return
        seen = 0

        async def limited() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:
                    raise _TooLarge
            return message

        try:
            await self.app(scope, limited, send)
        except _TooLarge:
            await self._reject(send)
        except ClientDisconnect:
            # The client hung up (or was cut off by a timeout) mid-body: nothing to answer, and
            # no server error to report.
            log.debug("client %s disconnected before sending the whole body", scope.get("client"))

    @staticmethod
    async def _reject(send: Send) -> None:
        await _reply(send, 413, b'{"message":"request body too large","code":413}')


async def _reply(send: Send, status: int, body: bytes) -> None:
    headers = [(b"content-type", b"application/json; charset=UTF-8"), (b"content-length", b"%d" % len(body))]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class _TooLarge(Exception):
    pass


def create_app(services: Services, views: Views, lifespan: Lifespan, throttle: AuthThrottle) -> FastAPI:
    """The REST app over the services (changes) and views (reads); built by the composition root
    (`server.assembly`) only. `throttle` counts failed token checks per client address (shared
    with agent sync)."""
    app = FastAPI(
        lifespan=lifespan,
        title="meshroute REST API",
        version=__version__,
        description="NetBird-compatible management API for routes, groups, peers, setup keys, users, "
        "tokens, accounts and audit events.",
        openapi_url="/api/openapi.json",
        docs_url=None,
        redoc_url=None,
        responses=ERROR_RESPONSES,
    )
    app.state.services = services
    app.state.auth_throttle = throttle
    app.state.views = views
    errors.install(app)
    for module in (routes, groups, peers, setup_keys, users, accounts):
        app.include_router(module.router)
    _add_docs(app)
    not_implemented.install(app)  # after the real routes: they always win
    app.add_middleware(RequestGuard)
    # Browsers (dashboards) call the API cross-origin; tokens travel in a header, not cookies.
    app.add_middleware(
        CORSMiddleware,
        allow_origins=["*"],
        allow_methods=["GET", "POST", "PUT", "DELETE", "OPTIONS"],
        allow_headers=["Authorization", "Content-Type"],
    )
    app.openapi_schema = None
    _add_security(app)
    return app


def _add_docs(app: FastAPI) -> None:
    app.mount(DOCS_ASSETS, StaticFiles(directory=SWAGGER_UI), name="swagger-ui")

    @app.get("/api/docs", include_in_schema=False)
    def docs() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url="/api/openapi.json",
            title=f"{app.title} - Swagger UI",
            swagger_js_url=f"{DOCS_ASSETS}/swagger-ui-bundle.js",
            swagger_css_url=f"{DOCS_ASSETS}/swagger-ui.css",
            swagger_favicon_url=f"{DOCS_ASSETS}/favicon-32x32.png",
        )


def _add_security(app: FastAPI) -> None:
    original = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = original()
        schema.setdefault("components", {})["securitySchemes"] = {
            "TokenAuth": {"type": "apiKey", "in": "header", "name": "Authorization"},
            "BearerAuth": {"type": "http", "scheme": "bearer"},
        }
        schema["security"] = [{"TokenAuth": []}, {"BearerAuth": []}]
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
