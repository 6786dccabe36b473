"""The resources around routes, through HTTP: groups, peers, setup keys, users and accounts (§4.5 and
our documented decisions). Every case runs on SQLite and on PostgreSQL."""

from __future__ import annotations

import ipaddress
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import update

from meshroute.core.errors import PermissionDenied
from meshroute.core.model import Role
from meshroute.server.services.peers import PeerRegistration
from meshroute.server.store import tables
from tests.integration.conftest import World, wg_key

RFC3339_UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$")
SETUP_KEY = re.compile(r"^[0-9A-F]{8}-[0-9A-F]{4}-[0-9A-F]{4}-[0-9A-F]{4}-[0-9A-F]{12}$")


def expect_error(resp: Any, status: int, message: str) -> None:
    assert resp.status_code == status, resp.text
    assert resp.json() == {"message": message, "code": status}


def fast_group(w: World, name: str, peers: list[str] | None = None) -> str:
    return w.services.groups.create(w.account_id, w.owner_id, name, peers or []).id


def fast_key(w: World, **kw: Any) -> tuple[str, str]:
    """(key id, plain key) made through the service."""
    args: dict[str, Any] = {
        "name": "k",
        "key_type": "reusable",
        "expires_in": 0,
        "auto_groups": [],
        "usage_limit": 0,
    }
    args.update(kw)
    key, plain = w.services.setup_keys.create(w.account_id, w.owner_id, **args)
    return key.id, plain


def register(w: World, plain: str, hostname: str = "host", ipv6: bool = False) -> str:
    peer, _ = w.services.peers.register(
        PeerRegistration(setup_key=plain, wg_public_key=wg_key(), hostname=hostname, ipv6_capable=ipv6)
    )
    return peer.id


def route_body(peer: str | None, groups: list[str], **over: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "network_id": "OfficeNet",
        "network": "10.10.0.0/24",
        "groups": groups,
        "metric": 10,
    }
    if peer is not None:
        body["peer"] = peer
    body.update(over)
    return body


def last_event(w: World) -> dict[str, Any]:
    return dict(w.events()[0])


# -- groups ---------------------------------------------------------------------------------------
def test_group_create_renders_the_reference_shape(world: World) -> None:
    _, plain = fast_key(world)
    p1 = register(world, plain, "alpha")
    created = world.ok(world.post("/api/groups", {"name": "Dist", "peers": [p1]}))
    assert created == {
        "id": created["id"],
        "name": "Dist",
        "peers_count": 1,
        "resources_count": 0,
        "issued": "api",
        "peers": [{"id": p1, "name": "alpha"}],
        "resources": [],
    }
    assert world.ok(world.get(f"/api/groups/{created['id']}")) == created
    ev = last_event(world)
    assert ev["activity_code"] == "peer.group.add"
    assert world.events()[1]["activity_code"] == "group.add"
    assert world.events()[1]["target_id"] == created["id"]


def test_group_name_is_required(world: World) -> None:
    msg = "group name shouldn't be empty"
    expect_error(world.post("/api/groups", {"name": ""}), 422, msg)
    expect_error(world.post("/api/groups", {}), 422, msg)
    expect_error(world.post("/api/groups", {"name": None, "peers": []}), 422, msg)
    gid = fast_group(world, "g")
    expect_error(world.put(f"/api/groups/{gid}", {"name": ""}), 422, msg)
    assert world.ok(world.get(f"/api/groups/{gid}"))["name"] == "g"


def test_group_name_must_be_unique(world: World) -> None:
    fast_group(world, "Dist")
    other = fast_group(world, "Other")
    expect_error(world.post("/api/groups", {"name": "Dist"}), 409, "group with name dist already exists")
    expect_error(
        world.put(f"/api/groups/{other}", {"name": "Dist"}), 409, "group with name dist already exists"
    )
    # Keeping one's own name is fine.
    assert world.ok(world.put(f"/api/groups/{other}", {"name": "Other"}))["name"] == "Other"


def test_group_with_unknown_peer_is_422(world: World) -> None:
    expect_error(
        world.post("/api/groups", {"name": "g", "peers": ["Ghost"]}), 422, "peer with id ghost not found"
    )
    assert [g["name"] for g in world.ok(world.get("/api/groups"))] == ["All"]


def test_group_name_filter(world: World) -> None:
    gid = fast_group(world, "Dist")
    fast_group(world, "Other")
    listed = world.ok(world.get("/api/groups", params={"name": "Dist"}))
    assert [g["id"] for g in listed] == [gid]
    expect_error(world.get("/api/groups", params={"name": "NoSuch"}), 404, "group: nosuch not found")
    expect_error(world.get("/api/groups", params={"name": "dist"}), 404, "group: dist not found")
    assert [g["name"] for g in world.ok(world.get("/api/groups"))] == ["All", "Dist", "Other"]


