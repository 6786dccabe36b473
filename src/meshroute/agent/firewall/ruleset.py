"""The routing peer's nftables ruleset, built as an nft JSON document from the routes it serves. Pure.

One ``inet`` table (default name ``meshroute``) holds everything; nothing outside it is ever touched.
The document *replaces* the table in one transaction (``add table``, ``delete table``, then the
table with its sets, chains and rules), so applying it twice gives the same ruleset, and a failed
apply leaves the previous one in place (nft transactions are atomic).

Layout (``IF`` is the overlay interface, e.g. ``mr0``; ``P`` a served prefix)::

    table inet meshroute {
        set r<i>_v4 / r<i>_v6      { type ipv4_addr|ipv6_addr; flags interval; }
                                   # route i's allowed sources, when it has more than one
        set d<j>_v4 / d<j>_v6      { type ipv4_addr|ipv6_addr; flags timeout; }
                                   # domain route j's resolved addresses (filled by its DNS forwarder)
        set d<j>_src_v4 / _src_v6  { ...; flags interval; }   # its allowed sources, as r<i>_v4
        chain forward {            # type filter hook forward priority filter; policy accept
            iifname IF jump from_overlay
        }
        chain from_overlay {       # every packet that came in on the overlay and is forwarded
            ct state established,related accept
            # per served domain route, in route ID order (no drop after them, see below):
            ip daddr @d<j>_v4 ip saddr @d<j>_src_v4 accept
            ip6 daddr @d<j>_v6 ip6 saddr @d<j>_src_v6 accept
            # per served prefix, longest prefix first:
            ip daddr P ip saddr @r<i>_v4 accept     # (ip saddr S for a single source; no accept
            ip daddr P drop                         #  at all when the route has no sources)
            ...
            drop                   # the reference's default-deny for forwarded overlay traffic
        }
        chain postrouting {        # type nat hook postrouting priority srcnat; policy accept
            iifname IF oifname != IF jump nat_from_overlay
        }
        chain nat_from_overlay {   # the first packet of each new flow from the overlay
            # per served domain route with sources, those with Masquerade first:
            ip daddr @d<j>_v4 ip saddr @d<j>_src_v4 masquerade   # (return without Masquerade)
            # per served prefix, longest prefix first:
            ip daddr P masquerade  # at least one route to P has Masquerade
            ip daddr P return      # none has: the source address is kept
        }
        chain mss_clamp {          # type filter hook forward priority mangle; policy accept
            oifname IF meta nfproto ipv4 tcp flags & (syn | rst) == syn
                tcp option maxseg size > MTU-40 tcp option maxseg size set MTU-40
            oifname IF meta nfproto ipv6 ... MTU-60
        }
    }

Why this shape:

- Longest prefix first, in both chains, with a ``drop`` (filter) or a verdict (nat) closing each
  prefix: the most specific route decides alone, so an exit node's ``0.0.0.0/0`` cannot let through
  what a narrower route denies, and a LAN route without Masquerade keeps the client's address even
  when an exit node with Masquerade is served too. A default route (``/0``) is matched by family
  (``meta nfproto``) rather than by a zero-length prefix.
- Only traffic that *arrives* on the overlay is filtered; return traffic is accepted by conntrack
  (``ct state established,related``), and traffic towards the overlay that did not come from it is
  left to the host's own policy (as the reference does).
- Masquerade is decided in the nat postrouting chain by ``iifname``, which nftables allows there; the
  reference needs prerouting marks (0x1BD21/0x1BD22) only because iptables cannot match ``-i`` in
  POSTROUTING.
- Several routes with the same prefix: each adds its accept rule (so their sources add up), and the
  prefix is masqueraded if any of them with sources asks for it (reachability first; the forward
  filter already decided who may pass).
- Every name is one nft's text syntax accepts too (not ``masquerade``, ``fwd``...), so that
  ``nft list ruleset > file; nft -f file`` round-trips.
- Set names come from the route's position in ``routes`` (``r0_v4``...) or ``domains`` (``d0_v4``...),
  never from route IDs, which need not be valid nft identifiers; each rule carries the route ID as
  its comment.

Domain routes (``ServedDomainRoute``; agent/dns/serving.py runs their DNS forwarder):

- A resolved address is a host (/32, /128), more specific than any prefix, so the domain rules come
  first in both chains. In the filter they only *accept* (the route's sources to the addresses its
  forwarder resolved for it): nothing else to those addresses is accepted by them, so a client that
  routes an address by hand that was not resolved for it is dropped, unless a served prefix route
  grants it that address anyway (no DNS answer can take away what a static route grants). In the
  nat chain they decide for their own sources only (``ip saddr`` in the rule): for them the most
  specific route decides, as for prefixes; masquerading routes go first, so a client of two domain
  routes with one address is masqueraded if either asks (as for two routes of one prefix).
- The address sets have ``flags timeout``: elements carry their own timeouts (answer TTL + grace;
  none with KeepRoute) and the kernel expires them. ``build`` leaves them empty: the caller adds the
  elements it learned (``with_elements``), so a rebuilt table keeps them and comparing two built
  documents compares the rule structure only. ``add_elements`` is what a DNS answer adds.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from meshroute.core.model import NetworkType
from meshroute.core.networkmap.types import RULE_ACTION_ACCEPT, RULE_PROTOCOL_ALL, NetworkMap

FAMILY = "inet"
DEFAULT_TABLE = "meshroute"
DEFAULT_MTU = 1280
FORWARD_CHAIN = "forward"
FROM_OVERLAY_CHAIN = "from_overlay"
POSTROUTING_CHAIN = "postrouting"
MASQUERADE_CHAIN = "nat_from_overlay"
MSS_CHAIN = "mss_clamp"
# TCP MSS = MTU minus the IP and TCP headers without options
MSS_OVERHEAD = {4: 40, 6: 60}
PRIORITY_FILTER = 0
PRIORITY_MANGLE = -150
PRIORITY_SRCNAT = 100
MAX_COMMENT = 128  # nft's limit on a rule comment (bytes)

_TABLE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
_MAX_IFNAME = 15

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Document = dict[str, Any]
# one element of a domain route's address set: (address, timeout in seconds; None: no timeout)
Element = tuple[str, int | None]


@dataclass(frozen=True, slots=True)
class ServedRoute:
    """A route this peer serves: traffic from ``sources`` to ``network`` is forwarded (and masqueraded
    when ``masquerade``). ``sources`` are sorted CIDRs of the network's family; empty = nobody."""

    route_id: str
    network: str
    masquerade: bool
    sources: tuple[str, ...]

    @property
    def prefix(self) -> Network:
        return ipaddress.ip_network(self.network, strict=False)


