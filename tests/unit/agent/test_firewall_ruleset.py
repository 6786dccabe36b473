"""The routing peer's firewall without root: the nft JSON document (its structure, and what it decides,
evaluated by a small interpreter of the subset it uses), served routes from real maps, forwarding
sysctls against a fake /proc/sys that copies values the way the kernel does, the requirement checks'
analysis, and the RoutingPeer reconciler against fakes. tests/e2e/test_firewall.py runs it for real."""

from __future__ import annotations

import asyncio
import ipaddress
import json
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from meshroute.agent.firewall import SECTION as NFT_SECTION
from meshroute.agent.firewall import RoutingPeer, restore_leftovers
from meshroute.agent.firewall import forwarding as fwd
from meshroute.agent.firewall.forwarding import IPV4_FORWARD, IPV6_FORWARD, Forwarding, SysctlError
from meshroute.agent.firewall.nft import NftError
from meshroute.agent.firewall.requirements import Hop, check, iptables_blockers, nft_blockers, probe_addresses
from meshroute.agent.firewall.ruleset import (
    FORWARD_CHAIN,
    FROM_OVERLAY_CHAIN,
    MASQUERADE_CHAIN,
    MSS_CHAIN,
    POSTROUTING_CHAIN,
    Element,
    ServedDomainRoute,
    ServedRoute,
    add_elements,
    build,
    served_domain_routes,
    served_routes,
    with_elements,
)
from meshroute.agent.ledger import Ledger
from meshroute.core.model import DOMAIN_PLACEHOLDER, Group, NetworkType, Peer, Route
from meshroute.core.networkmap import MapPeer, MapRoute, NetworkMap, RouteFirewallRule, compute_network_map

IF = "mr0"
NOW = datetime(2026, 1, 1, tzinfo=UTC)


# -- an interpreter for the subset of nft JSON that build() emits --------------------------------------


class Ruleset:
    """Evaluates a document for one packet, the way the kernel would: chains in order, sets, jumps."""

    def __init__(self, document: dict[str, Any]) -> None:
        self.sets: dict[str, list[Any]] = {}
        self.chains: dict[str, dict[str, Any]] = {}
        self.rules: dict[str, list[list[dict[str, Any]]]] = {}
        for command in document["nftables"]:
            ((verb, body),) = command.items()
            ((kind, obj),) = body.items()
            if verb != "add" or kind == "table":
                continue
            if kind == "set":
                # a domain route's address set: its elements' values (their timeouts do not matter here)
                self.sets[obj["name"]] = [e["elem"]["val"] if "elem" in e else e for e in obj.get("elem", [])]
            elif kind == "chain":
                self.chains[obj["name"]] = obj
                self.rules[obj["name"]] = []
            elif kind == "rule":
                self.rules[obj["chain"]].append(obj["expr"])

    def forward(self, src: str, dst: str, *, iif: str = IF, oif: str = "lan0", state: str = "new") -> str:
        """accept or drop, through every forward-hook base chain (mangle first, as priorities say)."""
        for name, chain in sorted(self.chains.items(), key=lambda c: c[1].get("prio", 0)):
            if chain.get("hook") == "forward" and self._run(name, src, dst, iif, oif, state) == "drop":
                return "drop"
        return "accept"

    def nat(self, src: str, dst: str, *, iif: str = IF, oif: str = "lan0") -> str:
        """masquerade or keep (the source address) for the first packet of a new flow."""
        verdict = self._run(POSTROUTING_CHAIN, src, dst, iif, oif, "new")
        return "masquerade" if verdict == "masquerade" else "keep"

    def _run(self, chain: str, src: str, dst: str, iif: str, oif: str, state: str) -> str | None:
        for expr in self.rules[chain]:
            verdict = self._rule(expr, src, dst, iif, oif, state)
            if verdict == "return":
                return None
            if verdict is not None:
                return verdict
        return None

    def _rule(
        self, expr: list[dict[str, Any]], src: str, dst: str, iif: str, oif: str, state: str
    ) -> str | None:
        for stmt in expr:
            if "match" in stmt:
                if not self._match(stmt["match"], src, dst, iif, oif, state):
                    return None
            elif "jump" in stmt:
                verdict = self._run(stmt["jump"]["target"], src, dst, iif, oif, state)
                if verdict is not None:
                    return verdict
                return None  # back from the jump: on with the next rule
            elif "mangle" in stmt:
                continue
            else:
                (verdict,) = stmt
                return verdict
        return None

    def _match(self, m: dict[str, Any], src: str, dst: str, iif: str, oif: str, state: str) -> bool:
        left, right, op = m["left"], m["right"], m["op"]
        version = ipaddress.ip_address(src).version
        value: Any
        if "meta" in left:
            key = left["meta"]["key"]
            value = {"iifname": iif, "oifname": oif, "nfproto": f"ipv{version}"}[key]
        elif "ct" in left:
            value = state
        elif "payload" in left:
            proto, field = left["payload"]["protocol"], left["payload"]["field"]
            if proto == "tcp":
                return False  # no TCP options here: the MSS rules never match in this interpreter
            if (proto == "ip") != (version == 4):
                return False  # an ip match on an IPv6 packet (or the reverse) never matches
            value = ipaddress.ip_address(src if field == "saddr" else dst)
        else:
            return False
        if isinstance(value, ipaddress.IPv4Address | ipaddress.IPv6Address):
            candidates = self.sets[right[1:]] if isinstance(right, str) and right.startswith("@") else [right]
            hit = any(value in _net(c) for c in candidates)
        elif op == "in":
            hit = value in right
        else:
            hit = value == right
        return hit if op in ("==", "in") else not hit


def _net(element: Any) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    if isinstance(element, dict):
        return ipaddress.ip_network(f"{element['prefix']['addr']}/{element['prefix']['len']}")
    return ipaddress.ip_network(element)


def route(rid: str, network: str, *sources: str, masquerade: bool = True) -> ServedRoute:
    return ServedRoute(rid, network, masquerade, tuple(sources))


