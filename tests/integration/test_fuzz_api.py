"""No request makes the server answer 5xx.

Two parts, both run on SQLite and on PostgreSQL:

1. A schema-driven sweep. For every operation of the OpenAPI document the app serves, hypothesis
   strategies are built from that document (path and query parameters, request-body properties and
   their types) and requests drawn from them: valid-looking values (IDs of objects that exist,
   CIDRs, domains, roles, edge integers), random JSON of any type for any field, nulls, unknown and
   case-folded keys, huge strings, ID lists of up to 70,000 entries (more than PostgreSQL takes
   parameters), lone surrogates and NUL characters, NaN/Infinity, big integers,
   non-object bodies, corrupted or non-UTF-8 bytes, odd content types and odd Authorization headers.
   The world is seeded first (groups, a peer, an IP route and a domain route, a setup key, a service
   user and tokens) so that 200-paths and update paths are exercised, not only 404s.

2. Explicit robustness cases with exact expectations: malformed JSON, non-UTF-8, non-object JSON,
   deep nesting, bodies over the 1 MiB limit (declared and streamed), content types, wrong types per
   RouteRequest field, nulls, unknown fields, integer overflow, NaN/Infinity, bad query parameters.

Every answer must have a status below 500, and every non-2xx answer must be JSON
`{"message": <non-empty string>, "code": <the status>}`. A 5xx is reported with the exact request;
the server's traceback is in the captured log (`meshroute.server.api.errors` logs it).
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine

from meshroute.core.model import Role
from meshroute.server.api import schemas as api_schemas
from meshroute.server.assembly import assemble
from meshroute.server.config import ServerConfig
from tests.integration.conftest import World

# Examples per operation: the big random sweep on SQLite, a smaller one on PostgreSQL. Scale them
# for a deeper local run with MESHROUTE_FUZZ_SCALE=20; CI (CI=true) draws the same examples every run.
FUZZ_SCALE = float(os.environ.get("MESHROUTE_FUZZ_SCALE", "1"))
SQLITE_EXAMPLES = max(1, int(60 * FUZZ_SCALE))
POSTGRES_EXAMPLES = max(1, int(25 * FUZZ_SCALE))
DERANDOMIZE = os.environ.get("CI", "").lower() == "true"

MAX_BODY = 1 << 20

# The operations the issue names; the sweep itself covers every operation of the served document
# (read at collection time), so an endpoint added later is fuzzed without editing this file.
REQUIRED_OPERATIONS: set[tuple[str, str]] = {
    ("GET", "/api/routes"),
    ("POST", "/api/routes"),
    ("GET", "/api/routes/{route_id}"),
    ("PUT", "/api/routes/{route_id}"),
    ("DELETE", "/api/routes/{route_id}"),
    ("GET", "/api/groups"),
    ("POST", "/api/groups"),
    ("GET", "/api/groups/{group_id}"),
    ("PUT", "/api/groups/{group_id}"),
    ("DELETE", "/api/groups/{group_id}"),
    ("GET", "/api/peers"),
    ("GET", "/api/peers/{peer_id}"),
    ("PUT", "/api/peers/{peer_id}"),
    ("DELETE", "/api/peers/{peer_id}"),
    ("GET", "/api/setup-keys"),
    ("POST", "/api/setup-keys"),
    ("GET", "/api/setup-keys/{key_id}"),
    ("PUT", "/api/setup-keys/{key_id}"),
    ("DELETE", "/api/setup-keys/{key_id}"),
    ("GET", "/api/users"),
    ("POST", "/api/users"),
    ("GET", "/api/users/current"),
    ("PUT", "/api/users/{user_id}"),
    ("DELETE", "/api/users/{user_id}"),
    ("GET", "/api/users/{user_id}/tokens"),
    ("POST", "/api/users/{user_id}/tokens"),
    ("GET", "/api/users/{user_id}/tokens/{token_id}"),
    ("DELETE", "/api/users/{user_id}/tokens/{token_id}"),
    ("GET", "/api/accounts"),
    ("PUT", "/api/accounts/{account_id}"),
    ("GET", "/api/events/audit"),
}


def _served_operations() -> list[tuple[str, str]]:
    """The operations of the document the app serves (built over an unused in-memory store)."""
    app = assemble(ServerConfig(data_dir=Path("unused"), database_url="sqlite://")).app
    return sorted(document_operations(app.openapi()), key=lambda op: (op[1], op[0]))


# Path parameter -> kind of seeded object whose IDs it is given (besides random text).
PATH_KINDS = {
    "route_id": "route",
    "group_id": "group",
    "peer_id": "peer",
    "key_id": "setup_key",
    "user_id": "user",
    "token_id": "token",
    "account_id": "account",
}


# -- the served document ------------------------------------------------------------------------
def served_document(world: World) -> dict[str, Any]:
    response = world.client.get("/api/openapi.json")
    assert response.status_code == 200, response.text
    doc: dict[str, Any] = response.json()
    return doc


def document_operations(doc: dict[str, Any]) -> set[tuple[str, str]]:
    return {
        (method.upper(), path)
        for path, item in doc["paths"].items()
        for method in item
        if method in ("get", "put", "post", "delete", "patch")
    }


def resolve(schema: dict[str, Any], doc: dict[str, Any]) -> dict[str, Any]:
    """Follows a local `$ref`. A reference the document does not define (the served document drops
    the request models' `$defs`, e.g. AccountSettingsRequest) is resolved from the request model of
    that name, so the fuzzer still knows the nested fields."""
    ref = schema.get("$ref")
    if not ref:
        return schema
    name = ref.rsplit("/", 1)[-1]
    found = doc.get("components", {}).get("schemas", {}).get(name)
    if found is not None:
        return resolve(found, doc)
    model = getattr(api_schemas, name, None)
    if model is not None:
        return dict(model.model_json_schema(ref_template="#/components/schemas/{model}"))
    return {}


OPERATIONS = _served_operations()


# -- the seeded world ---------------------------------------------------------------------------
@dataclass
class Seeds:
    ids: dict[str, list[str]] = field(default_factory=dict)

    def of(self, kind: str) -> list[str]:
        return self.ids.get(kind, [])


def seed(world: World) -> Seeds:
    g_a = world.group("fuzz-a")
    peer = world.peer("fuzz-peer")
    g_b = world.group("fuzz-b", [peer])
    ip_route = world.ok(
        world.post(
            "/api/routes",
            {
                "network": "10.20.0.0/16",
                "network_id": "fuzz-net",
                "peer_groups": [g_b],
                "groups": [g_a],
                "metric": 9999,
            },
        )
    )["id"]
    dns_route = world.ok(
        world.post(
            "/api/routes",
            {
                "domains": ["example.com"],
                "network_id": "fuzz-dns",
                "peer": peer,
                "groups": [g_a],
                "metric": 1,
            },
        )
    )["id"]
    key = world.ok(
        world.post(
            "/api/setup-keys",
            {"name": "fuzz", "type": "reusable", "expires_in": 86400, "auto_groups": [g_a], "usage_limit": 0},
        )
    )["id"]
    service_user, _ = world.user(Role.ADMIN)
    tokens = [t["id"] for t in world.ok(world.get(f"/api/users/{service_user}/tokens"))]
    # A second token of the owner, so token paths of the caller are hit without deleting the one
    # the fuzzer authenticates with.
    spare, _ = world.services.users.create_token(
        world.account_id, world.owner_id, world.owner_id, "spare", 30
    )
    return Seeds(
        {
            "group": [g_a, g_b],
            "peer": [peer],
            "route": [ip_route, dns_route],
            "setup_key": [key],
            "user": [world.owner_id, service_user],
            "token": [*tokens, spare.id],
            "account": [world.account_id],
        }
    )


# -- value strategies ---------------------------------------------------------------------------
ODD_STRINGS = [
    "",
    " ",
    "\x00",
    "a\x00b",
    "null",
    "0",
    "-1",
    "true",
    "../..",
    "%",
    "%00",
    "\u202e",
    "\ufeff",
    "😀",
    "ünïcödé",
    "' OR 1=1 --",
    "\ud800",
    "\udfff",
    "a" * 300,
    "é" * 256,
]


def weighted(*choices: tuple[int, st.SearchStrategy[Any]]) -> st.SearchStrategy[Any]:
    """Picks a strategy with the given odds (`st.one_of` draws its branches evenly, repeats or not)."""
    slots = [i for i, (weight, _) in enumerate(choices) for _ in range(weight)]
    return st.sampled_from(slots).flatmap(lambda i: choices[i][1])


text_small = weighted(
    (2, st.text(max_size=30)),
    (3, st.sampled_from(ODD_STRINGS)),
    (
        1,
        st.text(
            st.one_of(
                st.characters(min_codepoint=0, max_codepoint=0x1F),
                st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF, categories=["Cs"]),
                st.characters(min_codepoint=0x10000, max_codepoint=0x10FFFF),
            ),
            max_size=10,
        ),
    ),
)
long_strings = st.builds(
    lambda c, n: c * n,
    st.sampled_from(["a", "é", "😀", "\x00", "\ud800"]),
    st.sampled_from([256, 4097, 70_000, 400_000]),
)
texts = weighted((6, text_small), (1, long_strings))

EDGE_INTS = [
    0,
    1,
    -1,
    2**31 - 1,
    2**31,
    -(2**31) - 1,
    2**63 - 1,
    2**63,
    -(2**63) - 1,
    2**64,
    10**30,
    -(10**30),
]
integers = st.one_of(st.integers(), st.sampled_from(EDGE_INTS))
floats = st.one_of(st.floats(), st.sampled_from([math.nan, math.inf, -math.inf, 1.5, 1e308, -0.0]))
json_scalars = st.one_of(st.none(), st.booleans(), integers, floats, text_small)
any_json = st.recursive(
    json_scalars,
    lambda kids: st.one_of(st.lists(kids, max_size=4), st.dictionaries(text_small, kids, max_size=4)),
    max_leaves=12,
)

CIDRS = [
    "10.0.0.0/8",
    "192.168.1.0/24",
    "10.0.0.1/24",
    "0.0.0.0/0",
    "::/0",
    "fd00::/8",
    "2001:db8::/32",
    "10.0.0.1/33",
    "300.1.1.1/24",
    "10.0.0.0",
    "10.0.0.0/",
    "/24",
    "fe80::1%eth0/64",
    "1.2.3.4/032",
]
DOMAINS = [
    "example.com",
    "*.example.com",
    "müller.de",
    "xn--mller-kva.de",
    "a..b",
    "-bad-.com",
    "x" * 64 + ".com",
    ".".join(["abc"] * 90),
    "*",
    "localhost",
    "",
]
# ID lists, also drawn far longer than any maximum and than the 65,535 parameters PostgreSQL
# takes per statement (short fake IDs: the most a 1 MiB body can carry).
ID_LISTS = ("groups", "peer_groups", "access_control_groups", "auto_groups", "peers")
long_id_lists = st.sampled_from([1_001, 50_001, 70_000]).map(lambda n: [f"{i:x}" for i in range(n)])
ROLES = ["admin", "user", "owner", "billing_admin", "auditor", "network_admin", "ADMIN", ""]


def hinted(name: str, seeds: Seeds) -> st.SearchStrategy[Any] | None:
    """Valid-looking values for the fields whose meaning the schema types alone do not carry."""
    group_ids = st.sampled_from(seeds.of("group")) if seeds.of("group") else st.nothing()
    peer_ids = st.sampled_from(seeds.of("peer")) if seeds.of("peer") else st.nothing()
    if name in ("groups", "peer_groups", "access_control_groups", "auto_groups"):
        return weighted((3, group_ids), (1, text_small))
    if name in ("peers", "peer"):
        return weighted((3, peer_ids), (1, text_small))
    if name == "network":
        return weighted((3, st.sampled_from(CIDRS)), (1, text_small))
    if name == "domains":
        return weighted((3, st.sampled_from(DOMAINS)), (1, text_small))
    if name == "role":
        return weighted((3, st.sampled_from(ROLES)), (1, text_small))
    if name == "type":
        return weighted((3, st.sampled_from(["reusable", "one-off", "Reusable"])), (1, text_small))
    if name == "metric":
        return weighted((3, st.integers(0, 10_000)), (1, integers))
    if name == "expires_in":
        return st.one_of(
            st.sampled_from([0, 1, 30, 365, 366, 86_399, 86_400, 31_536_000, 31_536_001]), integers
        )
    if name in ("usage_limit", "peer_login_expiration", "peer_inactivity_expiration"):
        return st.one_of(st.sampled_from([0, 1, 599, 600, 3600, 15_552_000, 15_552_001]), integers)
    return None


def from_schema(schema: dict[str, Any], doc: dict[str, Any], name: str, seeds: Seeds, depth: int = 0) -> Any:
    """A strategy for values that match `schema` (with name hints), recursing into objects."""
    schema = resolve(schema, doc)
    variants = schema.get("anyOf") or schema.get("oneOf")
    if variants:
        # Mostly the non-null variants: null means "absent", which the sweep still draws often.
        return weighted(
            *(
                (1 if resolve(v, doc).get("type") == "null" else 4, from_schema(v, doc, name, seeds, depth))
                for v in variants
            )
        )
    if "enum" in schema:
        return st.sampled_from(schema["enum"])
    kind = schema.get("type")
    hint = hinted(name, seeds)
    if kind == "null":
        return st.none()
    if kind == "boolean":
        return st.booleans()
    if kind == "integer":
        lo, hi = schema.get("minimum"), schema.get("maximum")
        bounded = st.integers(lo, hi) if lo is not None or hi is not None else st.integers()
        return st.one_of(hint, bounded) if hint is not None else st.one_of(bounded, integers)
    if kind == "number":
        return floats
    if kind == "string":
        return st.one_of(hint, texts) if hint is not None else texts
    if kind == "array":
        short = st.lists(field_value(schema.get("items", {}), doc, name, seeds, depth + 1), max_size=5)
        if name in ID_LISTS:
            return weighted((6, short), (1, long_id_lists))
        return short
    if kind == "object" or "properties" in schema:
        return object_value(schema, doc, seeds, depth + 1)
    return any_json


def field_value(schema: dict[str, Any], doc: dict[str, Any], name: str, seeds: Seeds, depth: int) -> Any:
    """Mostly a value of the field's type, sometimes any JSON at all, null or a huge string."""
    typed = from_schema(schema, doc, name, seeds, depth)
    return weighted((6, typed), (2, any_json), (1, st.none()), (1, long_strings))


def object_value(schema: dict[str, Any], doc: dict[str, Any], seeds: Seeds, depth: int) -> Any:
    props: dict[str, Any] = schema.get("properties", {})
    if depth > 4:
        return st.dictionaries(text_small, any_json, max_size=3)
    known = st.fixed_dictionaries(
        {}, optional={k: field_value(v, doc, k, seeds, depth) for k, v in props.items()}
    )
    # Unknown keys, and known keys in other cases (Go matches keys case-insensitively: a key that
    # folds onto a known one may then appear twice).
    folded = st.sampled_from(sorted(props) or ["x"]).map(lambda k: k.upper() if len(k) % 2 else k.title())
    extras = st.dictionaries(st.one_of(text_small, folded), any_json, max_size=3)
    return st.builds(lambda a, b, mix: {**b, **a} if mix else a, known, extras, st.booleans())


def valid_bodies(seeds: Seeds) -> dict[tuple[str, str], dict[str, Any]]:
    """A body each operation accepts in the seeded world (checked by
    `test_seeded_world_accepts_every_baseline`); the sweep mutates them one field at a time, so junk
    gets past the handler's first checks and reaches the services and the store."""
    g_a, g_b = seeds.of("group")
    peer = seeds.of("peer")[0]
    route = {
        "network": "10.99.0.0/16",
        "network_id": "fz",
        "peer_groups": [g_b],
        "groups": [g_a],
        "metric": 100,
        "enabled": True,
        "description": "fuzz",
    }
    group = {"name": "fz-group", "peers": [peer]}
    return {
        ("POST", "/api/routes"): route,
        ("PUT", "/api/routes/{route_id}"): {**route, "network": "10.98.0.0/16"},
        ("POST", "/api/groups"): group,
        ("PUT", "/api/groups/{group_id}"): {**group, "name": "fz-renamed"},
        ("PUT", "/api/peers/{peer_id}"): {"name": "fz-peer", "ssh_enabled": False},
        ("POST", "/api/setup-keys"): {
            "name": "fz",
            "type": "reusable",
            "expires_in": 86400,
            "auto_groups": [g_a],
            "usage_limit": 0,
        },
        ("PUT", "/api/setup-keys/{key_id}"): {"revoked": False, "auto_groups": [g_a]},
        ("POST", "/api/users"): {"name": "fz", "role": "user", "is_service_user": True, "auto_groups": [g_a]},
        ("PUT", "/api/users/{user_id}"): {"role": "admin", "auto_groups": [g_a], "is_blocked": False},
        ("POST", "/api/users/{user_id}/tokens"): {"name": "fz", "expires_in": 30},
        ("PUT", "/api/accounts/{account_id}"): {
            "settings": {"peer_login_expiration_enabled": True, "peer_login_expiration": 86400}
        },
    }


def object_schema(schema: dict[str, Any], doc: dict[str, Any]) -> dict[str, Any] | None:
    """The object variant of a (nullable) schema, if it has properties."""
    schema = resolve(schema, doc)
    for variant in [schema, *(resolve(v, doc) for v in schema.get("anyOf", []) + schema.get("oneOf", []))]:
        if variant.get("properties"):
            return variant
    return None


def one_field_mutation(
    schema: dict[str, Any], doc: dict[str, Any], seeds: Seeds, baseline: dict[str, Any]
) -> st.SearchStrategy[dict[str, Any]]:
    """`baseline` with exactly one (possibly nested) field replaced by a fuzzed value or removed."""
    options = []
    for key, sub in resolve(schema, doc).get("properties", {}).items():
        options.append(field_value(sub, doc, key, seeds, 1).map(lambda v, k=key: {**baseline, k: v}))
        inner = object_schema(sub, doc)
        if inner is not None and isinstance(baseline.get(key), dict):
            options.append(
                one_field_mutation(inner, doc, seeds, baseline[key]).map(lambda v, k=key: {**baseline, k: v})
            )
    options.append(st.just({k: v for k, v in baseline.items() if k != next(iter(baseline), None)}))
    return st.one_of(options)


def body_strategy(
    schema: dict[str, Any], doc: dict[str, Any], seeds: Seeds, baseline: dict[str, Any]
) -> st.SearchStrategy[Any]:
    random_object = object_value(resolve(schema, doc), doc, seeds, 0)
    if not baseline:
        return weighted((3, random_object), (1, any_json))
    single = one_field_mutation(schema, doc, seeds, baseline)
    several = st.builds(lambda over: {**baseline, **over}, random_object)
    return weighted((5, single), (2, several), (1, random_object), (1, any_json), (1, st.just(baseline)))


# -- requests -----------------------------------------------------------------------------------
CONTENT_TYPES: list[str | None] = [
    "application/json",
    "application/json",
    "application/json",
    None,
    "application/json; charset=latin-1",
    "text/plain",
    "application/x-www-form-urlencoded",
    "multipart/form-data; boundary=xyz",
    "application/xml",
]
ENCODINGS = [
    "json",
    "json",
    "json",
    "json",
    "utf8-raw",
    "truncated",
    "garbage",
    "bad-byte",
    "latin-1",
    "empty",
]


class FuzzRequest:
    """One request; its repr (shown by hypothesis for a failing case) is the exact request."""

    def __init__(self, method: str, url: str, headers: dict[str, str], content: bytes | None) -> None:
        self.method, self.url, self.headers, self.content = method, url, headers, content

    def __repr__(self) -> str:
        body = self.content
        if body is not None and len(body) > 600:
            body = body[:600] + b"...(%d bytes in all)" % len(self.content or b"")
        return f"<{self.method} {self.url} headers={self.headers} body={body!r}>"


def encode(value: Any, how: str) -> bytes:
    text = json.dumps(value, ensure_ascii=how != "utf8-raw", allow_nan=True)
    raw = text.encode("utf-8", "surrogatepass")
    if how == "truncated":
        return raw[: max(0, len(raw) // 2)]
    if how == "garbage":
        return raw + b"}{,garbage"
    if how == "bad-byte":
        return raw[:1] + b"\xff\xfe\xc0" + raw[1:]
    if how == "latin-1":
        return text.encode("latin-1", "replace") + "é".encode("latin-1")
    if how == "empty":
        return b""
    return raw


def auth_headers(token: str) -> st.SearchStrategy[dict[str, str]]:
    good = st.sampled_from([{"Authorization": f"Token {token}"}, {"Authorization": f"Bearer {token}"}])
    bad = st.sampled_from(
        [
            {},
            {"Authorization": ""},
            {"Authorization": "Token"},
            {"Authorization": "Token nbp_invalid"},
            {"Authorization": f"Token {token} extra"},
            {"Authorization": f"Basic {token}"},
            {"Authorization": f"token  {token}"},
            {"Authorization": "Token " + "x" * 5000},
        ]
    )
    return weighted((7, good), (1, bad))


def path_value(name: str, seeds: Seeds) -> st.SearchStrategy[str]:
    existing = seeds.of(PATH_KINDS.get(name, ""))
    random = st.one_of(text_small, st.sampled_from(["x" * 300, "x" * 5000]))
    if not existing:
        return random
    known = st.sampled_from(existing)
    return weighted((3, known), (2, random))


def request_strategy(
    method: str, path: str, doc: dict[str, Any], seeds: Seeds, token: str
) -> st.SearchStrategy[FuzzRequest]:
    operation = doc["paths"][path][method.lower()]
    params = operation.get("parameters", [])
    path_params = {p["name"]: path_value(p["name"], seeds) for p in params if p["in"] == "path"}
    query_params = {
        p["name"]: st.one_of(from_schema(p.get("schema", {}), doc, p["name"], seeds), text_small)
        for p in params
        if p["in"] == "query"
    }
    body_schema = (
        operation.get("requestBody", {}).get("content", {}).get("application/json", {}).get("schema")
    )
    if body_schema is not None:
        baseline = valid_bodies(seeds).get((method, path), {})
        body: st.SearchStrategy[Any] = body_strategy(body_schema, doc, seeds, baseline)
    else:
        # Bodies where none is expected must be ignored, not crash anything.
        body = weighted((3, st.just(None)), (1, any_json))

    @st.composite
    def build(draw: st.DrawFn) -> FuzzRequest:
        url = path
        for name, strategy in path_params.items():
            value = draw(strategy)
            url = url.replace("{" + name + "}", quote(value.encode("utf-8", "surrogatepass"), safe=""))
        query: list[tuple[str, str]] = []
        for name, strategy in query_params.items():
            if draw(st.booleans()):
                value = draw(strategy)
                if value is not None:
                    text = value if isinstance(value, str) else json.dumps(value)
                    query.append((name, text[:2000]))  # the client refuses URLs over 64 KiB
        if draw(st.integers(0, 9)) == 0:
            query.append((draw(text_small), draw(text_small)))
        if query:
            url += "?" + "&".join(
                f"{quote(k.encode('utf-8', 'surrogatepass'))}={quote(v.encode('utf-8', 'surrogatepass'))}"
                for k, v in query
            )
        headers = dict(draw(auth_headers(token)))
        value = draw(body)
        content = None
        if value is not None or body_schema is not None:
            content = encode(value, draw(st.sampled_from(ENCODINGS)))
            content_type = draw(st.sampled_from(CONTENT_TYPES))
            if content_type is not None:
                headers["Content-Type"] = content_type
        return FuzzRequest(method, url, headers, content)

    return build()


# -- the oracle ---------------------------------------------------------------------------------
def described(response: Any) -> str:
    """The request that got `response`, as sent."""
    request = response.request
    body = request.content if len(request.content) <= 300 else request.content[:300] + b"..."
    return f"<{request.method} {request.url.raw_path.decode('ascii', 'replace')} body={body!r}>"


def check(response: Any, request: object = None) -> None:
    """The rule: below 500, and a non-2xx answer is `{"message": <non-empty str>, "code": <status>}`."""
    request = request if request is not None else described(response)
    status = response.status_code
    assert status < 500, f"5xx for {request!r}: {status} {response.text[:1000]}"
    if 200 <= status < 300:
        response.json()
        return
    assert response.headers.get("content-type", "").startswith("application/json"), (
        f"{request!r}: {status} with content-type {response.headers.get('content-type')!r}: "
        f"{response.text[:300]}"
    )
    data = response.json()
    assert isinstance(data, dict), f"{request!r}: {status} {data!r}"
    assert isinstance(data.get("message"), str) and data["message"].strip(), f"{request!r}: {status} {data!r}"
    code = data.get("code")
    assert isinstance(code, int) and not isinstance(code, bool) and code == status, (
        f"{request!r}: {status} {data!r}"
    )


def send(world: World, request: FuzzRequest) -> Any:
    return world.client.request(request.method, request.url, headers=request.headers, content=request.content)


# -- 1. the schema-driven sweep -----------------------------------------------------------------
def test_every_documented_operation_is_fuzzed(world: World) -> None:
    doc = served_document(world)
    served = document_operations(doc)
    assert served == set(OPERATIONS)
    assert served >= REQUIRED_OPERATIONS, REQUIRED_OPERATIONS - served
    # Every path parameter is fed IDs of seeded objects (not only random text).
    names = {
        p["name"]
        for item in doc["paths"].values()
        for op in item.values()
        for p in op.get("parameters", [])
        if p["in"] == "path"
    }
    assert names <= set(PATH_KINDS), names - set(PATH_KINDS)


@pytest.mark.parametrize(("method", "path"), OPERATIONS, ids=[f"{m} {p}" for m, p in OPERATIONS])
def test_fuzz_operation(world: World, engine: Engine, method: str, path: str) -> None:
    doc = served_document(world)
    assert path in doc["paths"] and method.lower() in doc["paths"][path], f"{method} {path} is not served"
    seeds = seed(world)
    strategy = request_strategy(method, path, doc, seeds, world.token)
    examples = SQLITE_EXAMPLES if engine.dialect.name == "sqlite" else POSTGRES_EXAMPLES
    statuses: dict[int, int] = {}

    @settings(
        max_examples=examples,
        deadline=None,
        database=None,
        derandomize=DERANDOMIZE,
        suppress_health_check=list(HealthCheck),
        print_blob=True,
    )
    @given(request=strategy)
    def run(request: FuzzRequest) -> None:
        response = send(world, request)
        statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
        check(response, request)

    run()
    assert statuses, "no request was sent"


def test_seeded_world_accepts_every_baseline(world: World) -> None:
    """The seeds make the sweep reach real objects: each GET path answers 200 with them, and each
    operation's baseline body succeeds (so mutating one field probes the services, not a 404)."""
    seeds = seed(world)
    ids = {k: v[0] for k, v in seeds.ids.items()}
    ids["user"] = seeds.of("user")[1]  # the service user, whose token is the first seeded token

    def url_of(path: str) -> str:
        for name, kind in PATH_KINDS.items():
            path = path.replace("{" + name + "}", ids[kind])
        return path

    # GETs that ask a question need it (route explain: a peer and a destination)
    questions = {"/api/routes/explain": {"peer": ids["peer"], "destination": "10.0.0.1"}}
    for method, path in OPERATIONS:
        if method == "GET":
            response = world.get(url_of(path), params=questions.get(path))
            assert response.status_code == 200, (path, response.text)
    baselines = valid_bodies(seeds)
    assert {op for op in OPERATIONS if op[0] in ("POST", "PUT")} <= set(baselines)
    for (method, path), body in baselines.items():
        response = world.client.request(method, url_of(path), json=body, headers=world.headers())
        assert response.status_code == 200, (method, path, response.text)


# -- 2. explicit robustness cases ---------------------------------------------------------------
@pytest.fixture
def routers(world: World) -> Iterator[tuple[World, str]]:
    """A world with a group to route through (see `valid_route`)."""
    yield world, world.group("routers")


def raw(
    world: World, method: str, path: str, content: Any, content_type: str | None = "application/json"
) -> Any:
    headers = world.headers()
    if content_type is not None:
        headers["Content-Type"] = content_type
    return world.client.request(method, path, content=content, headers=headers)


def error_of(response: Any, status: int | None = None) -> str:
    """The message of a 4xx answer in the API's error shape."""
    check(response)
    assert 400 <= response.status_code < 500, response.text
    if status is not None:
        assert response.status_code == status, response.text
    message: str = response.json()["message"]
    return message


def body_endpoints(world: World) -> list[tuple[str, str]]:
    """Every operation that takes a body, on objects that exist (the owner's own user and token
    paths included), so the body is what gets judged."""
    g = world.group("target")
    key_id = world.ok(world.post("/api/setup-keys", {"name": "k", "type": "reusable", "expires_in": 86400}))[
        "id"
    ]
    route_id = world.ok(world.post("/api/routes", {**valid_route(g), "network": "10.77.0.0/16"}))["id"]
    peer = world.peer("target")
    return [
        ("POST", "/api/routes"),
        ("PUT", f"/api/routes/{route_id}"),
        ("POST", "/api/groups"),
        ("PUT", f"/api/groups/{g}"),
        ("PUT", f"/api/peers/{peer}"),
        ("POST", "/api/setup-keys"),
        ("PUT", f"/api/setup-keys/{key_id}"),
        ("POST", "/api/users"),
        ("PUT", f"/api/users/{world.owner_id}"),
        ("POST", f"/api/users/{world.owner_id}/tokens"),
        ("PUT", f"/api/accounts/{world.account_id}"),
    ]


@pytest.mark.parametrize(
    "content",
    [b"{bad", b'{"name": "x"} trailing', b'{"name": "x"}}', b"", b"   ", b'{"name": "x",}', b"{'name': 'x'}"],
    ids=["bad", "trailing-garbage", "extra-brace", "empty", "blank", "trailing-comma", "single-quotes"],
)
def test_malformed_json_is_400(world: World, content: bytes) -> None:
    for method, path in body_endpoints(world):
        message = error_of(raw(world, method, path, content), 400)
        assert message.startswith("couldn't parse JSON request"), (method, path, message)


@pytest.mark.parametrize(
    "content",
    [
        b'{"name": "\xff\xfe"}',
        b"\x80\x81\x82",
        '{"name": "é"}'.encode("latin-1"),
        b'{"name": "\xed\xa0\x80"}',
    ],
    ids=["ff-fe", "continuation-bytes", "latin-1", "encoded-surrogate"],
)
def test_non_utf8_body_is_400(world: World, content: bytes) -> None:
    for method, path in body_endpoints(world):
        message = error_of(raw(world, method, path, content), 400)
        assert message.startswith("couldn't parse JSON request"), (method, path, message)


@pytest.mark.parametrize("content", [b"[]", b'"x"', b"1", b"null", b"true", b"[{}]", b"1.5"])
def test_json_that_is_not_an_object_is_400(world: World, content: bytes) -> None:
    for method, path in body_endpoints(world):
        message = error_of(raw(world, method, path, content), 400)
        assert message.startswith("couldn't parse JSON request"), (method, path, message)


@pytest.mark.parametrize(
    ("prefix", "suffix"),
    [
        ("[" * 100_000, "]" * 100_000),
        ('{"a":' * 100_000, "}" * 100_000),
        ('{"peers":' + "[" * 100_000, "]" * 100_000 + "}"),
    ],
    ids=["arrays", "objects", "inside-a-field"],
)
def test_deeply_nested_json_is_4xx(world: World, prefix: str, suffix: str) -> None:
    error_of(raw(world, "POST", "/api/groups", (prefix + suffix).encode()))


@pytest.mark.parametrize("depth", [50, 500, 900])
def test_moderately_nested_json_in_every_field_is_not_5xx(routers: tuple[World, str], depth: int) -> None:
    """Nesting Python's parser accepts must not crash validation, rendering or the store."""
    world, g = routers
    nested = "[" * depth + "]" * depth
    nested_obj = '{"a":' * depth + "1" + "}" * depth
    key = {"name": "k", "type": "reusable", "expires_in": 86400}
    for path, base, field_name in [
        ("/api/groups", {"name": "n"}, "peers"),
        ("/api/groups", {"name": "n"}, "resources"),
        ("/api/routes", valid_route(g), "groups"),
        ("/api/routes", valid_route(g), "metric"),
        ("/api/setup-keys", key, "auto_groups"),
        ("/api/setup-keys", key, "name"),
    ]:
        for value in (nested, nested_obj, f"[{nested_obj}]"):
            content = json.dumps({**base, field_name: "@@"}).replace('"@@"', value).encode()
            check(raw(world, "POST", path, content))


def test_huge_body_with_content_length_is_413(world: World) -> None:
    body = json.dumps({"name": "x" * (MAX_BODY + 10)}).encode()
    response = raw(world, "POST", "/api/groups", body)
    assert response.status_code == 413, response.text
    assert error_of(response, 413) == "request body too large"


def test_body_just_under_the_limit_is_parsed(world: World) -> None:
    """The limit counts bytes, and a body under it is parsed (the padding is an unknown field)."""
    body = json.dumps({"name": "padded", "padding": "x" * (MAX_BODY - 100)}).encode()
    assert MAX_BODY - 100 < len(body) <= MAX_BODY
    response = raw(world, "POST", "/api/groups", body)
    assert response.status_code == 200, response.text
    assert response.json()["name"] == "padded"


def test_huge_body_streamed_without_content_length_is_413(world: World) -> None:
    def chunks() -> Iterator[bytes]:
        yield b'{"name": "'
        for _ in range(40):
            yield b"x" * 65_536  # 2.5 MiB in all
        yield b'"}'

    headers = {**world.headers(), "Content-Type": "application/json"}
    response = world.client.post("/api/groups", content=chunks(), headers=headers)
    assert "content-length" not in {k.lower() for k in response.request.headers}
    assert error_of(response, 413) == "request body too large"


def test_lying_content_length_is_not_5xx(world: World) -> None:
    for declared in ("abc", "-1", "99999999999999999999999", "1"):
        headers = {**world.headers(), "Content-Type": "application/json", "Content-Length": declared}
        response = world.client.post("/api/groups", content=b'{"name": "x"}', headers=headers)
        check(response, f"Content-Length: {declared} {described(response)}")


@pytest.mark.parametrize(
    "content_type",
    [
        "text/plain",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=xyz",
        "application/xml",
        "application/json; charset=latin-1",
        None,
    ],
)
def test_any_content_type_is_parsed_as_json(world: World, content_type: str | None) -> None:
    """NetBird decodes the body as JSON whatever the Content-Type says."""
    response = raw(world, "POST", "/api/groups", json.dumps({"name": "typed"}).encode(), content_type)
    check(response)
    assert response.status_code == 200, response.text
    assert response.json()["name"] == "typed"
    # And a form-encoded body under a form content type is not JSON: 400, not 5xx.
    response = raw(world, "POST", "/api/groups", b"name=typed", content_type)
    assert error_of(response, 400).startswith("couldn't parse JSON request")


def test_multipart_body_is_400(world: World) -> None:
    response = world.client.post("/api/groups", files={"name": ("n.txt", b"x")}, headers=world.headers())
    assert error_of(response, 400).startswith("couldn't parse JSON request")


def valid_route(g: str) -> dict[str, Any]:
    return {"network": "10.1.0.0/16", "network_id": "office", "peer_groups": [g], "groups": [g], "metric": 10}


@pytest.mark.parametrize(
    ("field_name", "value"),
    [
        ("metric", "1"),
        ("metric", 1.5),
        ("metric", True),
        ("metric", [1]),
        ("enabled", "yes"),
        ("enabled", 1),
        ("masquerade", "true"),
        ("groups", "g"),
        ("groups", [1]),
        ("groups", {"id": "g"}),
        ("peer_groups", [None]),
        ("network", 123),
        ("network", ["10.0.0.0/8"]),
        ("domains", "example.com"),
        ("domains", [1]),
        ("description", 5),
        ("network_id", False),
        ("peer", ["p"]),
        ("keep_route", "no"),
        ("skip_auto_apply", 0),
        ("access_control_groups", "g"),
    ],
)
def test_wrong_type_per_route_field_is_400(routers: tuple[World, str], field_name: str, value: Any) -> None:
    world, g = routers
    body = {**valid_route(g), field_name: value}
    for response in (world.post("/api/routes", body),):
        message = error_of(response, 400)
        assert message.startswith("couldn't parse JSON request"), message
    # Same answer on update of an existing route.
    route_id = world.ok(world.post("/api/routes", valid_route(g)))["id"]
    message = error_of(world.put(f"/api/routes/{route_id}", body), 400)
    assert message.startswith("couldn't parse JSON request"), message


def test_nulls_for_every_field_are_absent(routers: tuple[World, str]) -> None:
    world, g = routers
    fields = list(api_schemas.RouteRequest.model_fields)
    assert error_of(world.post("/api/routes", dict.fromkeys(fields)), 422) == (
        "either 'network' or 'domains' should be provided"
    )
    # A valid body with every other field null still works: nulls are absent, not errors.
    body = {**dict.fromkeys(fields), **valid_route(g)}
    created = world.ok(world.post("/api/routes", body))
    assert created["network"] == "10.1.0.0/16"
    assert created["enabled"] is False and created["masquerade"] is False
    for path, kind_fields in [
        ("/api/groups", api_schemas.GroupRequest.model_fields),
        ("/api/setup-keys", api_schemas.CreateSetupKeyRequest.model_fields),
        ("/api/users", api_schemas.UserCreateRequest.model_fields),
    ]:
        error_of(world.post(path, dict.fromkeys(kind_fields)), 422)


def test_unknown_fields_are_ignored(routers: tuple[World, str]) -> None:
    world, g = routers
    body = {
        **valid_route(g),
        "unknown": {"deep": [1, 2, None]},
        "id": "forged",
        "network_type": "bogus",
        "": 1,
    }
    created = world.ok(world.post("/api/routes", body))
    assert created["id"] != "forged" and created["network_type"] == "IPv4"
    assert (
        world.ok(world.post("/api/groups", {"name": "x", "extra": True, "peers_count": 99}))["peers_count"]
        == 0
    )


def integer_cases(world: World, g: str, value: int) -> Iterator[tuple[str, Any]]:
    """Every integer field of every body, set to `value`: (what was sent, the answer)."""
    yield "POST /api/routes metric", world.post("/api/routes", {**valid_route(g), "metric": value})
    key = {"name": "k", "type": "reusable", "expires_in": 86400, "usage_limit": 0}
    yield "POST /api/setup-keys expires_in", world.post("/api/setup-keys", {**key, "expires_in": value})
    yield "POST /api/setup-keys usage_limit", world.post("/api/setup-keys", {**key, "usage_limit": value})
    yield (
        "POST /api/users/{owner}/tokens expires_in",
        world.post(f"/api/users/{world.owner_id}/tokens", {"name": "t", "expires_in": value}),
    )
    for enabled in (True, False):
        for name in ("peer_login_expiration", "peer_inactivity_expiration"):
            body = {"settings": {f"{name}_enabled": enabled, name: value}}
            yield f"PUT /api/accounts/{{id}} {body}", world.put(f"/api/accounts/{world.account_id}", body)


def failures_of(cases: Iterator[tuple[str, Any]], *, client_error: bool) -> list[str]:
    """Runs every case and lists those that broke the rule (all of them, not just the first)."""
    failed = []
    for label, response in cases:
        try:
            check(response, label)
            if client_error:
                assert 400 <= response.status_code < 500, (
                    f"{label}: {response.status_code} {response.text[:300]}"
                )
        except AssertionError as exc:
            failed.append(str(exc).splitlines()[0])
    return failed


@pytest.mark.parametrize("value", [10**30, -(10**30), 2**63, -(2**63) - 1, 2**64])
def test_integer_overflow_is_4xx(routers: tuple[World, str], value: int) -> None:
    """Values no 64-bit integer holds (NetBird's JSON decoder refuses them) are 4xx everywhere."""
    world, g = routers
    failed = failures_of(integer_cases(world, g, value), client_error=True)
    assert not failed, "\n".join(failed)


@pytest.mark.parametrize("value", [2**31 - 1, 2**31, -(2**31) - 1, 2**63 - 1, -(2**63)])
def test_integer_edges_are_not_5xx(routers: tuple[World, str], value: int) -> None:
    """Values a 64-bit integer holds but a 32-bit column may not: accepted or refused, never 5xx."""
    world, g = routers
    failed = failures_of(integer_cases(world, g, value), client_error=False)
    assert not failed, "\n".join(failed)


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity", "1e999", "-1e999"])
def test_nan_and_infinity_are_4xx(routers: tuple[World, str], literal: str) -> None:
    world, g = routers
    base = json.dumps({**valid_route(g), "metric": 0})
    body = base.replace('"metric": 0', f'"metric": {literal}').encode()
    message = error_of(raw(world, "POST", "/api/routes", body), 400)
    assert message.startswith("couldn't parse JSON request")
    error_of(raw(world, "POST", "/api/setup-keys", f'{{"name": "k", "expires_in": {literal}}}'.encode()), 400)
    # In a field typed as free JSON (group resources) the literal must not crash anything either.
    check(raw(world, "POST", "/api/groups", f'{{"name": "r", "resources": [{{"x": {literal}}}]}}'.encode()))


@pytest.mark.parametrize(
    "url",
    [
        "/api/users?service_user=maybe",
        "/api/users?service_user=",
        "/api/users?service_user=2",
        "/api/events/audit?limit=-1",
        "/api/events/audit?limit=0",
        "/api/events/audit?limit=abc",
        "/api/events/audit?limit=1.5",
        "/api/events/audit?limit=10001",
        "/api/events/audit?limit=99999999999999999999999999",
    ],
)
def test_query_params_of_wrong_type_are_4xx(world: World, url: str) -> None:
    error_of(world.get(url))


@pytest.mark.parametrize(
    "url",
    [
        "/api/users?service_user=true",
        "/api/events/audit?limit=1",
        "/api/groups?name=%00",
        "/api/peers?ip=not-an-ip&name=%F0%9F%98%80",
        "/api/groups?name=" + "x" * 5000,
    ],
)
def test_odd_but_valid_query_params_are_not_5xx(world: World, url: str) -> None:
    check(world.get(url))


ODD_FIELD_VALUES = {
    "nul": "\x00",
    "inner-nul": "a\x00b",
    "lone-high-surrogate": "\ud800",
    "lone-low-surrogates": "\udfff" * 3,
    "emoji": "😀" * 100,
    "256-chars": "x" * 256,
    "100k-chars": "x" * 100_000,
    "bidi-bom": "\u202e\ufeff",
}


@pytest.mark.parametrize("field_id", list(ODD_FIELD_VALUES))
def test_odd_strings_in_every_string_field_are_not_5xx(routers: tuple[World, str], field_id: str) -> None:
    field_value = ODD_FIELD_VALUES[field_id]
    world, g = routers
    peer = world.peer("odd")
    key_id = world.ok(world.post("/api/setup-keys", {"name": "k", "type": "reusable", "expires_in": 86400}))[
        "id"
    ]
    cases: list[tuple[str, str, dict[str, Any]]] = [
        ("POST", "/api/groups", {"name": field_value}),
        ("POST", "/api/groups", {"name": "n", "peers": [field_value]}),
        ("POST", "/api/routes", {**valid_route(g), "description": field_value}),
        ("POST", "/api/routes", {**valid_route(g), "network_id": field_value}),
        ("POST", "/api/routes", {**valid_route(g), "network": field_value}),
        ("POST", "/api/routes", {**valid_route(g), "groups": [field_value]}),
        ("POST", "/api/routes", {**valid_route(g), "network": None, "domains": [field_value]}),
        ("POST", "/api/routes", {**valid_route(g), "peer_groups": None, "peer": field_value}),
        ("POST", "/api/setup-keys", {"name": field_value, "type": "reusable", "expires_in": 86400}),
        ("POST", "/api/setup-keys", {"name": "k", "type": field_value, "expires_in": 86400}),
        ("PUT", f"/api/setup-keys/{key_id}", {"revoked": False, "auto_groups": [field_value]}),
        ("PUT", f"/api/peers/{peer}", {"name": field_value}),
        ("POST", "/api/users", {"name": field_value, "role": "user", "is_service_user": True}),
        ("POST", "/api/users", {"name": "u", "email": field_value, "role": "user", "is_service_user": True}),
        ("POST", "/api/users", {"name": "u", "role": field_value, "is_service_user": True}),
        ("POST", f"/api/users/{world.owner_id}/tokens", {"name": field_value, "expires_in": 30}),
    ]

    def run() -> Iterator[tuple[str, Any]]:
        for method, path, body in cases:
            content = json.dumps(body).encode()  # ensure_ascii: lone surrogates travel as \\ud800 escapes
            shown = {k: v if v is not field_value else f"<{field_id}>" for k, v in body.items()}
            yield f"{method} {path} {shown}", raw(world, method, path, content)
        in_url = quote(field_value[:2000].encode("utf-8", "surrogatepass"), safe="")  # URLs stay < 64 KiB
        for path in ("/api/routes/", "/api/groups/", "/api/peers/", "/api/setup-keys/", "/api/users/"):
            url = path + in_url
            yield f"GET {path}<{field_id}>", world.get(url)
            yield f"DELETE {path}<{field_id}>", world.delete(url)
        for query in ("/api/groups?name=", "/api/peers?name=", "/api/peers?ip="):
            url = query + in_url
            yield f"GET {query}<{field_id}>", world.get(url)

    failed = failures_of(run(), client_error=False)
    assert not failed, "\n".join(failed)


def test_unknown_paths_and_methods_answer_in_the_error_shape(world: World) -> None:
    assert error_of(world.get("/api/nope"), 404)
    assert error_of(world.client.request("PATCH", "/api/routes", headers=world.headers()), 405)
    assert error_of(world.client.request("POST", "/api/accounts", headers=world.headers()), 405)
    assert error_of(world.client.get("/api/routes"), 401)
    assert error_of(world.client.get("/api/routes", headers={"Authorization": "Token nope"}), 401)


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [
        ("PATCH", "/api/routes", "GET, POST"),
        ("DELETE", "/api/routes", "GET, POST"),
        ("PATCH", "/api/routes/x", "GET, PUT, DELETE"),
        ("POST", "/api/accounts", "GET"),
        ("PATCH", "/api/users/x/tokens/y", "GET, DELETE"),
    ],
)
def test_405_names_every_allowed_method(world: World, method: str, path: str, allow: str) -> None:
    response = world.client.request(method, path, headers=world.headers())
    assert error_of(response, 405) == "method not allowed"
    assert response.headers["allow"] == allow
