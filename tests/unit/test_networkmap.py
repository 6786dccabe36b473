"""Network maps (reference §3, §1.6, §2.7, §5.4 under allow-all): scenarios and the peers a change reaches.

Every scenario runs through `World`, which keeps the account as plain lists, applies each batch of
changes to an `AccountState` and checks, for every peer, that the delta applied to the previous map,
the engine's from-scratch map and the oracle's map are the same.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import random
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime

import pytest

from meshroute.core.model import DOMAIN_PLACEHOLDER, Group, NetworkType, Peer, Route
from meshroute.core.networkmap import (
    AccountState,
    GroupDeleted,
    GroupUpserted,
    MapChange,
    MapDelta,
    MapPeer,
    MapRoute,
    NetworkMap,
    PeerDeleted,
    PeerUpserted,
    RouteDeleted,
    RouteFirewallRule,
    RouteUpserted,
    apply_delta,
    compute_network_map,
)

ACCOUNT = "acc"
NOW = datetime(2026, 1, 1, tzinfo=UTC)
P1, P2, P3, P4, P5 = "peer1", "peer2", "peer3", "peer4", "peer5"


def make_peer(pid: str, n: int, *, v6: bool = False, key: str | None = None) -> Peer:
    return Peer(
        id=pid,
        account_id=ACCOUNT,
        key=key if key is not None else f"key-{pid}",
        ip=ipaddress.IPv4Address(f"100.64.0.{n}"),
        ipv6=ipaddress.IPv6Address(f"fd00::{n:x}"),
        name=pid,
        hostname=pid,
        dns_label=pid,
        created_at=NOW,
        ipv6_capable=v6,
        endpoints=[f"192.0.2.{n}:51820"],
    )


def make_group(gid: str, *members: str) -> Group:
    return Group(id=gid, account_id=ACCOUNT, name=gid, peers=list(members))


def make_route(
    rid: str,
    network: str | None = "192.168.0.0/16",
    *,
    net_id: str = "superNet",
    domains: Sequence[str] = (),
    peer: str = "",
    peer_groups: Sequence[str] = (),
    groups: Sequence[str] = (),
    acgs: Sequence[str] = (),
    enabled: bool = True,
    metric: int = 9999,
) -> Route:
    net: ipaddress.IPv4Network | ipaddress.IPv6Network
    if domains:
        kind, net = NetworkType.DOMAIN, DOMAIN_PLACEHOLDER
    else:
        assert network is not None
        net = ipaddress.ip_network(network)
        kind = NetworkType.IPV6 if isinstance(net, ipaddress.IPv6Network) else NetworkType.IPV4
    return Route(
        id=rid,
        account_id=ACCOUNT,
        net_id=net_id,
        network=net,
        network_type=kind,
        domains=list(domains),
        peer=peer,
        peer_groups=list(peer_groups),
        groups=list(groups),
        access_control_groups=list(acgs),
        enabled=enabled,
        metric=metric,
    )


class World:
    """An account as plain dicts, mirrored by an AccountState; checks every delta on every step."""

    def __init__(self, peers: Iterable[Peer], groups: Iterable[Group], routes: Iterable[Route]) -> None:
        self.peers = {p.id: p for p in peers}
        self.groups = {g.id: g for g in groups}
        self.routes = {r.id: r for r in routes}
        self.serial = 1
        self.state = AccountState(
            ACCOUNT, self.serial, self.peers.values(), self.groups.values(), self.routes.values()
        )
        self.maps: dict[str, NetworkMap] = {pid: self.oracle(pid) for pid in self.peers}
        for pid, m in self.maps.items():
            assert self.state.network_map(pid) == m
        self.last: dict[str, MapDelta] = {}

    def oracle(self, pid: str) -> NetworkMap:
        return compute_network_map(
            pid, self.peers.values(), self.groups.values(), self.routes.values(), self.serial
        )

    def step(self, *changes: MapChange) -> dict[str, MapDelta]:
        for c in changes:
            if isinstance(c, RouteUpserted):
                self.routes[c.route.id] = c.route
            elif isinstance(c, RouteDeleted):
                self.routes.pop(c.route_id, None)
            elif isinstance(c, GroupUpserted):
                self.groups[c.group.id] = c.group
            elif isinstance(c, GroupDeleted):
                self.groups.pop(c.group_id, None)
            elif isinstance(c, PeerUpserted):
                self.peers[c.peer.id] = c.peer
            else:
                self.peers.pop(c.peer_id, None)
        self.serial += 1
        deltas = self.state.apply(changes, self.serial)
        affected = self.state.recomputed()
        assert set(deltas) <= affected
        assert affected <= set(self.peers)
        new_maps: dict[str, NetworkMap] = {}
        for pid in self.peers:
            expected = self.oracle(pid)
            assert self.state.network_map(pid) == expected, pid
            if pid in deltas:
                d = deltas[pid]
                assert not d.is_empty and d.serial == self.serial
                assert apply_delta(self.maps.get(pid), d) == expected, pid
            else:
                assert pid in self.maps, f"new peer {pid} got no delta"
                assert self.maps[pid] == dataclasses.replace(expected, serial=self.maps[pid].serial), pid
                expected = self.maps[pid]
            new_maps[pid] = expected
        assert set(deltas) <= set(self.peers)
        self.maps = new_maps
        self.last = deltas
        return deltas

    def map(self, pid: str) -> NetworkMap:
        return self.maps[pid]

    def route_ids(self, pid: str) -> list[str]:
        return [r.id for r in self.maps[pid].routes]

    def set_members(self, gid: str, *members: str) -> dict[str, MapDelta]:
        return self.step(GroupUpserted(make_group(gid, *members)))


def src(*ns: int) -> tuple[str, ...]:
    return tuple(sorted(f"100.64.0.{n}/32" for n in ns))


def src6(*ns: int) -> tuple[str, ...]:
    return tuple(sorted(f"fd00::{n:x}/128" for n in ns))


# --- §5.4 TestGetNetworkMap_RouteSyncPeerGroups ------------------------------------------------------


def test_route_sync_peer_groups_counts_step_by_step() -> None:
    w = World(
        [make_peer(p, i) for i, p in enumerate((P1, P2, P3, P4, P5), start=1)],
        [
            make_group("HA1", P1, P2, P3),
            make_group("HA2", P1, P4),
            make_group("routeGroup1", P1),
            make_group("routeGroup2", P2),
        ],
        [],
    )
    assert w.route_ids(P1) == []
    route = make_route(
        "r1", peer_groups=["HA1", "HA2"], groups=["routeGroup1", "routeGroup2"], acgs=["routeGroup1"]
    )
    w.step(RouteUpserted(route))
    # every member of HA1/HA2 is a routing peer: its own entry only, HA siblings filtered
    assert w.route_ids(P1) == ["r1:peer1"]
    assert w.route_ids(P2) == ["r1:peer2"]
    assert w.route_ids(P4) == ["r1:peer4"]
    assert w.route_ids(P3) == ["r1:peer3"]
    assert w.route_ids(P5) == []  # neither routing nor distribution peer
    # peer2 leaves HA1: it is now a distribution peer, one entry per HA member
    w.set_members("HA1", P1, P3)
    assert w.route_ids(P2) == ["r1:peer1", "r1:peer3", "r1:peer4"]
    assert w.last[P2].routes_upserted and w.last[P2].routes_removed == ("r1:peer2",)
    w.set_members("HA2", P1)
    assert w.route_ids(P2) == ["r1:peer1", "r1:peer3"]
    assert w.last[P2].routes_removed == ("r1:peer4",) and w.last[P2].routes_upserted == ()
    w.set_members("HA2", P1, P4)
    assert w.route_ids(P1) == ["r1:peer1"]
    assert w.route_ids(P2) == ["r1:peer1", "r1:peer3", "r1:peer4"]
    w.step(RouteDeleted("r1"))
    assert w.route_ids(P1) == [] and w.route_ids(P2) == []


# --- §5.4 TestGetNetworkMap_RouteSync ----------------------------------------------------------------


def test_route_sync_enable_disable() -> None:
    w = World(
        [make_peer(P1, 1), make_peer(P2, 2)],
        [make_group("routeGroup1", P1), make_group("routeGroup2", P2)],
        [],
    )
    route = make_route(
        "r1", "192.168.0.0/16", peer=P1, groups=["routeGroup1"], acgs=["routeGroup1"], enabled=False
    )
    assert w.step(RouteUpserted(route)) == {}
    assert w.map(P1).routes == () and w.map(P1).rules == ()
    w.step(RouteUpserted(dataclasses.replace(route, enabled=True)))
    (entry,) = w.map(P1).routes
    assert entry == MapRoute(
        id="r1",
        net_id="superNet",
        network="192.168.0.0/16",
        domains=(),
        network_type=int(NetworkType.IPV4),
        peer_key="key-peer1",
        peer_id=P1,
        metric=9999,
        masquerade=False,
        keep_route=False,
        skip_auto_apply=False,
    )
    assert w.map(P2).routes == ()
    w.set_members("routeGroup1", P1, P2)
    assert w.map(P2).routes == (entry,)
    w.step(RouteUpserted(dataclasses.replace(route, enabled=False)))
    assert w.map(P1).routes == () and w.map(P2).routes == () and w.map(P1).rules == ()
    w.step(RouteUpserted(dataclasses.replace(route, enabled=True)))
    w.step(RouteDeleted("r1"))
    assert w.map(P1).routes == () and w.map(P2).routes == ()


def test_single_peer_keeps_id_group_route_expanded_per_member() -> None:
    w = World(
        [make_peer(P1, 1), make_peer(P2, 2), make_peer(P3, 3)],
        [make_group("ha", P1, P2), make_group("dist", P3)],
        [
            make_route("single", "10.0.0.0/24", net_id="a", peer=P1, groups=["dist"]),
            make_route("grp", "10.1.0.0/24", net_id="b", peer_groups=["ha", "ha"], groups=["dist"]),
        ],
    )
    assert w.route_ids(P3) == ["grp:peer1", "grp:peer2", "single"]
    by_id = {r.id: r for r in w.map(P3).routes}
    assert (by_id["grp:peer2"].peer_key, by_id["grp:peer2"].peer_id) == ("key-peer2", P2)
    assert by_id["single"].peer_key == "key-peer1"
    assert w.route_ids(P1) == ["grp:peer1", "single"]
    assert w.route_ids(P2) == ["grp:peer2"]


def test_ha_exclusion_counts_disabled_own_routes() -> None:
    """A routing peer never receives HA siblings of a network it serves, even a disabled one."""
    w = World(
        [make_peer(P1, 1), make_peer(P2, 2), make_peer(P3, 3)],
        [make_group("dist", P1, P2, P3)],
        [
            make_route("off", "10.0.0.0/24", net_id="office", peer=P1, groups=["dist"], enabled=False),
            make_route("on", "10.0.0.0/24", net_id="office", peer=P2, groups=["dist"]),
            make_route("other", "10.0.0.0/24", net_id="elsewhere", peer=P2, groups=["dist"]),
        ],
    )
    assert w.route_ids(P1) == ["other"]  # `on` shares office|10.0.0.0/24 with P1's disabled route
    assert w.map(P1).rules == ()  # disabled own route: no rules
    assert w.route_ids(P3) == ["on", "other"]
    w.step(RouteDeleted("off"))
    assert w.route_ids(P1) == ["on", "other"]
    # renaming `other` into the HA group P1 serves hides it from P1; renaming `on` out shows it
    other = make_route("other", "10.0.0.0/24", net_id="office", peer=P2, groups=["dist"])
    w.step(RouteUpserted(other))
    assert w.route_ids(P1) == ["on", "other"]
    w.step(RouteUpserted(make_route("off", "10.0.0.0/24", net_id="office", peer=P1, groups=["dist"])))
    assert w.route_ids(P1) == ["off"]
    w.step(RouteUpserted(dataclasses.replace(other, net_id="elsewhere")))
    assert w.route_ids(P1) == ["off", "other"]
    w.step(
        RouteUpserted(
            dataclasses.replace(other, network=ipaddress.ip_network("10.0.1.0/24"), net_id="office")
        )
    )
    assert w.route_ids(P1) == ["off", "other"]
    w.step(RouteUpserted(dataclasses.replace(other, net_id="office")))
    assert w.route_ids(P1) == ["off"] and w.last[P1].routes_removed == ("other",)


# --- §1.6 IPv6 ---------------------------------------------------------------------------------------


def test_exit_route_gets_v6_twin_for_v6_capable_peers() -> None:
    w = World(
        [make_peer(P1, 1, v6=True), make_peer(P2, 2, v6=True), make_peer(P3, 3), make_peer(P4, 4, v6=True)],
        [make_group("exit", P1), make_group("all", P1, P2, P3, P4)],
        [make_route("ex", "0.0.0.0/0", net_id="exit", peer_groups=["exit"], groups=["all"])],
    )
    twin = MapRoute(
        id="ex:peer1-v6-default",
        net_id="exit-v6",
        network="::/0",
        domains=(),
        network_type=int(NetworkType.IPV6),
        peer_key="key-peer1",
        peer_id=P1,
        metric=9999,
        masquerade=False,
        keep_route=False,
        skip_auto_apply=False,
    )
    assert w.map(P2).routes[1] == twin
    assert w.route_ids(P2) == ["ex:peer1", "ex:peer1-v6-default"]
    assert w.route_ids(P3) == ["ex:peer1"]  # v4-only: no twin
    assert w.route_ids(P1) == ["ex:peer1", "ex:peer1-v6-default"]
    assert w.map(P1).rules == (
        RouteFirewallRule("ex:peer1", "0.0.0.0/0", src(2, 3, 4)),
        RouteFirewallRule("ex:peer1-v6-default", "::/0", src6(2, 4)),
    )
    # P2 loses IPv6 capability: its twin goes, and it leaves the v6 rule's sources
    w.step(PeerUpserted(make_peer(P2, 2)))
    assert w.route_ids(P2) == ["ex:peer1"]
    assert w.map(P1).rules[1].sources == src6(4)
    assert w.last[P2].self_changed is not None and w.last[P2].routes_removed == ("ex:peer1-v6-default",)


def test_v4_only_routing_peer_exit_route_has_no_v6_rule() -> None:
    w = World(
        [make_peer(P1, 1), make_peer(P2, 2, v6=True)],
        [make_group("exit", P1), make_group("all", P1, P2)],
        [make_route("ex", "0.0.0.0/0", net_id="exit", peer_groups=["exit"], groups=["all"])],
    )
    assert w.map(P1).rules == (RouteFirewallRule("ex:peer1", "0.0.0.0/0", src(2)),)
    assert w.route_ids(P1) == ["ex:peer1"]


def test_v6_routes_dropped_for_v4_only_peers() -> None:
    w = World(
        [make_peer(P1, 1, v6=True), make_peer(P2, 2, v6=True), make_peer(P3, 3), make_peer(P4, 4)],
        [make_group("r6", P1), make_group("r4only", P4), make_group("all", P1, P2, P3, P4)],
        [
            make_route("v6", "fd00:1234::/64", net_id="v6net", peer_groups=["r6"], groups=["all"]),
            make_route("v6b", "fd00:9999::/64", net_id="v6b", peer_groups=["r4only"], groups=["all"]),
        ],
    )
    assert w.route_ids(P2) == ["v6:peer1", "v6b:peer4"]
    assert w.map(P2).routes[0].network == "fd00:1234::/64"
    assert w.route_ids(P3) == []
    assert w.map(P1).rules == (RouteFirewallRule("v6:peer1", "fd00:1234::/64", src6(2)),)
    # a v4-only routing peer neither receives its own v6 route nor gets a rule for it
    assert w.route_ids(P4) == [] and w.map(P4).rules == ()
    w.step(PeerUpserted(make_peer(P3, 3, v6=True)))
    assert w.route_ids(P3) == ["v6:peer1", "v6b:peer4"]
    assert w.map(P1).rules[0].sources == src6(2, 3)


def test_ipv6_address_without_capability_is_not_published() -> None:
    w = World([make_peer(P1, 1), make_peer(P2, 2, v6=True)], [], [])
    assert w.map(P2).peers == (MapPeer(P1, "key-peer1", "100.64.0.1", None, P1, P1, ("192.0.2.1:51820",)),)
    assert w.map(P1).peers[0].ipv6 == "fd00::2"


# --- domain routes -----------------------------------------------------------------------------------


def test_domain_route_placeholder_and_dynamic_rules() -> None:
    w = World(
        [make_peer(P1, 1, v6=True), make_peer(P2, 2, v6=True), make_peer(P3, 3)],
        [make_group("r", P1), make_group("all", P1, P2, P3)],
        [
            make_route(
                "dns",
                None,
                net_id="dns",
                domains=["example.com", "xn--mnchen-3ya.de"],
                peer="peer1",
                groups=["all"],
            )
        ],
    )
    (entry,) = w.map(P2).routes
    assert (entry.id, entry.network, entry.domains, entry.network_type) == (
        "dns",
        "192.0.2.0/32",
        ("example.com", "xn--mnchen-3ya.de"),
        int(NetworkType.DOMAIN),
    )
    assert w.map(P3).routes == (entry,)  # the v4 placeholder is never dropped
    domains = ("example.com", "xn--mnchen-3ya.de")
    assert w.map(P1).rules == (
        RouteFirewallRule("dns", "192.0.2.0/32", src(2, 3), domains, True),
        RouteFirewallRule("dns", "192.0.2.0/32", src6(2), domains, True),
    )


# --- firewall rules ----------------------------------------------------------------------------------


def test_firewall_sources_are_distribution_members_narrowed_by_acgs_minus_self() -> None:
    w = World(
        [make_peer(p, i) for i, p in enumerate((P1, P2, P3, P4, P5), start=1)],
        [make_group("ha", P1, P2), make_group("dev", P1, P2, P3, P4), make_group("acg", P1, P2, P3, P5)],
        [make_route("r", "10.0.0.0/8", peer_groups=["ha"], groups=["dev"], acgs=["acg"])],
    )
    assert w.map(P1).rules == (RouteFirewallRule("r:peer1", "10.0.0.0/8", src(2, 3)),)
    assert w.map(P2).rules == (RouteFirewallRule("r:peer2", "10.0.0.0/8", src(1, 3)),)
    assert w.map(P3).rules == ()  # distribution peers get no rules
    rule = w.map(P1).rules[0]
    assert (rule.action, rule.protocol, rule.is_dynamic, rule.domains) == ("accept", "all", False, ())
    # no ACG: all distribution members may use it
    w.step(RouteUpserted(make_route("r", "10.0.0.0/8", peer_groups=["ha"], groups=["dev"])))
    assert w.map(P1).rules == (RouteFirewallRule("r:peer1", "10.0.0.0/8", src(2, 3, 4)),)
    # an ACG member joins the distribution group: its routing peers' rules follow
    w.set_members("dev", P1, P2, P3, P4, P5)
    assert w.map(P2).rules == (RouteFirewallRule("r:peer2", "10.0.0.0/8", src(1, 3, 4, 5)),)
    assert set(w.last) == {P1, P2, P5}
    # IP change of a source peer: every peer sees it, routing peers' rules follow
    w.step(PeerUpserted(dataclasses.replace(make_peer(P5, 5), ip=ipaddress.IPv4Address("100.64.1.5"))))
    assert "100.64.1.5/32" in w.map(P1).rules[0].sources
    assert w.last[P3].peers_upserted[0].ip == "100.64.1.5" and w.last[P3].rules is None


def test_disabled_route_has_no_rules_and_reaches_nobody() -> None:
    w = World(
        [make_peer(P1, 1), make_peer(P2, 2)],
        [make_group("all", P1, P2)],
        [make_route("r", "10.0.0.0/8", peer=P1, groups=["all"], enabled=False)],
    )
    assert w.map(P1).rules == () and w.map(P1).routes == () and w.map(P2).routes == ()


def test_route_with_no_routing_peer_or_unknown_groups() -> None:
    w = World(
        [make_peer(P1, 1)],
        [make_group("all", P1, "ghost")],
        [
            make_route("gone", peer="ghost", groups=["all"]),
            make_route("nogroups", peer_groups=["missing"], groups=["missing2"]),
        ],
    )
    assert w.map(P1).routes == ()
    # the ghost joins: it serves the route and P1 receives it
    d = w.step(PeerUpserted(make_peer("ghost", 9)))
    assert w.route_ids(P1) == ["gone"]
    assert w.map("ghost").rules == (RouteFirewallRule("gone", "192.168.0.0/16", src(1)),)
    assert apply_delta(None, d["ghost"]) == w.map("ghost")


# --- deltas ------------------------------------------------------------------------------------------


def test_metric_update_sends_one_shared_delta_to_receivers() -> None:
    peers = [make_peer(f"p{i}", i) for i in range(1, 11)]
    w = World(
        peers,
        [make_group("ha", "p1", "p2"), make_group("all", *(p.id for p in peers))],
        [make_route("r", "10.0.0.0/16", peer_groups=["ha"], groups=["all"], acgs=["all"])],
    )
    d = w.step(
        RouteUpserted(
            make_route("r", "10.0.0.0/16", peer_groups=["ha"], groups=["all"], acgs=["all"], metric=5)
        )
    )
    assert set(d) == {f"p{i}" for i in range(1, 11)}
    receivers = {id(d[f"p{i}"]) for i in range(3, 11)}
    assert len(receivers) == 1
    assert [r.metric for r in d["p3"].routes_upserted] == [5, 5]
    assert d["p3"].rules is None and d["p3"].peers_upserted == ()
    assert [r.id for r in d["p1"].routes_upserted] == ["r:p1"] and d["p1"].rules is None


def test_key_change_reaches_everyone_and_updates_route_entries() -> None:
    w = World(
        [make_peer(P1, 1), make_peer(P2, 2), make_peer(P3, 3)],
        [make_group("r", P1), make_group("d", P2)],
        [make_route("x", peer_groups=["r"], groups=["d"])],
    )
    d = w.step(PeerUpserted(make_peer(P1, 1, key="rotated")))
    assert set(d) == {P1, P2, P3}
    me = d[P1].self_changed
    assert me is not None and me.key == "rotated"
    assert d[P1].peers_upserted == ()
    assert d[P3].peers_upserted == (w.map(P2).peers[0],) and d[P3].routes_upserted == ()
    assert [r.peer_key for r in d[P2].routes_upserted] == ["rotated"]


def test_join_and_leave() -> None:
    w = World(
        [make_peer(P1, 1), make_peer(P2, 2)],
        [make_group("r", P1), make_group("d", P2)],
        [make_route("x", peer_groups=["r"], groups=["d"])],
    )
    # setup-key auto groups: the join and its group memberships arrive as one batch
    d = w.step(PeerUpserted(make_peer(P3, 3)), GroupUpserted(make_group("d", P2, P3)))
    assert apply_delta(None, d[P3]) == w.map(P3) and w.route_ids(P3) == ["x:peer1"]
    assert d[P2].peers_upserted == (w.map(P3).self_config,)
    rules = d[P1].rules
    assert rules is not None and rules[0].sources == src(2, 3)
    d = w.step(PeerDeleted(P1))
    assert P1 not in d
    assert d[P2].peers_removed == (P1,) and d[P2].routes_removed == ("x:peer1",)
    assert w.route_ids(P3) == []


def test_unchanged_wire_form_affects_nobody() -> None:
    w = World([make_peer(P1, 1), make_peer(P2, 2)], [], [])
    p = dataclasses.replace(make_peer(P1, 1), connected=True, last_seen=NOW, version="0.30.0")
    assert w.step(PeerUpserted(p)) == {}
    assert w.state.recomputed() == set()
    assert w.step() == {}


def test_maps_do_not_depend_on_input_order() -> None:
    peers = [make_peer(f"p{i}", i, v6=i % 2 == 0) for i in range(1, 9)]
    groups = [
        make_group("a", "p1", "p2", "p3"),
        make_group("b", "p4", "p5"),
        make_group("all", *(p.id for p in peers)),
    ]
    routes = [
        make_route("r1", "10.0.0.0/8", net_id="n", peer_groups=["a"], groups=["all"]),
        make_route("r2", "0.0.0.0/0", net_id="e", peer_groups=["b"], groups=["all"], acgs=["a"]),
        make_route("r3", None, net_id="d", domains=["example.com"], peer="p8", groups=["b", "a"]),
    ]
    one = AccountState(ACCOUNT, 3, peers, groups, routes)
    rng = random.Random(7)
    for _ in range(3):
        other = AccountState(
            ACCOUNT,
            3,
            rng.sample(peers, len(peers)),
            rng.sample(groups, len(groups)),
            rng.sample(routes, len(routes)),
        )
        for p in peers:
            assert other.network_map(p.id) == one.network_map(p.id)


# --- §2.7 / §5.4 TestRouteAccountPeersUpdate ---------------------------------------------------------


@pytest.fixture
def account() -> World:
    return World(
        [make_peer(p, i) for i, p in enumerate((P1, P2, P3, P4, P5), start=1)],
        [
            make_group("groupA"),
            make_group("groupB"),
            make_group("groupC"),
            make_group("routeGroup1", P1),
            make_group("routeGroup2", P2),
            make_group("routeGroup3", P5),
        ],
        [],
    )


def test_route_with_empty_groups_affects_nobody(account: World) -> None:
    r = make_route("r", "100.65.250.202/32", peer_groups=["groupA"], groups=["groupA"])
    assert account.step(RouteUpserted(r)) == {}
    assert account.state.recomputed() == set()


def test_route_of_unrelated_group_does_not_touch_peer1(account: World) -> None:
    r = make_route("r", "192.0.2.0/32", peer_groups=["routeGroup3"], groups=["routeGroup3"])
    assert set(account.step(RouteUpserted(r))) == {P5}
    assert account.state.recomputed() == {P5}


def test_route_create_update_delete_affect_its_peers(account: World) -> None:
    r = make_route("r", peer=P1, groups=["routeGroup1"])
    assert set(account.step(RouteUpserted(r))) == {P1}
    assert account.state.recomputed() == {P1}
    r2 = make_route("r", peer=P1, groups=["routeGroup1", "routeGroup2"])
    assert set(account.step(RouteUpserted(r2))) == {P1, P2}
    assert account.state.recomputed() == {P1, P2}
    assert set(account.step(RouteDeleted("r"))) == {P1, P2}
    assert account.state.recomputed() == {P1, P2}
    assert account.step(RouteDeleted("r")) == {}
    assert account.state.recomputed() == set()


def test_route_change_affects_acg_members_too(account: World) -> None:
    """§2.7 folds in the access-control groups; their members' maps do not change, so no delta."""
    r = make_route("r", peer=P1, groups=["routeGroup1"], acgs=["routeGroup2"])
    assert set(account.step(RouteUpserted(r))) == {P1}
    assert account.state.recomputed() == {P1, P2}