def commands(document: dict[str, Any], verb: str, kind: str) -> list[dict[str, Any]]:
    return [c[verb][kind] for c in document["nftables"] if verb in c and kind in c[verb]]


def rules_of(document: dict[str, Any], chain: str) -> list[list[dict[str, Any]]]:
    return [r["expr"] for r in commands(document, "add", "rule") if r["chain"] == chain]


# -- document structure --------------------------------------------------------------------------------


def test_the_document_replaces_only_its_own_table_in_one_transaction() -> None:
    doc = build(IF, [route("r1", "10.0.0.0/24", "100.64.0.2/32")])
    first = doc["nftables"][:3]
    table = {"family": "inet", "name": "meshroute"}
    assert first == [{"add": {"table": table}}, {"delete": {"table": table}}, {"add": {"table": table}}]
    for command in doc["nftables"]:
        ((verb, body),) = command.items()
        ((_kind, obj),) = body.items()
        assert verb in ("add", "delete") and obj["family"] == "inet"
        assert obj.get("table", obj.get("name")) == "meshroute"  # nothing outside the table
    assert [c for c in doc["nftables"] if "delete" in c] == [{"delete": {"table": table}}]
    json.dumps(doc)  # it must travel as JSON


def test_building_twice_gives_the_same_document() -> None:
    routes = [
        route("b", "10.0.0.0/24", "100.64.0.3/32", "100.64.0.2/32"),
        route("a", "0.0.0.0/0", "100.64.0.2/32"),
    ]
    assert build(IF, routes) == build(IF, list(routes))
    assert build(IF, routes, table="other") != build(IF, routes)


def test_chains_hooks_and_priorities() -> None:
    doc = build(IF, [])
    chains = {c["name"]: c for c in commands(doc, "add", "chain")}
    assert set(chains) == {FORWARD_CHAIN, FROM_OVERLAY_CHAIN, POSTROUTING_CHAIN, MASQUERADE_CHAIN, MSS_CHAIN}
    assert (chains[FORWARD_CHAIN]["type"], chains[FORWARD_CHAIN]["hook"], chains[FORWARD_CHAIN]["prio"]) == (
        "filter",
        "forward",
        0,
    )
    assert (chains[POSTROUTING_CHAIN]["type"], chains[POSTROUTING_CHAIN]["prio"]) == ("nat", 100)
    assert (chains[MSS_CHAIN]["hook"], chains[MSS_CHAIN]["prio"]) == ("forward", -150)
    # our base chains never drop by policy: what is not ours stays the host's business
    assert all(c.get("policy", "accept") == "accept" for c in chains.values())
    assert "hook" not in chains[FROM_OVERLAY_CHAIN] and "hook" not in chains[MASQUERADE_CHAIN]


def test_with_no_route_served_everything_forwarded_from_the_overlay_is_dropped() -> None:
    rs = Ruleset(build(IF, []))
    assert rs.forward("100.64.0.2", "10.0.0.5") == "drop"
    assert rs.forward("fd00::2", "fc00::5") == "drop"
    assert rs.forward("100.64.0.2", "10.0.0.5", state="established") == "accept"  # replies by conntrack
    assert rs.forward("10.0.0.5", "100.64.0.2", iif="lan0", oif=IF) == "accept"  # not from the overlay
    assert rs.nat("100.64.0.2", "10.0.0.5") == "keep"


def test_one_source_is_a_plain_match_and_several_are_a_named_set() -> None:
    doc = build(
        IF,
        [
            route("one", "10.1.0.0/24", "100.64.0.2/32"),
            route("many", "10.2.0.0/24", "100.64.0.2/32", "100.64.0.7/32", "100.64.1.0/24"),
        ],
    )
    sets = commands(doc, "add", "set")
    assert [(s["name"], s["type"], s["flags"]) for s in sets] == [("r1_v4", "ipv4_addr", ["interval"])]
    assert sets[0]["elem"] == ["100.64.0.2", "100.64.0.7", {"prefix": {"addr": "100.64.1.0", "len": 24}}]
    saddr = {"payload": {"protocol": "ip", "field": "saddr"}}
    accepts = [e for e in rules_of(doc, FROM_OVERLAY_CHAIN) if {"accept": None} in e and len(e) == 3]
    assert {"match": {"op": "==", "left": saddr, "right": "100.64.0.2"}} in accepts[0]  # 10.1.0.0/24 "one"
    assert {"match": {"op": "==", "left": saddr, "right": "@r1_v4"}} in accepts[1]
    rs = Ruleset(doc)
    assert rs.forward("100.64.0.2", "10.1.0.9") == "accept"
    assert rs.forward("100.64.0.7", "10.1.0.9") == "drop"
    assert rs.forward("100.64.0.7", "10.2.0.9") == "accept"
    assert rs.forward("100.64.1.200", "10.2.0.9") == "accept"
    assert rs.forward("100.64.0.8", "10.2.0.9") == "drop"


def test_ipv6_routes_use_ip6_matches_and_v6_sets() -> None:
    doc = build(
        IF,
        [
            route("v6", "fc00:77::/64", "fd00::2/128", "fd00::3/128"),
            route("v6one", "fc00:78::/64", "fd00::2/128"),
        ],
    )
    assert [(s["name"], s["type"]) for s in commands(doc, "add", "set")] == [("r0_v6", "ipv6_addr")]
    rs = Ruleset(doc)
    assert rs.forward("fd00::3", "fc00:77::10") == "accept"
    assert rs.forward("fd00::4", "fc00:77::10") == "drop"
    assert rs.forward("fd00::3", "fc00:78::10") == "drop"
    assert rs.forward("fd00::2", "fc00:78::10") == "accept"
    assert rs.nat("fd00::2", "fc00:78::10") == "masquerade"


def test_a_route_with_no_sources_lets_nobody_through() -> None:
    doc = build(IF, [route("nobody", "10.0.0.0/24", masquerade=True)])
    assert not [e for e in rules_of(doc, FROM_OVERLAY_CHAIN) if {"accept": None} in e and len(e) > 2]
    rs = Ruleset(doc)
    assert rs.forward("100.64.0.2", "10.0.0.5") == "drop"
    assert rs.nat("100.64.0.2", "10.0.0.5") == "keep"  # and it decides no masquerade either


