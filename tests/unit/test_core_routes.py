"""Route rules (reference §1.1-§1.4, §2.4-§2.6, §4.4, §5.1-§5.3) against an in-memory account."""

from __future__ import annotations

import copy
import ipaddress
from collections.abc import Iterable
from datetime import UTC, datetime

import pytest

from meshroute.core import activity
from meshroute.core.errors import AlreadyExists, InvalidArgument, MeshrouteError, NotFound
from meshroute.core.model import (
    DOMAIN_PLACEHOLDER,
    MAX_METRIC,
    MAX_NET_ID_CHARS,
    MIN_METRIC,
    Group,
    NetworkType,
    Peer,
    Route,
)
from meshroute.core.routes import (
    RouteContext,
    check_duplicates,
    check_request_shape,
    check_served_once,
    event_meta,
    parse_network,
    same_destination,
    validate_route,
)
from meshroute.server.api.errors import http_status

ACCOUNT = "testingAcc"
PEER1, PEER2, PEER3, PEER4, PEER5 = (f"peer-{i}-id" for i in range(1, 6))
RG1, RG2, RG3, RG4 = "routeGroup1", "routeGroup2", "routeGroup3", "routeGroup4"
HA1, HA2 = "routeGroupHA1", "routeGroupHA2"
INVALID_GROUP = "routeInvalidGroup1"
ALL = "group-all-id"
EXISTING_NETWORK = ipaddress.ip_network("10.10.10.0/24")
EXISTING_DOMAINS = ["example.com"]
EXISTING_ROUTE_NET_ID = "random-id"
NET_41 = "12345678901234567890qwertyuiopqwertyuiop1"
VALID_NET_ID = "12345678901234567890qw"