@dataclass(frozen=True, slots=True)
class ServedDomainRoute:
    """A domain route this peer serves: its DNS forwarder resolves ``domains`` for ``sources`` (sorted
    CIDRs, IPv4 and IPv6; empty = nobody), and traffic from them to what it resolved is forwarded."""

    route_id: str
    domains: tuple[str, ...]
    masquerade: bool
    keep_route: bool
    sources: tuple[str, ...]

    def sources_of(self, version: int) -> tuple[str, ...]:
        return tuple(s for s in self.sources if ipaddress.ip_network(s, strict=False).version == version)


def served_routes(m: NetworkMap) -> list[ServedRoute]:
    """The IPv4/IPv6 routes this peer serves (exit nodes included), sorted by route ID.

    Domain routes are left out (``served_domain_routes``). Sources come from the map's firewall rules
    by route ID; only ``accept`` rules for all protocols grant anything (the
    server sends no other kind yet; an unknown kind grants nothing rather than too much). Several map
    entries of one route ID become one served route (sources united, masquerade if any asks for it).
    """
    me = m.self_config.key
    granted: dict[str, set[str]] = {}
    for rule in m.rules:
        if rule.is_dynamic or rule.action != RULE_ACTION_ACCEPT or rule.protocol != RULE_PROTOCOL_ALL:
            continue
        granted.setdefault(rule.route_id, set()).update(rule.sources)
    found: dict[str, tuple[Network, bool]] = {}
    for r in m.routes:
        if r.peer_key != me or r.network_type == NetworkType.DOMAIN:
            continue
        try:
            prefix = ipaddress.ip_network(r.network, strict=False)
        except ValueError:
            continue  # the server validates prefixes; a bad one is nothing to serve
        seen = found.get(r.id)
        if seen is not None and seen[0] != prefix:
            continue  # one ID, two prefixes: cannot happen with our server; keep the first
        found[r.id] = (prefix, r.masquerade or (seen is not None and seen[1]))
    return [
        ServedRoute(rid, str(prefix), masq, _sources(granted.get(rid, ()), prefix.version))
        for rid, (prefix, masq) in sorted(found.items())
    ]