def test_group_update_makes_peer1_a_routing_peer(account: World) -> None:
    account.step(RouteUpserted(make_route("r", peer_groups=["groupB"], groups=["routeGroup1"])))
    change = GroupUpserted(make_group("groupB", P1))
    assert P1 in account.step(change)
    assert P1 in account.state.recomputed()


def test_group_update_makes_peer1_a_distribution_peer(account: World) -> None:
    account.step(GroupUpserted(make_group("groupB", P2)))
    account.step(RouteUpserted(make_route("r", peer_groups=["groupB"], groups=["groupC"])))
    change = GroupUpserted(make_group("groupC", P1))
    d = account.step(change)
    assert account.state.recomputed() == {P1, P2}  # P2: its rule sources
    assert account.route_ids(P1) == ["r:peer2"]
    assert d[P2].rules == (RouteFirewallRule("r:peer2", "192.168.0.0/16", src(1)),)


def test_create_and_delete_affect_routing_and_distribution_not_others() -> None:
    w = World(
        [make_peer(P1, 1), make_peer(P2, 2), make_peer(P3, 3)],
        [make_group("grpA", P1), make_group("grpB", P2)],
        [],
    )
    r = make_route("r", peer_groups=["grpA"], groups=["grpB"])
    assert set(w.step(RouteUpserted(r))) == {P1, P2}
    assert set(w.step(RouteDeleted("r"))) == {P1, P2}