def net(text: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    return ipaddress.ip_network(text)


def make_peer(n: int) -> Peer:
    return Peer(
        id=f"peer-{n}-id",
        account_id=ACCOUNT,
        key=f"key{n}=",
        ip=ipaddress.IPv4Address(f"100.64.0.{n}"),
        ipv6=None,
        name=f"test-host{n}@netbird.io",
        hostname=f"test-host{n}@netbird.io",
        dns_label=f"test-host{n}",
        created_at=datetime(2024, 1, 1, tzinfo=UTC),
        os="darwin" if n == 3 else "linux",
        connected=True,
    )


class FakeAccount:
    """In-memory RouteContext with the §5.1 fixture and CreateRoute/SaveRoute emulation."""

    def __init__(self) -> None:
        self.peers: dict[str, Peer] = {f"peer-{n}-id": make_peer(n) for n in range(1, 6)}
        self.groups: dict[str, Group] = {}
        self.stored: dict[str, Route] = {}
        self.add_group(ALL, [PEER1, PEER2, PEER3, PEER4], name="All")
        self.add_group(RG1, [PEER1])
        self.add_group(RG2, [PEER2])
        self.add_group(RG3, [PEER5])
        self.add_group(RG4, [PEER5])
        self.add_group(HA1, [PEER1, PEER2, PEER3])
        self.add_group(HA2, [PEER1, PEER4])
        self._next = 0

    # RouteContext -------------------------------------------------------------------------
    def groups_by_id(self, ids: Iterable[str]) -> dict[str, Group]:
        return {i: self.groups[i] for i in ids if i in self.groups}

    def peer(self, peer_id: str) -> Peer | None:
        return self.peers.get(peer_id)

    def routes(self) -> Iterable[Route]:
        return list(self.stored.values())

    # helpers ----------------------------------------------------------------------------
    def add_group(self, gid: str, peers: list[str], name: str | None = None) -> Group:
        group = Group(id=gid, account_id=ACCOUNT, name=name or gid, peers=list(peers))
        self.groups[gid] = group
        return group

    def put(self, route: Route) -> Route:
        """Store directly, without validation (the Go tests' `account.Routes[id] = r`)."""
        self.stored[route.id] = route
        return route

    def create(
        self,
        *,
        network: ipaddress.IPv4Network | ipaddress.IPv6Network | None = None,
        network_type: NetworkType = NetworkType.IPV4,
        domains: list[str] | None = None,
        peer: str = "",
        peer_groups: list[str] | None = None,
        description: str = "",
        net_id: str = "happy",
        masquerade: bool = False,
        metric: int = 9999,
        groups: list[str] | None = None,
        access_control_groups: list[str] | None = None,
        enabled: bool = True,
        keep_route: bool = False,
    ) -> Route:
        """Manager CreateRoute steps 2-3 (§2.2), minus persistence side effects."""
        if domains and network is not None:
            raise InvalidArgument("domains and network should not be provided at the same time")
        self._next += 1
        route = Route(
            id=f"route-{self._next}",
            account_id=ACCOUNT,
            net_id=net_id,
            network=network,
            network_type=network_type,
            description=description,
            domains=list(domains or []),
            peer=peer,
            peer_groups=list(peer_groups or []),
            enabled=enabled,
            masquerade=masquerade,
            metric=metric,
            keep_route=keep_route,
            groups=list(groups) if groups is not None else [],
            access_control_groups=list(access_control_groups or []),
        )
        validate_route(route, self)
        route.public_id = f"pub-{self._next}"
        return self.put(route)

    def save(self, route: Route | None) -> Route:
        """Manager SaveRoute (§2.3): validation first, then the not-found check."""
        validate_route(route, self)
        assert route is not None
        old = self.stored.get(route.id)
        if old is None:
            raise NotFound(f"route: {route.id} not found")
        route.account_id = ACCOUNT
        route.public_id = old.public_id
        return self.put(route)

    def create_init_routes(self) -> None:
        """§5.1 'init routes': two routes on routeGroup3/4 (both members: peer5)."""
        self.create(
            network=EXISTING_NETWORK,
            network_type=NetworkType.IPV4,
            peer_groups=[RG3, RG4],
            net_id=EXISTING_ROUTE_NET_ID,
            metric=1000,
            groups=[ALL],
            access_control_groups=[],
        )
        self.create(
            network_type=NetworkType.DOMAIN,
            domains=list(EXISTING_DOMAINS),
            peer_groups=[RG3, RG4],
            net_id=EXISTING_ROUTE_NET_ID,
            metric=1000,
            groups=[ALL],
            access_control_groups=[ALL],
        )


@pytest.fixture
def acct() -> FakeAccount:
    return FakeAccount()


def route(**kw: object) -> Route:
    """A valid single-peer IPv4 route; override any field."""
    base: dict[str, object] = {
        "id": "r-new",
        "account_id": ACCOUNT,
        "net_id": "office",
        "network": net("192.168.0.0/16"),
        "network_type": NetworkType.IPV4,
        "peer": PEER1,
        "metric": 9999,
        "enabled": True,
        "groups": [RG1],
    }
    base.update(kw)
    return Route(**base)  # type: ignore[arg-type]


def test_fake_account_satisfies_the_protocol(acct: FakeAccount) -> None:
    ctx: RouteContext = acct
    assert set(ctx.groups_by_id([RG1, "nope"])) == {RG1}


# =============================================================================================
# §1.1 / §1.2 constants and network types
# =============================================================================================


def test_constants() -> None:
    assert (MIN_METRIC, MAX_METRIC, MAX_NET_ID_CHARS) == (1, 9999, 40)
    assert str(DOMAIN_PLACEHOLDER) == "192.0.2.0/32"


@pytest.mark.parametrize(
    ("value", "name"),
    [(0, "Invalid"), (1, "IPv4"), (2, "IPv6"), (3, "Domain")],
)
def test_network_type_ints_and_api_names(value: int, name: str) -> None:
    assert NetworkType(value).api_name == name


# =============================================================================================
# parse_network (§1.2)
# =============================================================================================


@pytest.mark.parametrize(
    ("text", "kind", "masked"),
    [
        ("10.0.0.1/24", NetworkType.IPV4, "10.0.0.0/24"),
        ("10.0.0.0/24", NetworkType.IPV4, "10.0.0.0/24"),
        ("192.168.0.0/16", NetworkType.IPV4, "192.168.0.0/16"),
        ("192.168.255.255/16", NetworkType.IPV4, "192.168.0.0/16"),
        ("10.10.10.10/32", NetworkType.IPV4, "10.10.10.10/32"),
        ("0.0.0.0/0", NetworkType.IPV4, "0.0.0.0/0"),
        ("1.2.3.4/0", NetworkType.IPV4, "0.0.0.0/0"),
        ("::/0", NetworkType.IPV6, "::/0"),
        ("2001:db8::1/64", NetworkType.IPV6, "2001:db8::/64"),
        ("2001:DB8::/32", NetworkType.IPV6, "2001:db8::/32"),
        ("fd00::1/128", NetworkType.IPV6, "fd00::1/128"),
    ],
)
def test_parse_network_masks_and_types(text: str, kind: NetworkType, masked: str) -> None:
    got_kind, got_net = parse_network(text)
    assert got_kind == kind
    assert str(got_net) == masked


def test_ipv4_mapped_ipv6_is_ipv6() -> None:
    kind, parsed = parse_network("::ffff:1.2.3.4/128")
    assert kind == NetworkType.IPV6
    assert isinstance(parsed, ipaddress.IPv6Network)
    assert parsed.network_address.ipv4_mapped == ipaddress.IPv4Address("1.2.3.4")


@pytest.mark.parametrize(
    "text",
    [
        "192.168.0.0/34",
        "10.0.0.0/255.0.0.0",
        "10.0.0.0",
        "10.0.0.0/",
        "/24",
        "garbage",
        "",
        " 10.0.0.0/24",
        "10.0.0.0/24 ",
        "10.0.0.256/24",
        "10.0.0/24",
        "::/129",
        "2001:db8::/-1",
        "2001:db8:::/64",
        "10.0.0.0/24/24",
        "example.com",
        "fe80::1%eth0/64",
    ],
)
def test_parse_network_rejects(text: str) -> None:
    with pytest.raises(InvalidArgument) as exc:
        parse_network(text)
    assert exc.value.message == f"invalid network {text}"
    assert http_status(exc.value) == 422


def test_parse_network_34_message_exactly() -> None:
    with pytest.raises(InvalidArgument, match=r"^invalid network 192\.168\.0\.0/34$"):
        parse_network("192.168.0.0/34")


def test_no_domain_type_is_derived_from_a_string() -> None:
    kinds = {parse_network(t)[0] for t in ("10.0.0.0/8", "::/0", "192.0.2.0/32")}
    assert NetworkType.DOMAIN not in kinds


# =============================================================================================
# check_request_shape (§4.4 handler checks, in order)
# =============================================================================================

SHAPE_OK = {"network": True, "domains": False, "peer": True, "peer_groups": False, "net_id": "office"}


def shape(**kw: object) -> None:
    args = dict(SHAPE_OK)
    args.update(kw)
    check_request_shape(**args)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        # 1 wins over 3 and 5
        (
            {"network": True, "domains": True, "peer": False, "net_id": ""},
            "only one of 'network' or 'domains' should be provided",
        ),
        # 2 wins over 4 and 5
        (
            {"network": False, "domains": False, "peer": True, "peer_groups": True, "net_id": ""},
            "either 'network' or 'domains' should be provided",
        ),
        # 3 wins over 5
        (
            {"peer": False, "peer_groups": False, "net_id": ""},
            "either 'peer' or 'peer_groups' should be provided",
        ),
        # 4 wins over 5
        (
            {"peer": True, "peer_groups": True, "net_id": NET_41},
            "only one of 'peer' or 'peer_groups' should be provided",
        ),
        ({"net_id": ""}, "identifier should be between 1 and 40 characters"),
        ({"net_id": NET_41}, "identifier should be between 1 and 40 characters"),
        ({"net_id": "é" * 41}, "identifier should be between 1 and 40 characters"),
    ],
)
def test_request_shape_errors_in_order(kw: dict[str, object], message: str) -> None:
    with pytest.raises(InvalidArgument) as exc:
        shape(**kw)
    assert exc.value.message == message


@pytest.mark.parametrize(
    "kw",
    [
        {},
        {"network": False, "domains": True},
        {"peer": False, "peer_groups": True},
        {"net_id": "x"},
        {"net_id": "a" * 40},
        {"net_id": "中" * 40},  # 40 code points, 120 bytes
        {"net_id": "🚀" * 40},
    ],
)
def test_request_shape_accepts(kw: dict[str, object]) -> None:
    shape(**kw)


# =============================================================================================
# validate_route: each check of §2.4, in order
# =============================================================================================


def expect_invalid(r: Route | None, acct: FakeAccount, message: str) -> InvalidArgument:
    with pytest.raises(InvalidArgument) as exc:
        validate_route(r, acct)
    assert exc.value.message == message
    assert http_status(exc.value) == 422
    return exc.value


def test_valid_route_is_returned_unchanged(acct: FakeAccount) -> None:
    r = route()
    before = copy.deepcopy(r)
    assert validate_route(r, acct) is r
    assert r == before


def test_1_nil_route(acct: FakeAccount) -> None:
    expect_invalid(None, acct, "route provided is nil")


@pytest.mark.parametrize("metric", [0, -1, 10000, 99999])
def test_2_metric_out_of_range(acct: FakeAccount, metric: int) -> None:
    expect_invalid(route(metric=metric), acct, "metric should be between 1 and 9999")


@pytest.mark.parametrize("metric", [1, 9999, 500])
def test_2_metric_bounds_are_inclusive(acct: FakeAccount, metric: int) -> None:
    validate_route(route(metric=metric), acct)


