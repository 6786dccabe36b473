"""Every response a test receives is checked against the OpenAPI document the server serves: its
status must be documented for the operation, and its body must match the documented schema
(response models forbid keys they do not name). `World` and the agent-sync tests' `Running` log
their responses here and check them when the test ends."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

import httpx
from jsonschema import Draft202012Validator

_PARAM = re.compile(r"\{[^}]*\}")


@dataclass
class Operation:
    template: str
    method: str
    responses: dict[str, Any]


class Document:
    """The served document, ready to judge responses."""

    def __init__(self, doc: dict[str, Any]) -> None:
        self.doc = doc
        self._paths: list[tuple[re.Pattern[str], str]] = []
        # Literal paths before templated ones: /api/users/current is not /api/users/{user_id}.
        for template in sorted(doc["paths"], key=lambda t: (len(_PARAM.findall(t)), t)):
            literal = re.escape(template).replace(r"\{", "{").replace(r"\}", "}")
            self._paths.append((re.compile("^" + _PARAM.sub("[^/]+", literal) + "$"), template))
        self._validators: dict[tuple[str, str, str], Draft202012Validator] = {}

    def operation(self, method: str, path: str) -> Operation | None:
        for pattern, template in self._paths:
            if pattern.match(path):
                item = self.doc["paths"][template].get(method.lower())
                return Operation(template, method.upper(), item["responses"]) if item else None
        return None

    def problems(self, method: str, path: str, status: int, body: bytes) -> list[str]:
        """What is wrong with one response (nothing for operations the document does not have:
        NetBird's unimplemented endpoints, unknown paths, methods a path does not take)."""
        op = self.operation(method, path)
        if op is None:
            return []
        where = f"{method} {path} -> {status}"
        key = str(status) if str(status) in op.responses else "default"
        documented = op.responses.get(key)
        if documented is None:
            return [f"{where}: status not documented for {op.method} {op.template}"]
        schema = documented.get("content", {}).get("application/json", {}).get("schema")
        if schema is None:
            return []
        try:
            value = json.loads(body)
        except ValueError:
            return [f"{where}: body is not JSON: {body[:200]!r}"]
        validator = self._validator(op, key, schema)
        return [f"{where}: {e.json_path}: {e.message}" for e in list(validator.iter_errors(value))[:5]]

    def _validator(self, op: Operation, key: str, schema: dict[str, Any]) -> Draft202012Validator:
        cache_key = (op.template, op.method, key)
        found = self._validators.get(cache_key)
        if found is None:
            # The document's components travel with the schema, so `#/components/...` resolves.
            found = Draft202012Validator({**schema, "components": self.doc.get("components", {})})
            self._validators[cache_key] = found
        return found


@dataclass
class ResponseLog:
    """Responses seen by an httpx client (`install`), checked against a document at the end."""

    seen: list[tuple[str, str, int, bytes]] = field(default_factory=list)

    def install(self, client: httpx.Client) -> None:
        client.event_hooks = {**client.event_hooks, "response": [*client.event_hooks["response"], self._hook]}

    def _hook(self, response: httpx.Response) -> None:
        response.read()
        request = response.request
        self.seen.append((request.method, request.url.path, response.status_code, response.content))

    def check(self, doc: Document) -> None:
        problems = [p for entry in self.seen for p in doc.problems(*entry)]
        assert not problems, "responses the served OpenAPI document does not describe:\n" + "\n".join(
            problems[:20]
        )
