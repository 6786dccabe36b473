"""The dashboard's sessions and forms over the real app and store (SQLite and PostgreSQL), without a
browser: the token becomes a server-side session and is never echoed; the cookie's flags (Secure
behind TLS); sign-in failures are throttled like the API's; a session ends with its token, its user
and at sign-out; forms without the session's CSRF token (or from another origin) change nothing;
every page carries the security headers; no page leaks SQL or a traceback."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, select

from meshroute.core.model import Role
from meshroute.server.assembly import Server
from meshroute.server.store import tables as t
from meshroute.server.throttle import ThrottleSettings
from tests.integration.conftest import World, assembled

CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def browser(server: Server, base_url: str = "http://testserver") -> TestClient:
    """A client as a browser (cookies kept, redirects not followed); the world's client runs the
    server's parts."""
    return TestClient(server.app, base_url=base_url, follow_redirects=False, raise_server_exceptions=False)


def sign_in(client: TestClient, token: str, next_path: str = "/routes") -> TestClient:
    form = client.get("/signin")
    reply = client.post(
        "/signin", data={"token": token, "csrf_token": CSRF.findall(form.text)[0], "next": next_path}
    )
    assert reply.status_code == 303, reply.text
    assert reply.headers["location"] == next_path
    return client


def csrf(client: TestClient, path: str = "/routes") -> str:
    return CSRF.findall(client.get(path).text)[0]


def test_a_token_becomes_a_session_and_is_never_shown(
    app_server: Server, world: World, engine: Engine
) -> None:
    client = browser(app_server)
    assert client.get("/routes").headers["location"] == "/signin?next=/routes"
    page = client.get("/signin")
    assert page.status_code == 200 and page.headers["cache-control"] == "no-store"
    assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
    cookie = page.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/signin" in cookie
    reply = client.post(
        "/signin", data={"token": world.token, "csrf_token": CSRF.findall(page.text)[0], "next": "/groups"}
    )
    assert reply.status_code == 303 and reply.headers["location"] == "/groups"
    session_cookie = next(
        c for c in reply.headers.get_list("set-cookie") if c.startswith("meshroute_session=")
    )
    assert (
        "HttpOnly" in session_cookie
        and "SameSite=strict" in session_cookie
        and "Secure" not in session_cookie
    )
    assert world.token not in session_cookie
    for path in ("/groups", "/routes", "/peers", "/setup-keys", "/events", "/explain"):
        shown = client.get(path)
        assert shown.status_code == 200, path
        assert world.token not in shown.text
    with engine.connect() as conn:
        (row,) = conn.execute(select(t.web_sessions)).all()
    assert world.token not in str(row) and session_cookie.split(";")[0].split("=", 1)[1] not in str(row)


def test_a_refused_token_is_said_so_and_not_echoed(app_server: Server, world: World) -> None:
    client = browser(app_server)
    page = client.get("/signin")
    wrong = "nbp_" + "A" * 36
    reply = client.post("/signin", data={"token": wrong, "csrf_token": CSRF.findall(page.text)[0]})
    assert reply.status_code == 401
    assert "That token was not accepted (token invalid)" in reply.text and wrong not in reply.text
    # the sign-in form's own token is checked too (a forged sign-in changes nothing)
    assert client.post("/signin", data={"token": world.token, "csrf_token": "x"}).status_code == 403
    # an open redirect is not possible
    reply = sign_in(browser(app_server), world.token, "/routes")
    assert reply.get("/signin?next=//evil.example").status_code == 200
    page = browser(app_server).get("/signin?next=//evil.example")
    assert 'name="next" value="/routes"' in page.text


@pytest.fixture
def throttled(engine: Engine, tmp_path: Path) -> Iterator[TestClient]:
    server = assembled(engine, tmp_path, throttle=ThrottleSettings(max_failures=2, window=60))
    assert server.services.accounts.bootstrap() is not None
    yield browser(server)


def test_failed_sign_ins_are_throttled_like_the_api(throttled: TestClient) -> None:
    statuses = []
    for _ in range(3):
        token = CSRF.findall(throttled.get("/signin").text)[0]
        statuses.append(throttled.post("/signin", data={"token": "nope", "csrf_token": token}).status_code)
    assert statuses == [401, 401, 429]


def test_secure_cookies_behind_tls(engine: Engine, tmp_path: Path, world: World) -> None:
    public = assembled(engine, tmp_path / "public", public_url="https://mesh.example.com")
    reply = browser(public).get("/signin")
    assert "Secure" in reply.headers["set-cookie"]
    proxied = assembled(engine, tmp_path / "proxied")
    reply = browser(proxied, base_url="https://testserver").get("/signin")
    assert "Secure" in reply.headers["set-cookie"]
    with pytest.raises(ValueError, match="--public-url"):
        assembled(engine, tmp_path / "bad", public_url="mesh.example.com/dashboard")


def test_a_session_ends_at_sign_out_with_its_token_and_for_a_blocked_user(
    app_server: Server, world: World
) -> None:
    client = sign_in(browser(app_server), world.token)
    reply = client.post("/signout", data={"csrf_token": csrf(client)})
    assert reply.status_code == 303 and reply.headers["location"] == "/signin"
    assert client.get("/routes").status_code == 303

    uid, token = world.user(Role.ADMIN)
    client = sign_in(browser(app_server), token)
    (pat,) = world.ok(world.get(f"/api/users/{uid}/tokens"))
    world.ok(world.delete(f"/api/users/{uid}/tokens/{pat['id']}"))
    assert client.get("/routes").headers["location"].startswith("/signin")

    uid, token = world.user(Role.ADMIN)
    client = sign_in(browser(app_server), token)
    world.ok(world.put(f"/api/users/{uid}", {"role": "admin", "is_blocked": True}))
    assert client.get("/routes").headers["location"].startswith("/signin")