def served_domain_routes(m: NetworkMap) -> list[ServedDomainRoute]:
    """The domain routes this peer serves, sorted by route ID, with their sources from the map's
    dynamic firewall rules (accept, all protocols, as for prefix routes). Several map entries of one
    route ID become one (domains united; masquerade and keep-route if any asks for it)."""
    me = m.self_config.key
    granted: dict[str, set[str]] = {}
    for rule in m.rules:
        if rule.is_dynamic and rule.action == RULE_ACTION_ACCEPT and rule.protocol == RULE_PROTOCOL_ALL:
            granted.setdefault(rule.route_id, set()).update(rule.sources)
    found: dict[str, tuple[set[str], bool, bool]] = {}
    for r in m.routes:
        if r.peer_key != me or r.network_type != NetworkType.DOMAIN or not r.domains:
            continue
        domains, masquerade, keep = found.get(r.id, (set(), False, False))
        found[r.id] = (domains | set(r.domains), masquerade or r.masquerade, keep or r.keep_route)
    out = []
    for rid, (domains, masquerade, keep) in sorted(found.items()):
        cidrs = granted.get(rid, set())
        sources = _sources(cidrs, 4) + _sources(cidrs, 6)
        out.append(ServedDomainRoute(rid, tuple(sorted(domains)), masquerade, keep, sources))
    return out


def _sources(cidrs: Iterable[str], version: int) -> tuple[str, ...]:
    """Valid CIDRs of one family, sorted, without those inside another (an interval set rejects
    overlapping elements). Adjacent ones stay apart: one element per peer reads better."""
    nets: list[Network] = []
    for cidr in cidrs:
        try:
            net = ipaddress.ip_network(cidr, strict=False)
        except ValueError:
            continue
        if net.version == version:
            nets.append(net)
    kept: list[Network] = []
    # sorted by first address, widest first: a network containing this one is the last one kept
    for net in sorted(set(nets), key=lambda n: (int(n.network_address), n.prefixlen)):
        if not kept or not _contains(kept[-1], net):
            kept.append(net)
    return tuple(str(n) for n in kept)


def _contains(outer: Network, inner: Network) -> bool:
    return int(outer.network_address) <= int(inner.network_address) and int(inner.broadcast_address) <= int(
        outer.broadcast_address
    )


# -- the document ------------------------------------------------------------------------------------


