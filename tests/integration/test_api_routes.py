"""`/api/routes` over the real app and store: the reference's handler table (§5.6), its integration
cases (§5.7), the request/response shape (§4.4) and duplicate prevention (§2.6, with our fix of the
single-peer QUIRK). Every case runs on SQLite and on PostgreSQL."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest

from meshroute.core.model import Role, Route
from meshroute.server.services.peers import PeerRegistration
from tests.integration.conftest import World, wg_key

DROP = object()  # marks a key to leave out of a request body
PLACEHOLDER = "192.0.2.0/32"


@dataclass
class Net:
    """Three peers and four groups: the world most route tests need."""

    w: World
    p1: str  # "Router-A"
    p2: str  # "router-b"
    p3: str  # "client-c"
    dist: str  # "Dist" = [p3], distribution group
    ha: str  # "HA-Group" = [p1, p2]
    other: str  # "Other" = [p2]
    acg: str  # "ACG" = []

    def body(self, **over: Any) -> dict[str, Any]:
        b: dict[str, Any] = {
            "network_id": "office",
            "description": "Office LAN",
            "network": "10.10.0.0/24",
            "peer": self.p1,
            "groups": [self.dist],
            "metric": 100,
            "masquerade": True,
            "enabled": True,
        }
        b.update(over)
        return {k: v for k, v in b.items() if v is not DROP}

    def create(self, **over: Any) -> dict[str, Any]:
        return dict(self.w.ok(self.w.post("/api/routes", self.body(**over))))

    def stored(self, route_id: str) -> Route | None:
        with self.w.services.uow.read(self.w.account_id) as tx:
            return tx.routes.get(route_id)


def fast_group(w: World, name: str, peers: list[str] | None = None) -> str:
    """A group made through the service (no HTTP round trip: fixtures stay cheap)."""
    return w.services.groups.create(w.account_id, w.owner_id, name, peers or []).id


def fast_key(w: World) -> str:
    _, plain = w.services.setup_keys.create(
        w.account_id, w.owner_id, name="k", key_type="reusable", expires_in=0, auto_groups=[], usage_limit=0
    )
    return plain


@pytest.fixture
def net(world: World) -> Net:
    key = fast_key(world)
    p1 = world.peer("Router-A", key)
    p2 = world.peer("router-b", key)
    p3 = world.peer("client-c", key)
    return Net(
        w=world,
        p1=p1,
        p2=p2,
        p3=p3,
        dist=fast_group(world, "Dist", [p3]),
        ha=fast_group(world, "HA-Group", [p1, p2]),
        other=fast_group(world, "Other", [p2]),
        acg=fast_group(world, "ACG"),
    )


def expect_error(resp: Any, status: int, message: str) -> None:
    assert resp.status_code == status, resp.text
    assert resp.json() == {"message": message, "code": status}
    assert resp.headers["content-type"] == "application/json; charset=UTF-8"


def case(*values: Any, id: str) -> tuple[Any, ...]:
    """One row of a table of requests checked in a single test (cheaper than a fixture per row)."""
    return (id, *values)


def check(case_id: str, resp: Any, status: int, message: str) -> list[str]:
    """Problems with one response, so a table test reports every failing row at once."""
    want = {"message": message, "code": status}
    if resp.status_code != status or resp.json() != want:
        return [f"{case_id}: want {status} {message!r}, got {resp.status_code} {resp.text}"]
    return []


def darwin_peer(w: World, hostname: str) -> str:
    peer, _ = w.services.peers.register(
        PeerRegistration(setup_key=w.setup_key(), wg_public_key=wg_key(), hostname=hostname, os="darwin")
    )
    return peer.id


# -- §5.6 handler table: GET / DELETE ------------------------------------------------------------
@pytest.fixture
def three(net: Net) -> dict[str, dict[str, Any]]:
    """The handler test's three existing routes, made for real."""
    base = {"network_id": "awesomeNet", "network": "192.168.0.0/24", "metric": 9999, "description": ""}
    base["masquerade"] = False
    r1 = net.create(**base)
    r2 = net.create(**base, peer=DROP, peer_groups=[net.other])
    r3 = net.create(**{**base, "network": DROP}, domains=["example.com"])
    return {"r1": r1, "r2": r2, "r3": r3}


def test_get_network_route_renders_every_field(net: Net, three: dict[str, dict[str, Any]]) -> None:
    r1 = three["r1"]
    got = net.w.ok(net.w.get(f"/api/routes/{r1['id']}"))
    assert got == {
        "id": r1["id"],
        "network_type": "IPv4",
        "description": "",
        "network_id": "awesomeNet",
        "enabled": True,
        "peer": net.p1,
        "network": "192.168.0.0/24",
        "domains": None,
        "metric": 9999,
        "masquerade": False,
        "groups": [net.dist],
        "keep_route": False,
        "skip_auto_apply": False,
    }
    assert len(r1["id"]) == 20 and r1["id"].isalnum() and r1["id"] == r1["id"].lower()


def test_get_unknown_route_is_404(net: Net) -> None:
    expect_error(net.w.get("/api/routes/notFoundRouteID"), 404, "route: notfoundrouteid not found")


def test_get_peer_group_route_has_peer_groups_and_empty_peer(net: Net, three: dict[str, Any]) -> None:
    got = net.w.ok(net.w.get(f"/api/routes/{three['r2']['id']}"))
    assert got["peer_groups"] == [net.other]
    assert got["peer"] == ""
    assert "access_control_groups" not in got


