"""NetBird API endpoints meshroute does not implement answer 501 with a message that says so.

A client written for NetBird that calls, say, ``/api/policies`` learns that the endpoint exists in
NetBird but not here, rather than getting a 404 that looks like a typo in its URL. The list of
NetBird's operations is generated from its OpenAPI document (``netbird_operations.py``; see
``scripts/gen-netbird-operations``); whatever of it the app does not serve gets a 501 route.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from starlette.routing import BaseRoute, Route

from meshroute.server.api.errors import error_response
from meshroute.server.api.netbird_operations import NETBIRD_OPERATIONS

HTTP_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")
_PARAM = re.compile(r"\{[^}]*\}")


def shape(path: str) -> str:
    """A path template with its parameter names erased: ``/api/peers/{peerId}`` -> ``/api/peers/{}``."""
    return _PARAM.sub("{}", path)


def operations_from_spec(spec: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(path template, METHOD) of every operation of an OpenAPI document, sorted."""
    ops = {
        (path, method.upper())
        for path, item in (spec.get("paths") or {}).items()
        for method in (item or {})
        if method.upper() in HTTP_METHODS
    }
    return sorted(ops)


def served_operations(routes: Iterable[BaseRoute]) -> set[tuple[str, str]]:
    """(path shape, METHOD) of what the app's routes serve."""
    out: set[tuple[str, str]] = set()
    for route in routes:
        path, methods = getattr(route, "path", None), getattr(route, "methods", None)
        if isinstance(path, str) and methods:
            out.update((shape(path), m) for m in methods if m in HTTP_METHODS)
    return out


def missing_operations(app: FastAPI) -> dict[str, list[str]]:
    """NetBird's path templates that the app does not serve (all or some methods), with those methods."""
    served = served_operations(app.router.routes)
    missing: dict[str, list[str]] = {}
    for path, method in NETBIRD_OPERATIONS:
        if (shape(path), method) not in served:
            missing.setdefault(path, []).append(method)
    return missing


def _starlette_path(path: str) -> str:
    # NetBird's parameter names include some Starlette cannot take (`{peer-id}`); any name matches.
    counter = iter(range(len(path)))
    return _PARAM.sub(lambda _: f"{{p{next(counter)}}}", path)


def install(app: FastAPI) -> None:
    """Add a 501 route for each NetBird operation the app does not serve; call after the routers.

    They come after the real routes, so a real route always wins, and they stay out of the served
    OpenAPI document, which describes what is implemented. No authentication: the answer reveals
    nothing that NetBird's public API document does not.
    """
    for path, methods in missing_operations(app).items():

        async def not_implemented(request: Request, path: str = path) -> JSONResponse:
            return error_response(
                501, f"{request.method} {path} is part of NetBird's API but is not implemented by meshroute"
            )

        app.router.routes.append(Route(_starlette_path(path), not_implemented, methods=methods))