def build(
    interface: str,
    routes: Sequence[ServedRoute],
    *,
    table: str = DEFAULT_TABLE,
    mtu: int = DEFAULT_MTU,
    domains: Sequence[ServedDomainRoute] = (),
) -> Document:
    """The nft JSON document (``nft -j -f -``) that replaces ``table`` with the ruleset for ``routes``
    and ``domains`` on overlay interface ``interface``, with empty domain address sets (see
    ``with_elements``). Raises ValueError on a bad interface, table, MTU or route."""
    if not interface or len(interface) > _MAX_IFNAME or "/" in interface or interface.strip() != interface:
        raise ValueError(f"bad interface name {interface!r}")
    if not _TABLE_NAME.match(table):
        raise ValueError(f"bad nftables table name {table!r}")
    if not MSS_OVERHEAD[6] < mtu <= 65535:
        raise ValueError(f"bad MTU {mtu}")
    b = _Builder(table, interface)
    b.cmd("add", "table", {})
    b.cmd("delete", "table", {})
    b.cmd("add", "table", {})

    ordered = sorted(enumerate(routes), key=lambda ir: _route_order(ir[1]))
    source_match: dict[int, dict[str, Any] | None] = {}
    for index, route in ordered:
        source_match[index] = b.sources(index, route)
    domain_match = b.domain_sets(domains)

    b.base_chain(FORWARD_CHAIN, "filter", "forward", PRIORITY_FILTER)
    b.chain(FROM_OVERLAY_CHAIN)
    b.base_chain(POSTROUTING_CHAIN, "nat", "postrouting", PRIORITY_SRCNAT)
    b.chain(MASQUERADE_CHAIN)
    b.base_chain(MSS_CHAIN, "filter", "forward", PRIORITY_MANGLE)

    b.rule(FORWARD_CHAIN, [_iif(interface), {"jump": {"target": FROM_OVERLAY_CHAIN}}])
    b.rule(FROM_OVERLAY_CHAIN, [_ct_state("established", "related"), {"accept": None}])
    for dst_set, src, dom in domain_match:
        b.rule(FROM_OVERLAY_CHAIN, [dst_set, *([src] if src else []), {"accept": None}], dom.route_id)
    for prefix, group in _by_prefix(ordered):
        dst = _dst(prefix)
        for index, route in group:
            if not route.sources:
                continue  # nobody may use this route: no accept
            src = source_match[index]
            b.rule(FROM_OVERLAY_CHAIN, [dst, *([src] if src else []), {"accept": None}], route.route_id)
        b.rule(FROM_OVERLAY_CHAIN, [dst, {"drop": None}], _ids(group))
    b.rule(FROM_OVERLAY_CHAIN, [{"drop": None}], "everything else from the overlay")

    b.rule(
        POSTROUTING_CHAIN,
        [_iif(interface), _match({"meta": {"key": "oifname"}}, interface, "!="), _jump(MASQUERADE_CHAIN)],
    )
    for dst_set, src, dom in sorted(domain_match, key=lambda item: not item[2].masquerade):
        nat = "masquerade" if dom.masquerade else "return"
        b.rule(MASQUERADE_CHAIN, [dst_set, *([src] if src else []), {nat: None}], dom.route_id)
    for prefix, group in _by_prefix(ordered):
        # a route nobody may use decides nothing
        masquerade = any(route.masquerade and route.sources for _, route in group)
        verdict: dict[str, Any] = {"masquerade": None} if masquerade else {"return": None}
        b.rule(MASQUERADE_CHAIN, [_dst(prefix), verdict], _ids(group))

    _mss_clamp(b, interface, mtu)
    return {"nftables": b.commands}


def _mss_clamp(b: _Builder, interface: str, mtu: int) -> None:
    for version in (4, 6):
        mss = mtu - MSS_OVERHEAD[version]
        option = {"tcp option": {"name": "maxseg", "field": "size"}}
        b.rule(
            MSS_CHAIN,
            [
                _match({"meta": {"key": "oifname"}}, interface),
                _match({"meta": {"key": "nfproto"}}, f"ipv{version}"),
                _match({"&": [{"payload": {"protocol": "tcp", "field": "flags"}}, ["syn", "rst"]]}, "syn"),
                _match(option, mss, ">"),
                {"mangle": {"key": option, "value": mss}},
            ],
        )


def set_name(index: int, version: int) -> str:
    return f"r{index}_v{version}"


