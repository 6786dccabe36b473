"""Who may do what through HTTP: the §2.1 role matrix for routes, authentication (§4.2), personal
access tokens (§4.5) and account isolation. Every case runs on SQLite and on PostgreSQL."""

from __future__ import annotations

import base64
import hashlib
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select

from meshroute.core.ids import new_id
from meshroute.core.model import ALL_GROUP_NAME, Account, Group, PersonalAccessToken, Role, User
from meshroute.core.tokens import hash_secret, new_pat
from meshroute.server.clock import utcnow
from meshroute.server.services.accounts import new_overlay_networks
from meshroute.server.store import tables
from tests.integration.conftest import World


def expect_error(resp: Any, status: int, message: str) -> None:
    assert resp.status_code == status, resp.text
    assert resp.json() == {"message": message, "code": status}


def fast_group(w: World, name: str, peers: list[str] | None = None) -> str:
    return w.services.groups.create(w.account_id, w.owner_id, name, peers or []).id


def fast_key(w: World) -> str:
    _, plain = w.services.setup_keys.create(
        w.account_id, w.owner_id, name="k", key_type="reusable", expires_in=0, auto_groups=[], usage_limit=0
    )
    return plain


def route_body(peer: str, group: str, **over: Any) -> dict[str, Any]:
    return {
        "network_id": "office",
        "network": "10.10.0.0/24",
        "peer": peer,
        "groups": [group],
        "metric": 100,
        "enabled": True,
        **over,
    }


@pytest.fixture
def scene(world: World) -> dict[str, Any]:
    """A routing peer, a group and one route made by the owner."""
    peer = world.peer("router", fast_key(world))
    group = fast_group(world, "dist", [peer])
    route = world.ok(world.post("/api/routes", route_body(peer, group)))
    return {"peer": peer, "group": group, "route": route}


# -- the role matrix ----------------------------------------------------------------------------
FULL, READ_ONLY, NOTHING = "full", "read", "nothing"

MATRIX = [
    pytest.param(None, False, FULL, id="owner"),
    pytest.param(Role.ADMIN, False, FULL, id="admin"),
    pytest.param(Role.ADMIN, True, FULL, id="service-admin"),
    pytest.param(Role.NETWORK_ADMIN, False, FULL, id="network_admin"),
    pytest.param(Role.AUDITOR, False, READ_ONLY, id="auditor"),
    pytest.param(Role.AUDITOR, True, READ_ONLY, id="service-auditor"),
    pytest.param(Role.USER, False, NOTHING, id="user"),
    pytest.param(Role.USER, True, READ_ONLY, id="service-user"),
]


@pytest.mark.parametrize(("role", "service", "grant"), MATRIX)
def test_route_role_matrix(
    world: World, scene: dict[str, Any], role: Role | None, service: bool, grant: str
) -> None:
    token = world.token if role is None else world.user(role, service=service)[1]
    rid = scene["route"]["id"]
    denied = ("permission denied", 403)

    listed = world.get("/api/routes", token=token)
    one = world.get(f"/api/routes/{rid}", token=token)
    status = world.get(f"/api/routes/{rid}/status", token=token)  # reads like the route
    if grant == NOTHING:
        expect_error(listed, 403, denied[0])
        expect_error(one, 403, denied[0])
        expect_error(status, 403, denied[0])
    else:
        assert listed.status_code == 200, listed.text
        assert listed.json() == [scene["route"]]
        assert one.status_code == 200, one.text
        assert one.json() == scene["route"]
        assert status.status_code == 200, status.text
        assert status.json() == []  # the routing peer is the group's only member: no client

    body = route_body(scene["peer"], scene["group"], network="10.20.0.0/24", network_id="new")
    created = world.post("/api/routes", body, token=token)
    updated = world.put(
        f"/api/routes/{rid}", route_body(scene["peer"], scene["group"], metric=5), token=token
    )
    if grant == FULL:
        assert created.status_code == 200, created.text
        assert updated.status_code == 200, updated.text
        assert updated.json()["metric"] == 5
        deleted = world.delete(f"/api/routes/{created.json()['id']}", token=token)
        assert deleted.status_code == 200, deleted.text
        assert deleted.json() == {}
        assert [r["id"] for r in world.ok(world.get("/api/routes"))] == [rid]
    else:
        expect_error(created, 403, denied[0])
        expect_error(updated, 403, denied[0])
        expect_error(world.delete(f"/api/routes/{rid}", token=token), 403, denied[0])
        assert world.ok(world.get("/api/routes")) == [scene["route"]]