def test_get_domain_route(net: Net, three: dict[str, Any]) -> None:
    got = net.w.ok(net.w.get(f"/api/routes/{three['r3']['id']}"))
    assert got["domains"] == ["example.com"]
    assert got["network_type"] == "Domain"
    assert got["network"] == PLACEHOLDER


def test_list_returns_routes_in_creation_order(net: Net, three: dict[str, Any]) -> None:
    listed = net.w.ok(net.w.get("/api/routes"))
    assert listed == [three["r1"], three["r2"], three["r3"]]


def test_list_is_an_empty_array_without_routes(world: World) -> None:
    resp = world.get("/api/routes")
    assert resp.status_code == 200
    assert resp.json() == []


def test_delete_route_returns_empty_object_and_removes_it(net: Net, three: dict[str, Any]) -> None:
    rid = three["r1"]["id"]
    resp = net.w.delete(f"/api/routes/{rid}")
    assert resp.status_code == 200
    assert resp.json() == {}
    expect_error(net.w.get(f"/api/routes/{rid}"), 404, f"route: {rid} not found")
    assert net.stored(rid) is None
    assert [r["id"] for r in net.w.ok(net.w.get("/api/routes"))] == [three["r2"]["id"], three["r3"]["id"]]


def test_delete_unknown_route_is_404_with_wrapped_message(net: Net) -> None:
    expect_error(
        net.w.delete("/api/routes/notFoundRouteID"),
        404,
        "failed to delete route notfoundrouteid: route: notfoundrouteid not found",
    )


def test_delete_twice_is_404_the_second_time(net: Net) -> None:
    rid = net.create()["id"]
    assert net.w.ok(net.w.delete(f"/api/routes/{rid}")) == {}
    expect_error(
        net.w.delete(f"/api/routes/{rid}"), 404, f"failed to delete route {rid}: route: {rid} not found"
    )


# -- §5.6 handler table: POST ---------------------------------------------------------------------
def test_post_with_capitalised_keys(net: Net) -> None:
    body = {
        "Description": "Post",
        "Network": "192.168.0.0/16",
        "network_id": "awesomeNet",
        "Peer": net.p1,
        "groups": [net.dist],
        "metric": 9999,
        "skip_auto_apply": False,
    }
    created = net.w.ok(net.w.post("/api/routes", body))
    assert created == {
        "id": created["id"],
        "network_type": "IPv4",
        "description": "Post",
        "network_id": "awesomeNet",
        "enabled": False,
        "peer": net.p1,
        "network": "192.168.0.0/16",
        "domains": None,
        "metric": 9999,
        "masquerade": False,
        "groups": [net.dist],
        "keep_route": False,
        "skip_auto_apply": False,
    }
    assert net.w.ok(net.w.get(f"/api/routes/{created['id']}")) == created


def test_keys_match_in_any_case(net: Net) -> None:
    body = {
        "NETWORK_ID": "caps",
        "NeTwOrK": "10.20.0.0/16",
        "PEER": net.p1,
        "Groups": [net.dist],
        "Metric": 7,
        "Enabled": True,
        "Masquerade": True,
        "Keep_Route": True,
        "Access_Control_Groups": [net.acg],
        "Skip_Auto_Apply": True,
        "DESCRIPTION": "shouting",
    }
    created = net.w.ok(net.w.post("/api/routes", body))
    assert created["network_id"] == "caps"
    assert created["network"] == "10.20.0.0/16"
    assert created["metric"] == 7
    assert created["enabled"] is True
    assert created["masquerade"] is True
    assert created["keep_route"] is True
    assert created["skip_auto_apply"] is True
    assert created["access_control_groups"] == [net.acg]
    assert created["description"] == "shouting"


def test_post_domain_route(net: Net) -> None:
    created = net.create(network=DROP, domains=["example.com"], network_id="domainNet", keep_route=True)
    assert created["network_type"] == "Domain"
    assert created["domains"] == ["example.com"]
    assert created["keep_route"] is True
    assert created["network"] == PLACEHOLDER
    stored = net.stored(created["id"])
    assert stored is not None
    assert str(stored.network) == PLACEHOLDER
    assert stored.domains == ["example.com"]


def test_post_with_access_control_groups(net: Net) -> None:
    created = net.create(access_control_groups=[net.acg])
    assert created["access_control_groups"] == [net.acg]


def test_post_darwin_routing_peer_is_accepted(net: Net) -> None:
    """The "non-linux peers are not supported" error lives only in the reference's mock."""
    mac = darwin_peer(net.w, "macbook")
    created = net.create(peer=mac)
    assert created["peer"] == mac


def test_post_unknown_peer_is_422_lower_cased(net: Net) -> None:
    expect_error(
        net.w.post("/api/routes", net.body(peer="nonExistingPeer")),
        422,
        "peer with id nonexistingpeer not found",
    )


def test_post_unknown_peer_group_is_422(net: Net) -> None:
    expect_error(
        net.w.post("/api/routes", net.body(peer=DROP, peer_groups=["nonExistingGroup"])),
        422,
        "group id nonexistinggroup not found",
    )


NET_ID_41 = "12345678901234567890qwertyuiopqwertyuiop1"


