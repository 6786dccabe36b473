"""What the route tests share: agents joined and routes made through the REST API, the client's
table 7120 and policy rules, the agents' own view of their routes, WireGuard AllowedIPs per routing
peer, ping runs written to a file (reply gaps), and test-owned nftables counters (a packet that
arrived at a routing peer, reached a LAN host, or leaked to the underlay)."""

from __future__ import annotations

import itertools
import json
import re
import signal
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from meshroute.agent import control
from meshroute.lab import WaitTimeout, World
from meshroute.lab.daemons import meshroute_bin
from meshroute.lab.process import Proc
from tests.e2e.mesh import diagnosis, joined, nft_counters, wg_device

T = TypeVar("T")
TABLE = 7120
COUNTERS = "mrtest"  # the tests' own nftables table (inet), never the agent's


# -- agents and the REST API ---------------------------------------------------------------------------


def start_agents(world: World, *nodes: str) -> dict[str, dict[str, Any]]:
    """Start an agent in each node with one setup key; wait until all joined (their server records)."""
    key = world.server.setup_key("routes")
    for node in nodes:
        world.start_agent(node, setup_key=key)
    return joined(world, *nodes)


def everyone(world: World) -> str:
    return str(world.api.get("/api/groups", params={"name": "All"}).json()[0]["id"])


def group(world: World, name: str, peers: Iterable[dict[str, Any]]) -> str:
    reply = world.api.post("/api/groups", json={"name": name, "peers": [p["id"] for p in peers]})
    assert reply.status_code == 200, reply.text
    return str(reply.json()["id"])


def route_body(network_id: str, network: str, groups: list[str], **fields: Any) -> dict[str, Any]:
    """A route's full body (PUT replaces the whole route): ``peer=ID`` or ``peer_groups=[...]`` in fields."""
    body: dict[str, Any] = {
        "network_id": network_id,
        "network": network,
        "description": f"e2e {network_id}",
        "groups": groups,
        "metric": 9999,
        "masquerade": False,
        "keep_route": False,
        "enabled": True,
        "skip_auto_apply": False,
    }
    body.update(fields)
    return body


def create_route(world: World, network_id: str, network: str, groups: list[str], **fields: Any) -> str:
    """POST /api/routes; returns the route's ID."""
    reply = world.api.post("/api/routes", json=route_body(network_id, network, groups, **fields))
    assert reply.status_code == 200, reply.text
    return str(reply.json()["id"])


# -- the client's kernel state -------------------------------------------------------------------------


def table(world: World, node: str, family: int = 4) -> list[str]:
    """Table 7120 as `ip route` prints it, one line per entry, sorted, without protocol, scope, metric
    and preference: `10.77.0.0/24 dev mr0`, `unreachable 10.77.0.0/24`, `default dev mr0`."""
    out = world.exec(node, ["ip", f"-{family}", "route", "show", "table", str(TABLE)], check=False).stdout
    lines = []
    for line in out.splitlines():
        line = re.sub(r" proto \S+| scope \S+| metric \d+| pref \S+", "", line.strip())
        if line.startswith("unreachable "):
            line = line.removesuffix(" dev lo")  # how IPv6 shows an unreachable route
        if line:
            lines.append(line)
    return sorted(lines)


def rules(world: World, node: str, family: int = 4) -> list[str]:
    """The policy rules other than the kernel's own (0, 32766, 32767)."""
    out = world.exec(node, ["ip", f"-{family}", "rule", "show"]).stdout
    return [line.strip() for line in out.splitlines() if line.split(":")[0] not in ("0", "32766", "32767")]


def rule_prefs(world: World, node: str, family: int = 4) -> list[str]:
    return sorted(line.split(":")[0] for line in rules(world, node, family))


def nft_tables(world: World, node: str) -> list[str]:
    return [line for line in world.exec(node, ["nft", "list", "tables"]).stdout.splitlines() if line]


def nft_addresses(world: World, node: str, table: str = "meshroute") -> set[str]:
    """Every IPv4 address written in a node's ``inet`` table (e.g. the allowed sources of its routes)."""
    text = world.exec(node, ["nft", "list", "table", "inet", table]).stdout
    return set(re.findall(r"(?<![\d.])\d{1,3}(?:\.\d{1,3}){3}(?![\d.])", text))