def domain_set_name(index: int, version: int) -> str:
    """The set of the addresses resolved for ``domains[index]``."""
    return f"d{index}_v{version}"


def domain_source_set_name(index: int, version: int) -> str:
    return f"d{index}_src_v{version}"


def with_elements(document: Document, elements: Mapping[str, Sequence[Element]]) -> Document:
    """A copy of a built document whose sets named in ``elements`` carry those elements (a rebuilt
    table keeps what the forwarder learned); ``document`` itself is left as it was."""
    commands = []
    for command in document["nftables"]:
        body = command.get("add", {}).get("set")
        if body is not None and elements.get(body["name"]):
            body = {**body, "elem": [_element(e) for e in elements[body["name"]]]}
            command = {"add": {"set": body}}
        commands.append(command)
    return {"nftables": commands}


def add_elements(
    new: Mapping[str, Sequence[Element]],
    refresh: Mapping[str, Sequence[Element]] | None = None,
    *,
    table: str = DEFAULT_TABLE,
) -> Document:
    """The transaction that puts elements into their sets: ``new`` ones (not in the set) with a plain
    add, and ``refresh`` ones (in the set, with an older timeout) with add, delete, add, which sets
    the timeout given on any kernel (before 6.x an element added again keeps its old timeout; the
    first add makes sure the delete finds it). A delete costs about 13 ms (an RCU grace period),
    an add about 3 ms: the first answer, the one a client waits on to connect, only adds."""
    again = refresh or {}
    steps = (("add", _merged(new, again), True), ("delete", again, False), ("add", again, True))
    commands: list[dict[str, Any]] = []
    for verb, elements, timed in steps:
        for name, elems in sorted(elements.items()):
            if elems:
                values = [_element(e) if timed else e[0] for e in elems]
                body = {"family": FAMILY, "table": table, "name": name, "elem": values}
                commands.append({verb: {"element": body}})
    return {"nftables": commands}


def _merged(
    a: Mapping[str, Sequence[Element]], b: Mapping[str, Sequence[Element]]
) -> dict[str, list[Element]]:
    return {name: [*b.get(name, ()), *a.get(name, ())] for name in {*a, *b}}


def _element(element: Element) -> Any:
    address, timeout = element
    return address if timeout is None else {"elem": {"val": address, "timeout": timeout}}


def _route_order(route: ServedRoute) -> tuple[int, int, int, str]:
    # IPv4 before IPv6 only for reading; the families never meet. Longest prefix first is the point.
    p = route.prefix
    return (p.version, -p.prefixlen, int(p.network_address), route.route_id)


def _by_prefix(ordered: list[tuple[int, ServedRoute]]) -> list[tuple[Network, list[tuple[int, ServedRoute]]]]:
    groups: list[tuple[Network, list[tuple[int, ServedRoute]]]] = []
    for index, route in ordered:
        prefix = route.prefix
        if groups and groups[-1][0] == prefix:
            groups[-1][1].append((index, route))
        else:
            groups.append((prefix, [(index, route)]))
    return groups


def _ids(group: list[tuple[int, ServedRoute]]) -> str:
    return " ".join(route.route_id for _, route in group)