@pytest.mark.parametrize("net_id", ["", NET_41, "é" * 41, "🚀" * 41])
def test_3_net_id_length(acct: FakeAccount, net_id: str) -> None:
    expect_invalid(route(net_id=net_id), acct, "identifier should be between 1 and 40")


@pytest.mark.parametrize("net_id", ["x", "a" * 40, "é" * 40, "中" * 40, "🚀" * 40])
def test_3_net_id_counts_code_points(acct: FakeAccount, net_id: str) -> None:
    validate_route(route(net_id=net_id), acct)


def test_4_domains_and_network(acct: FakeAccount) -> None:
    r = route(domains=["example.com"], network=net("192.168.0.0/16"), network_type=NetworkType.DOMAIN)
    expect_invalid(r, acct, "domains and network should not be provided at the same time")


def test_5_no_domains_and_no_network(acct: FakeAccount) -> None:
    expect_invalid(route(network=None), acct, "invalid Prefix")


def test_6_domain_route_gets_the_placeholder(acct: FakeAccount) -> None:
    r = route(network=None, domains=["example.com"], network_type=NetworkType.DOMAIN)
    out = validate_route(r, acct)
    assert out is r
    assert r.network == ipaddress.IPv4Network("192.0.2.0/32")
    assert str(r.network) == "192.0.2.0/32"
    assert r.domains == ["example.com"]


def test_6_placeholder_is_set_before_later_checks_fail(acct: FakeAccount) -> None:
    r = route(network=None, domains=["example.com"], network_type=NetworkType.DOMAIN, peer_groups=[HA1])
    expect_invalid(r, acct, "peer with ID and peer groups should not be provided at the same time")
    assert r.network == DOMAIN_PLACEHOLDER


def test_7_peer_and_peer_groups(acct: FakeAccount) -> None:
    expect_invalid(
        route(peer=PEER1, peer_groups=[HA1]),
        acct,
        "peer with ID and peer groups should not be provided at the same time",
    )


def test_4_domains_and_placeholder_network_are_both_provided(acct: FakeAccount) -> None:
    r = route(domains=["example.com"], network=DOMAIN_PLACEHOLDER, network_type=NetworkType.DOMAIN)
    expect_invalid(r, acct, "domains and network should not be provided at the same time")


def test_network_route_keeps_its_prefix(acct: FakeAccount) -> None:
    r = route(network=net("10.0.0.0/8"))
    validate_route(r, acct)
    assert r.network == net("10.0.0.0/8")


def test_manager_does_not_validate_domain_syntax(acct: FakeAccount) -> None:
    # §2.4 "Not validated by the manager: domain syntax (HTTP layer only)".
    r = route(network=None, domains=["domain1", "-weird-"], network_type=NetworkType.DOMAIN)
    validate_route(r, acct)
    assert r.domains == ["domain1", "-weird-"]


def test_manager_does_not_check_network_type_consistency(acct: FakeAccount) -> None:
    validate_route(route(network=net("10.0.0.0/8"), network_type=NetworkType.IPV6), acct)


def test_empty_peer_should_create(acct: FakeAccount) -> None:
    # §5.2 "Empty Peer Should Create": no peer, no peer groups, disabled.
    r = route(peer="", peer_groups=[], enabled=False)
    assert validate_route(r, acct) is r


# ---- earlier checks win ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"metric": 99999, "net_id": NET_41}, "metric should be between 1 and 9999"),
        ({"metric": 0, "net_id": "", "network": None}, "metric should be between 1 and 9999"),
        (
            {"net_id": "", "domains": ["example.com"], "network": net("10.0.0.0/8")},
            "identifier should be between 1 and 40",
        ),
        ({"net_id": NET_41, "network": None}, "identifier should be between 1 and 40"),
        (
            {"domains": ["example.com"], "network": net("10.0.0.0/8"), "peer_groups": [HA1]},
            "domains and network should not be provided at the same time",
        ),
        ({"network": None, "peer_groups": [HA1]}, "invalid Prefix"),
        ({"network": None, "groups": []}, "invalid Prefix"),
        (
            {"peer_groups": [HA1], "groups": []},
            "peer with ID and peer groups should not be provided at the same time",
        ),
        (
            {"peer_groups": [INVALID_GROUP], "groups": []},
            "peer with ID and peer groups should not be provided at the same time",
        ),
        (
            {"metric": 10000, "groups": [INVALID_GROUP], "peer": "nobody"},
            "metric should be between 1 and 9999",
        ),
    ],
)
def test_earlier_check_wins(acct: FakeAccount, kw: dict[str, object], message: str) -> None:
    expect_invalid(route(**kw), acct, message)


# ---- group checks (§2.5) -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("groups", "message"),
    [
        ([], "the list of group IDs should not be empty"),
        ([""], "group ID should not be empty string"),
        ([INVALID_GROUP], f"group id {INVALID_GROUP} not found"),
        ([RG1, "", INVALID_GROUP], "group ID should not be empty string"),
        ([RG1, INVALID_GROUP, ""], f"group id {INVALID_GROUP} not found"),
    ],
)
def test_distribution_groups_are_mandatory_and_must_exist(
    acct: FakeAccount, groups: list[str], message: str
) -> None:
    expect_invalid(route(groups=groups), acct, message)


def test_peer_groups_are_checked_before_acgs_and_groups(acct: FakeAccount) -> None:
    r = route(peer="", peer_groups=[""], access_control_groups=["acg-missing"], groups=[])
    expect_invalid(r, acct, "group ID should not be empty string")
    r = route(peer="", peer_groups=["pg-missing"], access_control_groups=[""], groups=[""])
    expect_invalid(r, acct, "group id pg-missing not found")


def test_acgs_are_checked_before_groups(acct: FakeAccount) -> None:
    r = route(access_control_groups=["acg-missing"], groups=[])
    expect_invalid(r, acct, "group id acg-missing not found")
    r = route(access_control_groups=[""], groups=[INVALID_GROUP])
    expect_invalid(r, acct, "group ID should not be empty string")


def test_empty_peer_groups_and_acgs_are_not_validated(acct: FakeAccount) -> None:
    validate_route(route(peer_groups=[], access_control_groups=[]), acct)


def test_valid_peer_groups_and_acgs(acct: FakeAccount) -> None:
    validate_route(
        route(peer="", peer_groups=[HA1, HA2], access_control_groups=[RG1, RG2], groups=[RG1]), acct
    )


def test_group_checks_come_before_peer_existence(acct: FakeAccount) -> None:
    expect_invalid(
        route(peer="notExistingPeer", groups=[]), acct, "the list of group IDs should not be empty"
    )


def test_group_checks_come_before_duplicate_checks(acct: FakeAccount) -> None:
    acct.put(route(id="other", peer=PEER1))
    expect_invalid(route(peer=PEER1, groups=[INVALID_GROUP]), acct, f"group id {INVALID_GROUP} not found")


# =============================================================================================
# §5.2 TestCreateRoute
# =============================================================================================