POST_INVALID = [
    case({"network_id": NET_ID_41}, "identifier should be between 1 and 40 characters", id="netid41"),
    case({"network_id": ""}, "identifier should be between 1 and 40 characters", id="netid-empty"),
    case({"network_id": DROP}, "identifier should be between 1 and 40 characters", id="netid-absent"),
    case({"network_id": "ü" * 41}, "identifier should be between 1 and 40 characters", id="netid41u"),
    case({"network": "192.168.0.0/34"}, "invalid network 192.168.0.0/34", id="prefix34"),
    case({"network": "not-a-network"}, "invalid network not-a-network", id="garbage"),
    case({"network": "10.0.0.0"}, "invalid network 10.0.0.0", id="no-mask"),
    case({"network": ""}, "invalid network ", id="empty-network"),
    case(
        {"network": DROP, "domains": ["-example.com"]},
        "invalid domains: invalid domain format: -example.com",
        id="bad-domain",
    ),
    case(
        {"network": DROP, "domains": ["example.com", "example..com"]},
        "invalid domains: invalid domain format: example..com",
        id="bad-second-domain",
    ),
    case({"network": DROP, "domains": []}, "invalid domains: domains list is empty", id="no-domains"),
    case(
        {"network": DROP, "domains": [f"d{i}.example.com" for i in range(33)]},
        "invalid domains: domains list exceeds maximum allowed domains: 32",
        id="33-domains",
    ),
    case(
        {"domains": ["example.com"], "peer_groups": ["x"]},
        "only one of 'network' or 'domains' should be provided",
        id="network+domains",
    ),
    case({"network": DROP}, "either 'network' or 'domains' should be provided", id="no-network"),
    case({"peer_groups": ["x"]}, "only one of 'peer' or 'peer_groups' should be provided", id="peer+groups"),
    case({"peer": DROP}, "either 'peer' or 'peer_groups' should be provided", id="no-peer"),
    case({"metric": 0}, "metric should be between 1 and 9999", id="metric0"),
    case({"metric": DROP}, "metric should be between 1 and 9999", id="metric-absent"),
    case({"metric": 10000}, "metric should be between 1 and 9999", id="metric10000"),
    case({"metric": -1}, "metric should be between 1 and 9999", id="metric-negative"),
    case({"groups": DROP}, "the list of group ids should not be empty", id="groups-absent"),
    case({"groups": []}, "the list of group ids should not be empty", id="groups-empty"),
    case({"groups": [""]}, "group id should not be empty string", id="group-empty-id"),
    case({"groups": ["nope"]}, "group id nope not found", id="group-unknown"),
    case({"access_control_groups": ["Missing"]}, "group id missing not found", id="acg-unknown"),
    case({"access_control_groups": [""]}, "group id should not be empty string", id="acg-empty-id"),
]


def test_post_invalid_is_422(net: Net) -> None:
    problems = []
    for case_id, over, message in POST_INVALID:
        problems += check(case_id, net.w.post("/api/routes", net.body(**over)), 422, message)
    assert not problems, "\n".join(problems)
    assert net.w.ok(net.w.get("/api/routes")) == []


def test_netid_counts_code_points_not_bytes(net: Net) -> None:
    created = net.create(network_id="ü" * 40)
    assert created["network_id"] == "ü" * 40


VALID_DOMAINS = [
    (["*.example.com"], ["*.example.com"], ["*.example.com"]),
    (["münchen.de"], ["münchen.de"], ["xn--mnchen-3ya.de"]),
    (["EXAMPLE.COM", "Sub.Ex-Ample.com"], ["example.com", "sub.ex-ample.com"], None),
    (["中国.中国.中国"], ["中国.中国.中国"], ["xn--fiqs8s.xn--fiqs8s.xn--fiqs8s"]),
    (["_jabber._tcp.gmail.com"], ["_jabber._tcp.gmail.com"], None),
    (["xn--mnchen-3ya.com"], ["münchen.com"], ["xn--mnchen-3ya.com"]),
]


def test_post_valid_domains(net: Net) -> None:
    for n, (domains, shown, stored) in enumerate(VALID_DOMAINS):
        created = net.create(network=DROP, domains=domains, network_id=f"d{n}")
        assert created["domains"] == shown, domains
        assert net.w.ok(net.w.get(f"/api/routes/{created['id']}"))["domains"] == shown, domains
        route = net.stored(created["id"])
        assert route is not None
        assert route.domains == (stored if stored is not None else shown), domains


LABEL63 = "a" * 63
NAME253 = ".".join(["a" * 63, "b" * 63, "c" * 63, "d" * 61])  # 253 characters

# §1.5 accept list (the reference's validate_test.go), each sent as its own route.
DOMAINS_ACCEPTED = [
    "sub.ex-ample.com",
    "example.x",
    "a.b",
    "x",
    "*.x",
    "123.example.com",
    "example.123",
    "example.1",
    "123.456",
    "123",
    "test--example.com",
    f"{LABEL63}.com",
    NAME253,
]

# §1.5 reject list: (input, the domain named in the message).
DOMAINS_REJECTED = [
    "example.com-",
    ".com",
    ".",
    "example..com",
    "example?,.com",
    "space .example.com",
    "example.com ",
    ".*.example.com",
    "a.*.example.com",
    f"{'a' * 64}.com",
    "example.com..",
    "*",
    "*.",
    "exa mple.com",
    "http://example.com",
]


