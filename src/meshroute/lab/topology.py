"""What a world looks like: the declarative spec, the addressing plan and the `ip` commands that build it.

Pure: computing a plan touches nothing, so it is cheap to check without root.

Addressing (clear of the account overlay 100.64.0.0/10 and fd00::/8):

==========  ==========================  ==============================================================
segment     IPv4 / IPv6                 members
==========  ==========================  ==============================================================
underlay    172.31.0.0/24               mgmt .2; peers .11, .12, ... in the order given (``eth0``);
            fc00:172:31::/64            IPv6 host part spelled like the IPv4 one (.11 -> ::11)
LAN k       10.77.k.0/24                k = 0, 1, ... in the order given; its routers .1, .2, ...
            fc00:77:k::/64              (``lan0``, ``lan1``, ... on the router), its hosts .10, .11, ...
internet    203.0.113.0/24              exit nodes .1, .2, ... (``wan0``, default route via the
            2001:db8:113::/64           gateway .254 on the internet switch); hosts .10, .11, ...
==========  ==========================  ==============================================================

Every segment is a bridge ``br0`` in a switch namespace; every member joins it through a veth pair whose
switch end is ``p-{node}``. Only exit nodes have a default route, so the internet hosts are reachable
from them and from nowhere else; LAN hosts reach their routers and, with ``default_via``, route back
through one of them.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from ipaddress import IPv4Interface, IPv4Network, IPv6Interface, IPv6Network
from typing import Literal

UNDERLAY4 = IPv4Network("172.31.0.0/24")
UNDERLAY6 = IPv6Network("fc00:172:31::/64")
INTERNET4 = IPv4Network("203.0.113.0/24")
INTERNET6 = IPv6Network("2001:db8:113::/64")
MGMT_HOST = 2
FIRST_PEER_HOST = 11
FIRST_ROUTER_HOST = 1
FIRST_LAN_HOST = 10
GATEWAY_HOST = 254
MAX_LANS = 256

MGMT = "mgmt"
UNDERLAY_SWITCH = "under"
INTERNET_SWITCH = "inet"
BRIDGE = "br0"

# node names end up in interface names (`p-{node}`, at most 15 characters) and in namespace names
_NODE_NAME = re.compile(r"^[a-z][a-z0-9]*(-[a-z0-9]+)*$")
MAX_NODE_NAME = 13

Role = Literal["switch", "mgmt", "peer", "host"]
SegmentKind = Literal["underlay", "lan", "internet"]


@dataclass(frozen=True, slots=True)
class Lan:
    """A LAN segment behind some peers.

    ``routers``: the peers that get an interface on it (``lan0`` for their first LAN, then ``lan1``...).
    ``hosts``: how many host namespaces sit on it (named ``{lan}-h1``, ``{lan}-h2``, ...).
    ``default_via``: a router whose LAN address is the hosts' default route (IPv4 and IPv6), so they
    can answer traffic that is not masqueraded; None: the hosts have no default route.
    """

    routers: Sequence[str]
    hosts: int = 1
    default_via: str | None = None


@dataclass(frozen=True, slots=True)
class Internet:
    """The "internet": hosts with public-looking addresses, reachable only through the exit nodes."""

    exits: Sequence[str]
    hosts: int = 1


@dataclass(frozen=True, slots=True)
class Iface:
    """A node's interface on a segment, with its addresses (prefix length included)."""

    name: str
    segment: str
    ipv4: IPv4Interface
    ipv6: IPv6Interface | None = None


@dataclass(frozen=True, slots=True)
class Node:
    """One network namespace of the world."""

    name: str
    netns: str
    role: Role
    ifaces: tuple[Iface, ...] = ()

    def iface(self, name: str = "eth0") -> Iface:
        for iface in self.ifaces:
            if iface.name == name:
                return iface
        raise KeyError(f"{self.name} has no interface {name} (it has {[i.name for i in self.ifaces]})")

    def addr(self, iface: str = "eth0", family: int = 4) -> str:
        """An address without prefix length, e.g. ``node.addr("lan0", 6)``."""
        found = self.iface(iface)
        value: IPv4Interface | IPv6Interface | None = found.ipv4 if family == 4 else found.ipv6
        if value is None:
            raise KeyError(f"{self.name} {iface} has no IPv{family} address")
        return str(value.ip)

    @property
    def ipv4(self) -> str:
        """The address on the node's first interface (underlay for peers and mgmt, LAN for hosts)."""
        return self.addr(self.ifaces[0].name, 4)

    @property
    def ipv6(self) -> str:
        return self.addr(self.ifaces[0].name, 6)