def test_create_happy_path_network(acct: FakeAccount) -> None:
    out = acct.create(
        network=net("192.168.0.0/16"),
        net_id="happy",
        peer=PEER1,
        description="super",
        metric=9999,
        groups=[RG1],
        access_control_groups=[RG1],
    )
    assert acct.stored[out.id] is out
    assert out == Route(
        id=out.id,
        account_id=ACCOUNT,
        net_id="happy",
        network=net("192.168.0.0/16"),
        network_type=NetworkType.IPV4,
        description="super",
        peer=PEER1,
        metric=9999,
        enabled=True,
        groups=[RG1],
        access_control_groups=[RG1],
        public_id=out.public_id,
    )


def test_create_happy_path_domains(acct: FakeAccount) -> None:
    out = acct.create(
        network_type=NetworkType.DOMAIN,
        domains=["domain1", "domain2"],
        keep_route=True,
        peer=PEER1,
        description="super",
        groups=[RG1],
        access_control_groups=[RG1],
    )
    assert out.network == net("192.0.2.0/32")
    assert out.domains == ["domain1", "domain2"]
    assert out.keep_route is True
    assert out.network_type == NetworkType.DOMAIN
    assert out.peer == PEER1


def test_create_happy_path_peer_groups(acct: FakeAccount) -> None:
    out = acct.create(
        network=net("192.168.0.0/16"),
        peer_groups=[HA1, HA2],
        description="super",
        groups=[RG1, RG2],
        access_control_groups=[RG1, RG2],
    )
    assert out.peer == ""
    assert out.peer_groups == [HA1, HA2]
    assert out.groups == [RG1, RG2]
    assert out.access_control_groups == [RG1, RG2]


def test_create_empty_peer_should_create(acct: FakeAccount) -> None:
    out = acct.create(
        network=net("192.168.0.0/16"), peer="", description="super", enabled=False, groups=[RG1]
    )
    assert out.peer == "" and out.peer_groups == [] and out.enabled is False
    assert out.id in acct.stored


CREATE_ERRORS = [
    (
        "Both network and domains provided",
        {
            "network": net("192.168.0.0/16"),
            "domains": ["domain1", "domain2"],
            "peer": PEER1,
            "peer_groups": [HA1],
            "groups": [RG1],
            "access_control_groups": [RG2],
        },
        False,
        InvalidArgument,
        "domains and network should not be provided at the same time",
    ),
    (
        "Both peer and peer_groups",
        {"network": net("192.168.0.0/16"), "peer": PEER1, "peer_groups": [HA1], "groups": [RG1]},
        False,
        InvalidArgument,
        "peer with ID and peer groups should not be provided at the same time",
    ),
    (
        "Bad Peer",
        {"network": net("192.168.0.0/16"), "peer": "notExistingPeer", "groups": [RG1]},
        False,
        InvalidArgument,
        "peer with ID notExistingPeer not found",
    ),
    (
        "Bad Peer already has this network route",
        {"network": EXISTING_NETWORK, "net_id": "bad", "peer": PEER5, "groups": [RG1]},
        True,
        AlreadyExists,
        "failed to add route with prefix 10.10.10.0/24 - peer peer-5-id already has this route",
    ),
    (
        "Bad Peer already has this domains route",
        {
            "domains": list(EXISTING_DOMAINS),
            "network_type": NetworkType.DOMAIN,
            "net_id": "bad",
            "peer": PEER5,
            "groups": [RG1],
        },
        True,
        AlreadyExists,
        "failed to add route with domains [example.com] - peer peer-5-id already has this route",
    ),
    (
        "Bad Peers Group already has this network route",
        {"network": EXISTING_NETWORK, "net_id": "bad", "peer_groups": [RG1, RG3], "groups": [RG1]},
        True,
        AlreadyExists,
        "failed to add route with prefix 10.10.10.0/24 - peer group routeGroup3 already has this route",
    ),
    (
        "Bad Peers Group already has this domains route",
        {
            "domains": list(EXISTING_DOMAINS),
            "network_type": NetworkType.DOMAIN,
            "net_id": "bad",
            "peer_groups": [RG1, RG3],
            "groups": [RG1],
        },
        True,
        AlreadyExists,
        "failed to add route with domains [example.com] - peer group routeGroup3 already has this route",
    ),
    (
        "Large Metric",
        {"network": net("192.168.0.0/16"), "peer": PEER1, "metric": 99999, "groups": [RG1]},
        False,
        InvalidArgument,
        "metric should be between 1 and 9999",
    ),
    (
        "Small Metric",
        {"network": net("192.168.0.0/16"), "peer": PEER1, "metric": 0, "groups": [RG1]},
        False,
        InvalidArgument,
        "metric should be between 1 and 9999",
    ),
    (
        "Large NetID",
        {"network": net("192.168.0.0/16"), "peer": PEER1, "net_id": NET_41, "groups": [RG1]},
        False,
        InvalidArgument,
        "identifier should be between 1 and 40",
    ),
    (
        "Small NetID",
        {"network": net("192.168.0.0/16"), "peer": PEER1, "net_id": "", "groups": [RG1]},
        False,
        InvalidArgument,
        "identifier should be between 1 and 40",
    ),
    (
        "Empty Group List",
        {"network": net("192.168.0.0/16"), "peer": PEER1, "net_id": "NewId", "groups": []},
        False,
        InvalidArgument,
        "the list of group IDs should not be empty",
    ),
    (
        "Empty Group ID string",
        {"network": net("192.168.0.0/16"), "peer": PEER1, "net_id": "NewId", "groups": [""]},
        False,
        InvalidArgument,
        "group ID should not be empty string",
    ),
    (
        "Invalid Group",
        {"network": net("192.168.0.0/16"), "peer": PEER1, "net_id": "NewId", "groups": [INVALID_GROUP]},
        False,
        InvalidArgument,
        "group id routeInvalidGroup1 not found",
    ),
]


@pytest.mark.parametrize(
    ("kw", "init", "kind", "message"),
    [c[1:] for c in CREATE_ERRORS],
    ids=[c[0] for c in CREATE_ERRORS],
)
def test_create_errors(
    acct: FakeAccount, kw: dict[str, object], init: bool, kind: type[MeshrouteError], message: str
) -> None:
    if init:
        acct.create_init_routes()
    before = dict(acct.stored)
    with pytest.raises(MeshrouteError) as exc:
        acct.create(**kw)  # type: ignore[arg-type]
    assert type(exc.value) is kind
    assert exc.value.message == message
    assert acct.stored == before


def test_init_routes_are_valid_and_do_not_collide(acct: FakeAccount) -> None:
    acct.create_init_routes()
    assert len(acct.stored) == 2
    domain_route = next(r for r in acct.stored.values() if r.is_dynamic)
    assert domain_route.network == DOMAIN_PLACEHOLDER