def test_a_narrower_route_decides_before_an_exit_node() -> None:
    routes = [
        route("exit", "0.0.0.0/0", "100.64.0.2/32", "100.64.0.3/32", masquerade=True),
        route("exit-v6-default", "::/0", "fd00::3/128", masquerade=True),
        route("lan", "10.77.0.0/24", "100.64.0.2/32", masquerade=False),
        route("host", "10.77.0.10/32", "100.64.0.3/32", masquerade=True),
    ]
    rs = Ruleset(build(IF, routes))
    # .3 may use the exit node, but the LAN route does not grant it: dropped there
    assert rs.forward("100.64.0.3", "10.77.0.20") == "drop"
    assert rs.forward("100.64.0.3", "203.0.113.10") == "accept"
    # ...except for the one host a still narrower route grants it
    assert rs.forward("100.64.0.3", "10.77.0.10") == "accept"
    assert rs.forward("100.64.0.2", "10.77.0.10") == "drop"
    assert rs.forward("100.64.0.2", "10.77.0.20") == "accept"
    assert rs.forward("100.64.0.4", "203.0.113.10") == "drop"
    assert rs.forward("fd00::3", "2001:db8::1") == "accept"
    assert rs.forward("fd00::2", "2001:db8::1") == "drop"
    # masquerade by the most specific route: the LAN keeps client addresses, the internet does not
    assert rs.nat("100.64.0.2", "10.77.0.20") == "keep"
    assert rs.nat("100.64.0.3", "10.77.0.10") == "masquerade"
    assert rs.nat("100.64.0.2", "203.0.113.10") == "masquerade"
    assert rs.nat("fd00::3", "2001:db8::1") == "masquerade"
    # only flows that came in on the overlay and leave elsewhere
    assert rs.nat("100.64.0.2", "203.0.113.10", iif="eth0") == "keep"
    assert rs.nat("100.64.0.2", "100.64.0.9", oif=IF) == "keep"


def test_rules_are_ordered_longest_prefix_first_whatever_the_input_order() -> None:
    routes = [
        route("a", "0.0.0.0/0", "100.64.0.2/32"),
        route("b", "10.0.0.0/8", "100.64.0.2/32"),
        route("c", "10.1.0.0/16", "100.64.0.2/32"),
    ]
    for order in (routes, routes[::-1]):
        doc = build(IF, order)
        comments = [r.get("comment") for r in commands(doc, "add", "rule") if r["chain"] == MASQUERADE_CHAIN]
        assert comments == ["c", "b", "a"]


def test_same_prefix_in_two_routes_adds_up_sources_and_masquerades_if_one_asks() -> None:
    routes = [
        route("keep", "10.0.0.0/24", "100.64.0.2/32", masquerade=False),
        route("masq", "10.0.0.0/24", "100.64.0.3/32", masquerade=True),
    ]
    rs = Ruleset(build(IF, routes))
    assert rs.forward("100.64.0.2", "10.0.0.5") == rs.forward("100.64.0.3", "10.0.0.5") == "accept"
    assert rs.forward("100.64.0.4", "10.0.0.5") == "drop"
    assert rs.nat("100.64.0.2", "10.0.0.5") == "masquerade"


def test_a_zero_length_source_means_anyone() -> None:
    rs = Ruleset(build(IF, [route("open", "10.0.0.0/24", "0.0.0.0/0")]))
    assert rs.forward("100.64.9.9", "10.0.0.5") == "accept"


@pytest.mark.parametrize(("mtu", "v4", "v6"), [(1280, 1240, 1220), (1420, 1380, 1360)])
def test_mss_clamp_for_syns_leaving_into_the_overlay(mtu: int, v4: int, v6: int) -> None:
    doc = build(IF, [], mtu=mtu)
    clamps = rules_of(doc, MSS_CHAIN)
    assert len(clamps) == 2
    for expr, (proto, mss) in zip(clamps, [("ipv4", v4), ("ipv6", v6)], strict=True):
        assert expr[0] == {"match": {"op": "==", "left": {"meta": {"key": "oifname"}}, "right": IF}}
        assert expr[1]["match"]["right"] == proto
        assert expr[2]["match"]["right"] == "syn"  # SYN set, RST not: SYN and SYN-ACK
        assert expr[3]["match"] == {
            "op": ">",
            "left": {"tcp option": {"name": "maxseg", "field": "size"}},
            "right": mss,
        }
        assert expr[4] == {
            "mangle": {"key": {"tcp option": {"name": "maxseg", "field": "size"}}, "value": mss}
        }


def test_rules_carry_route_ids_as_comments_within_nfts_limit() -> None:
    long_id = "x" * 300
    doc = build(
        IF, [route(long_id, "10.0.0.0/24", "100.64.0.2/32"), route('r;"odd', "10.1.0.0/24", "100.64.0.2/32")]
    )
    comments = [r.get("comment", "") for r in commands(doc, "add", "rule")]
    assert all(len(c.encode()) <= 128 for c in comments)
    assert any(c.startswith("xxxx") and c.endswith("...") for c in comments)
    assert 'r;"odd' in comments  # IDs never become identifiers: set names are positional


@pytest.mark.parametrize(
    ("interface", "table", "mtu"),
    [
        ("", "meshroute", 1280),
        ("a-very-long-interface-name", "meshroute", 1280),
        ("mr0", "bad name", 1280),
        ("mr0", "meshroute", 60),
    ],
)
def test_bad_arguments_are_refused(interface: str, table: str, mtu: int) -> None:
    with pytest.raises(ValueError):
        build(interface, [], table=table, mtu=mtu)


def test_sources_of_the_other_family_are_refused() -> None:
    with pytest.raises(ValueError, match="not all IPv4"):
        build(IF, [route("r", "10.0.0.0/24", "100.64.0.2/32", "fd00::2/128")])