def test_empty_group_name_filter_means_no_filter(world: World) -> None:
    """The reference reads `?name=` with Query().Get and filters only when it is non-empty."""
    fast_group(world, "Dist")
    assert [g["name"] for g in world.ok(world.get("/api/groups?name="))] == ["All", "Dist"]


def test_unknown_group_is_404(world: World) -> None:
    expect_error(world.get("/api/groups/Nope"), 404, "group: nope not found")
    expect_error(world.put("/api/groups/Nope", {"name": "x"}), 404, "group: nope not found")
    expect_error(world.delete("/api/groups/Nope"), 404, "group: nope not found")


def test_group_update_replaces_name_and_members(world: World) -> None:
    _, plain = fast_key(world)
    p1, p2 = register(world, plain, "alpha"), register(world, plain, "beta")
    gid = fast_group(world, "g", [p1])
    got = world.ok(world.put(f"/api/groups/{gid}", {"name": "renamed", "peers": [p2]}))
    assert (got["name"], got["peers"], got["peers_count"]) == ("renamed", [{"id": p2, "name": "beta"}], 1)
    got = world.ok(world.put(f"/api/groups/{gid}", {"name": "renamed"}))
    assert got["peers"] == [] and got["peers_count"] == 0
    codes = [e["activity_code"] for e in world.events()[:4]]
    assert codes == ["peer.group.delete", "group.update", "peer.group.delete", "peer.group.add"]


def test_group_all_cannot_be_updated_or_deleted(world: World) -> None:
    all_group = world.ok(world.get("/api/groups", params={"name": "All"}))[0]
    expect_error(
        world.put(f"/api/groups/{all_group['id']}", {"name": "All", "peers": []}),
        422,
        "updating group all is not allowed",
    )
    expect_error(
        world.put(f"/api/groups/{all_group['id']}", {"name": "Renamed"}),
        422,
        "updating group all is not allowed",
    )
    expect_error(world.delete(f"/api/groups/{all_group['id']}"), 400, "deleting group ALL is not allowed")
    assert world.ok(world.get(f"/api/groups/{all_group['id']}")) == all_group


@pytest.mark.parametrize("field", ["groups", "peer_groups", "access_control_groups"])
def test_group_linked_to_a_route_cannot_be_deleted(world: World, field: str) -> None:
    _, plain = fast_key(world)
    p1 = register(world, plain, "router")
    dist = fast_group(world, "dist", [p1])
    linked = fast_group(world, "linked", [p1])
    body = route_body(p1, [dist])
    if field == "peer_groups":
        body = route_body(None, [dist], peer_groups=[linked])
    elif field == "groups":
        body["groups"] = [dist, linked]
    else:
        body["access_control_groups"] = [linked]
    rid = world.ok(world.post("/api/routes", body))["id"]
    serial = world.serial()
    expect_error(world.delete(f"/api/groups/{linked}"), 400, "group has been linked to route: OfficeNet")
    assert world.ok(world.get(f"/api/groups/{linked}"))["name"] == "linked"
    assert world.serial() == serial
    world.ok(world.delete(f"/api/routes/{rid}"))
    assert world.ok(world.delete(f"/api/groups/{linked}")) == {}
    expect_error(world.get(f"/api/groups/{linked}"), 404, f"group: {linked} not found")
    ev = last_event(world)
    assert (ev["activity_code"], ev["target_id"]) == ("group.delete", linked)


def test_group_linked_to_a_setup_key_or_user_cannot_be_deleted(world: World) -> None:
    gid = fast_group(world, "auto")
    key_id, _ = fast_key(world, name="Office-Key", auto_groups=[gid])
    expect_error(world.delete(f"/api/groups/{gid}"), 400, "group has been linked to setup key: Office-Key")
    world.ok(world.put(f"/api/setup-keys/{key_id}", {"revoked": False, "auto_groups": []}))
    uid = world.ok(
        world.post(
            "/api/users", {"name": "Bot", "role": "user", "is_service_user": True, "auto_groups": [gid]}
        )
    )["id"]
    expect_error(world.delete(f"/api/groups/{gid}"), 400, "group has been linked to user: Bot")
    world.ok(world.put(f"/api/users/{uid}", {"role": "user", "auto_groups": []}))
    assert world.ok(world.delete(f"/api/groups/{gid}")) == {}