def test_already_exists_maps_to_409(acct: FakeAccount) -> None:
    acct.create_init_routes()
    with pytest.raises(AlreadyExists) as exc:
        acct.create(network=EXISTING_NETWORK, peer=PEER5, groups=[RG1])
    assert http_status(exc.value) == 409


# =============================================================================================
# §5.3 TestSaveRoute
# =============================================================================================


def existing(**kw: object) -> Route:
    base: dict[str, object] = {
        "id": "testingRoute",
        "account_id": ACCOUNT,
        "net_id": VALID_NET_ID,
        "network": net("192.168.0.0/16"),
        "network_type": NetworkType.IPV4,
        "peer": PEER1,
        "description": "super",
        "metric": 9999,
        "enabled": True,
        "groups": [RG1],
        "public_id": "pub-existing",
    }
    base.update(kw)
    return Route(**base)  # type: ignore[arg-type]


def put_init_route(acct: FakeAccount) -> None:
    acct.put(
        Route(
            id="initRoute",
            account_id=ACCOUNT,
            net_id=EXISTING_ROUTE_NET_ID,
            network=EXISTING_NETWORK,
            network_type=NetworkType.IPV4,
            peer_groups=[RG4],
            description="super",
            metric=9999,
            enabled=True,
            groups=[RG1],
        )
    )


def mutate(r: Route, **changes: object) -> Route:
    """The Go test's Copy() + field changes; Domains is always replaced (nil unless given)."""
    out = copy.deepcopy(r)
    out.domains = []
    for k, v in changes.items():
        setattr(out, k, v)
    return out


def test_save_happy_path_network(acct: FakeAccount) -> None:
    old = acct.put(existing())
    new = mutate(old, peer=PEER2, metric=1000, network=net("192.168.0.0/24"), groups=[RG2])
    acct.save(new)
    assert acct.stored["testingRoute"] == existing(
        peer=PEER2, metric=1000, network=net("192.168.0.0/24"), groups=[RG2]
    )


def test_save_happy_path_domains(acct: FakeAccount) -> None:
    old = acct.put(existing(network=None, domains=["example.com"], network_type=NetworkType.DOMAIN))
    new = mutate(old, peer=PEER2, metric=1000, network=None, domains=["example.com", "example2.com"])
    new.keep_route = True
    acct.save(new)
    saved = acct.stored["testingRoute"]
    assert saved.network == DOMAIN_PLACEHOLDER
    assert saved.domains == ["example.com", "example2.com"]
    assert saved.keep_route is True
    assert saved.peer == PEER2 and saved.metric == 1000
    assert saved.network_type == NetworkType.DOMAIN


def test_save_happy_path_peer_groups(acct: FakeAccount) -> None:
    old = acct.put(existing(peer=""))
    new = mutate(old, peer_groups=[HA1, HA2], metric=1000, network=net("192.168.0.0/24"), groups=[RG2])
    acct.save(new)
    assert acct.stored["testingRoute"] == existing(
        peer="", peer_groups=[HA1, HA2], metric=1000, network=net("192.168.0.0/24"), groups=[RG2]
    )


SAVE_ERRORS = [
    (
        "Both network and domains",
        {"peer": ""},
        {"network": net("192.168.0.0/24"), "domains": ["example.com"]},
        "domains and network should not be provided at the same time",
    ),
    (
        "Both peer and peer_groups",
        {"peer": ""},
        {"peer": PEER2, "peer_groups": [HA1]},
        "peer with ID and peer groups should not be provided at the same time",
    ),
    ("Bad Prefix", {}, {"network": None}, "invalid Prefix"),
    ("Bad Peer", {}, {"peer": "nonExisting"}, "peer with ID nonExisting not found"),
    ("Invalid Metric", {}, {"metric": 99999}, "metric should be between 1 and 9999"),
    (
        "Invalid NetID (metric fires first)",
        {"net_id": NET_41},
        {"metric": 99999},
        "metric should be between 1 and 9999",
    ),
    ("Empty Group List", {}, {"groups": []}, "the list of group IDs should not be empty"),
    ("Empty Group ID String", {}, {"groups": [""]}, "group ID should not be empty string"),
    ("Invalid Group", {}, {"groups": [INVALID_GROUP]}, "group id routeInvalidGroup1 not found"),
]


@pytest.mark.parametrize(
    ("old_kw", "changes", "message"), [c[1:] for c in SAVE_ERRORS], ids=[c[0] for c in SAVE_ERRORS]
)
def test_save_errors(
    acct: FakeAccount, old_kw: dict[str, object], changes: dict[str, object], message: str
) -> None:
    old = acct.put(existing(**old_kw))
    snapshot = copy.deepcopy(old)
    with pytest.raises(InvalidArgument) as exc:
        acct.save(mutate(old, **changes))
    assert exc.value.message == message
    assert acct.stored["testingRoute"] == snapshot


def test_bad_prefix_comes_from_an_unparsable_string() -> None:
    with pytest.raises(InvalidArgument):
        parse_network("192.168.0.0/34")


def test_save_nil_route(acct: FakeAccount) -> None:
    acct.put(existing())
    with pytest.raises(InvalidArgument, match=r"^route provided is nil$"):
        acct.save(None)


def test_save_validation_wins_over_not_found(acct: FakeAccount) -> None:
    with pytest.raises(InvalidArgument, match="metric"):
        acct.save(existing(id="missing", metric=0))
    with pytest.raises(NotFound, match=r"^route: missing not found$"):
        acct.save(existing(id="missing"))


def test_save_allow_modify_existing_route_with_new_peer(acct: FakeAccount) -> None:
    old = acct.put(existing(network=EXISTING_NETWORK))
    acct.save(mutate(old, peer=PEER2))
    saved = acct.stored["testingRoute"]
    assert saved.peer == PEER2
    assert saved.peer_groups == []
    assert saved.network == EXISTING_NETWORK


def test_save_do_not_allow_peer_from_another_route(acct: FakeAccount) -> None:
    put_init_route(acct)
    old = acct.put(existing(network=EXISTING_NETWORK))
    with pytest.raises(AlreadyExists) as exc:
        acct.save(mutate(old, peer=PEER5))
    assert (
        exc.value.message
        == "failed to add route with prefix 10.10.10.0/24 - peer peer-5-id already has this route"
    )


def test_save_do_not_allow_peer_group_from_another_route(acct: FakeAccount) -> None:
    put_init_route(acct)
    old = acct.put(existing(network=EXISTING_NETWORK, peer="", peer_groups=[RG3]))
    with pytest.raises(AlreadyExists) as exc:
        acct.save(mutate(old, peer_groups=[RG4]))
    assert exc.value.message == (
        "failed to add route with prefix 10.10.10.0/24 - peer group routeGroup4 already has this route"
    )