# -- domain routes ---------------------------------------------------------------------------------------


def domain(rid: str, *sources: str, masquerade: bool = True, keep: bool = False) -> ServedDomainRoute:
    return ServedDomainRoute(rid, (f"{rid}.internal.test",), masquerade, keep, tuple(sources))


def test_domain_routes_get_empty_timeout_sets_and_rules_before_every_prefix() -> None:
    doc = build(
        IF,
        [route("lan", "10.77.0.0/24", "100.64.0.2/32", masquerade=False)],
        domains=[domain("app", "100.64.0.2/32", "100.64.0.3/32", "fd00::2/128"), domain("nobody")],
    )
    sets = {s["name"]: s for s in commands(doc, "add", "set")}
    assert sorted(sets) == ["d0_src_v4", "d0_v4", "d0_v6", "d1_v4", "d1_v6"]
    assert sets["d0_v4"]["type"] == "ipv4_addr" and sets["d0_v6"]["type"] == "ipv6_addr"
    assert all(sets[n]["flags"] == ["timeout"] and "elem" not in sets[n] for n in ("d0_v4", "d0_v6", "d1_v4"))
    assert sets["d0_src_v4"]["flags"] == ["interval"] and sets["d0_src_v4"]["comment"] == "app"
    rules = rules_of(doc, FROM_OVERLAY_CHAIN)
    assert rules[0][0]["match"]["left"] == {"ct": {"key": "state"}}
    # right after the conntrack accept: the domain route's two families (one source in v6: no set)
    assert rules[1][0]["match"]["right"] == "@d0_v4" and rules[1][1]["match"]["right"] == "@d0_src_v4"
    assert rules[2][0]["match"]["right"] == "@d0_v6" and rules[2][1]["match"]["right"] == "fd00::2"
    assert rules[3][0]["match"]["right"] == {"prefix": {"addr": "10.77.0.0", "len": 24}}
    assert not any("@d1_v4" in json.dumps(r) for r in rules)  # a route with no sources accepts nothing
    nat = rules_of(doc, MASQUERADE_CHAIN)
    assert [r[-1] for r in nat] == [{"masquerade": None}, {"masquerade": None}, {"return": None}]


def test_only_resolved_addresses_pass_and_the_domain_route_decides_nat_for_its_own_clients() -> None:
    routes = [route("lan", "10.77.0.0/24", "100.64.0.3/32", masquerade=False)]
    domains = [
        domain("app", "100.64.0.2/32", "fd00::2/128"),
        domain("wiki", "100.64.0.2/32", masquerade=False),
    ]
    doc = build(IF, routes, domains=domains)
    learned: dict[str, list[Element]] = {
        "d0_v4": [("10.77.0.20", 120), ("198.51.100.7", None)],
        "d0_v6": [("fc00::7", 60)],
    }
    rs = Ruleset(with_elements(doc, learned))
    assert rs.forward("100.64.0.2", "198.51.100.7") == "accept"
    assert rs.nat("100.64.0.2", "198.51.100.7") == "masquerade"
    assert rs.forward("fd00::2", "fc00::7") == "accept"
    # an address nobody resolved for the route: dropped, also from its own client
    assert rs.forward("100.64.0.2", "198.51.100.8") == "drop"
    assert rs.forward("100.64.0.3", "198.51.100.7") == "drop"  # not a source of the domain route
    assert rs.forward("100.64.0.2", "198.51.100.7", state="established") == "accept"
    # a resolved address inside a served prefix: the domain route for its client (masquerade) ...
    assert rs.forward("100.64.0.2", "10.77.0.20") == "accept"
    assert rs.nat("100.64.0.2", "10.77.0.20") == "masquerade"
    # ... and the prefix route, as before, for its own (no answer takes away what it grants)
    assert rs.forward("100.64.0.3", "10.77.0.20") == "accept" and rs.nat("100.64.0.3", "10.77.0.20") == "keep"
    assert rs.forward("100.64.0.2", "10.77.0.21") == "drop"
    # wiki learned nothing: its rules match nothing yet
    assert Ruleset(doc).forward("100.64.0.2", "198.51.100.7") == "drop"


def test_elements_are_not_part_of_the_built_document() -> None:
    domains = [domain("app", "100.64.0.2/32")]
    doc = build(IF, [], domains=domains)
    filled = with_elements(doc, {"d0_v4": [("10.77.0.20", 30)], "d0_v6": []})
    assert build(IF, [], domains=domains) == doc != filled
    assert "elem" not in json.dumps(doc)  # the input is untouched
    (d0,) = [s for s in commands(filled, "add", "set") if s["name"] == "d0_v4"]
    assert d0["elem"] == [{"elem": {"val": "10.77.0.20", "timeout": 30}}]
    # a change of the route set renames nothing of the prefix routes
    prefix_only = build(IF, [route("lan", "10.77.0.0/24", "100.64.0.2/32")])
    assert build(IF, [route("lan", "10.77.0.0/24", "100.64.0.2/32")], domains=[]) == prefix_only


def test_new_elements_are_added_and_known_ones_refreshed_with_add_delete_add() -> None:
    doc = add_elements(
        {"d1_v4": [("10.0.0.1", 90), ("10.0.0.2", None)]}, {"d0_v6": [("fc00::1", 5)]}, table="t"
    )
    verbs = [(verb, body["element"]["name"]) for c in doc["nftables"] for verb, body in c.items()]
    assert verbs == [("add", "d0_v6"), ("add", "d1_v4"), ("delete", "d0_v6"), ("add", "d0_v6")]
    assert doc["nftables"][1]["add"]["element"] == {
        "family": "inet",
        "table": "t",
        "name": "d1_v4",
        "elem": [{"elem": {"val": "10.0.0.1", "timeout": 90}}, "10.0.0.2"],
    }
    assert doc["nftables"][2]["delete"]["element"]["elem"] == ["fc00::1"]
    # new and refreshed in one set: one add of all, then the refreshed ones again
    both = add_elements({"d0_v4": [("10.0.0.1", 90)]}, {"d0_v4": [("10.0.0.2", 60)]})
    assert [next(iter(c)) for c in both["nftables"]] == ["add", "delete", "add"]
    assert len(both["nftables"][0]["add"]["element"]["elem"]) == 2
    assert add_elements({}) == {"nftables": []}