def test_group_with_members_but_no_links_can_be_deleted(world: World) -> None:
    _, plain = fast_key(world)
    p1 = register(world, plain)
    gid = fast_group(world, "g", [p1])
    assert world.ok(world.delete(f"/api/groups/{gid}")) == {}
    peer = world.ok(world.get(f"/api/peers/{p1}"))
    assert [g["name"] for g in peer["groups"]] == ["All"]


# -- peers ----------------------------------------------------------------------------------------
def test_registered_peers_get_unique_overlay_addresses_in_the_account_ranges(world: World) -> None:
    settings = world.ok(world.get("/api/accounts"))[0]["settings"]
    v4 = ipaddress.IPv4Network(settings["network_range"])
    v6 = ipaddress.IPv6Network(settings["network_range_v6"])
    assert v4.subnet_of(ipaddress.IPv4Network("100.64.0.0/10"))
    _, plain = fast_key(world)
    ids = [register(world, plain, f"host-{i}", ipv6=True) for i in range(8)]
    peers = world.ok(world.get("/api/peers"))
    assert [p["id"] for p in peers] == ids
    ips = [ipaddress.IPv4Address(p["ip"]) for p in peers]
    ip6s = [ipaddress.IPv6Address(p["ipv6"]) for p in peers]
    assert len(set(ips)) == 8 and len(set(ip6s)) == 8
    for ip, ip6 in zip(ips, ip6s, strict=True):
        assert ip in v4 and ip not in (v4.network_address, v4.broadcast_address)
        assert ip6 in v6


def test_registered_peers_join_all_and_the_key_auto_groups(world: World) -> None:
    g1, g2 = fast_group(world, "g1"), fast_group(world, "g2")
    _, plain = fast_key(world, auto_groups=[g1, g2])
    pid = register(world, plain, "joiner")
    peer = world.ok(world.get(f"/api/peers/{pid}"))
    assert [g["name"] for g in peer["groups"]] == ["All", "g1", "g2"]
    assert {g["id"] for g in peer["groups"]} >= {g1, g2}
    for gid in (g1, g2):
        assert world.ok(world.get(f"/api/groups/{gid}"))["peers"] == [{"id": pid, "name": "joiner"}]
    all_group = world.ok(world.get("/api/groups", params={"name": "All"}))[0]
    assert [p["id"] for p in all_group["peers"]] == [pid]
    ev = last_event(world)
    assert (ev["activity_code"], ev["target_id"]) == ("peer.setupkey.add", pid)


def test_peer_rename_changes_name_and_dns_label(world: World) -> None:
    _, plain = fast_key(world)
    a, b = register(world, plain, "alpha"), register(world, plain, "beta")
    body = {"ssh_enabled": False, "login_expiration_enabled": False, "inactivity_expiration_enabled": False}
    got = world.ok(world.put(f"/api/peers/{a}", {**body, "name": "New Name"}))
    assert (got["name"], got["hostname"], got["dns_label"]) == (
        "New Name",
        "alpha",
        "new-name.meshroute.internal",
    )
    ev = last_event(world)
    assert (ev["activity_code"], ev["target_id"]) == ("peer.rename", a)
    assert ev["meta"] == {"name": "New Name", "old_name": "alpha"}
    got = world.ok(world.put(f"/api/peers/{b}", {**body, "name": "new name"}))
    assert got["dns_label"] == "new-name-1.meshroute.internal"
    expect_error(world.put(f"/api/peers/{b}", {**body, "name": ""}), 422, "peer name shouldn't be empty")
    expect_error(world.put(f"/api/peers/{b}", body), 422, "peer name shouldn't be empty")
    expect_error(world.put("/api/peers/ghost", {**body, "name": "x"}), 404, "peer: ghost not found")


def test_deleting_the_single_routing_peer_of_a_route_is_412(world: World) -> None:
    _, plain = fast_key(world)
    p1 = register(world, plain, "router")
    dist = fast_group(world, "dist", [p1])
    route = world.ok(world.post("/api/routes", route_body(p1, [dist])))
    before = (
        world.serial(),
        world.events(),
        world.ok(world.get("/api/peers")),
        world.ok(world.get("/api/groups")),
    )
    expect_error(
        world.delete(f"/api/peers/{p1}"),
        412,
        f"peer is the routing peer of route officenet ({route['id']}): "
        "delete the route or give it another routing peer first",
    )
    after = (
        world.serial(),
        world.events(),
        world.ok(world.get("/api/peers")),
        world.ok(world.get("/api/groups")),
    )
    assert after == before
    assert world.ok(world.get(f"/api/routes/{route['id']}")) == route