def test_save_switch_network_to_domains(acct: FakeAccount) -> None:
    old = acct.put(existing(network=net("192.168.0.0/24")))
    new = mutate(old, network=None, domains=["example.com"], network_type=NetworkType.DOMAIN, keep_route=True)
    acct.save(new)
    saved = acct.stored["testingRoute"]
    assert saved.network == DOMAIN_PLACEHOLDER
    assert saved.domains == ["example.com"]
    assert saved.network_type == NetworkType.DOMAIN
    assert saved.keep_route is True


def test_save_switch_domains_to_network(acct: FakeAccount) -> None:
    old = acct.put(
        existing(
            network=DOMAIN_PLACEHOLDER,
            domains=["example.com"],
            network_type=NetworkType.DOMAIN,
            keep_route=True,
        )
    )
    new = mutate(old, network=net("192.168.0.0/24"), network_type=NetworkType.IPV4, keep_route=False)
    acct.save(new)
    assert acct.stored["testingRoute"] == existing(network=net("192.168.0.0/24"))


def test_save_keeps_public_id(acct: FakeAccount) -> None:
    old = acct.put(existing())
    new = mutate(old, metric=5)
    new.public_id = ""
    acct.save(new)
    assert acct.stored["testingRoute"].public_id == "pub-existing"


# =============================================================================================
# §2.6 duplicate checks
# =============================================================================================


def test_own_id_is_skipped_on_update(acct: FakeAccount) -> None:
    old = acct.put(existing(network=EXISTING_NETWORK))
    # Re-saving the unchanged route: its own stored copy must not count as a duplicate.
    acct.save(copy.deepcopy(old))
    grp = acct.put(existing(id="grp", network=net("10.20.0.0/16"), peer="", peer_groups=[HA1]))
    acct.save(copy.deepcopy(grp))


def test_quirk_fixed_two_single_peer_routes_same_prefix_same_peer(acct: FakeAccount) -> None:
    # Reference QUIRK (§2.6 step 3): seenPeers got the route ID, so this was accepted. We reject it.
    acct.create(network=EXISTING_NETWORK, peer=PEER1, net_id="first", groups=[RG1])
    with pytest.raises(AlreadyExists) as exc:
        acct.create(network=EXISTING_NETWORK, peer=PEER1, net_id="second", groups=[RG1])
    assert (
        exc.value.message
        == "failed to add route with prefix 10.10.10.0/24 - peer peer-1-id already has this route"
    )


def test_quirk_fixed_same_domains_same_single_peer(acct: FakeAccount) -> None:
    acct.create(network_type=NetworkType.DOMAIN, domains=["example.com"], peer=PEER1, groups=[RG1])
    with pytest.raises(AlreadyExists) as exc:
        acct.create(network_type=NetworkType.DOMAIN, domains=["example.com"], peer=PEER1, groups=[RG1])
    assert (
        exc.value.message
        == "failed to add route with domains [example.com] - peer peer-1-id already has this route"
    )


def test_quirk_fixed_peer_group_member_already_serves_prefix_as_single_peer(acct: FakeAccount) -> None:
    acct.create(network=EXISTING_NETWORK, peer=PEER2, groups=[RG1])
    with pytest.raises(AlreadyExists) as exc:
        acct.create(network=EXISTING_NETWORK, peer="", peer_groups=[HA1], groups=[RG1])
    assert exc.value.message == (
        "failed to add route with prefix 10.10.10.0/24 - peer test-host2@netbird.io "
        "from the group routeGroupHA1 already has this route"
    )


def test_quirk_fixed_update_into_a_collision_with_a_single_peer_route(acct: FakeAccount) -> None:
    acct.put(existing(id="a", network=EXISTING_NETWORK, peer=PEER1))
    b = acct.put(existing(id="b", network=EXISTING_NETWORK, peer=PEER2))
    with pytest.raises(AlreadyExists, match="peer peer-1-id already has this route"):
        acct.save(mutate(b, peer=PEER1))


def test_peer_from_group_message_uses_peer_and_group_names(acct: FakeAccount) -> None:
    acct.add_group("g-ha", [PEER3, PEER4], name="HA Routers")
    acct.add_group("g-one", [PEER4], name="Single Router")
    acct.create(network=EXISTING_NETWORK, peer="", peer_groups=["g-one"], groups=[RG1])
    with pytest.raises(AlreadyExists) as exc:
        acct.create(network=EXISTING_NETWORK, peer="", peer_groups=["g-ha"], groups=[RG1])
    assert exc.value.message == (
        "failed to add route with prefix 10.10.10.0/24 - peer test-host4@netbird.io "
        "from the group HA Routers already has this route"
    )


def test_peer_group_message_uses_group_name(acct: FakeAccount) -> None:
    acct.add_group("g-ha", [PEER3], name="HA Routers")
    acct.create(network=EXISTING_NETWORK, peer="", peer_groups=["g-ha"], groups=[RG1])
    with pytest.raises(AlreadyExists) as exc:
        acct.create(network=EXISTING_NETWORK, peer="", peer_groups=[RG1, "g-ha"], groups=[RG1])
    assert exc.value.message == (
        "failed to add route with prefix 10.10.10.0/24 - peer group HA Routers already has this route"
    )


def test_peer_groups_are_checked_in_order(acct: FakeAccount) -> None:
    # routeGroupHA2 (peer1, peer4) collides through a member; routeGroup3 collides as a group.
    acct.create(network=EXISTING_NETWORK, peer="", peer_groups=[RG1, RG3], groups=[RG1])
    with pytest.raises(AlreadyExists) as exc:
        acct.create(network=EXISTING_NETWORK, peer="", peer_groups=[HA2, RG3], groups=[RG1])
    assert exc.value.message == (
        "failed to add route with prefix 10.10.10.0/24 - peer test-host1@netbird.io "
        "from the group routeGroupHA2 already has this route"
    )


def test_group_id_check_precedes_member_check_within_one_group(acct: FakeAccount) -> None:
    acct.create(network=EXISTING_NETWORK, peer="", peer_groups=[HA1], groups=[RG1])
    with pytest.raises(AlreadyExists) as exc:
        acct.create(network=EXISTING_NETWORK, peer="", peer_groups=[HA1], groups=[RG1])
    assert exc.value.message.endswith("- peer group routeGroupHA1 already has this route")


def test_single_peer_blocked_by_existing_peer_group_route(acct: FakeAccount) -> None:
    acct.create(network=EXISTING_NETWORK, peer="", peer_groups=[HA1], groups=[RG1])
    with pytest.raises(AlreadyExists, match=r"- peer peer-3-id already has this route$"):
        acct.create(network=EXISTING_NETWORK, peer=PEER3, groups=[RG1])


def test_same_prefix_on_a_different_peer_is_accepted(acct: FakeAccount) -> None:
    acct.create(network=EXISTING_NETWORK, peer=PEER1, groups=[RG1])
    acct.create(network=EXISTING_NETWORK, peer=PEER2, groups=[RG1])
    acct.create(network=EXISTING_NETWORK, peer="", peer_groups=[RG3], groups=[RG1])
    assert len(acct.stored) == 3