# -- served routes from real maps ------------------------------------------------------------------------


def make_peer(pid: str, n: int, *, v6: bool = False) -> Peer:
    return Peer(
        id=pid,
        account_id="acc",
        key=f"key-{pid}",
        ip=ipaddress.IPv4Address(f"100.64.0.{n}"),
        ipv6=ipaddress.IPv6Address(f"fd00::{n:x}"),
        name=pid,
        hostname=pid,
        dns_label=pid,
        created_at=NOW,
        ipv6_capable=v6,
    )


def make_route(rid: str, network: str | None, *, groups: Sequence[str] = ("clients",), **kw: Any) -> Route:
    if network is None:
        return Route(
            rid,
            "acc",
            f"net-{rid}",
            DOMAIN_PLACEHOLDER,
            NetworkType.DOMAIN,
            domains=["example.com"],
            groups=list(groups),
            enabled=True,
            metric=100,
            **kw,
        )
    net = ipaddress.ip_network(network)
    kind = NetworkType.IPV4 if net.version == 4 else NetworkType.IPV6
    return Route(rid, "acc", f"net-{rid}", net, kind, groups=list(groups), enabled=True, metric=100, **kw)


def routing_peer_map(routes: Sequence[Route], *, v6: bool = False) -> NetworkMap:
    peers = [
        make_peer("rp", 1, v6=v6),
        make_peer("c2", 2, v6=v6),
        make_peer("c3", 3, v6=v6),
        make_peer("other", 4),
    ]
    groups = [
        Group("clients", "acc", "clients", ["c2", "c3"]),
        Group("admins", "acc", "admins", ["c3"]),
        Group("gateways", "acc", "gateways", ["rp", "other"]),
    ]
    return compute_network_map("rp", peers, groups, routes, serial=1)


def test_served_routes_from_a_map() -> None:
    m = routing_peer_map(
        [
            make_route("lan", "10.77.0.0/24", peer="rp", masquerade=True),
            make_route("acl", "10.78.0.0/24", peer="rp", access_control_groups=["admins"]),
            make_route("group", "10.79.0.0/24", peer_groups=["gateways"]),
            make_route("theirs", "10.80.0.0/24", peer="other"),
            make_route("dns", None, peer="rp"),
            make_route("off", "10.81.0.0/24", peer="rp", groups=["nobody"]),
        ]
    )
    assert served_routes(m) == [
        ServedRoute("acl", "10.78.0.0/24", False, ("100.64.0.3/32",)),
        ServedRoute("group:rp", "10.79.0.0/24", False, ("100.64.0.2/32", "100.64.0.3/32")),
        ServedRoute("lan", "10.77.0.0/24", True, ("100.64.0.2/32", "100.64.0.3/32")),
        ServedRoute("off", "10.81.0.0/24", False, ()),
    ]


def test_served_domain_routes_from_a_map() -> None:
    m = routing_peer_map(
        [
            make_route("dns", None, peer="rp", masquerade=True),
            make_route("acl", None, peer="rp", access_control_groups=["admins"], keep_route=True),
            make_route("theirs", None, peer="other"),
            make_route("lan", "10.77.0.0/24", peer="rp"),
        ],
        v6=True,
    )
    assert served_domain_routes(m) == [
        ServedDomainRoute("acl", ("example.com",), False, True, ("100.64.0.3/32", "fd00::3/128")),
        ServedDomainRoute(
            "dns",
            ("example.com",),
            True,
            False,
            ("100.64.0.2/32", "100.64.0.3/32", "fd00::2/128", "fd00::3/128"),
        ),
    ]
    assert [r.route_id for r in served_routes(m)] == ["lan"]  # prefix routes as before
    assert served_domain_routes(m)[1].sources_of(6) == ("fd00::2/128", "fd00::3/128")


def test_served_exit_node_with_its_ipv6_twin() -> None:
    m = routing_peer_map(
        [
            make_route("exit", "0.0.0.0/0", peer="rp", masquerade=True),
            make_route("v6", "fc00:1::/64", peer="rp"),
        ],
        v6=True,
    )
    assert served_routes(m) == [
        ServedRoute("exit", "0.0.0.0/0", True, ("100.64.0.2/32", "100.64.0.3/32")),
        ServedRoute("exit-v6-default", "::/0", True, ("fd00::2/128", "fd00::3/128")),
        ServedRoute("v6", "fc00:1::/64", False, ("fd00::2/128", "fd00::3/128")),
    ]


def test_served_routes_collapse_entries_and_grant_only_accept_all_rules() -> None:
    me = MapPeer("rp", "key-rp", "100.64.0.1", None, "rp", "rp")
    entry = MapRoute(
        "r", "net", "10.0.0.0/24", (), int(NetworkType.IPV4), "key-rp", "rp", 100, False, False, False
    )
    m = NetworkMap(
        serial=1,
        self_config=me,
        peers=(),
        routes=(entry, replace(entry, masquerade=True), replace(entry, id="x", network="not a prefix")),
        rules=(
            RouteFirewallRule("r", "10.0.0.0/24", ("100.64.0.3/32", "fd00::3/128", "junk")),
            RouteFirewallRule("r", "10.0.0.0/24", ("100.64.0.2/32", "100.64.0.3/32")),
            RouteFirewallRule("r", "10.0.0.0/24", ("100.64.0.9/32",), protocol="tcp"),
            RouteFirewallRule("r", "10.0.0.0/24", ("100.64.0.8/32",), action="drop"),
        ),
    )
    assert served_routes(m) == [ServedRoute("r", "10.0.0.0/24", True, ("100.64.0.2/32", "100.64.0.3/32"))]


