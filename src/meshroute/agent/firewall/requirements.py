"""The seed's "Routing Peer Requirements", checked on the host and reported, never fixed (DESIGN: nothing
on the host outside what the agent owns is changed).

Checks, each with a detail a person can act on when it fails:

- ``forwarding-ipv4`` / ``forwarding-ipv6`` (per family served): the kernel forwards that family.
- ``path <network>`` (per served network): a route to the network that does not lead back into the
  overlay, by a kernel route lookup of its first host (the last, when the first is the peer's own
  address; the same lookup, without the agent's control-plane mark, that a forwarded packet gets);
  for an exit node, a default route in the main table that does not use the overlay.
- ``firewall``: no other firewall drops what the routing peer forwards. In nftables: a base chain on
  the forward hook in another table (families ip, ip6, inet) that drops by policy or by a final
  unconditional drop/reject, unless it (or a chain it jumps to) accepts ``iifname <overlay>`` and
  the replies (``oifname <overlay>`` or any ``ct state established,related`` accept). The same for
  the FORWARD chain of iptables-legacy, if its filter table is loaded (read from
  /proc/net/ip_tables_names first, so that listing it never loads a kernel module). This is a
  heuristic over the common shapes (Docker, firewalld, a plain policy drop), not a simulation.

Pure analysis (`nft_blockers`, `iptables_blockers`) is separate from reading the host (`check`).
"""

from __future__ import annotations

import asyncio
import errno
import ipaddress
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from pyroute2 import AsyncIPRoute
from pyroute2.netlink.exceptions import NetlinkError

from meshroute.agent.firewall.forwarding import IPV4_FORWARD, IPV6_FORWARD, ProcSys, Sysctl, SysctlError
from meshroute.agent.firewall.nft import Nftables, NftError, NftOps
from meshroute.agent.firewall.ruleset import DEFAULT_TABLE, FAMILY, ServedRoute

MAIN_TABLE = 254
RTN_LOCAL, RTN_ANYCAST = 2, 4
_NFT_FAMILIES = {"ip": {4}, "ip6": {6}, "inet": {4, 6}}
_PASSIVE = {"counter", "log", "comment", "limit"}  # statements that neither match nor decide


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str


@dataclass(frozen=True, slots=True)
class Hop:
    """Where the kernel would send a packet: out of ``interface``, maybe through ``gateway``."""

    interface: str
    gateway: str | None = None
    local: bool = False  # the address is this host's own (local or anycast route)

    def __str__(self) -> str:
        return f"via {self.gateway} dev {self.interface}" if self.gateway else f"dev {self.interface}"


class RouteLookup(Protocol):
    async def get(self, address: str) -> Hop | None:
        """The route a packet to ``address`` takes; None when there is none (unreachable)."""
        ...

    async def defaults(self, version: int) -> list[Hop]:
        """The default routes of the main table, for one IP version."""
        ...


class KernelRoutes:
    """Route lookups over rtnetlink, in the calling thread's network namespace."""

    def __init__(self) -> None:
        self._ipr: Any = None

    async def __aenter__(self) -> KernelRoutes:
        self._ipr = AsyncIPRoute()
        await self._ipr.setup_endpoint()
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._ipr is not None:
            self._ipr.close()
            self._ipr = None

    async def _name(self, index: int | None) -> str:
        if index is None:
            return "?"
        async for msg in await self._ipr.get_links(index):
            return str(msg.get_attr("IFLA_IFNAME"))
        return f"#{index}"

    async def get(self, address: str) -> Hop | None:
        try:
            found = await self._ipr.route("get", dst=address)
        except NetlinkError as exc:
            if exc.code in (errno.ENETUNREACH, errno.EHOSTUNREACH, errno.EACCES, errno.EINVAL):
                return None  # no route, or an unreachable/prohibit/blackhole one
            raise
        for msg in found:
            local = msg["type"] in (RTN_LOCAL, RTN_ANYCAST)
            return Hop(await self._name(msg.get_attr("RTA_OIF")), msg.get_attr("RTA_GATEWAY"), local)
        return None

    async def defaults(self, version: int) -> list[Hop]:
        family = 2 if version == 4 else 10
        hops = []
        async for msg in await self._ipr.route("dump", family=family, table=MAIN_TABLE):
            if msg["dst_len"] == 0 and msg["type"] == 1:  # unicast only: not unreachable/blackhole
                hops.append(Hop(await self._name(msg.get_attr("RTA_OIF")), msg.get_attr("RTA_GATEWAY")))
        return hops