def test_same_peer_different_prefix_is_accepted(acct: FakeAccount) -> None:
    acct.create(network=net("10.10.10.0/24"), peer=PEER1, groups=[RG1])
    acct.create(network=net("10.10.0.0/16"), peer=PEER1, groups=[RG1])
    acct.create(network=net("10.10.10.0/25"), peer=PEER1, groups=[RG1])
    assert len(acct.stored) == 3


def test_net_id_does_not_matter_for_duplicates(acct: FakeAccount) -> None:
    acct.create(network=EXISTING_NETWORK, peer=PEER1, net_id="a", groups=[RG1])
    with pytest.raises(AlreadyExists):
        acct.create(network=EXISTING_NETWORK, peer=PEER1, net_id="b", groups=[RG1])


def test_disabled_routes_still_count_as_duplicates(acct: FakeAccount) -> None:
    acct.create(network=EXISTING_NETWORK, peer=PEER1, enabled=False, groups=[RG1])
    with pytest.raises(AlreadyExists):
        acct.create(network=EXISTING_NETWORK, peer=PEER1, groups=[RG1])


def test_domain_list_comparison_is_order_sensitive(acct: FakeAccount) -> None:
    acct.create(
        network_type=NetworkType.DOMAIN, domains=["example.com", "example.org"], peer=PEER1, groups=[RG1]
    )
    acct.create(
        network_type=NetworkType.DOMAIN, domains=["example.org", "example.com"], peer=PEER1, groups=[RG1]
    )
    with pytest.raises(AlreadyExists) as exc:
        acct.create(
            network_type=NetworkType.DOMAIN, domains=["example.com", "example.org"], peer=PEER1, groups=[RG1]
        )
    assert exc.value.message == (
        "failed to add route with domains [example.com, example.org] - peer peer-1-id already has this route"
    )


def test_subset_domain_list_is_not_a_duplicate(acct: FakeAccount) -> None:
    acct.create(
        network_type=NetworkType.DOMAIN, domains=["example.com", "example.org"], peer=PEER1, groups=[RG1]
    )
    acct.create(network_type=NetworkType.DOMAIN, domains=["example.com"], peer=PEER1, groups=[RG1])


def test_domain_descriptor_is_unicode(acct: FakeAccount) -> None:
    acct.create(
        network_type=NetworkType.DOMAIN,
        domains=["xn--mnchen-3ya.de", "example.com"],
        peer=PEER1,
        groups=[RG1],
    )
    with pytest.raises(AlreadyExists) as exc:
        acct.create(
            network_type=NetworkType.DOMAIN,
            domains=["xn--mnchen-3ya.de", "example.com"],
            peer=PEER1,
            groups=[RG1],
        )
    assert exc.value.message == (
        "failed to add route with domains [münchen.de, example.com] - peer peer-1-id already has this route"
    )


def test_ipv6_prefix_descriptor(acct: FakeAccount) -> None:
    acct.create(network=net("2001:db8::/32"), network_type=NetworkType.IPV6, peer=PEER1, groups=[RG1])
    with pytest.raises(AlreadyExists) as exc:
        acct.create(network=net("2001:db8::/32"), network_type=NetworkType.IPV6, peer=PEER1, groups=[RG1])
    assert (
        exc.value.message
        == "failed to add route with prefix 2001:db8::/32 - peer peer-1-id already has this route"
    )


def test_placeholder_network_route_does_not_collide_with_domain_route(acct: FakeAccount) -> None:
    # Our fix of the §2.6 edge case: a plain 192.0.2.0/32 route is not "the same" as a domain route.
    acct.create(network=net("192.0.2.0/32"), peer=PEER1, groups=[RG1])
    acct.create(network_type=NetworkType.DOMAIN, domains=["example.com"], peer=PEER1, groups=[RG1])
    acct2 = FakeAccount()
    acct2.create(network_type=NetworkType.DOMAIN, domains=["example.com"], peer=PEER1, groups=[RG1])
    acct2.create(network=net("192.0.2.0/32"), peer=PEER1, groups=[RG1])


def test_two_plain_placeholder_routes_still_collide(acct: FakeAccount) -> None:
    acct.create(network=net("192.0.2.0/32"), peer=PEER1, groups=[RG1])
    with pytest.raises(AlreadyExists, match=r"prefix 192\.0\.2\.0/32 - peer peer-1-id"):
        acct.create(network=net("192.0.2.0/32"), peer=PEER1, groups=[RG1])


def test_different_domain_lists_do_not_collide_via_the_placeholder(acct: FakeAccount) -> None:
    acct.create(network_type=NetworkType.DOMAIN, domains=["a.example"], peer=PEER1, groups=[RG1])
    acct.create(network_type=NetworkType.DOMAIN, domains=["b.example"], peer=PEER1, groups=[RG1])


def test_network_route_does_not_collide_with_domain_route_of_same_peer_group(acct: FakeAccount) -> None:
    acct.create_init_routes()  # both on routeGroup3/4
    acct.create(network=net("10.99.0.0/16"), peer="", peer_groups=[RG3], groups=[RG1])


def test_missing_group_of_a_candidate_route(acct: FakeAccount) -> None:
    acct.put(existing(id="ghostly", network=EXISTING_NETWORK, peer="", peer_groups=["ghost"]))
    with pytest.raises(InvalidArgument) as exc:
        acct.create(network=EXISTING_NETWORK, peer=PEER1, groups=[RG1])
    assert (
        exc.value.message == "failed to add route with prefix 10.10.10.0/24 - peer group ghost doesn't exist"
    )


def test_missing_group_of_a_non_candidate_route_is_ignored(acct: FakeAccount) -> None:
    acct.put(existing(id="ghostly", network=net("10.99.0.0/16"), peer="", peer_groups=["ghost"]))
    acct.create(network=EXISTING_NETWORK, peer=PEER1, groups=[RG1])


def test_colliding_member_that_is_not_a_peer(acct: FakeAccount) -> None:
    acct.add_group("g-stale", ["peer-gone"])
    acct.put(existing(id="stale", network=EXISTING_NETWORK, peer="peer-gone"))
    with pytest.raises(InvalidArgument) as exc:
        acct.create(network=EXISTING_NETWORK, peer="", peer_groups=["g-stale"], groups=[RG1])
    assert exc.value.message == "peer with ID peer-gone not found"


def test_members_of_peer_groups_are_not_checked_for_existence(acct: FakeAccount) -> None:
    acct.add_group("g-stale", ["peer-gone", PEER1])
    acct.create(network=EXISTING_NETWORK, peer="", peer_groups=["g-stale"], groups=[RG1])