def test_deleting_a_peer_group_member_removes_it_from_groups(world: World) -> None:
    _, plain = fast_key(world)
    p1, p2 = register(world, plain, "r1"), register(world, plain, "r2")
    ha = fast_group(world, "ha", [p1, p2])
    dist = fast_group(world, "dist", [p1])
    route = world.ok(world.post("/api/routes", route_body(None, [dist], peer_groups=[ha])))
    serial = world.serial()
    assert world.ok(world.delete(f"/api/peers/{p1}")) == {}
    assert world.serial() == serial + 1
    expect_error(world.get(f"/api/peers/{p1}"), 404, f"peer: {p1} not found")
    assert world.ok(world.get(f"/api/groups/{ha}"))["peers"] == [{"id": p2, "name": "r2"}]
    assert world.ok(world.get(f"/api/groups/{dist}"))["peers"] == []
    all_group = world.ok(world.get("/api/groups", params={"name": "All"}))[0]
    assert [p["id"] for p in all_group["peers"]] == [p2]
    assert world.ok(world.get(f"/api/routes/{route['id']}")) == route
    ev = last_event(world)
    assert (ev["activity"], ev["activity_code"], ev["target_id"]) == ("Peer deleted", "user.peer.delete", p1)
    assert ev["meta"]["name"] == "r1"


def test_peer_list_fields_and_status(world: World) -> None:
    _, plain = fast_key(world)
    pid = register(world, plain, "alpha")
    peer = world.ok(world.get("/api/peers"))[0]
    for field in (
        "id", "name", "ip", "connection_ip", "connected", "last_seen", "os", "kernel_version",
        "version", "groups", "ssh_enabled", "user_id", "hostname", "ui_version", "dns_label",
        "login_expiration_enabled", "login_expired", "last_login", "inactivity_expiration_enabled",
        "approval_required", "country_code", "city_name", "geoname_id", "serial_number",
        "extra_dns_labels", "ephemeral", "created_at", "local_flags", "accessible_peers_count",
    ):  # fmt: skip
        assert field in peer, field
    assert "ipv6" not in peer  # not IPv6-capable: none in use (see test_api_netbird.py)
    assert peer["connected"] is False
    assert RFC3339_UTC.match(peer["last_seen"]), peer["last_seen"]
    assert RFC3339_UTC.match(peer["created_at"]), peer["created_at"]
    assert peer["accessible_peers_count"] == 0
    serial = world.serial()
    when = datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)
    world.services.peers.set_connected(pid, when)
    peer = world.ok(world.get(f"/api/peers/{pid}"))
    assert peer["connected"] is True
    assert peer["last_seen"] == "2030-01-02T03:04:05Z"
    assert world.serial() == serial  # status is not a user change
    # a stream that connected earlier than the current one may not mark the peer disconnected
    later = datetime(2030, 1, 2, 3, 5, 0, tzinfo=UTC)
    world.services.peers.set_disconnected(pid, datetime(2030, 1, 1, tzinfo=UTC), later)
    assert world.ok(world.get(f"/api/peers/{pid}"))["connected"] is True
    world.services.peers.set_disconnected(pid, when, later)
    peer = world.ok(world.get(f"/api/peers/{pid}"))
    assert peer["connected"] is False and peer["last_seen"] == "2030-01-02T03:05:00Z"
    # a rename (a full write of the peer) never undoes the connection status
    world.services.peers.set_connected(pid, when)
    world.ok(
        world.put(
            f"/api/peers/{pid}",
            {
                "name": "renamed",
                "ssh_enabled": False,
                "login_expiration_enabled": False,
                "inactivity_expiration_enabled": False,
            },
        )
    )
    assert world.ok(world.get(f"/api/peers/{pid}"))["connected"] is True


def test_peer_list_filters(world: World) -> None:
    """The reference filters with `name LIKE %x%` / `ip LIKE %x%` (SqlStore.GetAccountPeers), and only
    when the value is non-empty."""
    _, plain = fast_key(world)
    a, b = register(world, plain, "alpha"), register(world, plain, "beta")
    ips = {p["id"]: p["ip"] for p in world.ok(world.get("/api/peers"))}

    def ids(**params: str) -> list[str]:
        return [p["id"] for p in world.ok(world.get("/api/peers", params=params))]

    assert ids(name="alpha") == [a]
    assert ids(name="gamma") == []
    assert ids(name="alp") == [a]
    assert ids(name="a") == [a, b]
    assert ids(name="") == [a, b]
    assert ids(ip=ips[a]) == [pid for pid in (a, b) if ips[a] in ips[pid]]
    assert ids(ip=ips[a].rsplit(".", 2)[0]) == [a, b]  # the account's /16
    assert ids(ip="") == [a, b]