@dataclass(frozen=True, slots=True)
class Segment:
    """An L2 segment: a bridge in the ``switch`` namespace, and who is attached to it."""

    name: str
    kind: SegmentKind
    switch: str
    ipv4: IPv4Network
    ipv6: IPv6Network | None
    members: Mapping[str, Iface]  # node name -> its interface on this segment (peers, mgmt, routers, exits)
    hosts: tuple[str, ...] = ()  # host namespaces (LAN and internet segments)
    gateway4: IPv4Interface | None = None  # the internet's gateway address, on the switch's bridge
    gateway6: IPv6Interface | None = None


@dataclass(frozen=True, slots=True)
class Veth:
    """A veth pair created with both ends directly in their namespaces (never in the root one)."""

    a_node: str
    a_name: str
    b_node: str
    b_name: str


@dataclass(slots=True)
class Plan:
    tag: str
    ipv6: bool
    nodes: dict[str, Node] = field(default_factory=dict)
    segments: dict[str, Segment] = field(default_factory=dict)
    veths: list[Veth] = field(default_factory=list)
    routes: dict[str, list[str]] = field(default_factory=dict)  # node -> `ip route` batch lines

    @property
    def peers(self) -> list[str]:
        return [n.name for n in self.nodes.values() if n.role == "peer"]

    def root_batch(self) -> list[str]:
        """Namespaces, bridges and veth pairs, created from the root namespace in one `ip -batch`."""
        lines = [f"netns add {n.netns}" for n in self.nodes.values()]
        for n in self.nodes.values():
            if n.role == "switch":
                # STP is off by default, so ports forward at once; no multicast snooping so IPv6
                # neighbour discovery never waits for a querier
                lines.append(f"link add name {BRIDGE} netns {n.netns} type bridge mcast_snooping 0")
        for v in self.veths:
            a, b = self.nodes[v.a_node].netns, self.nodes[v.b_node].netns
            # `name` is needed: `ip link add X type veth` reads X as an address
            lines.append(f"link add name {v.a_name} netns {a} type veth peer name {v.b_name} netns {b}")
        return lines

    def node_batch(self, name: str) -> list[str]:
        """Everything inside one namespace: links up, bridge ports, addresses, routes."""
        node = self.nodes[name]
        lines = ["link set lo up"]
        # No IPv6 link-local addresses: their duplicate address detection would finish ~1-2 s after the
        # build and add routes then, so a snapshot taken at once would differ from one taken later.
        # Neighbour discovery works with the global addresses alone.
        quiet = "addrgenmode none"
        if node.role == "switch":
            lines += [f"link set {BRIDGE} {quiet}", f"link set {BRIDGE} up"]
            for v in self.veths:
                if v.b_node == name:
                    lines += [f"link set {v.b_name} {quiet}", f"link set {v.b_name} master {BRIDGE}"]
                    lines.append(f"link set {v.b_name} up")
        for iface in node.ifaces:
            if iface.name != BRIDGE:
                lines += [f"link set {iface.name} {quiet}", f"link set {iface.name} up"]
            lines.append(f"addr add {iface.ipv4} dev {iface.name}")
            if iface.ipv6 is not None:
                # no duplicate address detection: the address is usable at once, not after ~1 s
                lines.append(f"addr add {iface.ipv6} dev {iface.name} nodad")
        return lines + self.routes.get(name, [])


def _check_name(name: str, what: str) -> None:
    if not _NODE_NAME.match(name) or len(name) > MAX_NODE_NAME:
        raise ValueError(
            f"bad {what} name {name!r}: lowercase letters, digits and inner dashes, "
            f"at most {MAX_NODE_NAME} characters"
        )