def test_domain_accept_list(net: Net) -> None:
    problems = []
    for n, domain in enumerate(DOMAINS_ACCEPTED):
        resp = net.w.post("/api/routes", net.body(network=DROP, domains=[domain], network_id=f"d{n}"))
        if resp.status_code != 200 or resp.json()["domains"] != [domain]:
            problems.append(f"{domain!r}: {resp.status_code} {resp.text}")
    assert not problems, "\n".join(problems)


def test_domain_reject_list(net: Net) -> None:
    problems = []
    for domain in DOMAINS_REJECTED:
        resp = net.w.post("/api/routes", net.body(network=DROP, domains=["ok.example", domain]))
        problems += check(repr(domain), resp, 422, f"invalid domains: invalid domain format: {domain}")
    assert not problems, "\n".join(problems)
    assert net.w.ok(net.w.get("/api/routes")) == []


def test_names_no_query_can_carry_and_repeated_names_are_refused(net: Net) -> None:
    long_name = ".".join(["a" * 63] * 5)
    cases = {
        long_name: f"invalid domains: invalid domain format: {long_name}: longer than 253 characters",
        "10.77.0.10": "invalid domains: invalid domain format: 10.77.0.10: an ip address, not a name "
        "(route it as a network: 10.77.0.10/32)",
    }
    problems = []
    for domain, message in cases.items():
        problems += check(
            repr(domain), net.w.post("/api/routes", net.body(network=DROP, domains=[domain])), 422, message
        )
    twice = net.w.post("/api/routes", net.body(network=DROP, domains=["x.test", "X.test."]))
    # (messages are lower-case, as NetBird's are)
    problems += check("twice", twice, 422, "invalid domains: domains list has x.test. more than once")
    assert not problems, "\n".join(problems)
    assert net.w.ok(net.w.get("/api/routes")) == []
    # the fully-qualified form is taken, stored without its dot
    assert net.create(network=DROP, domains=["App.Example."])["domains"] == ["app.example"]


def test_thirty_two_domains_are_accepted(net: Net) -> None:
    domains = [f"d{i}.example.com" for i in range(32)]
    created = net.create(network=DROP, domains=domains)
    assert created["domains"] == domains


def test_network_is_masked_and_typed(net: Net) -> None:
    v4 = net.create(network="10.1.2.3/16")
    assert (v4["network"], v4["network_type"]) == ("10.1.0.0/16", "IPv4")
    v6 = net.create(network="fd00:1234::1/64", network_id="v6")
    assert (v6["network"], v6["network_type"]) == ("fd00:1234::/64", "IPv6")
    exit4 = net.create(network="0.0.0.0/0", network_id="exit")
    assert (exit4["network"], exit4["network_type"]) == ("0.0.0.0/0", "IPv4")
    exit6 = net.create(network="::/0", network_id="exit6")
    assert (exit6["network"], exit6["network_type"]) == ("::/0", "IPv6")


def test_unknown_and_read_only_fields_are_ignored(net: Net) -> None:
    created = net.create(network_type="Domain", is_selected=True, id="my-own-id", whatever={"a": 1})
    assert created["network_type"] == "IPv4"
    assert created["id"] != "my-own-id"
    assert "is_selected" not in created and "whatever" not in created
    expect_error(net.w.get("/api/routes/my-own-id"), 404, "route: my-own-id not found")


def test_null_fields_mean_absent(net: Net) -> None:
    created = net.create(
        domains=None,
        peer_groups=None,
        access_control_groups=None,
        description=None,
        masquerade=None,
        keep_route=None,
        skip_auto_apply=None,
    )
    assert created["description"] == ""
    assert created["masquerade"] is False
    assert created["keep_route"] is False
    assert created["skip_auto_apply"] is False
    assert created["domains"] is None
    assert "peer_groups" not in created and "access_control_groups" not in created
    expect_error(
        net.w.post("/api/routes", net.body(network=None)),
        422,
        "either 'network' or 'domains' should be provided",
    )
    expect_error(
        net.w.post("/api/routes", net.body(peer=None)),
        422,
        "either 'peer' or 'peer_groups' should be provided",
    )
    expect_error(
        net.w.post("/api/routes", net.body(groups=None)), 422, "the list of group ids should not be empty"
    )


def test_empty_peer_or_peer_groups_pass_the_handler(net: Net) -> None:
    """`"peer": ""` / `"peer_groups": []` are present keys: a route without a routing peer."""
    a = net.create(peer="")
    assert a["peer"] == "" and "peer_groups" not in a
    b = net.create(peer=DROP, peer_groups=[], network_id="nogroups", network="10.11.0.0/24")
    assert b["peer"] == "" and "peer_groups" not in b


def test_omitted_optional_lists_and_defaults(net: Net) -> None:
    created = net.create(masquerade=DROP, enabled=DROP, description=DROP)
    assert created["skip_auto_apply"] is False
    assert created["keep_route"] is False
    assert created["enabled"] is False
    assert created["masquerade"] is False
    assert created["description"] == ""
    assert "peer_groups" not in created
    assert "access_control_groups" not in created
    assert created["peer"] == net.p1
    assert created["domains"] is None


def test_malformed_json_is_400(net: Net) -> None:
    resp = net.w.client.post(
        "/api/routes", content=b"{not json", headers={**net.w.headers(), "content-type": "application/json"}
    )
    expect_error(resp, 400, "couldn't parse JSON request")