def test_regular_user_peer_list_is_empty_not_forbidden(world: World) -> None:
    """§4.5: users without peers:read see only their own peers (none when the view is blocked)."""
    _, plain = fast_key(world)
    register(world, plain, "someone-elses")
    _, token = world.user(Role.USER, service=False)
    for view_blocked in (True, False):
        settings = {"regular_users_view_blocked": view_blocked}
        world.ok(world.put(f"/api/accounts/{world.account_id}", {"settings": settings}))
        resp = world.get("/api/peers", token=token)
        assert resp.status_code == 200, (view_blocked, resp.text)
        assert resp.json() == [], view_blocked


def test_blocked_user_peer_list_is_forbidden(world: World) -> None:
    _, blocked = world.user(Role.USER, service=False, blocked=True)
    expect_error(
        world.get("/api/peers", token=blocked), 403, "failed to validate user permissions: user is blocked"
    )


# -- setup keys -----------------------------------------------------------------------------------
def test_setup_key_plain_value_is_shown_only_on_create(world: World) -> None:
    created = world.ok(
        world.post("/api/setup-keys", {"name": "office", "type": "reusable", "expires_in": 86400})
    )
    plain = created["key"]
    assert SETUP_KEY.match(plain), plain
    assert (created["state"], created["valid"], created["revoked"], created["used_times"]) == (
        "valid",
        True,
        False,
        0,
    )
    assert RFC3339_UTC.match(created["expires"])
    masked = plain[:5] + "****"
    got = world.ok(world.get(f"/api/setup-keys/{created['id']}"))
    assert got == {**created, "key": masked}
    assert [k["key"] for k in world.ok(world.get("/api/setup-keys"))] == [masked]
    ev = last_event(world)
    assert (ev["activity_code"], ev["target_id"]) == ("setupkey.add", created["id"])
    assert plain not in str(world.events())
    register(world, plain)  # the plain value works


def test_one_off_key_works_once(world: World) -> None:
    created = world.ok(
        world.post("/api/setup-keys", {"name": "once", "type": "one-off", "expires_in": 86400})
    )
    assert created["usage_limit"] == 1
    register(world, created["key"], "first")
    got = world.ok(world.get(f"/api/setup-keys/{created['id']}"))
    assert (got["state"], got["valid"], got["used_times"]) == ("overused", False, 1)
    assert RFC3339_UTC.match(got["last_used"])
    with pytest.raises(PermissionDenied) as err:
        register(world, created["key"], "second")
    assert err.value.message == "invalid setup key: overused"
    assert [p["name"] for p in world.ok(world.get("/api/peers"))] == ["first"]


def test_reusable_key_with_usage_limit(world: World) -> None:
    key_id, plain = fast_key(world, usage_limit=2)
    register(world, plain, "a")
    register(world, plain, "b")
    assert world.ok(world.get(f"/api/setup-keys/{key_id}"))["state"] == "overused"
    with pytest.raises(PermissionDenied):
        register(world, plain, "c")


def test_revoked_key_fails_and_cannot_be_unrevoked(world: World) -> None:
    key_id, plain = fast_key(world)
    got = world.ok(world.put(f"/api/setup-keys/{key_id}", {"revoked": True}))
    assert (got["state"], got["valid"], got["revoked"]) == ("revoked", False, True)
    ev = last_event(world)
    assert (ev["activity_code"], ev["target_id"]) == ("setupkey.revoke", key_id)
    with pytest.raises(PermissionDenied) as err:
        register(world, plain)
    assert err.value.message == "invalid setup key: revoked"
    expect_error(
        world.put(f"/api/setup-keys/{key_id}", {"revoked": False}), 422, "can't un-revoke a revoked setup key"
    )
    assert world.ok(world.get(f"/api/setup-keys/{key_id}"))["revoked"] is True


def test_expired_key_fails(world: World) -> None:
    key_id, plain = fast_key(world, expires_in=86400)
    with world.services.uow.write_unlocked() as tx:
        tx.conn.execute(
            update(tables.setup_keys)
            .where(tables.setup_keys.c.id == key_id)
            .values(expires_at=datetime.now(UTC) - timedelta(seconds=5))
        )
    got = world.ok(world.get(f"/api/setup-keys/{key_id}"))
    assert (got["state"], got["valid"]) == ("expired", False)
    with pytest.raises(PermissionDenied) as err:
        register(world, plain)
    assert err.value.message == "invalid setup key: expired"


def test_unknown_setup_key_fails(world: World) -> None:
    with pytest.raises(PermissionDenied) as err:
        register(world, "00000000-0000-0000-0000-000000000000")
    assert err.value.message == "invalid setup key"