def test_blocked_user_is_refused_everything(world: World, scene: dict[str, Any]) -> None:
    _, token = world.user(Role.ADMIN, service=False, blocked=True)
    rid = scene["route"]["id"]
    msg = "failed to validate user permissions: user is blocked"
    expect_error(world.get("/api/routes", token=token), 403, msg)
    expect_error(world.get(f"/api/routes/{rid}", token=token), 403, msg)
    expect_error(world.get(f"/api/routes/{rid}/status", token=token), 403, msg)
    body = route_body(scene["peer"], scene["group"], network="10.20.0.0/24")
    expect_error(world.post("/api/routes", body, token=token), 403, msg)
    expect_error(world.put(f"/api/routes/{rid}", body, token=token), 403, msg)
    expect_error(world.delete(f"/api/routes/{rid}", token=token), 403, msg)
    expect_error(world.get("/api/groups", token=token), 403, msg)
    assert world.ok(world.get("/api/routes")) == [scene["route"]]


def test_blocked_service_user_cannot_even_read(world: World, scene: dict[str, Any]) -> None:
    _, token = world.user(Role.USER, service=True, blocked=True)
    expect_error(
        world.get("/api/routes", token=token), 403, "failed to validate user permissions: user is blocked"
    )


def test_blocking_through_the_api_takes_effect_at_once(world: World, scene: dict[str, Any]) -> None:
    uid, token = world.user(Role.ADMIN, service=True)
    assert world.get("/api/routes", token=token).status_code == 200
    world.ok(world.put(f"/api/users/{uid}", {"role": "admin", "is_blocked": True}))
    expect_error(
        world.get("/api/routes", token=token), 403, "failed to validate user permissions: user is blocked"
    )
    world.ok(world.put(f"/api/users/{uid}", {"role": "admin", "is_blocked": False}))
    assert world.get("/api/routes", token=token).status_code == 200


def test_role_change_takes_effect_at_once(world: World, scene: dict[str, Any]) -> None:
    uid, token = world.user(Role.ADMIN, service=True)
    rid = scene["route"]["id"]
    world.ok(world.put(f"/api/users/{uid}", {"role": "auditor"}))
    expect_error(world.delete(f"/api/routes/{rid}", token=token), 403, "permission denied")
    world.ok(world.put(f"/api/users/{uid}", {"role": "network_admin"}))
    assert world.ok(world.delete(f"/api/routes/{rid}", token=token)) == {}


def test_role_matrix_for_neighbouring_modules(world: World) -> None:
    """Spot checks of §2.1 beyond routes: network_admin's explicit grants, auditor and user defaults."""
    _, netadmin = world.user(Role.NETWORK_ADMIN, service=False)
    _, auditor = world.user(Role.AUDITOR, service=False)
    _, user = world.user(Role.USER, service=False)
    _, svc_user = world.user(Role.USER, service=True)
    peer = world.peer("p")
    peer_body = {"name": "x", "ssh_enabled": False, "login_expiration_enabled": False}
    peer_body["inactivity_expiration_enabled"] = False
    key_body = {"name": "k", "type": "reusable"}
    cases = [
        (netadmin, "post", "/api/groups", {"name": "na"}, 200),
        (netadmin, "get", "/api/peers", None, 200),
        (netadmin, "put", f"/api/peers/{peer}", peer_body, 403),
        (netadmin, "delete", f"/api/peers/{peer}", None, 403),
        (netadmin, "get", "/api/setup-keys", None, 200),
        (netadmin, "post", "/api/setup-keys", key_body, 403),
        (netadmin, "get", "/api/users", None, 200),
        (netadmin, "post", "/api/users", {"name": "b", "role": "user", "is_service_user": True}, 403),
        (netadmin, "get", "/api/events/audit", None, 200),
        (netadmin, "get", "/api/accounts", None, 200),
        (auditor, "get", "/api/groups", None, 200),
        (auditor, "post", "/api/groups", {"name": "au"}, 403),
        (auditor, "get", "/api/events/audit", None, 200),
        (auditor, "post", "/api/setup-keys", key_body, 403),
        (user, "get", "/api/groups", None, 403),
        (user, "get", "/api/events/audit", None, 403),
        (user, "get", "/api/setup-keys", None, 403),
        (svc_user, "get", "/api/groups", None, 200),
        (svc_user, "get", "/api/events/audit", None, 200),
        (svc_user, "post", "/api/groups", {"name": "sv"}, 403),
    ]
    problems = []
    for token, method, path, body, status in cases:
        call = getattr(world, method)
        resp = call(path, body, token=token) if body is not None else call(path, token=token)
        if resp.status_code != status:
            problems.append(f"{method} {path}: want {status}, got {resp.status_code} {resp.text}")
        elif status == 403 and resp.json() != {"message": "permission denied", "code": 403}:
            problems.append(f"{method} {path}: {resp.text}")
    assert not problems, "\n".join(problems)