def _v6(net: IPv6Network, host: int) -> IPv6Interface:
    # the host part reads like the IPv4 one (.11 -> ::11), which makes addresses easy to match up
    return IPv6Interface(f"{net.network_address}{host}/{net.prefixlen}")


def _v4(net: IPv4Network, host: int) -> IPv4Interface:
    return IPv4Interface(f"{net.network_address + host}/{net.prefixlen}")


def lan_networks(index: int) -> tuple[IPv4Network, IPv6Network]:
    return IPv4Network(f"10.77.{index}.0/24"), IPv6Network(f"fc00:77:{index:x}::/64")


MAX_ROUTERS = 9  # .1-.9 on a LAN, below the hosts
MAX_HOSTS = 240  # .10-.249
_SEGMENT_NAMES = ("underlay", "internet")


def plan(
    tag: str,
    peers: Sequence[str],
    *,
    lans: Mapping[str, Sequence[str] | Lan] | None = None,
    internet: Sequence[str] | Internet | None = None,
    ipv6: bool = True,
) -> Plan:
    """Lay out a world: which namespaces, links, addresses and routes. Raises ValueError on a bad spec."""
    if len(set(peers)) != len(peers):
        raise ValueError(f"peer names repeat: {list(peers)}")
    if len(peers) > GATEWAY_HOST - FIRST_PEER_HOST or len(lans or {}) > MAX_LANS:
        raise ValueError("too many peers or LANs for the addressing plan")
    layout = _Layout(tag, ipv6)
    layout.underlay(peers)
    for index, (name, spec) in enumerate((lans or {}).items()):
        layout.lan(index, name, spec if isinstance(spec, Lan) else Lan(routers=list(spec)), peers)
    if isinstance(internet, Internet) or internet:
        layout.internet(internet if isinstance(internet, Internet) else Internet(exits=list(internet)), peers)
    return layout.finish()