def sysctl(world: World, node: str, key: str) -> str:
    return world.exec(node, ["sysctl", "-n", key]).stdout.strip()


# -- what the agents say -------------------------------------------------------------------------------


def status(world: World, node: str) -> dict[str, Any]:
    """`meshroute agent status --json`, asked over the control socket (no process per call)."""
    result = control.call(world.agents[node].state_dir, "status")
    assert isinstance(result, dict), result
    return result


def routes_view(world: World, node: str) -> list[dict[str, Any]]:
    """`meshroute agent routes list --json`, asked over the agent's control socket (fast enough to poll)."""
    result = control.call(world.agents[node].state_dir, "routes")
    assert isinstance(result, list), result
    return result


def routes_list_cli(world: World, node: str) -> list[dict[str, Any]]:
    """The same through the real CLI, run in the node's namespace."""
    argv = [meshroute_bin(), "agent", "routes", "list", "--state-dir", str(world.agents[node].state_dir)]
    value = json.loads(world.exec(node, [*argv, "--json"]).stdout)
    assert isinstance(value, list), value
    return value


def agent_routes(world: World, node: str, *args: str) -> str:
    """`meshroute agent routes ARGS --state-dir DIR` in the node's namespace; its output."""
    argv = [meshroute_bin(), "agent", "routes", *args, "--state-dir", str(world.agents[node].state_dir)]
    done = world.exec(node, argv)
    return done.stdout + done.stderr


def group_view(world: World, node: str, network_id: str, network: str | None = None) -> dict[str, Any] | None:
    for g in routes_view(world, node):
        if g["network_id"] == network_id and (network is None or g["network"] == network):
            return g
    return None


def routing_peer(world: World, node: str, network_id: str, network: str | None = None) -> str | None:
    """The name of the routing peer that carries the group now (None: nobody, or no such group)."""
    g = group_view(world, node, network_id, network)
    return g["routing_peer"] if g and g["installed"] else None


def candidate_states(world: World, node: str, network_id: str) -> dict[str, str | None]:
    g = group_view(world, node, network_id)
    return {c["peer"]: c["state"] for c in g["candidates"]} if g else {}


def wait_until(
    world: World,
    what: str,
    probe: Callable[[], T],
    ok: Callable[[T], bool],
    *,
    timeout: float = 20.0,
    logs: Sequence[str] | None = None,
) -> T:
    """Wait until ``ok(probe())``; returns the last value probed, which a timeout also shows."""
    last: list[T] = []

    def condition() -> bool:
        value = probe()
        last[:] = [value]
        return ok(value)

    try:
        world.wait_for(condition, timeout=timeout, interval=0.02, message=what, logs=logs)
    except WaitTimeout as exc:
        seen = last[0] if last else None
        raise WaitTimeout(f"{what}: last seen {seen!r}\n{diagnosis(world)}\n{exc}") from None
    return last[0]


def wait_via(world: World, node: str, network_id: str, peer: str, timeout: float = 20.0) -> None:
    wait_until(
        world,
        f"{node}: route {network_id} via {peer}",
        lambda: group_view(world, node, network_id),
        lambda view: view is not None and view["installed"] and view["routing_peer"] == peer,
        timeout=timeout,
        logs=[node],
    )


def wait_table(
    world: World, node: str, v4: list[str] | None = None, v6: list[str] | None = None, timeout: float = 20.0
) -> None:
    """Wait until table 7120 holds exactly these entries (per family; None: not checked)."""
    wait_until(
        world,
        f"{node}: table 7120 == {v4} / {v6}",
        lambda: (table(world, node, 4), table(world, node, 6)),
        lambda seen: (v4 is None or seen[0] == sorted(v4)) and (v6 is None or seen[1] == sorted(v6)),
        timeout=timeout,
        logs=[node],
    )


def allowed_ips(world: World, node: str) -> dict[str, tuple[str, ...]]:
    """The node's WireGuard peers by name (as the node's agent names them) -> their AllowedIPs, as
    WireGuard itself reports them."""
    names = {p["public_key"]: p["name"] for p in status(world, node)["peers"]}
    return {names.get(p.public_key, p.public_key): p.allowed_ips for p in wg_device(world, node)[1]}