def test_wrong_json_type_is_400(net: Net) -> None:
    resp = net.w.post("/api/routes", net.body(metric="100"))
    assert resp.status_code == 400
    assert resp.json()["code"] == 400
    assert resp.json()["message"].startswith("couldn't parse JSON request")
    resp = net.w.post("/api/routes", [net.body()])
    assert resp.status_code == 400
    assert resp.json()["message"].startswith("couldn't parse JSON request")


# -- §5.6 handler table: PUT ----------------------------------------------------------------------
@pytest.fixture
def existing(net: Net) -> dict[str, Any]:
    return net.create(network_id="awesomeNet", network="192.168.0.0/24", metric=9999)


def test_put_network_and_peer_with_unknown_key(net: Net, existing: dict[str, Any]) -> None:
    body = {
        "Description": "Post",
        "Network": "192.168.0.0/16",
        "network_id": "awesomeNet",
        "Peer": net.p2,
        "groups": [net.dist],
        "metric": 50,
        "is_selected": True,
    }
    got = net.w.ok(net.w.put(f"/api/routes/{existing['id']}", body))
    assert got["id"] == existing["id"]
    assert got["network"] == "192.168.0.0/16"
    assert got["peer"] == net.p2
    assert got["description"] == "Post"
    assert net.w.ok(net.w.get(f"/api/routes/{existing['id']}")) == got


def test_put_switch_to_domains(net: Net, existing: dict[str, Any]) -> None:
    got = net.w.ok(
        net.w.put(
            f"/api/routes/{existing['id']}",
            net.body(network=DROP, domains=["example.com", "münchen.de"], keep_route=True),
        )
    )
    assert got["network_type"] == "Domain"
    assert got["network"] == PLACEHOLDER
    assert got["domains"] == ["example.com", "münchen.de"]
    assert got["keep_route"] is True
    assert net.w.ok(net.w.get(f"/api/routes/{existing['id']}")) == got


def test_put_switch_domains_back_to_network(net: Net) -> None:
    dom = net.create(network=DROP, domains=["example.com"], keep_route=True)
    got = net.w.ok(net.w.put(f"/api/routes/{dom['id']}", net.body(network="192.168.0.0/24")))
    assert got["network_type"] == "IPv4"
    assert got["network"] == "192.168.0.0/24"
    assert got["domains"] is None
    assert got["keep_route"] is False
    stored = net.stored(dom["id"])
    assert stored is not None and stored.domains == []


def test_put_peer_groups_only(net: Net, existing: dict[str, Any]) -> None:
    got = net.w.ok(net.w.put(f"/api/routes/{existing['id']}", net.body(peer=DROP, peer_groups=[net.ha])))
    assert got["peer"] == ""
    assert got["peer_groups"] == [net.ha]
    assert net.w.ok(net.w.get(f"/api/routes/{existing['id']}")) == got


def test_put_unknown_route_is_404(net: Net) -> None:
    expect_error(
        net.w.put("/api/routes/notFoundRouteID", net.body()), 404, "route: notfoundrouteid not found"
    )


PUT_404_BODIES = [
    case({"network": "192.168.0.0/34"}, id="prefix34"),
    case({"peer": DROP}, id="no-peer"),
    case({"metric": 0}, id="metric0"),
    case({"peer": "nonExistingPeer"}, id="unknown-peer"),
]


def test_put_unknown_route_with_bad_body_is_still_404(net: Net) -> None:
    problems = []
    for case_id, bad in PUT_404_BODIES:
        resp = net.w.put("/api/routes/notFoundRouteID", net.body(**bad))
        problems += check(case_id, resp, 404, "route: notfoundrouteid not found")
    assert not problems, "\n".join(problems)


def test_put_unknown_route_with_malformed_json_is_404(net: Net) -> None:
    resp = net.w.client.put(
        "/api/routes/nope", content=b"{{{", headers={**net.w.headers(), "content-type": "application/json"}
    )
    expect_error(resp, 404, "route: nope not found")


def test_put_darwin_routing_peer_is_accepted(net: Net, existing: dict[str, Any]) -> None:
    mac = darwin_peer(net.w, "macbook")
    got = net.w.ok(net.w.put(f"/api/routes/{existing['id']}", net.body(peer=mac)))
    assert got["peer"] == mac


PUT_INVALID = [
    case({"peer": "nonExistingPeer"}, "peer with id nonexistingpeer not found", id="unknown-peer"),
    case({"network_id": NET_ID_41}, "identifier should be between 1 and 40 characters", id="netid41"),
    case({"network": "192.168.0.0/34"}, "invalid network 192.168.0.0/34", id="prefix34"),
    case(
        {"network": DROP, "domains": ["-example.com"], "peer_groups": ["x"]},
        "only one of 'peer' or 'peer_groups' should be provided",
        id="bad-domain+peer+groups",
    ),
    case(
        {"network": DROP, "domains": ["-example.com"]},
        "invalid domains: invalid domain format: -example.com",
        id="bad-domain",
    ),
    case(
        {"domains": ["example.com"]},
        "only one of 'network' or 'domains' should be provided",
        id="network+domains",
    ),
    case({"network": DROP}, "either 'network' or 'domains' should be provided", id="no-network"),
    case({"peer_groups": ["x"]}, "only one of 'peer' or 'peer_groups' should be provided", id="peer+groups"),
    case({"peer": DROP}, "either 'peer' or 'peer_groups' should be provided", id="no-peer"),
    case({"metric": 10000}, "metric should be between 1 and 9999", id="metric10000"),
    case({"groups": []}, "the list of group ids should not be empty", id="groups-empty"),
    case({"groups": ["nope"]}, "group id nope not found", id="group-unknown"),
]


