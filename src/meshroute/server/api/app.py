"""The FastAPI application: routers, error mapping, body-size limit, served OpenAPI document."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from typing import Any

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from meshroute import __version__
from meshroute.server.api import accounts, errors, groups, peers, routes, setup_keys, users
from meshroute.server.services import Services
from meshroute.server.sync.engine import MapEngine

Lifespan = Callable[[FastAPI], AbstractAsyncContextManager[None]]

MAX_BODY = 1 << 20  # 1 MiB: far above any real request, far below what could hurt the server


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

    @staticmethod
    async def _reject(send: Send) -> None:
        await _reply(send, 413, b'{"message":"request body too large","code":413}')


async def _reply(send: Send, status: int, body: bytes) -> None:
    headers = [(b"content-type", b"application/json; charset=UTF-8"), (b"content-length", b"%d" % len(body))]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class _TooLarge(Exception):
    pass


def create_app(
    services: Services, engine: MapEngine | None = None, lifespan: Lifespan | None = None
) -> FastAPI:
    """`engine` serves the network-map view; without it one is made that loads on demand."""
    app = FastAPI(
        lifespan=lifespan,
        title="meshroute REST API",
        version=__version__,
        description="NetBird-compatible management API for routes, groups, peers, setup keys, users, "
        "tokens, accounts and audit events.",
        openapi_url="/api/openapi.json",
        docs_url="/api/docs",
        redoc_url=None,
    )
    app.state.services = services
    if engine is None:  # no sync server: keep the view current synchronously after each commit
        engine = MapEngine(services.uow)
        services.uow.listeners.append(engine.process)
    app.state.map_engine = engine
    errors.install(app)
    for module in (routes, groups, peers, setup_keys, users, accounts):
        app.include_router(module.router)
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