def test_setup_key_validation(world: World) -> None:
    cases = [
        ({"name": "k", "type": "reusable", "auto_groups": ["Ghost"]}, "group id ghost not found"),
        ({"name": "k", "type": "reusable", "auto_groups": [""]}, "group id should not be empty string"),
        ({"name": "", "type": "reusable"}, "setup key name shouldn't be empty"),
        ({"name": "k", "type": "many"}, "invalid setup key type: 'many' (expected reusable or one-off)"),
        (
            {"name": "k", "type": "reusable", "expires_in": 100},
            "expires_in should be 0 (never) or between 86400 and 31536000 seconds",
        ),
        (
            {"name": "k", "type": "reusable", "usage_limit": -1},
            "usage_limit should be between 0 and 2147483647",
        ),
    ]
    for body, message in cases:
        expect_error(world.post("/api/setup-keys", body), 422, message)
    key_id, _ = fast_key(world)
    expect_error(
        world.put(f"/api/setup-keys/{key_id}", {"revoked": False, "auto_groups": ["x"]}),
        422,
        "group id x not found",
    )
    expect_error(
        world.put(f"/api/setup-keys/{key_id}", {"auto_groups": []}), 422, "'revoked' should be provided"
    )
    expect_error(world.put("/api/setup-keys/nope", {"revoked": True}), 404, "setup key: nope not found")
    assert len(world.ok(world.get("/api/setup-keys"))) == 1


def test_setup_key_auto_group_changes_are_logged(world: World) -> None:
    g1, g2 = fast_group(world, "g1"), fast_group(world, "g2")
    key_id, _ = fast_key(world, auto_groups=[g1])
    got = world.ok(world.put(f"/api/setup-keys/{key_id}", {"revoked": False, "auto_groups": [g2]}))
    assert got["auto_groups"] == [g2]
    codes = [(e["activity_code"], e["meta"]["group"]) for e in world.events()[:2]]
    assert codes == [("setupkey.group.delete", "g1"), ("setupkey.group.add", "g2")]


def test_setup_key_delete(world: World) -> None:
    key_id, plain = fast_key(world, name="gone")
    pid = register(world, plain)
    assert world.ok(world.delete(f"/api/setup-keys/{key_id}")) == {}
    ev = last_event(world)
    assert (ev["activity"], ev["activity_code"], ev["target_id"]) == (
        "Setup key deleted",
        "setupkey.delete",
        key_id,
    )
    assert ev["meta"]["name"] == "gone"
    expect_error(world.get(f"/api/setup-keys/{key_id}"), 404, f"setup key: {key_id} not found")
    expect_error(world.delete(f"/api/setup-keys/{key_id}"), 404, f"setup key: {key_id} not found")
    assert world.ok(world.get(f"/api/peers/{pid}"))["id"] == pid
    with pytest.raises(PermissionDenied):
        register(world, plain)


# -- users ----------------------------------------------------------------------------------------
def test_users_list_and_service_user_filter(world: World) -> None:
    svc = world.ok(world.post("/api/users", {"name": "bot", "role": "admin", "is_service_user": True}))
    person_id, _ = world.user(Role.AUDITOR, service=False)
    everyone = world.ok(world.get("/api/users"))
    assert [u["id"] for u in everyone] == [world.owner_id, svc["id"], person_id]
    services = world.ok(world.get("/api/users", params={"service_user": "true"}))
    assert [u["id"] for u in services] == [svc["id"]]
    people = world.ok(world.get("/api/users", params={"service_user": "false"}))
    assert [u["id"] for u in people] == [world.owner_id, person_id]
    owner = people[0]
    assert (owner["role"], owner["is_current"], owner["status"], owner["is_service_user"]) == (
        "owner",
        True,
        "active",
        False,
    )


def test_create_service_user(world: World) -> None:
    gid = fast_group(world, "auto")
    created = world.ok(
        world.post(
            "/api/users",
            {"name": "ci-bot", "role": "network_admin", "is_service_user": True, "auto_groups": [gid]},
        )
    )
    assert created["name"] == "ci-bot"
    assert created["role"] == "network_admin"
    assert created["is_service_user"] is True
    assert created["status"] == "active"
    assert created["is_blocked"] is False
    assert created["is_current"] is False
    assert created["auto_groups"] == [gid]
    assert created["permissions"]["modules"]["routes"] == {
        "read": True,
        "create": True,
        "update": True,
        "delete": True,
    }
    assert created["permissions"]["modules"]["peers"] == {
        "read": True,
        "create": False,
        "update": False,
        "delete": False,
    }
    ev = last_event(world)
    assert (ev["activity"], ev["activity_code"], ev["target_id"]) == (
        "Service user created",
        "service.user.create",
        created["id"],
    )