def test_put_invalid_is_422_and_changes_nothing(net: Net, existing: dict[str, Any]) -> None:
    problems = []
    for case_id, over, message in PUT_INVALID:
        problems += check(case_id, net.w.put(f"/api/routes/{existing['id']}", net.body(**over)), 422, message)
    assert not problems, "\n".join(problems)
    assert net.w.ok(net.w.get(f"/api/routes/{existing['id']}")) == existing


def test_put_is_a_full_replace(net: Net) -> None:
    full = net.create(
        description="everything set",
        masquerade=True,
        enabled=True,
        keep_route=True,
        skip_auto_apply=True,
        access_control_groups=[net.acg],
        metric=42,
    )
    minimal = {
        "network_id": "office",
        "network": "10.10.0.0/24",
        "peer": net.p1,
        "groups": [net.dist],
        "metric": 1,
    }
    got = net.w.ok(net.w.put(f"/api/routes/{full['id']}", minimal))
    assert got == {
        "id": full["id"],
        "network_type": "IPv4",
        "description": "",
        "network_id": "office",
        "enabled": False,
        "peer": net.p1,
        "network": "10.10.0.0/24",
        "domains": None,
        "metric": 1,
        "masquerade": False,
        "groups": [net.dist],
        "keep_route": False,
        "skip_auto_apply": False,
    }
    assert net.w.ok(net.w.get(f"/api/routes/{full['id']}")) == got
    stored = net.stored(full["id"])
    assert stored is not None
    assert stored.access_control_groups == [] and stored.skip_auto_apply is False


def test_put_keeps_public_id_and_account(net: Net, existing: dict[str, Any]) -> None:
    before = net.stored(existing["id"])
    assert before is not None and len(before.public_id) == 20 and before.public_id != before.id
    net.w.ok(net.w.put(f"/api/routes/{existing['id']}", net.body(description="changed")))
    after = net.stored(existing["id"])
    assert after is not None
    assert after.public_id == before.public_id
    assert after.account_id == net.w.account_id
    assert after.description == "changed"


# -- §5.7 integration cases -----------------------------------------------------------------------
def test_integration_create_echoes_fields_and_stores_them(net: Net) -> None:
    created = net.create(
        network="10.10.0.0/24",
        network_id="newNet",
        metric=100,
        masquerade=True,
        enabled=True,
        description="d",
    )
    assert created["id"]
    assert created["network"] == "10.10.0.0/24"
    assert created["peer"] == net.p1
    assert created["groups"] == [net.dist]
    row = net.stored(created["id"])
    assert row is not None
    assert (row.description, row.metric, row.masquerade, row.enabled, row.net_id) == (
        "d",
        100,
        True,
        True,
        "newNet",
    )
    assert row.account_id == net.w.account_id


def test_integration_peer_group_route_in_fresh_account(net: Net) -> None:
    created = net.create(
        network="10.10.0.0/24", peer=DROP, peer_groups=[net.ha], network_id="peerGroupNet", metric=150
    )
    assert created["peer_groups"] == [net.ha]
    assert created["metric"] == 150


def test_integration_update_description_and_metric(net: Net) -> None:
    created = net.create(description="Test Network Route")
    rid = created["id"]
    got = net.w.ok(net.w.put(f"/api/routes/{rid}", net.body(description="Updated description")))
    assert got["id"] == rid
    assert got["description"] == "Updated description"
    row = net.stored(rid)
    assert row is not None and row.description == "Updated description"
    got = net.w.ok(net.w.put(f"/api/routes/{rid}", net.body(metric=500)))
    assert got["metric"] == 500
    row = net.stored(rid)
    assert row is not None and row.metric == 500


def test_put_with_empty_route_id_is_not_routed_to_a_route(net: Net) -> None:
    resp = net.w.put("/api/routes/%20", net.body())
    expect_error(resp, 422, "invalid route id")


# -- handler checks run before the permission check -------------------------------------------------
def test_user_role_gets_422_for_invalid_post_and_403_for_valid(net: Net) -> None:
    _, token = net.w.user(Role.USER, service=False)
    expect_error(
        net.w.post("/api/routes", net.body(peer=DROP), token=token),
        422,
        "either 'peer' or 'peer_groups' should be provided",
    )
    expect_error(
        net.w.post("/api/routes", net.body(network="10.0.0.0/33"), token=token),
        422,
        "invalid network 10.0.0.0/33",
    )
    expect_error(
        net.w.post("/api/routes", net.body(network=DROP, domains=["-x"]), token=token),
        422,
        "invalid domains: invalid domain format: -x",
    )
    # Manager checks (metric, groups, peer) come after the permission check.
    expect_error(net.w.post("/api/routes", net.body(metric=0), token=token), 403, "permission denied")
    expect_error(net.w.post("/api/routes", net.body(peer="ghost"), token=token), 403, "permission denied")
    expect_error(net.w.post("/api/routes", net.body(), token=token), 403, "permission denied")
    assert net.w.ok(net.w.get("/api/routes")) == []