# -- authentication ------------------------------------------------------------------------------
def test_missing_or_odd_authorization_header_is_401(world: World) -> None:
    msg = "no valid authentication provided"
    expect_error(world.client.get("/api/routes"), 401, msg)
    for header in (
        "",
        world.token,
        f"Basic {world.token}",
        f"Token  {world.token}",
        f"Token {world.token} extra",
        "Token",
        "Token ",
        f"JWT {world.token}",
    ):
        resp = world.client.get("/api/routes", headers={"Authorization": header})
        assert resp.status_code == 401, (header, resp.text)
        assert resp.json() == {"message": msg, "code": 401}, header


def test_invalid_malformed_or_unknown_tokens_are_401(world: World) -> None:
    good = world.token
    bad_checksum = good[:-1] + ("A" if good[-1] != "A" else "B")
    for token in (
        "invalidToken",
        "nbp_short",
        good[:-1],
        good + "x",
        bad_checksum,
        "xyz_" + good[4:],
        new_pat(),  # well-formed, checksum right, unknown to the server (reference QUIRK: 404)
    ):
        expect_error(world.get("/api/routes", token=token), 401, "token invalid")
        resp = world.client.get("/api/routes", headers={"Authorization": f"Bearer {token}"})
        expect_error(resp, 401, "token invalid")


def test_expired_token_is_401(world: World) -> None:
    token = new_pat()
    now = utcnow()
    with world.services.uow.write_unlocked() as tx:
        tx.tokens.add(
            PersonalAccessToken(
                new_id(),
                world.owner_id,
                "old",
                hash_secret(token),
                now - timedelta(seconds=1),
                world.owner_id,
                now,
            )
        )
    expect_error(world.get("/api/routes", token=token), 401, "token invalid")


def test_token_of_a_deleted_user_is_401(world: World) -> None:
    uid, token = world.user(Role.ADMIN, service=True)
    assert world.get("/api/routes", token=token).status_code == 200
    assert world.ok(world.delete(f"/api/users/{uid}")) == {}
    expect_error(world.get("/api/routes", token=token), 401, "token invalid")


@pytest.mark.parametrize("scheme", ["Token", "token", "TOKEN", "Bearer", "bearer", "BeArEr"])
def test_pat_works_with_either_scheme_in_any_case(world: World, scheme: str) -> None:
    resp = world.client.get("/api/users/current", headers={"Authorization": f"{scheme} {world.token}"})
    assert resp.status_code == 200, resp.text
    assert resp.json()["id"] == world.owner_id


def test_auth_is_checked_before_the_body(world: World) -> None:
    resp = world.client.post(
        "/api/routes",
        content=b"{broken",
        headers={"Authorization": "Token nope", "content-type": "application/json"},
    )
    expect_error(resp, 401, "token invalid")


# -- personal access tokens ------------------------------------------------------------------------
def test_token_name_and_expiry_are_validated(world: World) -> None:
    path = f"/api/users/{world.owner_id}/tokens"
    expect_error(world.post(path, {"name": "", "expires_in": 30}), 422, "token name can't be empty")
    expect_error(world.post(path, {"expires_in": 30}), 422, "token name can't be empty")
    for days in (0, -1, 366, 10000):
        expect_error(
            world.post(path, {"name": "t", "expires_in": days}), 422, "expiration has to be between 1 and 365"
        )
    expect_error(world.post(path, {"name": "t"}), 422, "expiration has to be between 1 and 365")
    for days in (1, 365):
        assert world.post(path, {"name": f"t{days}", "expires_in": days}).status_code == 200