def holder(world: World, node: str, prefix: str) -> list[str]:
    """The WireGuard peers (names) whose AllowedIPs hold ``prefix`` (at most one, if all is well)."""
    return sorted(name for name, ips in allowed_ips(world, node).items() if prefix in ips)


# -- traffic -------------------------------------------------------------------------------------------

_REPLY = re.compile(r"^\[(\d+\.\d+)\] \d+ bytes from .*icmp_seq=(\d+)")
_SENT = re.compile(r"icmp_seq=(\d+)")


@dataclass
class PingRun:
    """`ping -D -O -i 0.05 -W 1` running in a node, its output going to a file (never to a pipe)."""

    proc: Proc

    def replies(self) -> list[tuple[float, int]]:
        text = self.proc.log.read_text(errors="replace")
        return [(float(m.group(1)), int(m.group(2))) for m in map(_REPLY.match, text.splitlines()) if m]

    def replies_after(self, t: float) -> int:
        return sum(1 for ts, _ in self.replies() if ts > t)

    def stop(self) -> Gap:
        self.proc.stop(timeout=5, sig=signal.SIGINT)
        return self.gap()

    def gap(self, since: float = 0.0) -> Gap:
        """The longest silence (from the last reply before ``since``, wall clock, on)."""
        replies = self.replies()
        first = next((i for i, (ts, _) in enumerate(replies) if ts >= since), len(replies))
        replies = replies[max(first - 1, 0) :]
        assert len(replies) >= 2, self.proc.tail()
        text = self.proc.log.read_text(errors="replace")
        sent = max((int(m.group(1)) for m in _SENT.finditer(text)), default=0)
        seen = {seq for _, seq in self.replies()}
        lost = [s for s in range(replies[0][1], sent + 1) if s not in seen]
        worst = max((b[0] - a[0], a[0]) for a, b in itertools.pairwise(replies))
        return Gap(seconds=worst[0], at=worst[1], lost=len(lost), sent=sent)


@dataclass(frozen=True)
class Gap:
    seconds: float  # the longest time between two consecutive replies
    at: float  # when it began (wall clock, as ping -D prints)
    lost: int
    sent: int

    def __str__(self) -> str:
        return f"gap {self.seconds * 1000:.0f} ms, {self.lost} of {self.sent} lost"


def ping_run(world: World, node: str, address: str, name: str = "ping") -> PingRun:
    """Start pinging every 50 ms; wait for the first reply."""
    argv = ["ping", "-n", "-D", "-O", "-i", "0.05", "-W", "1", address]
    run = PingRun(world.popen(node, argv, name=name))
    world.wait_for(lambda: run.replies(), timeout=15, message=f"no reply from {address}\n{run.proc.tail()}")
    return run


def wait_replies(world: World, run: PingRun, since: float, count: int = 10, timeout: float = 10.0) -> None:
    """Wait until the run has ``count`` replies after ``since`` (wall clock): traffic flows again."""
    world.wait_for(
        lambda: run.replies_after(since) >= count,
        timeout=timeout,
        message=f"traffic did not resume\n{run.proc.tail(15)}",
    )


def no_route(world: World, node: str, address: str) -> str:
    """Ping once; the error ping reports (empty when an answer came)."""
    done = world.exec(node, ["ping", "-n", "-c", "1", "-W", "1", address], check=False, timeout=5)
    return "" if done.returncode == 0 else (done.stdout + done.stderr).strip()


# -- counters ------------------------------------------------------------------------------------------


def add_counters(world: World, node: str, hook: str, rules: Mapping[str, str]) -> None:
    """The test's own table ``inet mrtest`` with one chain per hook (policy accept, nothing dropped):
    a counting rule per name, ``rules`` = {name: nft match}. Read them with :func:`counters`."""
    chain = f"c_{hook}"
    priority = -300 if hook in ("prerouting", "input") else 300
    spec = f"type filter hook {hook} priority {priority}; policy accept;"
    script = [
        f"add table inet {COUNTERS}",
        f"add chain inet {COUNTERS} {chain} {{ {spec} }}",
    ]
    for name, match in rules.items():
        script.append(f'add rule inet {COUNTERS} {chain} {match} counter comment "{name}"')
    world.exec(node, ["nft", "-f", "-"], input="\n".join(script) + "\n")


def counters(world: World, node: str) -> dict[str, int]:
    return nft_counters(world, node, COUNTERS)