def test_service_user_with_user_role_gets_422_then_403(net: Net) -> None:
    _, token = net.w.user(Role.USER, service=True)
    expect_error(
        net.w.post("/api/routes", net.body(network_id=""), token=token),
        422,
        "identifier should be between 1 and 40 characters",
    )
    expect_error(net.w.post("/api/routes", net.body(), token=token), 403, "permission denied")


def test_put_looks_the_route_up_before_the_body(net: Net, existing: dict[str, Any]) -> None:
    """An auditor may read, so the body is judged (422) before the write permission (403); a plain
    user cannot even read the route, so PUT is 403 whatever the body."""
    _, auditor = net.w.user(Role.AUDITOR, service=False)
    rid = existing["id"]
    expect_error(
        net.w.put(f"/api/routes/{rid}", net.body(peer=DROP), token=auditor),
        422,
        "either 'peer' or 'peer_groups' should be provided",
    )
    expect_error(net.w.put(f"/api/routes/{rid}", net.body(), token=auditor), 403, "permission denied")
    expect_error(net.w.put("/api/routes/unknown", net.body(), token=auditor), 404, "route: unknown not found")
    _, user = net.w.user(Role.USER, service=False)
    expect_error(net.w.put(f"/api/routes/{rid}", net.body(peer=DROP), token=user), 403, "permission denied")
    expect_error(net.w.put("/api/routes/unknown", net.body(), token=user), 403, "permission denied")
    assert net.w.ok(net.w.get(f"/api/routes/{rid}")) == existing


# -- duplicate prevention (§2.6) ------------------------------------------------------------------
def test_two_single_peer_routes_same_prefix_same_peer_conflict(net: Net) -> None:
    """Our fix of the reference QUIRK: a single-peer route blocks its peer too."""
    net.create(network_id="first")
    expect_error(
        net.w.post("/api/routes", net.body(network_id="second")),
        409,
        f"failed to add route with prefix 10.10.0.0/24 - peer {net.p1} already has this route",
    )
    assert len(net.w.ok(net.w.get("/api/routes"))) == 1


def test_unmasked_prefix_is_compared_after_masking(net: Net) -> None:
    net.create(network="10.10.0.1/24")
    expect_error(
        net.w.post("/api/routes", net.body(network="10.10.0.77/24", network_id="other")),
        409,
        f"failed to add route with prefix 10.10.0.0/24 - peer {net.p1} already has this route",
    )


def test_peer_group_route_whose_member_serves_the_prefix_directly_conflicts(net: Net) -> None:
    net.create()  # p1 ("Router-A") serves 10.10.0.0/24 directly
    expect_error(
        net.w.post("/api/routes", net.body(peer=DROP, peer_groups=[net.ha], network_id="ha")),
        409,
        "failed to add route with prefix 10.10.0.0/24 - "
        "peer router-a from the group ha-group already has this route",
    )


def test_single_peer_route_on_a_member_of_an_existing_peer_group_route_conflicts(net: Net) -> None:
    net.create(peer=DROP, peer_groups=[net.ha])
    expect_error(
        net.w.post("/api/routes", net.body(peer=net.p2, network_id="direct")),
        409,
        f"failed to add route with prefix 10.10.0.0/24 - peer {net.p2} already has this route",
    )


def test_same_peer_group_twice_conflicts_by_group_name(net: Net) -> None:
    net.create(peer=DROP, peer_groups=[net.ha])
    expect_error(
        net.w.post("/api/routes", net.body(peer=DROP, peer_groups=[net.ha], network_id="again")),
        409,
        "failed to add route with prefix 10.10.0.0/24 - peer group ha-group already has this route",
    )


def test_overlapping_peer_groups_conflict_on_the_shared_member(net: Net) -> None:
    net.create(peer=DROP, peer_groups=[net.other])  # p2
    expect_error(
        net.w.post("/api/routes", net.body(peer=DROP, peer_groups=[net.ha], network_id="ha")),
        409,
        "failed to add route with prefix 10.10.0.0/24 - "
        "peer router-b from the group ha-group already has this route",
    )


def test_duplicate_domain_route_conflicts_with_unicode_descriptor(net: Net) -> None:
    net.create(network=DROP, domains=["münchen.de", "example.com"])
    expect_error(
        net.w.post(
            "/api/routes", net.body(network=DROP, domains=["MÜNCHEN.de", "example.com"], network_id="n2")
        ),
        409,
        f"failed to add route with domains [münchen.de, example.com] - peer {net.p1} already has this route",
    )


def test_domain_lists_in_another_order_do_not_conflict(net: Net) -> None:
    net.create(network=DROP, domains=["a.example.com", "b.example.com"])
    created = net.create(network=DROP, domains=["b.example.com", "a.example.com"], network_id="n2")
    assert created["domains"] == ["b.example.com", "a.example.com"]


def test_domain_route_does_not_conflict_with_network_route_on_same_peer(net: Net) -> None:
    net.create()
    net.create(network=DROP, domains=["example.com"], network_id="dom")
    assert len(net.w.ok(net.w.get("/api/routes"))) == 2


def test_ha_routes_same_prefix_on_different_peers_are_accepted(net: Net) -> None:
    a = net.create(peer=net.p1)
    b = net.create(peer=net.p2)
    c = net.create(peer=net.p3, network_id="other-name")
    assert len({a["id"], b["id"], c["id"]}) == 3
    assert [r["peer"] for r in net.w.ok(net.w.get("/api/routes"))] == [net.p1, net.p2, net.p3]