def test_token_validation_runs_before_the_permission_check(world: World) -> None:
    _, token = world.user(Role.AUDITOR, service=False)  # auditors may only read tokens
    path = f"/api/users/{world.owner_id}/tokens"
    expect_error(
        world.post(path, {"name": "", "expires_in": 30}, token=token), 422, "token name can't be empty"
    )
    expect_error(world.post(path, {"name": "x", "expires_in": 30}, token=token), 403, "permission denied")


def test_created_token_works_at_once_and_is_stored_hashed(world: World) -> None:
    created = world.ok(world.post(f"/api/users/{world.owner_id}/tokens", {"name": "ci", "expires_in": 7}))
    plain = created["plain_token"]
    pat = created["personal_access_token"]
    assert len(plain) == 40 and plain.startswith("nbp_")
    assert set(pat) == {"id", "name", "expiration_date", "created_by", "created_at", "last_used"}
    assert pat["name"] == "ci"
    assert pat["created_by"] == world.owner_id
    assert plain not in str(pat)

    me = world.get("/api/users/current", token=plain)
    assert me.status_code == 200
    assert me.json()["id"] == world.owner_id
    used = world.ok(world.get(f"/api/users/{world.owner_id}/tokens/{pat['id']}"))
    assert pat["last_used"] == "0001-01-01T00:00:00Z"
    assert used["last_used"] != pat["last_used"]

    with world.services.uow.read() as tx:
        rows = [dict(r._mapping) for r in tx.conn.execute(select(tables.personal_access_tokens))]
    row = next(r for r in rows if r["id"] == pat["id"])
    assert row["hashed_token"] == base64.b64encode(hashlib.sha256(plain.encode()).digest()).decode()
    for r in rows:
        assert all(plain not in str(v) for v in r.values())

    listed = world.ok(world.get(f"/api/users/{world.owner_id}/tokens"))
    assert pat["id"] in [t["id"] for t in listed]
    assert plain not in str(listed)
    assert world.ok(world.get(f"/api/users/{world.owner_id}/tokens/{pat['id']}"))["name"] == "ci"


def test_deleted_token_stops_working(world: World) -> None:
    created = world.ok(world.post(f"/api/users/{world.owner_id}/tokens", {"name": "tmp", "expires_in": 1}))
    plain, tid = created["plain_token"], created["personal_access_token"]["id"]
    assert world.get("/api/routes", token=plain).status_code == 200
    assert world.ok(world.delete(f"/api/users/{world.owner_id}/tokens/{tid}")) == {}
    expect_error(world.get("/api/routes", token=plain), 401, "token invalid")
    expect_error(world.get(f"/api/users/{world.owner_id}/tokens/{tid}"), 404, f"token: {tid} not found")


def test_managing_another_persons_tokens_needs_admin_and_a_service_user(world: World) -> None:
    admin_id, admin = world.user(Role.ADMIN, service=False)
    msg = "admin role required to perform this action"
    # An admin may not touch the owner's (a person's) tokens, nor the owner another person's.
    owner_tokens = f"/api/users/{world.owner_id}/tokens"
    expect_error(world.post(owner_tokens, {"name": "x", "expires_in": 1}, token=admin), 403, msg)
    expect_error(world.get(owner_tokens, token=admin), 403, msg)
    owner_pat = world.ok(world.get(owner_tokens))[0]["id"]
    expect_error(world.delete(f"{owner_tokens}/{owner_pat}", token=admin), 403, msg)
    expect_error(world.get(f"{owner_tokens}/{owner_pat}", token=admin), 403, msg)
    expect_error(world.post(f"/api/users/{admin_id}/tokens", {"name": "x", "expires_in": 1}), 403, msg)
    # ...but may manage a service user's tokens.
    svc_id, _ = world.user(Role.USER, service=True)
    made = world.post(f"/api/users/{svc_id}/tokens", {"name": "bot", "expires_in": 5}, token=admin)
    assert made.status_code == 200, made.text
    plain = made.json()["plain_token"]
    assert world.get("/api/users/current", token=plain).json()["id"] == svc_id
    listed = world.ok(world.get(f"/api/users/{svc_id}/tokens", token=admin))
    assert len(listed) == 2
    tid = made.json()["personal_access_token"]["id"]
    assert world.ok(world.delete(f"/api/users/{svc_id}/tokens/{tid}", token=admin)) == {}
    # ...and their own.
    own = world.post(f"/api/users/{admin_id}/tokens", {"name": "mine", "expires_in": 5}, token=admin)
    assert own.status_code == 200, own.text