def test_overlapping_sources_are_merged_for_the_interval_set() -> None:
    me = MapPeer("rp", "key-rp", "100.64.0.1", None, "rp", "rp")
    entry = MapRoute(
        "r", "net", "10.0.0.0/24", (), int(NetworkType.IPV4), "key-rp", "rp", 100, False, False, False
    )
    rule = RouteFirewallRule("r", "10.0.0.0/24", ("100.64.0.0/24", "100.64.0.2/32", "100.64.1.0/24"))
    m = NetworkMap(1, me, (), (entry,), (rule,))
    assert served_routes(m)[0].sources == ("100.64.0.0/24", "100.64.1.0/24")


# -- forwarding against a fake /proc/sys -------------------------------------------------------------------


class FakeSysctl:
    """/proc/sys as the kernel behaves: the main forwarding value is copied to every interface."""

    def __init__(self, interfaces: Sequence[str] = ("lo", "eth0", "lan0", IF), *, ipv6: bool = True) -> None:
        self.values: dict[str, str] = {IPV4_FORWARD: "0"}
        for name in ("all", "default", *interfaces):
            self.values[f"net/ipv4/conf/{name}/forwarding"] = "0"
            if ipv6:
                self.values[f"net/ipv6/conf/{name}/forwarding"] = "0"
                self.values[f"net/ipv6/conf/{name}/accept_ra"] = "1"
        self.read_only = False
        self.writes: list[tuple[str, str]] = []

    def read(self, key: str) -> str | None:
        return self.values.get(key)

    def write(self, key: str, value: str) -> None:
        if key not in self.values or self.read_only:
            raise SysctlError(f"cannot set {key}")
        self.writes.append((key, value))
        if key in (IPV4_FORWARD, "net/ipv4/conf/all/forwarding", IPV6_FORWARD):
            conf = "net/ipv4/conf/" if "ipv4" in key else "net/ipv6/conf/"
            for k in self.values:
                if k.startswith(conf) and k.endswith("/forwarding"):
                    self.values[k] = value
            if "ipv4" in key:
                self.values[IPV4_FORWARD] = value
        else:
            self.values[key] = value

    def names(self, directory: str) -> list[str]:
        prefix = directory + "/"
        return sorted({k[len(prefix) :].split("/")[0] for k in self.values if k.startswith(prefix)})


def test_forwarding_on_and_back_exactly(tmp_path: Path) -> None:
    sysctl = FakeSysctl()
    sysctl.values["net/ipv4/conf/eth0/forwarding"] = "1"  # set on one interface only: must survive
    sysctl.values["net/ipv6/conf/lan0/accept_ra"] = "0"
    before = dict(sysctl.values)
    f = Forwarding(Ledger(tmp_path), IF, sysctl)
    changes = f.want(True, True)
    assert sysctl.values[IPV4_FORWARD] == "1" and sysctl.values[IPV6_FORWARD] == "1"
    assert (
        sysctl.values["net/ipv6/conf/eth0/accept_ra"] == "2"
        and sysctl.values["net/ipv6/conf/default/accept_ra"] == "2"
    )
    assert sysctl.values["net/ipv6/conf/lan0/accept_ra"] == "0"  # only 1 -> 2
    assert (
        sysctl.values[f"net/ipv6/conf/{IF}/accept_ra"] == "1"
        and sysctl.values["net/ipv6/conf/lo/accept_ra"] == "1"
    )
    assert "net.ipv4.ip_forward=1" in changes and "net.ipv6.conf.all.forwarding=1" in changes
    # the accept_ra bump comes before forwarding goes on (no moment without the RA default route)
    order = [k for k, _ in sysctl.writes]
    assert order.index("net/ipv6/conf/eth0/accept_ra") < order.index(IPV6_FORWARD)
    assert f.want(True, True) == []  # nothing more to do
    f.want(True, False)
    assert sysctl.values[IPV6_FORWARD] == "0" and sysctl.values["net/ipv6/conf/eth0/accept_ra"] == "1"
    f.release()
    assert sysctl.values == before
    assert not (tmp_path / "installed.json").exists()  # nothing held, nothing recorded


def test_forwarding_already_on_is_left_alone(tmp_path: Path) -> None:
    sysctl = FakeSysctl()
    sysctl.write(IPV4_FORWARD, "1")
    sysctl.writes.clear()
    f = Forwarding(Ledger(tmp_path), IF, sysctl)
    assert f.want(True, False) == []
    assert f.release() == []
    assert sysctl.writes == [] and sysctl.values[IPV4_FORWARD] == "1"


def test_a_crash_is_undone_at_the_next_start(tmp_path: Path) -> None:
    sysctl = FakeSysctl()
    before = dict(sysctl.values)
    Forwarding(Ledger(tmp_path), IF, sysctl).want(True, True)
    recorded = json.loads((tmp_path / "installed.json").read_text())[fwd.SECTION]
    assert recorded["ipv4"][IPV4_FORWARD] == "0" and recorded["ipv6"]["net/ipv6/conf/eth0/accept_ra"] == "1"
    # the process dies here; a new one starts
    changes = fwd.restore_leftovers(Ledger(tmp_path), sysctl)
    assert sysctl.values == before
    assert "net.ipv4.ip_forward=0" in changes
    assert fwd.restore_leftovers(Ledger(tmp_path), sysctl) == [] or sysctl.values == before  # idempotent


def test_the_record_is_written_before_anything_changes(tmp_path: Path) -> None:
    sysctl = FakeSysctl()
    ledger = Ledger(tmp_path)

    class Watching(FakeSysctl):
        def write(self, key: str, value: str) -> None:
            assert fwd.SECTION in ledger.load(), "changed before recorded"
            sysctl.write(key, value)

        def read(self, key: str) -> str | None:
            return sysctl.read(key)

        def names(self, directory: str) -> list[str]:
            return sysctl.names(directory)

    Forwarding(ledger, IF, Watching()).want(True, True)


def test_ipv6_trouble_never_stops_ipv4(tmp_path: Path) -> None:
    sysctl = FakeSysctl(ipv6=False)
    f = Forwarding(Ledger(tmp_path), IF, sysctl)
    f.want(True, True)
    assert sysctl.values[IPV4_FORWARD] == "1" and f.held == {"ipv4"}