def test_same_peer_different_prefixes_are_accepted(net: Net) -> None:
    net.create(network="10.10.0.0/24")
    net.create(network="10.10.0.0/25")
    net.create(network="10.10.0.0/16")
    assert len(net.w.ok(net.w.get("/api/routes"))) == 3


def test_update_keeping_its_prefix_passes(net: Net) -> None:
    created = net.create(peer=DROP, peer_groups=[net.ha])
    got = net.w.ok(
        net.w.put(f"/api/routes/{created['id']}", net.body(peer=DROP, peer_groups=[net.ha], metric=7))
    )
    assert got["metric"] == 7
    single = net.create(network="10.99.0.0/16", network_id="single")
    got = net.w.ok(
        net.w.put(f"/api/routes/{single['id']}", net.body(network="10.99.0.0/16", description="x"))
    )
    assert got["description"] == "x"


def test_update_moving_onto_a_peer_that_already_serves_the_prefix_conflicts(net: Net) -> None:
    net.create(peer=DROP, peer_groups=[net.ha])  # p1, p2
    mover = net.create(peer=net.p3, network_id="mover")
    expect_error(
        net.w.put(f"/api/routes/{mover['id']}", net.body(peer=net.p2, network_id="mover")),
        409,
        f"failed to add route with prefix 10.10.0.0/24 - peer {net.p2} already has this route",
    )
    assert net.w.ok(net.w.get(f"/api/routes/{mover['id']}")) == mover


def test_update_validation_wins_over_conflict_order(net: Net) -> None:
    """validateRoute order: metric before NetID before groups before duplicates."""
    net.create()
    other = net.create(network="10.20.0.0/24", network_id="other")
    expect_error(
        net.w.put(f"/api/routes/{other['id']}", net.body(metric=0, groups=["nope"])),
        422,
        "metric should be between 1 and 9999",
    )
    expect_error(
        net.w.put(f"/api/routes/{other['id']}", net.body(groups=["nope"])),
        422,
        "group id nope not found",
    )
    expect_error(
        net.w.put(
            f"/api/routes/{other['id']}",
            net.body(peer=DROP, peer_groups=[net.ha], access_control_groups=["x"]),
        ),
        422,
        "group id x not found",
    )


def test_peer_group_order_of_checks(net: Net) -> None:
    """PeerGroups are validated before ACGs, ACGs before distribution groups."""
    expect_error(
        net.w.post(
            "/api/routes",
            net.body(peer=DROP, peer_groups=["pgX"], access_control_groups=["acgX"], groups=["gX"]),
        ),
        422,
        "group id pgx not found",
    )
    expect_error(
        net.w.post("/api/routes", net.body(access_control_groups=["acgX"], groups=["gX"])),
        422,
        "group id acgx not found",
    )
    # Groups are checked before the routing peer's existence.
    expect_error(
        net.w.post("/api/routes", net.body(peer="ghost", groups=["gX"])), 422, "group id gx not found"
    )


def test_route_with_overlapping_peer_groups_of_its_own_is_accepted(net: Net) -> None:
    """p2 is in both of the route's own peer groups: no conflict with itself (§5.2 happy path)."""
    created = net.create(peer=DROP, peer_groups=[net.ha, net.other])
    assert created["peer_groups"] == [net.ha, net.other]


def test_update_onto_a_peer_group_another_route_uses_conflicts(net: Net) -> None:
    net.create(peer=DROP, peer_groups=[net.other])
    mover = net.create(peer=DROP, peer_groups=[net.acg], network_id="mover")
    expect_error(
        net.w.put(
            f"/api/routes/{mover['id']}", net.body(peer=DROP, peer_groups=[net.other], network_id="mover")
        ),
        409,
        "failed to add route with prefix 10.10.0.0/24 - peer group other already has this route",
    )
    assert net.w.ok(net.w.get(f"/api/routes/{mover['id']}")) == mover


def test_list_order_survives_updates(net: Net) -> None:
    a = net.create(network="10.1.0.0/16", network_id="a")
    b = net.create(network="10.2.0.0/16", network_id="b")
    net.w.ok(net.w.put(f"/api/routes/{a['id']}", net.body(network="10.1.0.0/16", network_id="a2")))
    assert [r["id"] for r in net.w.ok(net.w.get("/api/routes"))] == [a["id"], b["id"]]


# -- CORS (§4.1: every handler route also accepts OPTIONS) -----------------------------------------
def test_cors_preflight_is_accepted(world: World) -> None:
    problems = []
    for path, method in [("/api/routes", "POST"), ("/api/routes", "GET"), ("/api/routes/someid", "PUT")]:
        resp = world.client.options(
            path,
            headers={
                "Origin": "https://dashboard.example.com",
                "Access-Control-Request-Method": method,
                "Access-Control-Request-Headers": "authorization,content-type",
            },
        )
        allowed = resp.headers.get("access-control-allow-methods", "")
        if resp.status_code not in (200, 204) or "access-control-allow-origin" not in resp.headers:
            problems.append(f"OPTIONS {path} ({method}): {resp.status_code} {dict(resp.headers)} {resp.text}")
        elif method not in allowed and allowed != "*":
            problems.append(f"OPTIONS {path}: {method} not in {allowed!r}")
    assert not problems, "\n".join(problems)