def test_peer_existence_is_checked_before_duplicates(acct: FakeAccount) -> None:
    acct.put(existing(id="stale", network=EXISTING_NETWORK, peer="peer-gone"))
    with pytest.raises(InvalidArgument, match=r"^peer with ID peer-gone not found$"):
        acct.create(network=EXISTING_NETWORK, peer="peer-gone", groups=[RG1])


def test_check_duplicates_directly_uses_the_placeholder_after_validation(acct: FakeAccount) -> None:
    r = route(network=None, domains=["example.com"], network_type=NetworkType.DOMAIN)
    validate_route(r, acct)
    check_duplicates(r, acct)  # nothing stored: no error


def test_same_destination() -> None:
    a = route(network=net("10.0.0.0/8"))
    assert same_destination(a, route(id="x", network=net("10.0.0.0/8")))
    assert not same_destination(a, route(id="x", network=net("10.0.0.0/9")))
    d1 = route(network=DOMAIN_PLACEHOLDER, domains=["a.com", "b.com"], network_type=NetworkType.DOMAIN)
    d2 = route(network=DOMAIN_PLACEHOLDER, domains=["a.com", "b.com"], network_type=NetworkType.DOMAIN)
    d3 = route(network=DOMAIN_PLACEHOLDER, domains=["b.com", "a.com"], network_type=NetworkType.DOMAIN)
    p = route(network=DOMAIN_PLACEHOLDER)
    assert same_destination(d1, d2)
    assert not same_destination(d1, d3)
    assert not same_destination(d1, p)
    assert not same_destination(p, d1)


# =============================================================================================
# §1.4 Route methods and EventMeta; §2.7 activity codes
# =============================================================================================


def test_ha_unique_id_network_route() -> None:
    r = route(net_id="office", network=net("10.0.0.0/24"))
    assert r.net_string() == "10.0.0.0/24"
    assert r.ha_unique_id() == "office|10.0.0.0/24"


def test_ha_unique_id_domain_route() -> None:
    r = route(
        net_id="web",
        network=DOMAIN_PLACEHOLDER,
        domains=["xn--mnchen-3ya.de", "example.com"],
        network_type=NetworkType.DOMAIN,
    )
    assert r.is_dynamic
    assert r.net_string() == "münchen.de, example.com"
    assert r.ha_unique_id() == "web|münchen.de, example.com"


def test_net_string_unset_network() -> None:
    assert route(network=None).net_string() == "invalid Prefix"


def test_is_dynamic_looks_only_at_the_network_type() -> None:
    r = route(network=net("10.0.0.0/24"), domains=["example.com"], network_type=NetworkType.IPV4)
    assert not r.is_dynamic
    assert r.net_string() == "10.0.0.0/24"
    d = route(network=DOMAIN_PLACEHOLDER, domains=[], network_type=NetworkType.DOMAIN)
    assert d.is_dynamic


def test_same_network_different_net_id_are_different_ha_groups() -> None:
    a = route(net_id="a", network=net("10.0.0.0/24"))
    b = route(net_id="b", network=net("10.0.0.0/24"))
    assert a.ha_unique_id() != b.ha_unique_id()


def test_event_meta_network_route() -> None:
    r = route(net_id="office", network=net("10.0.0.0/24"), peer=PEER1)
    assert event_meta(r) == {
        "name": "office",
        "network_range": "10.0.0.0/24",
        "domains": "",
        "peer_id": PEER1,
        "peer_groups": [],
    }


def test_event_meta_domain_route(acct: FakeAccount) -> None:
    r = route(
        net_id="web",
        network=None,
        domains=["xn--mnchen-3ya.de", "example.com"],
        network_type=NetworkType.DOMAIN,
        peer="",
        peer_groups=[HA1, HA2],
    )
    validate_route(r, acct)
    assert event_meta(r) == {
        "name": "web",
        "network_range": "192.0.2.0/32",
        "domains": "münchen.de, example.com",
        "peer_id": "",
        "peer_groups": [HA1, HA2],
    }


def test_event_meta_peer_groups_is_a_copy() -> None:
    r = route(peer="", peer_groups=[HA1])
    meta = event_meta(r)
    meta["peer_groups"].append("x")
    assert r.peer_groups == [HA1]


def test_route_activity_codes() -> None:
    assert int(activity.Activity.ROUTE_CREATED) == 27
    assert int(activity.Activity.ROUTE_REMOVED) == 28
    assert int(activity.Activity.ROUTE_UPDATED) == 29
    assert (activity.message(27), activity.string_code(27)) == ("Route created", "route.add")
    assert (activity.message(28), activity.string_code(28)) == ("Route deleted", "route.delete")
    assert (activity.message(29), activity.string_code(29)) == ("Route updated", "route.update")
    assert activity.message(99999) == "UNKNOWN_ACTIVITY"
    assert activity.string_code(-5) == "UNKNOWN_ACTIVITY"


# -- the duplicate rule after membership changes (issue 9) ---------------------------------------
def _served_once(routes: list[Route], groups_of: dict[str, list[str]]) -> None:
    check_served_once(routes, groups_of, "ctx", lambda pid: f"name-{pid}")


def test_served_once_refuses_a_second_route_for_the_same_destination() -> None:
    a = route(id="a", net_id="na", peer=PEER1)
    b = route(id="b", net_id="nb", peer="", peer_groups=[RG2])
    with pytest.raises(AlreadyExists) as exc:
        _served_once([a, b], {PEER1: [RG2]})
    assert exc.value.message == (
        "ctx - peer name-peer-1-id would serve prefix 192.168.0.0/16 twice: "
        "through route na (a) and route nb (b)"
    )
    _served_once([a, b], {PEER1: [RG3]})  # not in b's group
    _served_once([a, b], {PEER2: [RG2]})  # another peer


def test_served_once_counts_one_route_once_whatever_the_number_of_its_groups() -> None:
    r = route(id="r", peer="", peer_groups=[RG1, RG2, RG1])
    _served_once([r], {PEER1: [RG1, RG2]})


def test_served_once_keeps_networks_and_domains_apart() -> None:
    ip = route(id="ip", peer="", peer_groups=[RG1], network=DOMAIN_PLACEHOLDER)
    dns = route(
        id="dns",
        peer="",
        peer_groups=[RG2],
        network=DOMAIN_PLACEHOLDER,
        network_type=NetworkType.DOMAIN,
        domains=["example.com"],
    )
    other = route(id="other", peer="", peer_groups=[RG3], network=net("10.0.0.0/8"))
    _served_once([ip, dns, other], {PEER1: [RG1, RG2, RG3]})
    twin = route(
        id="twin",
        peer="",
        peer_groups=[RG4],
        network=DOMAIN_PLACEHOLDER,
        network_type=NetworkType.DOMAIN,
        domains=["example.com"],
    )
    with pytest.raises(AlreadyExists, match=r"domains \[example.com\] twice"):
        _served_once([ip, dns, twin], {PEER1: [RG2, RG4]})
