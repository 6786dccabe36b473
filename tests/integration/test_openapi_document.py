"""The served OpenAPI document types what the API answers (every response of the integration suite
is checked against it: `openapi_check`), and the API browser works without the internet."""

from __future__ import annotations

import re
from typing import Any

from fastapi.testclient import TestClient

from meshroute.server.api.app import SWAGGER_UI
from meshroute.server.assembly import Server
from tests.integration.conftest import World, served_document
from tests.integration.openapi_check import Document, ResponseLog


def _schema_names(schema: dict[str, Any]) -> str:
    ref = schema.get("$ref") or schema.get("items", {}).get("$ref", "")
    return str(ref).rsplit("/", 1)[-1]


def test_every_operation_documents_its_answer_and_the_real_error_body(app_server: Server) -> None:
    doc = app_server.app.openapi()
    assert "HTTPValidationError" not in doc["components"]["schemas"]
    for path, item in doc["paths"].items():
        for method, op in item.items():
            ok = op["responses"]["200"]["content"]["application/json"]["schema"]
            assert _schema_names(ok), f"{method} {path}: untyped answer {ok}"
            for status in ("401", "422", "default"):
                error = op["responses"][status]["content"]["application/json"]["schema"]
                assert _schema_names(error) == "ErrorBody", (method, path, status)


def test_request_fields_are_documented_with_their_types_and_limits(app_server: Server) -> None:
    doc = app_server.app.openapi()
    body = doc["paths"]["/api/routes"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    props = body["properties"]
    assert (props["metric"]["type"], props["metric"]["minimum"], props["metric"]["maximum"]) == (
        "integer",
        1,
        9999,
    )
    assert props["network_id"]["maxLength"] == 40
    assert not any("anyOf" in p for p in props.values())  # null is accepted as absent, not a type
    settings = doc["paths"]["/api/accounts/{account_id}"]["put"]["requestBody"]["content"]["application/json"]
    inner = settings["schema"]["properties"]["settings"]["properties"]
    assert inner["peer_login_expiration"]["minimum"] == 3600


def test_the_check_finds_what_the_document_does_not_describe(world: World, app_server: Server) -> None:
    doc = served_document(app_server)
    route = world.ok(
        world.post(
            "/api/routes",
            {
                "network": "10.1.0.0/16",
                "network_id": "n",
                "peer_groups": [world.group("g")],
                "groups": [world.group("h")],
                "metric": 5,
            },
        )
    )
    body = world.get(f"/api/routes/{route['id']}").content
    assert doc.problems("GET", f"/api/routes/{route['id']}", 200, body) == []
    extra = body.replace(b'"id":', b'"surprise":1,"id":', 1)
    assert any("surprise" in p for p in doc.problems("GET", "/api/routes/x", 200, extra))
    wrong = body.replace(b'"metric":5', b'"metric":"5"')
    assert any("metric" in p for p in doc.problems("GET", "/api/routes/x", 200, wrong))
    assert doc.problems("GET", "/api/routes/x", 404, b'{"message":"nope"}')  # no code
    assert doc.problems("GET", "/api/policies", 501, b"{}") == []  # not ours: not in the document


def test_a_logged_client_records_what_it_receives(app_server: Server, world: World) -> None:
    log = ResponseLog()
    client = TestClient(app_server.app)
    log.install(client)
    client.get("/api/users/current", headers=world.headers())
    client.get("/api/users/current")
    assert [(m, p, s) for m, p, s, _ in log.seen] == [
        ("GET", "/api/users/current", 200),
        ("GET", "/api/users/current", 401),
    ]
    log.check(Document(app_server.app.openapi()))


def test_the_api_browser_is_served_from_the_package(world: World) -> None:
    page = world.client.get("/api/docs")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    links = re.findall(r'(?:src|href)="([^"]+)"', page.text)
    assert links and all(link.startswith("/api/docs/assets/") for link in links), links
    assert "/api/openapi.json" in page.text
    assert "http://" not in page.text and "https://" not in page.text  # nothing from elsewhere
    for link in links:
        asset = world.client.get(link)
        name = link.rsplit("/", 1)[-1]
        assert asset.status_code == 200, link
        assert asset.content == (SWAGGER_UI / name).read_bytes()
    assert "Apache License" in (SWAGGER_UI / "LICENSE").read_text()
    assert "5.24.2" in (SWAGGER_UI / "VERSION").read_text()
