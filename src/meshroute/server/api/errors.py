"""The one place where typed errors become HTTP responses: `{"message": ..., "code": ...}`."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from meshroute.core.errors import BadRequest, MeshrouteError

log = logging.getLogger(__name__)
JSON_TYPE = "application/json; charset=UTF-8"


def error_response(status: int, message: str) -> JSONResponse:
    # A message may echo user input; never let an unencodable echo turn a 4xx into a 500.
    message = message.encode("utf-8", "replace").decode("utf-8")
    return JSONResponse({"message": message, "code": status}, status_code=status, media_type=JSON_TYPE)


def _describe(errors: Any) -> str:
    parts = []
    for err in errors:
        loc = ".".join(str(x) for x in err.get("loc", ()) if x != "body")
        parts.append(f"{loc}: {err.get('msg', 'invalid')}" if loc else str(err.get("msg", "invalid")))
    return "; ".join(parts[:5])


def install(app: FastAPI) -> None:
    @app.exception_handler(MeshrouteError)
    async def _domain(_: Request, exc: MeshrouteError) -> JSONResponse:
        # The reference lower-cases status-error messages; errors it writes directly (BadRequest,
        # e.g. `group has been linked to route: <NetID>`) keep their case.
        message = exc.message if isinstance(exc, BadRequest) else exc.message.lower()
        return error_response(exc.status, message)

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        errors = exc.errors()
        if any(e.get("loc", ("",))[0] == "body" for e in errors):
            if any(e.get("type") == "json_invalid" for e in errors):
                return error_response(400, "couldn't parse JSON request")
            return error_response(400, f"couldn't parse JSON request: {_describe(errors)}")
        return error_response(422, f"invalid request parameters: {_describe(errors)}")

    @app.exception_handler(HTTPException)
    async def _http(_: Request, exc: HTTPException) -> JSONResponse:
        message = str(exc.detail) if exc.detail else "request failed"
        if exc.status_code == 400:
            message = "couldn't parse JSON request"
        return error_response(exc.status_code, message.lower() if exc.status_code != 400 else message)

    @app.exception_handler(Exception)
    async def _internal(_: Request, exc: Exception) -> JSONResponse:
        log.exception("internal error", exc_info=exc)
        return error_response(500, "internal server error")