async def check(
    routes: Sequence[ServedRoute],
    interface: str,
    *,
    sysctl: Sysctl | None = None,
    nft: NftOps | None = None,
    lookup: RouteLookup | None = None,
    own_table: str = DEFAULT_TABLE,
    proc_net: Path = Path("/proc/net"),
) -> list[Check]:
    """The requirement checks for the routes served now (none: nothing to check)."""
    if not routes:
        return []
    families = sorted({r.prefix.version for r in routes})
    checks = [_forwarding(sysctl or ProcSys(), version) for version in families]
    if lookup is None:
        async with KernelRoutes() as kernel:
            checks += await _paths(routes, interface, kernel)
    else:
        checks += await _paths(routes, interface, lookup)
    checks.append(await _firewall(interface, set(families), nft or Nftables(), own_table, proc_net))
    return checks


def _forwarding(sysctl: Sysctl, version: int) -> Check:
    key = IPV4_FORWARD if version == 4 else IPV6_FORWARD
    dotted = key.replace("/", ".")
    name = f"forwarding-ipv{version}"
    try:
        value = sysctl.read(key)
    except SysctlError as exc:
        return Check(name, False, str(exc))
    if value is None:
        return Check(name, False, f"IPv{version} is disabled on this host ({dotted} does not exist)")
    if value == "1":
        return Check(name, True, f"{dotted} = 1")
    return Check(
        name,
        False,
        f"{dotted} = {value}: this peer does not forward IPv{version}, so its routes carry nothing. The "
        f"agent turns it on while it serves routes: something turned it off again, or the agent may not "
        f"write /proc/sys (see its log). Fix: sysctl -w {dotted}=1",
    )


def probe_addresses(network: str) -> list[str]:
    """The addresses a route lookup tries for a network, in order: its first and last host, then the
    network address (a /32 or /128 has only that). More than one because the routing peer's own
    address on the network (often the first host) answers "local", which says nothing of the path."""
    net = ipaddress.ip_network(network, strict=False)
    if net.num_addresses <= 2:
        return [str(net.network_address)]
    last = net.broadcast_address - (1 if net.version == 4 else 0)
    return list(dict.fromkeys(str(a) for a in (net.network_address + 1, last, net.network_address)))


async def _paths(routes: Sequence[ServedRoute], interface: str, lookup: RouteLookup) -> list[Check]:
    checks = []
    for network in sorted({r.network for r in routes}, key=lambda n: (":" in n, n)):
        prefix = ipaddress.ip_network(network)
        name = f"path {network}"
        if prefix.prefixlen == 0:
            checks.append(await _default_path(name, prefix.version, interface, lookup))
            continue
        checks.append(await _network_path(name, network, interface, lookup))
    return checks


async def _network_path(name: str, network: str, interface: str, lookup: RouteLookup) -> Check:
    for address in probe_addresses(network):
        hop = await lookup.get(address)
        if hop is None:
            return Check(
                name,
                False,
                f"no route to {address} (in {network}): this peer has no way into the routed network. "
                f"Give it an interface on that network or a route to it "
                f"(ip route add {network} via <gateway>)",
            )
        if hop.local:
            continue  # one of this peer's own addresses: try another
        if hop.interface == interface:
            return Check(
                name,
                False,
                f"the route to {address} (in {network}) goes back into {interface}, the overlay: "
                f"forwarded traffic would loop. Give this peer its own route into {network} "
                f"(is it also a client of another routing peer for it?)",
            )
        return Check(name, True, f"{address} {hop}")
    return Check(name, True, f"{network} is this peer's own address")


async def _default_path(name: str, version: int, interface: str, lookup: RouteLookup) -> Check:
    hops = await lookup.defaults(version)
    usable = [h for h in hops if h.interface != interface]
    if usable:
        return Check(name, True, f"default route {usable[0]}")
    if hops:
        return Check(
            name,
            False,
            f"the main table's IPv{version} default route goes into {interface}, the overlay: an exit "
            f"node needs its own way to the internet",
        )
    return Check(
        name,
        False,
        f"no IPv{version} default route in the main table: an exit node needs its own way to the internet "
        f"(e.g. ip {'-6 ' if version == 6 else ''}route add default via <gateway> dev <uplink>)",
    )