def test_a_refused_write_leaves_nothing_held(tmp_path: Path) -> None:
    sysctl = FakeSysctl()
    sysctl.read_only = True
    f = Forwarding(Ledger(tmp_path), IF, sysctl)
    with pytest.raises(SysctlError):
        f.want(True, False)
    assert f.held == set() and fwd.SECTION not in Ledger(tmp_path).load()


# -- requirement checks: the analysis ------------------------------------------------------------------


def nft_listing(*items: dict[str, Any]) -> dict[str, Any]:
    return {"nftables": [{"metainfo": {"json_schema_version": 1}}, *items]}


def chain(
    table: str, name: str, *, family: str = "inet", hook: str | None = "forward", policy: str = "accept"
) -> dict[str, Any]:
    body: dict[str, Any] = {"family": family, "table": table, "name": name}
    if hook:
        body.update(type="filter", hook=hook, prio=0, policy=policy)
    return {"chain": body}


def rule(table: str, chain_name: str, *expr: dict[str, Any], family: str = "inet") -> dict[str, Any]:
    return {"rule": {"family": family, "table": table, "chain": chain_name, "expr": list(expr)}}


def meta(key: str, value: str) -> dict[str, Any]:
    return {"match": {"op": "==", "left": {"meta": {"key": key}}, "right": value}}


ESTABLISHED = {"match": {"op": "in", "left": {"ct": {"key": "state"}}, "right": ["established", "related"]}}


def test_a_forward_policy_drop_elsewhere_is_reported() -> None:
    listing = nft_listing(chain("filter", "forward", policy="drop"))
    (problem,) = nft_blockers(listing, IF, {4})
    assert "inet filter" in problem and 'iifname "mr0" accept' in problem


def test_a_drop_policy_that_lets_the_overlay_through_is_fine_also_via_a_jump() -> None:
    listing = nft_listing(
        chain("filter", "FORWARD", family="ip", policy="drop"),
        chain("filter", "DOCKER-USER", family="ip", hook=None),
        rule("filter", "FORWARD", {"jump": {"target": "DOCKER-USER"}}, family="ip"),
        rule("filter", "DOCKER-USER", meta("iifname", IF), {"counter": None}, {"accept": None}, family="ip"),
        rule("filter", "DOCKER-USER", ESTABLISHED, {"accept": None}, family="ip"),
    )
    assert nft_blockers(listing, IF, {4}) == []
    # only inbound accepted: the replies would still die
    half = nft_listing(
        *[i for i in listing["nftables"][1:] if i.get("rule", {}).get("expr", [None])[0] != ESTABLISHED]
    )
    assert len(nft_blockers(half, IF, {4})) == 1


def test_an_accept_narrower_than_the_interface_does_not_count() -> None:
    tcp22 = {"match": {"op": "==", "left": {"payload": {"protocol": "tcp", "field": "dport"}}, "right": 22}}
    listing = nft_listing(
        chain("filter", "forward", policy="drop"),
        rule("filter", "forward", meta("iifname", IF), tcp22, {"accept": None}),
        rule("filter", "forward", ESTABLISHED, {"accept": None}),
    )
    assert len(nft_blockers(listing, IF, {4})) == 1


def test_a_final_reject_counts_as_a_drop_and_other_tables_families_and_hooks_do_not() -> None:
    reject = rule("firewalld", "filter_FORWARD", {"reject": {"type": "icmpx", "expr": "admin-prohibited"}})
    assert len(nft_blockers(nft_listing(chain("firewalld", "filter_FORWARD"), reject), IF, {4})) == 1
    assert nft_blockers(nft_listing(chain("meshroute", "forward", policy="drop")), IF, {4}) == []  # ours
    assert nft_blockers(nft_listing(chain("f", "fw", family="ip6", policy="drop")), IF, {4}) == []
    assert len(nft_blockers(nft_listing(chain("f", "fw", family="ip6", policy="drop")), IF, {6})) == 1
    assert nft_blockers(nft_listing(chain("f", "in", hook="input", policy="drop")), IF, {4}) == []
    assert nft_blockers(nft_listing(chain("f", "fw", family="bridge", policy="drop")), IF, {4}) == []


def test_iptables_legacy_listing() -> None:
    head = ["-P INPUT ACCEPT", "-P FORWARD DROP", "-N DOCKER-USER", "-A FORWARD -j DOCKER-USER"]
    docker = "\n".join([*head, "-A DOCKER-USER -j RETURN"])
    (problem,) = iptables_blockers(docker, IF)
    assert "iptables -I FORWARD -i mr0 -j ACCEPT" in problem
    accepts = [
        f"-A DOCKER-USER -i {IF} -j ACCEPT",
        f"-A DOCKER-USER -o {IF} -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT",
    ]
    fixed = "\n".join([*head, *accepts, "-A DOCKER-USER -j RETURN"])
    assert iptables_blockers(fixed, IF) == []
    assert iptables_blockers("-P FORWARD ACCEPT\n", IF) == []
    assert len(iptables_blockers("-P FORWARD ACCEPT\n-A FORWARD -j DROP\n", IF)) == 1


def test_probe_addresses() -> None:
    assert probe_addresses("10.77.0.0/24") == ["10.77.0.1", "10.77.0.254", "10.77.0.0"]
    assert probe_addresses("10.77.0.9/32") == ["10.77.0.9"]
    assert probe_addresses("10.77.0.8/30") == ["10.77.0.9", "10.77.0.10", "10.77.0.8"]
    assert probe_addresses("fc00:77::/127") == ["fc00:77::"]
    assert probe_addresses("fc00:77::/64")[0] == "fc00:77::1"


class FakeLookup:
    def __init__(self, routes: dict[str, Hop], defaults: dict[int, list[Hop]] | None = None) -> None:
        self.routes = routes
        self.default = defaults or {}

    async def get(self, address: str) -> Hop | None:
        return self.routes.get(address)

    async def defaults(self, version: int) -> list[Hop]:
        return self.default.get(version, [])