def test_forms_need_the_session_csrf_token_and_this_origin(app_server: Server, world: World) -> None:
    group = world.group("kept")
    client = sign_in(browser(app_server), world.token)
    token = csrf(client)
    for data, headers in (
        ({}, {}),
        ({"csrf_token": "forged"}, {}),
        ({"csrf_token": token}, {"Origin": "https://evil.example"}),
        ({"csrf_token": token}, {"Origin": "null"}),
    ):
        reply = client.post(f"/groups/{group}/delete", data=data, headers=headers)
        assert reply.status_code == 403, (data, headers)
    assert world.get(f"/api/groups/{group}").status_code == 200
    # the same form with its token works, from this origin
    reply = client.post(
        f"/groups/{group}/delete", data={"csrf_token": token}, headers={"Origin": "http://testserver"}
    )
    assert reply.status_code == 303
    assert world.get(f"/api/groups/{group}").status_code == 404
    # another session's token is not this one's
    other = sign_in(browser(app_server), world.token)
    assert csrf(other) != token


def test_writes_are_the_services_own_with_their_events(app_server: Server, world: World) -> None:
    routers, clients = world.group("routers"), world.group("clients")
    client = sign_in(browser(app_server), world.token)
    form = {
        "csrf_token": csrf(client),
        "network_id": "office",
        "dest_kind": "network",
        "network": "10.30.0.0/24",
        "routing_kind": "groups",
        "peer_groups": routers,
        "metric": "50",
        "enabled": "1",
        "groups": clients,
    }
    reply = client.post("/routes/new", data={**form, "metric": "0"})
    assert reply.status_code == 422
    assert (
        '<div class="field-error" id="error-metric" role="alert">metric should be between 1 and 9999</div>'
        in reply.text
    )
    reply = client.post("/routes/new", data={**form, "groups": ""})
    assert reply.status_code == 422 and 'id="error-groups"' in reply.text
    assert world.ok(world.get("/api/routes")) == []
    reply = client.post("/routes/new", data=form)
    assert reply.status_code == 303
    (route,) = world.ok(world.get("/api/routes"))
    assert (route["metric"], route["masquerade"], route["enabled"]) == (50, False, True)
    events = [e["activity_code"] for e in world.events()]
    assert events[0] == "route.add"
    # a duplicate is refused next to the routing peers, by the API's rule, with names
    peer = world.peer("gw", world.setup_key([routers]))
    reply = client.post(
        "/routes/new", data={**form, "network_id": "again", "routing_kind": "peer", "peer": peer}
    )
    assert reply.status_code == 409
    assert 'id="error-peer"' in reply.text and f"peer gw ({peer}) already has this route" in reply.text


def test_an_auditor_reads_everything_and_changes_nothing(app_server: Server, world: World) -> None:
    _, token = world.user(Role.AUDITOR)
    client = sign_in(browser(app_server), token)
    for path in ("/routes", "/groups", "/setup-keys", "/peers", "/events", "/explain"):
        page = client.get(path)
        assert page.status_code == 200
        assert re.findall(r'<form method="post" action="([^"]+)"', page.text) == ["/signout"], path
    assert client.get("/routes/new").status_code == 403
    reply = client.post("/groups", data={"csrf_token": csrf(client), "name": "x"})
    assert reply.status_code == 403 and "permission denied" in reply.text
    _, person = world.user(Role.USER, service=False)
    shown = sign_in(browser(app_server), person).get("/routes")
    assert shown.status_code == 403 and "permission denied" in shown.text


def test_nothing_inside_leaks_into_a_page(app_server: Server, world: World) -> None:
    client = sign_in(browser(app_server), world.token)
    for path in ("/routes/nope", "/peers/nope", "/routes/nope/edit", "/nope", "/routes/%00"):
        page = client.get(path)
        assert page.status_code in (400, 404), path
        assert "Traceback" not in page.text and "SELECT" not in page.text
    bad = client.post(
        "/groups",
        content=b"name=\xff\xfe&csrf_token=x",
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert bad.status_code in (400, 403) and "Traceback" not in bad.text


def test_a_domain_routes_page_has_a_learned_column_and_a_prefix_routes_has_none(
    app_server: Server, world: World
) -> None:
    routers, clients = world.group("routers"), world.group("clients")
    world.peer("gw", world.setup_key([routers]))
    base = {"metric": 10, "enabled": True, "groups": [clients], "peer_groups": [routers]}
    domain = world.ok(
        world.post("/api/routes", {**base, "network_id": "apps", "domains": ["app.example.com"]})
    )
    prefix = world.ok(world.post("/api/routes", {**base, "network_id": "lan", "network": "10.31.0.0/24"}))
    world.peer("laptop", world.setup_key([clients]))
    client = sign_in(browser(app_server), world.token)
    page = client.get(f"/routes/{domain['id']}/live")
    assert page.status_code == 200 and ">Learned</th>" in page.text
    assert "<td>\u2013</td>" in page.text  # the client has not reported yet
    page = client.get(f"/routes/{prefix['id']}/live")
    assert page.status_code == 200 and "Learned" not in page.text