# -- other firewalls ---------------------------------------------------------------------------------


async def _firewall(interface: str, versions: set[int], nft: NftOps, own_table: str, proc_net: Path) -> Check:
    problems: list[str] = []
    try:
        ruleset = await nft.list_ruleset()
    except NftError as exc:
        problems.append(f"cannot list the nftables ruleset ({exc})")
    else:
        problems += nft_blockers(ruleset, interface, versions, own_table=own_table)
    legacy = ((4, "ip_tables_names", "iptables-legacy"), (6, "ip6_tables_names", "ip6tables-legacy"))
    for version, names, binary in legacy:
        if version in versions and _legacy_filter_loaded(proc_net / names) and shutil.which(binary):
            listing = await _run([binary, "-w", "-S"])
            if listing is None:
                problems.append(f"cannot list {binary} rules")
            else:
                problems += iptables_blockers(listing, interface, binary)
    if problems:
        return Check("firewall", False, "; ".join(problems))
    return Check("firewall", True, "no other firewall drops traffic forwarded from " + interface)


def _legacy_filter_loaded(path: Path) -> bool:
    try:
        return "filter" in path.read_text().split()
    except OSError:
        return False


async def _run(argv: list[str]) -> str | None:
    try:
        proc = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.DEVNULL,
        )
        out, _ = await asyncio.wait_for(proc.communicate(), 10)
    except (OSError, TimeoutError):
        return None
    return out.decode(errors="replace") if proc.returncode == 0 else None


def nft_blockers(
    ruleset: dict[str, Any], interface: str, versions: set[int], *, own_table: str = DEFAULT_TABLE
) -> list[str]:
    """Forward-hook base chains of other tables that would drop forwarded overlay traffic, described
    with the commands that would let it through."""
    items = ruleset.get("nftables", [])
    chains: dict[tuple[str, str, str], dict[str, Any]] = {}
    rules: dict[tuple[str, str, str], list[list[dict[str, Any]]]] = {}
    for item in items:
        if "chain" in item:
            c = item["chain"]
            chains[(c["family"], c["table"], c["name"])] = c
        elif "rule" in item:
            r = item["rule"]
            rules.setdefault((r["family"], r["table"], r["chain"]), []).append(r.get("expr", []))
    out = []
    for key, chain in chains.items():
        family, table, name = key
        if chain.get("hook") != "forward" or family not in _NFT_FAMILIES:
            continue
        if (family, table) == (FAMILY, own_table) or not versions & _NFT_FAMILIES[family]:
            continue
        own_rules = rules.get(key, [])
        drops = chain.get("policy") == "drop" or (bool(own_rules) and _unconditional_drop(own_rules[-1]))
        if not drops:
            continue
        reachable = _reachable_rules(key, rules)
        inbound = any(_accepts(expr, "iifname", interface) for expr in reachable)
        replies = any(
            _accepts(expr, "oifname", interface) or _accepts_established(expr) for expr in reachable
        )
        if inbound and replies:
            continue
        how = "policy drop" if chain.get("policy") == "drop" else "a final drop/reject rule"
        out.append(
            f"nftables table {family} {table}, chain {name} (hook forward) has {how}: traffic forwarded "
            f"from {interface} is dropped there. Let it through, e.g. "
            f'nft insert rule {family} {table} {name} iifname "{interface}" accept; '
            f'nft insert rule {family} {table} {name} oifname "{interface}" '
            "ct state established,related accept"
        )
    return sorted(out)


def _reachable_rules(
    start: tuple[str, str, str], rules: dict[tuple[str, str, str], list[list[dict[str, Any]]]]
) -> list[list[dict[str, Any]]]:
    """The rules of a chain and of every chain it jumps to (Docker's DOCKER-USER, firewalld's zones)."""
    family, table, _ = start
    seen, todo, found = {start}, [start], []
    while todo:
        key = todo.pop()
        for expr in rules.get(key, []):
            found.append(expr)
            for stmt in expr:
                for verb in ("jump", "goto"):
                    if verb in stmt:
                        target = (family, table, str(stmt[verb].get("target")))
                        if target not in seen:
                            seen.add(target)
                            todo.append(target)
    return found


def _verdict(expr: list[dict[str, Any]]) -> str | None:
    for stmt in expr:
        for verdict in ("accept", "drop", "reject", "jump", "goto", "return", "queue"):
            if verdict in stmt:
                return verdict
    return None