def test_user_creation_rules(world: World) -> None:
    expect_error(
        world.post(
            "/api/users", {"name": "p", "email": "p@example.com", "role": "user", "is_service_user": False}
        ),
        412,
        "creating regular users needs an identity provider, which this server does not have; "
        "create a service user instead",
    )
    expect_error(
        world.post("/api/users", {"name": "p", "role": "owner", "is_service_user": True}),
        422,
        "can't create a user with owner role",
    )
    expect_error(
        world.post("/api/users", {"name": "p", "role": "superuser", "is_service_user": True}),
        422,
        "invalid user role: 'superuser'",
    )
    expect_error(
        world.post("/api/users", {"name": "p", "is_service_user": True}), 422, "role should be provided"
    )
    expect_error(
        world.post("/api/users", {"name": " ", "role": "user", "is_service_user": True}),
        422,
        "service user name shouldn't be empty",
    )
    expect_error(
        world.post(
            "/api/users", {"name": "p", "role": "user", "is_service_user": True, "auto_groups": ["G"]}
        ),
        422,
        "group id g not found",
    )
    assert len(world.ok(world.get("/api/users"))) == 1


def test_role_update_block_and_unblock_are_logged(world: World) -> None:
    uid = world.ok(world.post("/api/users", {"name": "bot", "role": "user", "is_service_user": True}))["id"]
    got = world.ok(world.put(f"/api/users/{uid}", {"role": "auditor"}))
    assert got["role"] == "auditor"
    ev = last_event(world)
    assert (ev["activity"], ev["activity_code"], ev["target_id"], ev["meta"]) == (
        "User role updated",
        "user.role.update",
        uid,
        {"role": "auditor", "name": "bot"},
    )
    got = world.ok(world.put(f"/api/users/{uid}", {"role": "auditor", "is_blocked": True}))
    assert (got["is_blocked"], got["status"]) == (True, "blocked")
    ev = last_event(world)
    assert (ev["activity"], ev["activity_code"], ev["target_id"]) == ("User blocked", "user.block", uid)
    got = world.ok(world.put(f"/api/users/{uid}", {"role": "auditor", "is_blocked": False}))
    assert (got["is_blocked"], got["status"]) == (False, "active")
    ev = last_event(world)
    assert (ev["activity"], ev["activity_code"], ev["target_id"]) == ("User unblocked", "user.unblock", uid)


def test_user_update_rules(world: World) -> None:
    admin_id, admin = world.user(Role.ADMIN, service=False)
    expect_error(
        world.put(f"/api/users/{world.owner_id}", {"role": "owner", "is_blocked": True}),
        403,
        "user can't block or unblock themselves",
    )
    expect_error(
        world.put(f"/api/users/{admin_id}", {"role": "admin", "is_blocked": True}, token=admin),
        403,
        "user can't block or unblock themselves",
    )
    expect_error(
        world.put(f"/api/users/{world.owner_id}", {"role": "owner", "is_blocked": True}, token=admin),
        403,
        "the owner can't be blocked",
    )
    expect_error(
        world.put(f"/api/users/{admin_id}", {"role": "owner"}), 403, "the owner role can't be assigned"
    )
    expect_error(world.put(f"/api/users/{admin_id}", {"role": "root"}), 422, "invalid user role: 'root'")
    expect_error(world.put(f"/api/users/{admin_id}", {"is_blocked": True}), 422, "role should be provided")
    expect_error(world.put("/api/users/ghost", {"role": "user"}), 404, "user: ghost not found")
    me = world.ok(world.get("/api/users/current"))
    assert (me["role"], me["is_blocked"]) == ("owner", False)


def test_owner_cannot_be_deleted(world: World) -> None:
    _, admin = world.user(Role.ADMIN, service=False)
    expect_error(
        world.delete(f"/api/users/{world.owner_id}", token=admin),
        403,
        "unable to delete a user with owner role",
    )
    expect_error(world.delete(f"/api/users/{world.owner_id}"), 403, "self deletion is not allowed")
    expect_error(world.delete("/api/users/ghost"), 404, "user: ghost not found")
    assert world.ok(world.get("/api/users/current"))["id"] == world.owner_id


def test_delete_service_user(world: World) -> None:
    uid, token = world.user(Role.ADMIN, service=True)
    assert world.ok(world.delete(f"/api/users/{uid}")) == {}
    ev = last_event(world)
    assert (ev["activity"], ev["activity_code"], ev["target_id"]) == (
        "Service user deleted",
        "service.user.delete",
        uid,
    )
    assert uid not in [u["id"] for u in world.ok(world.get("/api/users"))]
    expect_error(world.get("/api/users/current", token=token), 401, "token invalid")