class _Builder:
    def __init__(self, table: str, interface: str) -> None:
        self.table = table
        self.interface = interface
        self.commands: list[dict[str, Any]] = []

    def cmd(self, verb: str, kind: str, body: dict[str, Any]) -> None:
        if kind == "table":
            obj = {"family": FAMILY, "name": self.table}
        else:
            obj = {"family": FAMILY, "table": self.table, **body}
        self.commands.append({verb: {kind: obj}})

    def chain(self, name: str) -> None:
        self.cmd("add", "chain", {"name": name})

    def base_chain(self, name: str, kind: str, hook: str, prio: int) -> None:
        self.cmd("add", "chain", {"name": name, "type": kind, "hook": hook, "prio": prio, "policy": "accept"})

    def rule(self, chain: str, expr: list[dict[str, Any]], comment: str = "") -> None:
        body: dict[str, Any] = {"chain": chain, "expr": expr}
        if comment:
            body["comment"] = _comment(comment)
        self.cmd("add", "rule", body)

    def sources(self, index: int, route: ServedRoute) -> dict[str, Any] | None:
        """The ``saddr`` match for a route's sources: a set for several, a plain match for one, None
        when there is none or a single ``/0`` (anyone)."""
        prefix = route.prefix
        nets = [ipaddress.ip_network(s, strict=False) for s in route.sources]
        if any(n.version != prefix.version for n in nets):
            raise ValueError(
                f"route {route.route_id}: sources {route.sources} are not all IPv{prefix.version}"
            )
        return self._source_match(set_name(index, prefix.version), prefix.version, nets, route.route_id)

    def _source_match(
        self, name: str, version: int, nets: list[Network], comment: str
    ) -> dict[str, Any] | None:
        if not nets or any(n.prefixlen == 0 for n in nets):
            return None
        field = _saddr(version)
        if len(nets) == 1:
            return _match(field, _addr(nets[0]))
        self.cmd(
            "add",
            "set",
            {
                "name": name,
                "type": f"ipv{version}_addr",
                "flags": ["interval"],
                "comment": _comment(comment),
                "elem": [_addr(n) for n in nets],
            },
        )
        return _match(field, f"@{name}")

    def domain_sets(
        self, domains: Sequence[ServedDomainRoute]
    ) -> list[tuple[dict[str, Any], dict[str, Any] | None, ServedDomainRoute]]:
        """Per domain route and family that has sources: its (empty) address set, its source set when
        it needs one, and the (daddr, saddr) matches of its rules. No sources: the address set only
        (the forwarder refuses everybody, and nothing is accepted)."""
        out = []
        for index, route in enumerate(domains):
            for version in (4, 6):
                name = domain_set_name(index, version)
                self.cmd(
                    "add",
                    "set",
                    {
                        "name": name,
                        "type": f"ipv{version}_addr",
                        "flags": ["timeout"],
                        "comment": _comment(route.route_id),
                    },
                )
                nets = [ipaddress.ip_network(s, strict=False) for s in route.sources_of(version)]
                if not nets:
                    continue
                src = self._source_match(
                    domain_source_set_name(index, version), version, nets, route.route_id
                )
                dst = _match({"payload": {"protocol": _proto(version), "field": "daddr"}}, f"@{name}")
                out.append((dst, src, route))
        return out


def _comment(text: str) -> str:
    raw = text.encode()
    if len(raw) <= MAX_COMMENT:
        return text
    return raw[: MAX_COMMENT - 3].decode(errors="ignore") + "..."


def _match(left: dict[str, Any], right: Any, op: str = "==") -> dict[str, Any]:
    return {"match": {"op": op, "left": left, "right": right}}


def _jump(chain: str) -> dict[str, Any]:
    return {"jump": {"target": chain}}


def _iif(interface: str) -> dict[str, Any]:
    return _match({"meta": {"key": "iifname"}}, interface)


def _ct_state(*states: str) -> dict[str, Any]:
    return _match({"ct": {"key": "state"}}, list(states), "in")


def _proto(version: int) -> str:
    return "ip" if version == 4 else "ip6"


def _saddr(version: int) -> dict[str, Any]:
    return {"payload": {"protocol": _proto(version), "field": "saddr"}}


def _addr(net: Network) -> Any:
    if net.prefixlen == net.max_prefixlen:
        return str(net.network_address)
    return {"prefix": {"addr": str(net.network_address), "len": net.prefixlen}}


def _dst(prefix: Network) -> dict[str, Any]:
    if prefix.prefixlen == 0:
        # a zero-length prefix match means "this family"; say so directly
        return _match({"meta": {"key": "nfproto"}}, f"ipv{prefix.version}")
    return _match({"payload": {"protocol": _proto(prefix.version), "field": "daddr"}}, _addr(prefix))
