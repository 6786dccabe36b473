"""JSON request bodies, parsed after authentication (so a bad token is 401 before a bad body is
400) with NetBird's tolerance: case-insensitive keys, null as absent, unknown keys ignored."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from fastapi import Request
from pydantic import BaseModel, ValidationError

from meshroute.core.errors import BadRequest

M = TypeVar("M", bound=BaseModel)


def _describe(err: ValidationError) -> str:
    parts = []
    for e in err.errors()[:5]:
        loc = ".".join(str(x) for x in e.get("loc", ()))
        parts.append(f"{loc}: {e.get('msg', 'invalid')}" if loc else str(e.get("msg", "invalid")))
    return "; ".join(parts)


def _text_problem(value: Any) -> str | None:
    """Text no store can keep: NUL (PostgreSQL refuses it) or lone surrogates (not UTF-8).
    Lengths are the services' business (and the body limit bounds everything)."""
    stack = [value]
    while stack:
        v = stack.pop()
        if isinstance(v, str):
            if "\x00" in v:
                return "text must not contain NUL characters"
            try:
                v.encode("utf-8")
            except UnicodeEncodeError:
                return "text must be valid Unicode (no lone surrogates)"
        elif isinstance(v, dict):
            stack.extend(v.keys())
            stack.extend(v.values())
        elif isinstance(v, list):
            stack.extend(v)
    return None


def body_of(model: type[M]) -> Callable[[Request], Awaitable[M]]:
    async def parse(request: Request) -> M:
        raw = await request.body()
        try:
            data: Any = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
            raise BadRequest("couldn't parse JSON request") from None
        problem = _text_problem(data)
        if problem:
            raise BadRequest(f"couldn't parse JSON request: {problem}")
        if not isinstance(data, dict):
            raise BadRequest("couldn't parse JSON request: the body must be a JSON object")
        try:
            return model.model_validate(data)
        except ValidationError as exc:
            raise BadRequest(f"couldn't parse JSON request: {_describe(exc)}") from None

    return parse


def openapi_body(model: type[BaseModel]) -> dict[str, Any]:
    """Documents a body parsed by `body_of` in the served OpenAPI document: nested models inlined
    (no dangling references), each field as the type it takes (null, which is taken as absent, is
    left out of the document) with its documented limits."""
    schema = model.model_json_schema()
    defs = schema.pop("$defs", {})

    def inline(node: Any) -> Any:
        if isinstance(node, dict):
            node = _not_null(node)
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.startswith("#/$defs/"):
                rest = {k: v for k, v in node.items() if k != "$ref"}
                return {**inline(defs[ref.removeprefix("#/$defs/")]), **rest}
            return {k: inline(v) for k, v in node.items()}
        if isinstance(node, list):
            return [inline(v) for v in node]
        return node

    schema = inline(schema)
    schema["description"] = (
        "Keys match case-insensitively, null is the same as leaving a key out, unknown keys are ignored."
    )
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": schema}}}}


def _not_null(node: dict[str, Any]) -> dict[str, Any]:
    """`{anyOf: [X, {type: null}], default: null, ...}` to `{...X, ...}`."""
    variants = node.get("anyOf")
    if not isinstance(variants, list) or {"type": "null"} not in variants or len(variants) != 2:
        return node
    (kept,) = [v for v in variants if v != {"type": "null"}]
    rest = {k: v for k, v in node.items() if k != "anyOf" and not (k == "default" and v is None)}
    return {**kept, **rest}