class _Layout:
    """Accumulates nodes, interfaces, veths and routes segment by segment."""

    def __init__(self, tag: str, ipv6: bool) -> None:
        self.plan = Plan(tag=tag, ipv6=ipv6)
        self.ifaces: dict[str, list[Iface]] = {}
        self.lan_ifaces: dict[str, int] = {}  # router -> how many lanN it has

    def v6(self, net: IPv6Network, host: int) -> IPv6Interface | None:
        return _v6(net, host) if self.plan.ipv6 else None

    def node(self, name: str, role: Role) -> None:
        _check_name(name, role)
        if name in self.ifaces:
            raise ValueError(f"node name {name!r} is used twice (names of peers, LANs and hosts must differ)")
        self.ifaces[name] = []
        # the interfaces are filled in by finish(), once every segment is laid out
        self.plan.nodes[name] = Node(name=name, netns=f"{self.plan.tag}-{name}", role=role)

    def attach(self, switch: str, node: str, iface: Iface) -> Iface:
        self.ifaces[node].append(iface)
        self.plan.veths.append(Veth(a_node=node, a_name=iface.name, b_node=switch, b_name=f"p-{node}"))
        return iface

    def hosts(self, switch: str, segment: str, count: int, net4: IPv4Network, net6: IPv6Network) -> list[str]:
        if not 0 <= count <= MAX_HOSTS:
            raise ValueError(f"{segment}: between 0 and {MAX_HOSTS} hosts")
        names = []
        for j in range(count):
            name = f"{switch}-h{j + 1}"
            self.node(name, "host")
            number = FIRST_LAN_HOST + j
            self.attach(switch, name, Iface("eth0", segment, _v4(net4, number), self.v6(net6, number)))
            names.append(name)
        return names

    def underlay(self, peers: Sequence[str]) -> None:
        self.node(UNDERLAY_SWITCH, "switch")
        self.node(MGMT, "mgmt")
        for peer in peers:
            self.node(peer, "peer")
        members = {}
        for name, number in [(MGMT, MGMT_HOST), *((p, FIRST_PEER_HOST + i) for i, p in enumerate(peers))]:
            iface = Iface("eth0", "underlay", _v4(UNDERLAY4, number), self.v6(UNDERLAY6, number))
            members[name] = self.attach(UNDERLAY_SWITCH, name, iface)
        self.plan.segments["underlay"] = Segment(
            "underlay", "underlay", UNDERLAY_SWITCH, UNDERLAY4, UNDERLAY6 if self.plan.ipv6 else None, members
        )

    def lan(self, index: int, name: str, lan: Lan, peers: Sequence[str]) -> None:
        if name in _SEGMENT_NAMES:
            raise ValueError(f"a LAN cannot be called {name!r}")
        self.node(name, "switch")
        if not 1 <= len(lan.routers) <= MAX_ROUTERS or len(set(lan.routers)) != len(lan.routers):
            raise ValueError(f"LAN {name!r}: 1 to {MAX_ROUTERS} distinct routers, not {list(lan.routers)}")
        if lan.default_via is not None and lan.default_via not in lan.routers:
            raise ValueError(f"LAN {name!r}: default_via {lan.default_via!r} is not one of its routers")
        net4, net6 = lan_networks(index)
        members = {}
        for i, router in enumerate(lan.routers):
            if router not in peers:
                raise ValueError(f"LAN {name!r}: router {router!r} is not a peer")
            n = self.lan_ifaces.get(router, 0)
            self.lan_ifaces[router] = n + 1
            number = FIRST_ROUTER_HOST + i
            iface = Iface(f"lan{n}", name, _v4(net4, number), self.v6(net6, number))
            members[router] = self.attach(name, router, iface)
        hosts = self.hosts(name, name, lan.hosts, net4, net6)
        if lan.default_via is not None:
            gw = members[lan.default_via]
            for host in hosts:
                self.plan.routes[host] = [f"route add default via {gw.ipv4.ip} dev eth0"]
                if gw.ipv6 is not None:
                    self.plan.routes[host].append(f"route add default via {gw.ipv6.ip} dev eth0")
        self.plan.segments[name] = Segment(
            name, "lan", name, net4, net6 if self.plan.ipv6 else None, members, tuple(hosts)
        )

    def internet(self, spec: Internet, peers: Sequence[str]) -> None:
        self.node(INTERNET_SWITCH, "switch")
        if len(spec.exits) > MAX_ROUTERS or len(set(spec.exits)) != len(spec.exits):
            raise ValueError(f"internet: up to {MAX_ROUTERS} distinct exit nodes, not {list(spec.exits)}")
        gw4, gw6 = _v4(INTERNET4, GATEWAY_HOST), self.v6(INTERNET6, GATEWAY_HOST)
        # the gateway address lives on the switch's bridge: exit nodes' default routes resolve, and a
        # packet for any other "public" address ends there (forwarding is off in the switch)
        self.ifaces[INTERNET_SWITCH].append(Iface(BRIDGE, "internet", gw4, gw6))
        members = {}
        for i, node in enumerate(spec.exits):
            if node not in peers:
                raise ValueError(f"internet: exit node {node!r} is not a peer")
            iface = Iface("wan0", "internet", _v4(INTERNET4, 1 + i), self.v6(INTERNET6, 1 + i))
            members[node] = self.attach(INTERNET_SWITCH, node, iface)
            routes = self.plan.routes.setdefault(node, [])
            routes.append(f"route add default via {gw4.ip} dev wan0")
            if gw6 is not None:
                routes.append(f"route add default via {gw6.ip} dev wan0")
        hosts = self.hosts(INTERNET_SWITCH, "internet", spec.hosts, INTERNET4, INTERNET6)
        self.plan.segments["internet"] = Segment(
            "internet",
            "internet",
            INTERNET_SWITCH,
            INTERNET4,
            INTERNET6 if self.plan.ipv6 else None,
            members,
            tuple(hosts),
            gateway4=gw4,
            gateway6=gw6,
        )

    def finish(self) -> Plan:
        for name, node in self.plan.nodes.items():
            self.plan.nodes[name] = replace(node, ifaces=tuple(self.ifaces[name]))
        return self.plan