def test_group_change_folds_to_the_opposite_side() -> None:
    w = World(
        [make_peer(f"peer{i}", i + 1) for i in range(5)],
        [make_group("g0", "peer0"), make_group("g1", "peer1"), make_group("g2", "peer2")],
        [make_route("r", peer_groups=["g0"], groups=["g1"], acgs=["g2"])],
    )

    def recomputed(*changes: MapChange) -> set[str]:
        """The peers a change makes the engine look at (applied to a copy of the world)."""
        copy = World(w.peers.values(), w.groups.values(), w.routes.values())
        copy.step(*changes)
        return copy.state.recomputed()

    # a new routing peer: itself and the distribution side
    assert recomputed(GroupUpserted(make_group("g0", "peer0", "peer3"))) == {"peer1", "peer3"}
    # a new ACG member: itself and the routing side
    assert recomputed(GroupUpserted(make_group("g2", "peer2", "peer4"))) == {"peer0", "peer4"}
    # a new distribution member: itself and the routing side
    assert recomputed(GroupUpserted(make_group("g1", "peer1", "peer4"))) == {"peer0", "peer4"}
    # single-peer route: a change on the distribution side reaches the routing peer
    w.step(RouteUpserted(make_route("s", "10.9.0.0/16", net_id="s", peer="peer4", groups=["g1"])))
    assert recomputed(GroupUpserted(make_group("g1"))) == {"peer0", "peer1", "peer4"}
    w.step(GroupUpserted(make_group("g1")))
    assert w.route_ids("peer1") == []
    w.step(GroupDeleted("g2"), GroupDeleted("g0"))
    assert w.map("peer0").routes == ()


def test_a_mixed_batch_recomputes_the_peers_it_reaches() -> None:
    w = World(
        [make_peer(P1, 1), make_peer(P2, 2), make_peer(P3, 3)],
        [make_group("r", P1), make_group("d", P2, P3)],
        [make_route("x", peer_groups=["r"], groups=["d"], acgs=["d"])],
    )
    changes: list[MapChange] = [
        PeerUpserted(make_peer(P1, 1, key="k2")),
        GroupUpserted(make_group("r", P1, P3)),
        RouteUpserted(make_route("x", "10.0.0.0/8", peer_groups=["r"], groups=["d"])),
        PeerDeleted(P2),
        PeerUpserted(make_peer(P4, 4)),
    ]
    w.step(*changes)
    assert w.state.recomputed() == {P1, P3, P4}