def _unconditional_drop(expr: list[dict[str, Any]]) -> bool:
    return _verdict(expr) in ("drop", "reject") and all(
        next(iter(stmt)) in _PASSIVE | {"drop", "reject"} for stmt in expr
    )


def _matches(expr: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [stmt["match"] for stmt in expr if "match" in stmt]


def _names(right: Any) -> set[str]:
    if isinstance(right, str):
        return {right}
    if isinstance(right, dict) and "set" in right:
        return _names(right["set"])
    if isinstance(right, list):
        return {x for x in right if isinstance(x, str)}
    return set()


def _accepts(expr: list[dict[str, Any]], key: str, interface: str) -> bool:
    """An accept rule for one interface (``iifname "mr0" accept``), matching nothing else but the
    other direction's interface or the connection state."""
    if _verdict(expr) != "accept":
        return False
    hit = False
    for m in _matches(expr):
        left = m.get("left", {})
        meta = left.get("meta", {}).get("key") if isinstance(left, dict) else None
        if meta == key and m.get("op") in ("==", "in") and interface in _names(m.get("right")):
            hit = True
        elif meta in ("iifname", "oifname") or (isinstance(left, dict) and "ct" in left):
            continue
        else:
            return False
    return hit


def _accepts_established(expr: list[dict[str, Any]]) -> bool:
    if _verdict(expr) != "accept":
        return False
    ms = _matches(expr)
    return (
        len(ms) == 1
        and ms[0].get("left") == {"ct": {"key": "state"}}
        and "established" in _names(ms[0].get("right"))
    )


def iptables_blockers(listing: str, interface: str, binary: str = "iptables-legacy") -> list[str]:
    """The same for an `iptables -S` listing of the filter table: a FORWARD policy DROP (or a final
    unconditional DROP/REJECT) without accepts for the overlay (followed through -j to user chains)."""
    policy: dict[str, str] = {}
    rules: dict[str, list[list[str]]] = {}
    for line in listing.splitlines():
        words = line.split()
        if len(words) >= 3 and words[0] == "-P":
            policy[words[1]] = words[2]
        elif len(words) >= 2 and words[0] == "-A":
            rules.setdefault(words[1], []).append(words[2:])
    forward = rules.get("FORWARD", [])
    final = forward[-1] if forward else []
    drops = policy.get("FORWARD") == "DROP" or final in (["-j", "DROP"], ["-j", "REJECT"])
    if not drops:
        return []
    reachable = _legacy_reachable("FORWARD", rules)
    inbound = any(_legacy_accepts(r, "-i", interface) for r in reachable)
    replies = any(_legacy_accepts(r, "-o", interface) or _legacy_established(r) for r in reachable)
    if inbound and replies:
        return []
    return [
        f"{binary}: the FORWARD chain drops traffic forwarded from {interface}. Let it through, e.g. "
        f"{binary.split('-')[0]} -I FORWARD -i {interface} -j ACCEPT; {binary.split('-')[0]} -I FORWARD "
        f"-o {interface} -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT"
    ]


def _legacy_reachable(start: str, rules: dict[str, list[list[str]]]) -> list[list[str]]:
    seen, todo, found = {start}, [start], []
    while todo:
        for words in rules.get(todo.pop(), []):
            found.append(words)
            target = _option(words, "-j") or _option(words, "-g")
            if target and target in rules and target not in seen:
                seen.add(target)
                todo.append(target)
    return found


def _option(words: Sequence[str], flag: str) -> str | None:
    for i, word in enumerate(words[:-1]):
        if word == flag:
            return words[i + 1]
    return None


def _legacy_accepts(words: list[str], flag: str, interface: str) -> bool:
    if _option(words, "-j") != "ACCEPT" or _option(words, flag) != interface:
        return False
    allowed = {"-i", "-o", "-j", "-m", "--ctstate", "--state"}
    return all(not w.startswith("-") or w in allowed for w in words)


def _legacy_established(words: list[str]) -> bool:
    state = _option(words, "--ctstate") or _option(words, "--state") or ""
    allowed = {"-o", "-j", "-m", "--ctstate", "--state"}
    return (
        _option(words, "-j") == "ACCEPT"
        and "ESTABLISHED" in state.split(",")
        and all(not w.startswith("-") or w in allowed for w in words)
    )