class FakeNft:
    def __init__(self) -> None:
        self.ruleset: dict[str, Any] = nft_listing()
        self.applied: list[dict[str, Any]] = []
        self.removed: list[str] = []
        self.fail: str | None = None

    async def apply(self, document: dict[str, Any]) -> None:
        if self.fail:
            raise NftError(self.fail)
        self.applied.append(document)

    async def remove(self, table: str = "meshroute", family: str = "inet") -> bool:
        self.removed.append(f"{family} {table}")
        return True

    async def exists(self, table: str, family: str = "inet") -> bool:
        return bool(self.applied)

    async def list_ruleset(self) -> dict[str, Any]:
        return self.ruleset


def test_checks_pass_and_fail_with_actionable_details() -> None:
    asyncio.run(_checks_pass_and_fail_with_actionable_details())


async def _checks_pass_and_fail_with_actionable_details() -> None:
    sysctl, nft = FakeSysctl(), FakeNft()
    routes = [
        route("lan", "10.77.0.0/24", "100.64.0.2/32"),
        route("loop", "10.98.0.0/24"),
        route("none", "10.99.0.0/24"),
        route("exit", "0.0.0.0/0"),
    ]
    own = Hop("lo", local=True)  # the first host is the peer's own address: the next one decides
    lookup = FakeLookup(
        {"10.77.0.1": own, "10.77.0.254": Hop("lan0"), "10.98.0.1": Hop(IF)},
        {4: [Hop("wan0", "203.0.113.254")]},
    )
    checks = {
        c.name: c
        for c in await check(routes, IF, sysctl=sysctl, nft=nft, lookup=lookup, proc_net=Path("/nonexistent"))
    }
    assert list(checks) == [
        "forwarding-ipv4",
        "path 0.0.0.0/0",
        "path 10.77.0.0/24",
        "path 10.98.0.0/24",
        "path 10.99.0.0/24",
        "firewall",
    ]
    assert (
        not checks["forwarding-ipv4"].ok
        and "sysctl -w net.ipv4.ip_forward=1" in checks["forwarding-ipv4"].detail
    )
    assert checks["path 10.77.0.0/24"].ok and "dev lan0" in checks["path 10.77.0.0/24"].detail
    assert not checks["path 10.98.0.0/24"].ok and "goes back into mr0" in checks["path 10.98.0.0/24"].detail
    assert (
        not checks["path 10.99.0.0/24"].ok and "no route to 10.99.0.1" in checks["path 10.99.0.0/24"].detail
    )
    assert checks["path 0.0.0.0/0"].ok and "via 203.0.113.254 dev wan0" in checks["path 0.0.0.0/0"].detail
    assert checks["firewall"].ok
    sysctl.write(IPV4_FORWARD, "1")
    nft.ruleset = nft_listing(chain("filter", "forward", policy="drop"))
    lookup.default = {4: [Hop(IF)]}
    checks = {
        c.name: c
        for c in await check(routes, IF, sysctl=sysctl, nft=nft, lookup=lookup, proc_net=Path("/nonexistent"))
    }
    assert checks["forwarding-ipv4"].ok
    assert not checks["firewall"].ok and "inet filter" in checks["firewall"].detail
    assert not checks["path 0.0.0.0/0"].ok and "goes into mr0" in checks["path 0.0.0.0/0"].detail
    assert await check([], IF, sysctl=sysctl, nft=nft, lookup=lookup) == []


# -- the reconciler ------------------------------------------------------------------------------------------


def served_map(*routes: Route) -> NetworkMap:
    return routing_peer_map(list(routes))


def test_routing_peer_applies_only_changes_and_orders_forwarding_around_the_ruleset(tmp_path: Path) -> None:
    asyncio.run(_routing_peer_applies_only_changes_and_orders_forwarding_around_the_ruleset(tmp_path))


async def _routing_peer_applies_only_changes_and_orders_forwarding_around_the_ruleset(tmp_path: Path) -> None:
    nft, sysctl, ledger = FakeNft(), FakeSysctl(), Ledger(tmp_path)
    before = dict(sysctl.values)
    peer = RoutingPeer(ledger, IF, nft=nft, sysctl=sysctl)
    assert await peer.apply(served_map()) is True  # the default-deny table, even when serving nothing
    assert sysctl.values[IPV4_FORWARD] == "0"
    lan = make_route("lan", "10.77.0.0/24", peer="rp", masquerade=True)
    assert await peer.apply(served_map(lan)) is True
    assert sysctl.values[IPV4_FORWARD] == "1"
    assert await peer.apply(served_map(lan)) is False
    assert len(nft.applied) == 2
    assert ledger.load()[NFT_SECTION] == {"family": "inet", "table": "meshroute"}
    nft.fail = "Error: boom"
    with pytest.raises(NftError):
        await peer.apply(served_map())  # the route went away, the new ruleset failed...
    assert sysctl.values[IPV4_FORWARD] == "0"  # ...but forwarding went off before it
    nft.fail = None
    await peer.apply(served_map())
    await peer.stop()
    assert nft.removed == ["inet meshroute"] and sysctl.values == before
    assert not (tmp_path / "installed.json").exists()


def test_restore_leftovers_after_a_crash(tmp_path: Path) -> None:
    asyncio.run(_restore_leftovers_after_a_crash(tmp_path))


async def _restore_leftovers_after_a_crash(tmp_path: Path) -> None:
    nft, sysctl = FakeNft(), FakeSysctl()
    before = dict(sysctl.values)
    peer = RoutingPeer(Ledger(tmp_path), IF, nft=nft, sysctl=sysctl)
    await peer.apply(served_map(make_route("lan", "10.77.0.0/24", peer="rp")))
    # killed: nothing stopped
    done = await restore_leftovers(Ledger(tmp_path), nft=nft, sysctl=sysctl)
    assert "nftables table inet meshroute" in done and "sysctl net.ipv4.ip_forward=0" in done
    assert sysctl.values == before
