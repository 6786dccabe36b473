"""What a mutation leaves behind (§2.7): the account serial moves by exactly one and the audit log
gets the right event for every success; a failure leaves serial, events and stored rows as they
were; reads change nothing. Every case runs on SQLite and on PostgreSQL."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import pytest

from meshroute.core.model import Role
from tests.integration.conftest import World

RFC3339_UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$")


@dataclass
class Scene:
    w: World
    p1: str
    p2: str
    dist: str  # [p2]
    ha: str  # [p1, p2]
    key_id: str

    def body(self, **over: Any) -> dict[str, Any]:
        b: dict[str, Any] = {
            "network_id": "office",
            "network": "10.10.0.0/24",
            "peer": self.p1,
            "groups": [self.dist],
            "metric": 100,
            "enabled": True,
        }
        b.update(over)
        return {k: v for k, v in b.items() if v is not None}


@pytest.fixture
def scene(world: World) -> Scene:
    key, plain = world.services.setup_keys.create(
        world.account_id,
        world.owner_id,
        name="k",
        key_type="reusable",
        expires_in=0,
        auto_groups=[],
        usage_limit=0,
    )
    p1 = world.peer("router-1", plain)
    p2 = world.peer("router-2", plain)
    groups = world.services.groups
    dist = groups.create(world.account_id, world.owner_id, "dist", [p2]).id
    ha = groups.create(world.account_id, world.owner_id, "ha", [p1, p2]).id
    return Scene(world, p1, p2, dist, ha, key.id)


def snapshot(w: World) -> dict[str, Any]:
    """Everything a failed request must leave alone, as the API shows it."""
    return {
        "serial": w.serial(),
        "events": w.events(),
        "routes": w.ok(w.get("/api/routes")),
        "groups": w.ok(w.get("/api/groups")),
        "peers": w.ok(w.get("/api/peers")),
        "setup_keys": w.ok(w.get("/api/setup-keys")),
        "users": w.ok(w.get("/api/users")),
        "accounts": w.ok(w.get("/api/accounts")),
    }


# -- route events --------------------------------------------------------------------------------
def test_create_bumps_serial_once_and_records_route_add(scene: Scene) -> None:
    w = scene.w
    serial, n_events = w.serial(), len(w.events())
    created = w.ok(w.post("/api/routes", scene.body(description="x")))
    assert w.serial() == serial + 1
    events = w.events()
    assert len(events) == n_events + 1
    ev = events[0]
    assert RFC3339_UTC.match(ev["timestamp"]), ev["timestamp"]
    assert ev["id"].isdigit()
    assert {k: v for k, v in ev.items() if k not in ("id", "timestamp")} == {
        "activity": "Route created",
        "activity_code": "route.add",
        "initiator_id": w.owner_id,
        "initiator_name": "owner",
        "initiator_email": "",
        "target_id": created["id"],
        "meta": {
            "name": "office",
            "network_range": "10.10.0.0/24",
            "domains": "",
            "peer_id": scene.p1,
            "peer_groups": "[]",
        },
    }


def test_peer_group_and_domain_route_meta_formatting(scene: Scene) -> None:
    w = scene.w
    created = w.ok(
        w.post(
            "/api/routes",
            scene.body(
                peer=None, peer_groups=[scene.ha, scene.dist], network=None, domains=["münchen.de", "a.b"]
            ),
        )
    )
    ev = w.events()[0]
    assert ev["activity_code"] == "route.add"
    assert ev["target_id"] == created["id"]
    assert ev["meta"] == {
        "name": "office",
        "network_range": "192.0.2.0/32",
        "domains": "münchen.de, a.b",
        "peer_id": "",
        "peer_groups": f"[{scene.ha} {scene.dist}]",
    }


def test_update_records_route_update_with_new_state(scene: Scene) -> None:
    w = scene.w
    rid = w.ok(w.post("/api/routes", scene.body()))["id"]
    serial = w.serial()
    w.ok(w.put(f"/api/routes/{rid}", scene.body(network="10.20.0.0/16", network_id="moved", peer=scene.p2)))
    assert w.serial() == serial + 1
    ev = w.events()[0]
    assert (ev["activity"], ev["activity_code"], ev["target_id"], ev["initiator_id"]) == (
        "Route updated",
        "route.update",
        rid,
        w.owner_id,
    )
    assert ev["meta"] == {
        "name": "moved",
        "network_range": "10.20.0.0/16",
        "domains": "",
        "peer_id": scene.p2,
        "peer_groups": "[]",
    }


def test_delete_records_route_delete_with_deleted_state(scene: Scene) -> None:
    w = scene.w
    rid = w.ok(w.post("/api/routes", scene.body(peer=None, peer_groups=[scene.ha])))["id"]
    serial = w.serial()
    assert w.ok(w.delete(f"/api/routes/{rid}")) == {}
    assert w.serial() == serial + 1
    ev = w.events()[0]
    assert (ev["activity"], ev["activity_code"], ev["target_id"]) == ("Route deleted", "route.delete", rid)
    assert ev["meta"] == {
        "name": "office",
        "network_range": "10.10.0.0/24",
        "domains": "",
        "peer_id": "",
        "peer_groups": f"[{scene.ha}]",
    }


def test_initiator_is_the_calling_user(scene: Scene) -> None:
    w = scene.w
    uid, token = w.user(Role.NETWORK_ADMIN, service=True)
    rid = w.ok(w.post("/api/routes", scene.body(), token=token))["id"]
    ev = w.events()[0]
    assert (ev["initiator_id"], ev["target_id"]) == (uid, rid)
    assert ev["initiator_name"].startswith("network_admin-")


def test_events_are_newest_first(scene: Scene) -> None:
    w = scene.w
    rid = w.ok(w.post("/api/routes", scene.body()))["id"]
    w.ok(w.put(f"/api/routes/{rid}", scene.body(metric=5)))
    w.ok(w.delete(f"/api/routes/{rid}"))
    events = w.events()
    assert [e["activity_code"] for e in events[:3]] == ["route.delete", "route.update", "route.add"]
    ids = [int(e["id"]) for e in events]
    assert ids == sorted(ids, reverse=True)
    stamps = [e["timestamp"] for e in events]
    assert stamps == sorted(stamps, reverse=True)
    assert events[-1]["activity_code"] == "account.create"
    assert w.ok(w.get("/api/events")) == events  # the alias


def test_every_route_mutation_bumps_by_exactly_one(scene: Scene) -> None:
    w = scene.w
    serials = [w.serial()]
    ids = []
    for i in range(3):
        ids.append(
            w.ok(w.post("/api/routes", scene.body(network=f"10.{i}.0.0/16", network_id=f"n{i}")))["id"]
        )
        serials.append(w.serial())
    for i, rid in enumerate(ids):
        w.ok(w.put(f"/api/routes/{rid}", scene.body(network=f"10.9{i}.0.0/16", metric=9)))
        serials.append(w.serial())
        w.ok(w.delete(f"/api/routes/{rid}"))
        serials.append(w.serial())
    assert serials == list(range(serials[0], serials[0] + 10))
    assert w.ok(w.get("/api/accounts"))[0]["network_serial"] == serials[-1]


# -- other mutations: one serial step each ------------------------------------------------------------
def test_every_other_mutation_bumps_by_exactly_one(scene: Scene) -> None:
    w = scene.w
    steps: list[tuple[str, Any]] = []

    def step(name: str, resp: Any) -> Any:
        before = steps[-1][1] if steps else start
        body = w.ok(resp)
        steps.append((name, w.serial()))
        assert steps[-1][1] == before + 1, (name, before, steps[-1][1])
        return body

    start = w.serial()
    gid = step("group create", w.post("/api/groups", {"name": "g", "peers": [scene.p1]}))["id"]
    step("group update", w.put(f"/api/groups/{gid}", {"name": "g2", "peers": [scene.p1, scene.p2]}))
    step("group delete", w.delete(f"/api/groups/{gid}"))
    key = step(
        "key create", w.post("/api/setup-keys", {"name": "k2", "type": "one-off", "expires_in": 86400})
    )
    step("key update", w.put(f"/api/setup-keys/{key['id']}", {"revoked": True, "auto_groups": [scene.dist]}))
    step("key delete", w.delete(f"/api/setup-keys/{key['id']}"))
    peer_body = {"name": "renamed", "ssh_enabled": True, "login_expiration_enabled": True}
    step(
        "peer update", w.put(f"/api/peers/{scene.p1}", {**peer_body, "inactivity_expiration_enabled": False})
    )
    uid = step("user create", w.post("/api/users", {"name": "bot", "role": "user", "is_service_user": True}))[
        "id"
    ]
    step("user update", w.put(f"/api/users/{uid}", {"role": "admin", "is_blocked": True}))
    tok = step("token create", w.post(f"/api/users/{uid}/tokens", {"name": "t", "expires_in": 1}))
    step("token delete", w.delete(f"/api/users/{uid}/tokens/{tok['personal_access_token']['id']}"))
    step("user delete", w.delete(f"/api/users/{uid}"))
    step(
        "settings",
        w.put(f"/api/accounts/{w.account_id}", {"settings": {"regular_users_view_blocked": False}}),
    )
    step("peer delete", w.delete(f"/api/peers/{scene.p2}"))

    # A registration touches the peer, All and the key's auto groups in one transaction: one step.
    before = w.serial()
    w.peer("newcomer")  # makes a setup key (+1) and registers (+1)
    assert w.serial() == before + 2


# -- failures change nothing ----------------------------------------------------------------------
def failing_requests(
    s: Scene, route_id: str, user_token: str, auditor_token: str
) -> list[tuple[str, Any, int]]:
    """(label, thunk, expected status) for requests that must fail without leaving a trace."""
    w = s.w
    all_id = w.ok(w.get("/api/groups?name=All"))[0]["id"]
    rp = f"/api/routes/{route_id}"
    return [
        ("post shape", lambda: w.post("/api/routes", s.body(peer_groups=[s.ha])), 422),
        ("post prefix", lambda: w.post("/api/routes", s.body(network="1.2.3.4/40")), 422),
        ("post domain", lambda: w.post("/api/routes", s.body(network=None, domains=["a..b"])), 422),
        ("post metric", lambda: w.post("/api/routes", s.body(metric=0, network="10.1.0.0/16")), 422),
        ("post group", lambda: w.post("/api/routes", s.body(groups=["nope"], network="10.1.0.0/16")), 422),
        ("post peer", lambda: w.post("/api/routes", s.body(peer="ghost", network="10.1.0.0/16")), 422),
        ("post dup peer", lambda: w.post("/api/routes", s.body(network_id="dup")), 409),
        ("post dup group", lambda: w.post("/api/routes", s.body(peer=None, peer_groups=[s.ha])), 409),
        ("post as user", lambda: w.post("/api/routes", s.body(network="10.1.0.0/16"), token=user_token), 403),
        ("post json", lambda: w.client.post("/api/routes", content=b"{", headers=w.headers()), 400),
        ("put shape", lambda: w.put(rp, s.body(network=None)), 422),
        ("put group", lambda: w.put(rp, s.body(access_control_groups=[""])), 422),
        ("put unknown", lambda: w.put("/api/routes/nope", s.body()), 404),
        ("put as auditor", lambda: w.put(rp, s.body(metric=1), token=auditor_token), 403),
        ("put as user", lambda: w.put(rp, s.body(metric=1), token=user_token), 403),
        ("put dup", lambda: w.put(rp, s.body(peer=s.p2)), 409),  # p2 serves it via "other"
        ("delete unknown", lambda: w.delete("/api/routes/nope"), 404),
        ("delete as auditor", lambda: w.delete(rp, token=auditor_token), 403),
        ("group delete linked", lambda: w.delete(f"/api/groups/{s.dist}"), 400),
        ("group delete All", lambda: w.delete(f"/api/groups/{all_id}"), 400),
        ("group update All", lambda: w.put(f"/api/groups/{all_id}", {"name": "All"}), 422),
        ("group dup name", lambda: w.post("/api/groups", {"name": "ha"}), 409),
        ("group no name", lambda: w.post("/api/groups", {"name": ""}), 422),
        ("group bad peer", lambda: w.put(f"/api/groups/{s.ha}", {"name": "ha", "peers": ["ghost"]}), 422),
        ("peer delete routing", lambda: w.delete(f"/api/peers/{s.p1}"), 412),
        ("peer delete unknown", lambda: w.delete("/api/peers/ghost"), 404),
        ("key bad group", lambda: w.post("/api/setup-keys", {"name": "k", "type": "reusable",
                                                            "auto_groups": ["x"]}), 422),
        ("key bad type", lambda: w.post("/api/setup-keys", {"name": "k", "type": "many"}), 422),
        ("user owner delete", lambda: w.delete(f"/api/users/{w.owner_id}"), 403),
        ("user person create", lambda: w.post("/api/users", {"name": "p", "role": "user",
                                                             "email": "a@b.c"}), 412),
        ("settings invalid", lambda: w.put(f"/api/accounts/{w.account_id}", {"settings": {
            "peer_login_expiration_enabled": True, "peer_login_expiration": 1}}), 422),
        ("token bad expiry", lambda: w.post(f"/api/users/{w.owner_id}/tokens",
                                            {"name": "t", "expires_in": 0}), 422),
    ]  # fmt: skip


def test_failed_mutations_leave_no_trace(scene: Scene) -> None:
    w = scene.w
    route = w.ok(w.post("/api/routes", scene.body()))
    other = w.ok(w.post("/api/routes", scene.body(peer=None, peer_groups=[scene.dist], network_id="other")))
    assert other["peer_groups"] == [scene.dist]
    _, user_token = w.user(Role.USER, service=False)
    _, auditor_token = w.user(Role.AUDITOR, service=False)
    before = snapshot(w)
    problems = []
    for label, thunk, status in failing_requests(scene, route["id"], user_token, auditor_token):
        resp = thunk()
        if resp.status_code != status or resp.json().get("code") != status:
            problems.append(f"{label}: want {status}, got {resp.status_code} {resp.text}")
        after = snapshot(w)
        if after != before:
            changed = [k for k in before if before[k] != after[k]]
            problems.append(f"{label}: changed {changed}")
            before = after
    assert not problems, "\n".join(problems)


# -- reads change nothing -----------------------------------------------------------------------
def test_reads_never_bump_the_serial_or_log(scene: Scene) -> None:
    w = scene.w
    rid = w.ok(w.post("/api/routes", scene.body()))["id"]
    _, svc_token = w.user(Role.USER, service=True)
    serial, events = w.serial(), w.events()
    for path in (
        "/api/routes",
        f"/api/routes/{rid}",
        "/api/groups",
        f"/api/groups/{scene.ha}",
        "/api/groups?name=ha",
        "/api/peers",
        f"/api/peers/{scene.p1}",
        "/api/setup-keys",
        f"/api/setup-keys/{scene.key_id}",
        "/api/users",
        "/api/users/current",
        f"/api/users/{w.owner_id}/tokens",
        "/api/accounts",
        "/api/events/audit",
        "/api/events",
    ):
        assert w.get(path).status_code == 200, path
        assert w.get(path, token=svc_token).status_code in (200, 403), path
    for missing in ("/api/routes/nope", "/api/groups/nope", "/api/peers/nope", "/api/setup-keys/nope"):
        assert w.get(missing).status_code == 404, missing
    assert w.serial() == serial
    assert w.events() == events
