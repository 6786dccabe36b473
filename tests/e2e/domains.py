"""What the domain-route tests share: dnsmasq name servers inside nodes (the office LAN's, serving
`internal.test`, and the client's usual one), the managed resolv.conf of a node (the file `ip netns
exec` bind-mounts over /etc/resolv.conf), lookups the way applications make them (getent, dig), the
addresses an agent learned per domain route group, the routing peer's nftables domain sets and the
server's route status.

Every node's resolv.conf must be written *before* the processes that read it start: `ip netns exec`
bind-mounts the file's inode, and `Network.set_resolv_conf` replaces the file (a rename), which a
running process (an agent) would not see. The agent writes the file in place, so the same inode
carries its change to every later `ip netns exec`.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from meshroute.lab import Proc, World
from meshroute.lab import netns as ns
from meshroute.lab.dnsmasq import dnsmasq_argv, wait_dnsmasq
from tests.e2e.mesh import joined
from tests.e2e.routed import route_body, routes_view, wait_until

INTERCEPTOR = "127.0.0.77"
FORWARDER_PORT = 22054
MANAGED = f"nameserver {INTERCEPTOR}"


# -- name servers ----------------------------------------------------------------------------------


def restart_dnsmasq(world: World, proc: Proc, *records: str) -> None:
    """Stop a dnsmasq and start it again with other records (same address, zone and log)."""
    proc.stop(timeout=5)
    option = {a.split("=", 1)[0]: a.split("=", 1)[1] for a in proc.argv if "=" in a}
    proc.argv = dnsmasq_argv(option["--listen-address"], option["--local"].strip("/"), *records)
    proc.start()
    wait_dnsmasq(world, proc)


def queries(proc: Proc) -> list[tuple[str, str]]:
    """(type, name) of every query a dnsmasq logged, e.g. ("A", "app.internal.test")."""
    text = proc.log.read_text(errors="replace") if proc.log.exists() else ""
    return re.findall(r"query\[(\w+)\] (\S+) from ", text)


def asked(proc: Proc) -> set[str]:
    return {name.lower().rstrip(".") for _, name in queries(proc)}


def add_addresses(world: World, node: str, *addresses: str, iface: str = "eth0") -> None:
    """More IPv4 addresses (/24) on a LAN host, so that one host stands for several services."""
    for address in addresses:
        world.exec(node, ["ip", "addr", "add", f"{address}/24", "dev", iface])


# -- the client's resolver -------------------------------------------------------------------------


def resolv_conf(world: World, node: str) -> Path:
    """The file `ip netns exec` mounts over the node's /etc/resolv.conf (the one the agent rewrites)."""
    return ns.ETC_NETNS / world.netns(node) / "resolv.conf"


def host_resolv_conf() -> tuple[str, str]:
    """The root namespace's /etc/resolv.conf: its content's hash and where it points."""
    path = Path("/etc/resolv.conf")
    data = path.read_bytes() if path.exists() else b""
    return hashlib.sha256(data).hexdigest(), str(path.resolve())


def wait_interceptor(world: World, node: str, timeout: float = 20.0) -> None:
    """Wait until the node's resolv.conf points at the interceptor and the interceptor answers."""

    def ready() -> tuple[bool, str]:
        text = resolv_conf(world, node).read_text()
        if MANAGED not in text:
            return False, text
        out = dig(world, node, "interceptor-probe.invalid", server=INTERCEPTOR, time=1)
        return "status:" in out, out

    wait_until(world, f"{node}: the DNS interceptor", ready, lambda r: r[0], timeout=timeout, logs=[node])


def getent(world: World, node: str, name: str) -> set[str]:
    """The IPv4 addresses an application gets for ``name`` (glibc, through the node's resolv.conf)."""
    done = world.exec(node, ["getent", "ahostsv4", name], check=False, timeout=20)
    return {line.split()[0] for line in done.stdout.splitlines() if line.strip()}


def dig(
    world: World,
    node: str,
    name: str,
    *extra: str,
    server: str | None = None,
    port: int = 53,
    time: int = 3,
) -> str:
    """dig's full output (``server`` None: the node's resolv.conf decides)."""
    argv = ["dig", *([f"@{server}", "-p", str(port)] if server else []), f"+time={time}", "+tries=1"]
    return world.exec(node, [*argv, name, *extra], check=False, timeout=time + 10).stdout


def rcode(output: str) -> str | None:
    found = re.search(r"status: (\w+)", output)
    return found.group(1) if found else None


# -- routes ----------------------------------------------------------------------------------------


def domain_route_body(
    network_id: str, domains: list[str], groups: list[str], **fields: Any
) -> dict[str, Any]:
    body = route_body(network_id, "", groups, **fields)
    del body["network"]
    body["domains"] = domains
    return body


def create_domain_route(
    world: World, network_id: str, domains: list[str], groups: list[str], **fields: Any
) -> str:
    """POST /api/routes with ``domains`` instead of ``network``; returns the route's ID."""
    reply = world.api.post("/api/routes", json=domain_route_body(network_id, domains, groups, **fields))
    assert reply.status_code == 200, reply.text
    assert reply.json()["network_type"] == "Domain", reply.json()
    return str(reply.json()["id"])


def start_agents_with(
    world: World, nodes: Sequence[str], extra_args: Mapping[str, Sequence[str]] | None = None
) -> dict[str, dict[str, Any]]:
    """:func:`routed.start_agents` with extra `meshroute agent run` arguments per node."""
    key = world.server.setup_key("domains")
    for node in nodes:
        world.start_agent(node, setup_key=key, extra_args=(extra_args or {}).get(node, ()))
    return joined(world, *nodes)


def learned(world: World, node: str, network_id: str) -> dict[str, list[dict[str, Any]]]:
    """The group's "learned" addresses in `meshroute agent routes list --json`: name -> entries
    (names without a trailing dot; {} when the group is missing or has learned nothing)."""
    for g in routes_view(world, node):
        if g["network_id"] == network_id:
            value = g.get("learned") or {}
            assert isinstance(value, dict), g
            return {name.rstrip("."): entries for name, entries in value.items()}
    return {}


def learned_prefixes(world: World, node: str, network_id: str) -> dict[str, set[str]]:
    groups = learned(world, node, network_id)
    return {name: {e["prefix"] for e in entries} for name, entries in groups.items()}


def route_status(world: World, route_id: str) -> list[dict[str, Any]]:
    reply = world.api.get(f"/api/routes/{route_id}/status")
    assert reply.status_code == 200, f"{reply.status_code} {reply.text}"
    value = reply.json()
    assert isinstance(value, list), value
    return value


def domain_sets(world: World, node: str) -> dict[str, set[str]]:
    """The routing peer's nftables domain sets (``d<i>_v4``/``d<i>_v6`` in ``inet meshroute``): name ->
    the addresses in it now."""
    done = world.exec(node, ["nft", "-j", "list", "table", "inet", "meshroute"], check=False)
    if done.returncode != 0:
        return {}
    sets: dict[str, set[str]] = {}
    for item in json.loads(done.stdout)["nftables"]:
        found = item.get("set")
        if not found or not re.fullmatch(r"d\d+_v[46]", found["name"]):
            continue
        elements: set[str] = set()
        for element in found.get("elem", []):
            value = element["elem"]["val"] if isinstance(element, dict) and "elem" in element else element
            if isinstance(value, dict) and "prefix" in value:
                value = f"{value['prefix']['addr']}/{value['prefix']['len']}"
            elements.add(str(value))
        sets[found["name"]] = elements
    return sets


def in_domain_sets(world: World, node: str) -> set[str]:
    return set().union(*domain_sets(world, node).values())
