"""The one place where typed errors become HTTP responses: `{"message": ..., "code": ...}`."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException
from starlette.routing import Match

from meshroute.core import errors as e
from meshroute.core.errors import BadRequest, MeshrouteError, TooManyRequests

log = logging.getLogger(__name__)
JSON_TYPE = "application/json; charset=UTF-8"

# The HTTP status of each typed error (NetBird's): the one table for this transport.
HTTP_STATUS: dict[type[MeshrouteError], int] = {
    e.InvalidArgument: 422,
    e.BadRequest: 400,
    e.Unauthorized: 401,
    e.PermissionDenied: 403,
    e.NotFound: 404,
    e.AlreadyExists: 409,
    e.PreconditionFailed: 412,
    e.TooManyRequests: 429,
    e.Internal: 500,
}


def http_status(exc: MeshrouteError) -> int:
    """The status of the nearest mapped class of `exc` (500 for an unmapped one)."""
    return next((HTTP_STATUS[k] for k in type(exc).__mro__ if k in HTTP_STATUS), 500)


def public_message(exc: MeshrouteError) -> str:
    """What a client is told of a typed error: the reference lower-cases status-error messages;
    errors it writes directly (BadRequest, e.g. `group has been linked to route: <NetID>`) keep
    their case. The dashboard shows the same words."""
    return exc.message if isinstance(exc, BadRequest) else exc.message.lower()


def error_response(status: int, message: str, headers: Mapping[str, str] | None = None) -> JSONResponse:
    # A message may echo user input; never let an unencodable echo turn a 4xx into a 500.
    message = message.encode("utf-8", "replace").decode("utf-8")
    return JSONResponse(
        {"message": message, "code": status}, status_code=status, media_type=JSON_TYPE, headers=headers
    )


def _describe(errors: Any) -> str:
    parts = []
    for err in errors:
        loc = ".".join(str(x) for x in err.get("loc", ()) if x != "body")
        parts.append(f"{loc}: {err.get('msg', 'invalid')}" if loc else str(err.get("msg", "invalid")))
    return "; ".join(parts[:5])


def _allowed_methods(request: Request) -> str:
    """Every method the path answers: the router's own 405 names only the methods of the first
    route it matched (GET of `/api/routes`, not POST). HEAD is left out: only the plain routes of the
    unimplemented NetBird operations would answer it (Starlette adds it to every GET route)."""
    allowed = []
    for method in ("GET", "POST", "PUT", "PATCH", "DELETE"):
        scope = {**request.scope, "method": method}
        if any(route.matches(scope)[0] == Match.FULL for route in request.app.router.routes):
            allowed.append(method)
    return ", ".join(allowed)


def install(app: FastAPI) -> None:
    @app.exception_handler(MeshrouteError)
    async def _domain(_: Request, exc: MeshrouteError) -> JSONResponse:
        message = public_message(exc)
        if isinstance(exc, TooManyRequests):
            return error_response(http_status(exc), message, {"Retry-After": str(exc.retry_after)})
        return error_response(http_status(exc), message)

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        errors = exc.errors()
        if any(e.get("loc", ("",))[0] == "body" for e in errors):
            if any(e.get("type") == "json_invalid" for e in errors):
                return error_response(400, "couldn't parse JSON request")
            return error_response(400, f"couldn't parse JSON request: {_describe(errors)}")
        return error_response(422, f"invalid request parameters: {_describe(errors)}")

    @app.exception_handler(HTTPException)
    async def _http(request: Request, exc: HTTPException) -> JSONResponse:
        message = str(exc.detail) if exc.detail else "request failed"
        if exc.status_code == 400:
            message = "couldn't parse JSON request"
        headers = dict(exc.headers or {})
        if exc.status_code == 405:
            headers["Allow"] = _allowed_methods(request)
        return error_response(
            exc.status_code, message.lower() if exc.status_code != 400 else message, headers
        )

    @app.exception_handler(Exception)
    async def _internal(_: Request, exc: Exception) -> JSONResponse:
        log.exception("internal error", exc_info=exc)
        return error_response(500, "internal server error")