def test_a_regular_user_manages_their_own_tokens_and_no_one_elses(world: World) -> None:
    """NetBird's rule, which docs/api.md states: the user role may manage its own tokens."""
    uid, token = world.user(Role.USER, service=False)
    mine = f"/api/users/{uid}/tokens"
    created = world.post(mine, {"name": "laptop", "expires_in": 30}, token=token)
    assert created.status_code == 200, created.text
    plain, tid = created.json()["plain_token"], created.json()["personal_access_token"]["id"]
    assert world.get("/api/users/current", token=plain).json()["id"] == uid
    assert tid in [t["id"] for t in world.ok(world.get(mine, token=token))]
    assert world.ok(world.get(f"{mine}/{tid}", token=token))["name"] == "laptop"
    assert world.ok(world.delete(f"{mine}/{tid}", token=token)) == {}
    expect_error(world.get("/api/users/current", token=plain), 401, "token invalid")
    # ...but nobody else's, and nothing else.
    msg = "admin role required to perform this action"
    svc_id, _ = world.user(Role.USER, service=True)
    for path in (f"/api/users/{world.owner_id}/tokens", f"/api/users/{svc_id}/tokens"):
        expect_error(world.get(path, token=token), 403, msg)
        expect_error(world.post(path, {"name": "x", "expires_in": 1}, token=token), 403, msg)
    expect_error(world.get("/api/routes", token=token), 403, "permission denied")
    # An auditor may list its own tokens, not make new ones.
    aid, auditor = world.user(Role.AUDITOR, service=False)
    assert len(world.ok(world.get(f"/api/users/{aid}/tokens", token=auditor))) == 1
    expect_error(
        world.post(f"/api/users/{aid}/tokens", {"name": "x", "expires_in": 1}, token=auditor),
        403,
        "permission denied",
    )


def test_network_admin_is_not_admin_powered_for_service_user_tokens(world: World) -> None:
    _, netadmin = world.user(Role.NETWORK_ADMIN, service=False)
    svc_id, _ = world.user(Role.USER, service=True)
    expect_error(
        world.post(f"/api/users/{svc_id}/tokens", {"name": "x", "expires_in": 1}, token=netadmin),
        403,
        "admin role required to perform this action",
    )


def test_tokens_of_unknown_user_are_404(world: World) -> None:
    expect_error(world.get("/api/users/nobody/tokens"), 404, "user not found")
    expect_error(
        world.post("/api/users/nobody/tokens", {"name": "x", "expires_in": 1}), 404, "user not found"
    )


# -- account isolation ---------------------------------------------------------------------------
def second_account(world: World) -> dict[str, str]:
    """A second account with its own owner, All group and token, inserted directly."""
    now = utcnow()
    v4, v6 = new_overlay_networks()
    account_id, owner_id, token = new_id(), new_id(), new_pat()
    with world.services.uow.write_unlocked() as tx:
        tx.accounts.add(Account(account_id, "other.internal", v4, v6, 0, now, owner_id))
        tx.users.add(User(owner_id, account_id, Role.OWNER, name="other-owner", created_at=now))
        all_id = new_id()
        tx.groups.add(Group(all_id, account_id, ALL_GROUP_NAME))
        tx.tokens.add(
            PersonalAccessToken(
                new_id(), owner_id, "t", hash_secret(token), now + timedelta(days=1), owner_id, now
            )
        )
    return {"account": account_id, "owner": owner_id, "token": token, "all": all_id}