def test_current_user(world: World) -> None:
    me = world.ok(world.get("/api/users/current"))
    assert me["id"] == world.owner_id
    assert (me["role"], me["is_current"], me["is_service_user"], me["status"]) == (
        "owner",
        True,
        False,
        "active",
    )
    modules = me["permissions"]["modules"]
    assert modules["routes"] == {"read": True, "create": True, "update": True, "delete": True}
    assert me["permissions"]["is_restricted"] is False
    _, auditor = world.user(Role.AUDITOR, service=False)
    them = world.ok(world.get("/api/users/current", token=auditor))
    assert them["role"] == "auditor" and them["is_current"] is True
    assert them["permissions"]["modules"]["routes"] == {
        "read": True,
        "create": False,
        "update": False,
        "delete": False,
    }


# -- accounts -------------------------------------------------------------------------------------
def test_account_list(world: World) -> None:
    accounts = world.ok(world.get("/api/accounts"))
    assert len(accounts) == 1
    acc = accounts[0]
    assert acc["id"] == world.account_id
    assert acc["domain"] == "meshroute.internal"
    assert acc["created_by"] == world.owner_id
    assert acc["network_serial"] == world.serial()
    assert RFC3339_UTC.match(acc["created_at"])
    s = acc["settings"]
    assert s["peer_login_expiration_enabled"] is False
    assert s["peer_login_expiration"] == 86400
    assert s["peer_inactivity_expiration_enabled"] is False
    assert s["peer_inactivity_expiration"] == 600
    assert s["regular_users_view_blocked"] is True
    assert s["dns_domain"] == "meshroute.internal"
    v4 = ipaddress.IPv4Network(s["network_range"])
    assert v4.prefixlen == 16 and v4.subnet_of(ipaddress.IPv4Network("100.64.0.0/10"))
    v6 = ipaddress.IPv6Network(s["network_range_v6"])
    assert v6.prefixlen == 64 and v6.subnet_of(ipaddress.IPv6Network("fd00::/8"))


def test_account_settings_validation(world: World) -> None:
    path = f"/api/accounts/{world.account_id}"
    login = "peer login expiration can't be smaller than one hour or bigger than 180 days"
    inactivity = "peer inactivity expiration can't be smaller than 10 minutes or bigger than 180 days"
    cases = [
        ({"peer_login_expiration_enabled": True, "peer_login_expiration": 3599}, login),
        ({"peer_login_expiration_enabled": True, "peer_login_expiration": 180 * 86400 + 1}, login),
        ({"peer_inactivity_expiration_enabled": True, "peer_inactivity_expiration": 599}, inactivity),
        (
            {"peer_inactivity_expiration_enabled": True, "peer_inactivity_expiration": 180 * 86400 + 1},
            inactivity,
        ),
    ]
    _, auditor = world.user(Role.AUDITOR, service=False)
    _, netadmin = world.user(Role.NETWORK_ADMIN, service=False)
    before = world.ok(world.get("/api/accounts"))
    for settings, message in cases:
        expect_error(world.put(path, {"settings": settings}), 422, message)
    expect_error(world.put(path, {}), 422, "settings should be provided")
    expect_error(world.put("/api/accounts/other", {"settings": {}}), 404, "account: other not found")
    expect_error(world.put(path, {"settings": {}}, token=auditor), 403, "permission denied")
    expect_error(world.put(path, {"settings": {}}, token=netadmin), 403, "permission denied")
    assert world.ok(world.get("/api/accounts")) == before


def test_account_settings_update(world: World) -> None:
    path = f"/api/accounts/{world.account_id}"
    serial = world.serial()
    got = world.ok(
        world.put(path, {"settings": {"peer_login_expiration_enabled": True, "peer_login_expiration": 7200}})
    )
    s = got["settings"]
    assert (s["peer_login_expiration_enabled"], s["peer_login_expiration"]) == (True, 7200)
    assert s["regular_users_view_blocked"] is True  # absent means unchanged
    assert got["network_serial"] == serial + 1
    assert world.ok(world.get("/api/accounts"))[0] == got
    ev = last_event(world)
    assert (ev["activity_code"], ev["target_id"]) == ("account.settings.update", world.account_id)
    got = world.ok(world.put(path, {"settings": {"peer_login_expiration_enabled": False}}))
    assert (got["settings"]["peer_login_expiration_enabled"], got["settings"]["peer_login_expiration"]) == (
        False,
        7200,
    )