def test_other_account_cannot_see_or_touch_routes(world: World, scene: dict[str, Any]) -> None:
    other = second_account(world)
    tok = other["token"]
    rid = scene["route"]["id"]
    serial = world.serial()

    assert world.ok(world.get("/api/routes", token=tok)) == []
    expect_error(world.get(f"/api/routes/{rid}", token=tok), 404, f"route: {rid} not found")
    body = route_body(scene["peer"], other["all"], network_id="x")
    expect_error(world.put(f"/api/routes/{rid}", body, token=tok), 404, f"route: {rid} not found")
    expect_error(
        world.delete(f"/api/routes/{rid}", token=tok),
        404,
        f"failed to delete route {rid}: route: {rid} not found",
    )
    # Creating a route in its own account with the first account's peer or group fails as unknown.
    expect_error(world.post("/api/routes", body, token=tok), 422, f"peer with id {scene['peer']} not found")
    expect_error(
        world.post("/api/routes", route_body(scene["peer"], scene["group"]), token=tok),
        422,
        f"group id {scene['group']} not found",
    )
    expect_error(
        world.post("/api/routes", {**body, "peer": None, "peer_groups": [scene["group"]]}, token=tok),
        422,
        f"group id {scene['group']} not found",
    )

    assert world.ok(world.get("/api/routes")) == [scene["route"]]
    assert world.serial() == serial


def test_other_account_cannot_see_or_touch_groups_peers_keys_users(
    world: World, scene: dict[str, Any]
) -> None:
    other = second_account(world)
    tok = other["token"]
    gid, pid = scene["group"], scene["peer"]

    groups = world.ok(world.get("/api/groups", token=tok))
    assert [(g["id"], g["name"]) for g in groups] == [(other["all"], "All")]
    expect_error(world.get(f"/api/groups/{gid}", token=tok), 404, f"group: {gid} not found")
    expect_error(
        world.put(f"/api/groups/{gid}", {"name": "stolen"}, token=tok), 404, f"group: {gid} not found"
    )
    expect_error(world.delete(f"/api/groups/{gid}", token=tok), 404, f"group: {gid} not found")
    expect_error(world.get("/api/groups?name=dist", token=tok), 404, "group: dist not found")
    expect_error(
        world.post("/api/groups", {"name": "mine", "peers": [pid]}, token=tok),
        422,
        f"peer with id {pid} not found",
    )

    assert world.ok(world.get("/api/peers", token=tok)) == []
    expect_error(world.get(f"/api/peers/{pid}", token=tok), 404, f"peer: {pid} not found")
    expect_error(world.delete(f"/api/peers/{pid}", token=tok), 404, f"peer: {pid} not found")

    assert world.ok(world.get("/api/setup-keys", token=tok)) == []
    key_id = world.ok(world.get("/api/setup-keys"))[0]["id"]
    expect_error(world.get(f"/api/setup-keys/{key_id}", token=tok), 404, f"setup key: {key_id} not found")

    users = world.ok(world.get("/api/users", token=tok))
    assert [u["id"] for u in users] == [other["owner"]]
    expect_error(
        world.put(f"/api/users/{world.owner_id}", {"role": "owner", "is_blocked": True}, token=tok),
        404,
        f"user: {world.owner_id} not found",
    )
    expect_error(world.get(f"/api/users/{world.owner_id}/tokens", token=tok), 404, "user not found")
    expect_error(world.get(f"/api/users/{other['owner']}/tokens"), 404, "user not found")

    accounts = world.ok(world.get("/api/accounts", token=tok))
    assert [a["id"] for a in accounts] == [other["account"]]
    expect_error(
        world.put(f"/api/accounts/{world.account_id}", {"settings": {}}, token=tok),
        404,
        f"account: {world.account_id} not found",
    )
    events = world.ok(world.get("/api/events/audit", token=tok))
    assert events == []

    # The first account is untouched and sees nothing of the second.
    assert world.ok(world.get(f"/api/groups/{gid}"))["name"] == "dist"
    assert [g["name"] for g in world.ok(world.get("/api/groups"))] == ["All", "dist"]
    expect_error(world.get(f"/api/groups/{other['all']}"), 404, f"group: {other['all']} not found")
    assert [p["id"] for p in world.ok(world.get("/api/peers"))] == [pid]
