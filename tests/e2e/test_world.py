"""The world builder itself: topology and reachability, the server behind the forwarder, teardown
guarantees (no namespace, process or /etc/netns entry left, root namespace untouched) and the sweeper."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from meshroute.lab import Internet, Lan, WaitTimeout, World, netns, snapshot, wait_for
from meshroute.lab.daemons import Agent
from meshroute.lab.topology import plan

from .conftest import MakeWorld

# -- without root: the plan ---------------------------------------------------------------------------


def test_plan_lays_out_names_addresses_and_routes() -> None:
    p = plan(
        "mrl1x1",
        ["client", "r1", "r2"],
        lans={"office": ["r1", "r2"], "lab": Lan(routers=["r2"], hosts=2, default_via="r2")},
        internet=Internet(exits=["r1"], hosts=1),
    )
    nodes = "under mgmt client r1 r2 office office-h1 lab lab-h1 lab-h2 inet inet-h1"
    assert sorted(p.nodes) == sorted(nodes.split())
    assert p.nodes["client"].netns == "mrl1x1-client"
    assert p.nodes["mgmt"].ipv4 == "172.31.0.2"
    assert [p.nodes[n].ipv4 for n in ("client", "r1", "r2")] == ["172.31.0.11", "172.31.0.12", "172.31.0.13"]
    assert p.nodes["r2"].ipv6 == "fc00:172:31::13"
    # r2 is on two LANs: lan0 and lan1, in the order the LANs were given
    assert p.nodes["r2"].addr("lan0") == "10.77.0.2" and p.nodes["r2"].addr("lan1") == "10.77.1.1"
    assert p.nodes["r2"].addr("lan1", 6) == "fc00:77:1::1"
    assert [p.nodes[h].ipv4 for h in ("lab-h1", "lab-h2")] == ["10.77.1.10", "10.77.1.11"]
    assert p.routes["lab-h1"] == [
        "route add default via 10.77.1.1 dev eth0",
        "route add default via fc00:77:1::1 dev eth0",
    ]
    assert "office-h1" not in p.routes  # no default_via: no default route
    assert p.nodes["r1"].addr("wan0") == "203.0.113.1" and p.nodes["inet-h1"].ipv4 == "203.0.113.10"
    assert p.routes["r1"][0] == "route add default via 203.0.113.254 dev wan0"
    assert (
        p.segments["internet"].gateway4 is not None
        and str(p.segments["internet"].gateway4.ip) == "203.0.113.254"
    )
    root = p.root_batch()
    assert "link add name eth0 netns mrl1x1-client type veth peer name p-client netns mrl1x1-under" in root
    assert all(" netns " in line for line in root if line.startswith("link add"))  # never in the root ns
    assert len(plan("t", ["a"], ipv6=False).nodes["a"].ifaces) == 1
    assert plan("t", ["a"], ipv6=False).nodes["a"].ifaces[0].ipv6 is None


@pytest.mark.parametrize(
    ("peers", "kwargs", "message"),
    [
        (["Client"], {}, "bad peer name"),
        (["a-very-long-name"], {}, "at most 13"),
        (["mgmt"], {}, "used twice"),
        (["a", "a"], {}, "repeat"),
        (["a"], {"lans": {"office": ["b"]}}, "not a peer"),
        (["a"], {"lans": {"office": Lan(routers=["a"], default_via="b")}}, "not one of its routers"),
        (["a"], {"internet": ["b"]}, "not a peer"),
        (["a"], {"lans": {"a": ["a"]}}, "used twice"),
        (["a"], {"lans": {"internet": ["a"]}}, "cannot be called"),
        (["a"], {"lans": {"office": []}}, "1 to 9 distinct routers"),
        (["a"], {"lans": {"office": Lan(routers=["a"], hosts=241)}}, "between 0 and 240 hosts"),
    ],
)
def test_plan_rejects_bad_specs(peers: list[str], kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        plan("t", peers, **kwargs)  # type: ignore[arg-type]


def test_agent_command_line_follows_the_cli_contract(tmp_path: Path) -> None:
    agent = Agent(
        "r1",
        "mrl1x1-r1",
        "172.31.0.2:33074",
        tmp_path / "state",
        tmp_path / "agent.log",
        setup_key="KEY",
        listen_port=51821,
        endpoints=["172.31.0.12:51821"],
        wireguard="userspace",
        probe_interval_ms=100,
        extra_args=["--interface", "mr1"],
    )
    state = str(tmp_path / "state")
    expected = "agent run --server 172.31.0.2:33074 --state-dir STATE --insecure"
    expected += " --hostname r1 --listen-port 51821 --endpoint 172.31.0.12:51821 --wireguard userspace"
    expected += " --probe-interval 100 --interface mr1"
    assert agent.proc.argv[1:] == [state if a == "STATE" else a for a in expected.split()]
    assert agent.proc.env["MESHROUTE_SETUP_KEY"] == "KEY"  # a secret: never in the arguments
    restart = Agent("r1", "ns", "s:1", tmp_path / "s", tmp_path / "l", setup_key="")
    assert "MESHROUTE_SETUP_KEY" not in restart.proc.env


def test_wait_for_returns_the_value_or_explains_the_timeout() -> None:
    values = iter([0, None, 7])
    assert wait_for(lambda: next(values), timeout=1, interval=0.001) == 7

    def never() -> bool:
        raise ValueError("not yet")

    with pytest.raises(
        WaitTimeout, match=r"the thing not true after 0.05 s \(last error: ValueError: not yet\)"
    ):
        wait_for(never, timeout=0.05, interval=0.01, message=lambda: "the thing")


# -- root: real namespaces ----------------------------------------------------------------------------


def test_reachability_follows_the_topology(make_world: MakeWorld) -> None:
    w = make_world(
        peers=["client", "r1", "r2"],
        lans={"office": ["r1", "r2"], "lab": Lan(routers=["r2"], hosts=2, default_via="r2")},
        internet=["r1"],
        server=False,
    )
    for node in w.nodes:
        assert w.ping(node, "127.0.0.1"), f"lo is down in {node}"
    # the underlay: every peer and the management node, IPv4 and IPv6
    for src, dst in [("client", "r1"), ("client", "r2"), ("r2", "mgmt"), ("mgmt", "client")]:
        assert w.ping(src, w.node(dst).ipv4), f"{src} -> {dst}"
        assert w.ping(src, w.node(dst).ipv6), f"{src} -> {dst} (IPv6)"
    # a LAN host answers its routers only
    office = w.node("office-h1")
    for router in ("r1", "r2"):
        assert w.ping(router, office.ipv4) and w.ping(router, office.ipv6), router
    for other in ("client", "mgmt"):
        assert not w.ping(other, office.ipv4, timeout=0.5), f"{other} reached the office LAN"
    assert not w.ping("r1", w.node("lab-h1").ipv4, timeout=0.5)  # r1 is not on the lab LAN
    # default_via: the lab hosts route back through r2, the office host has no default route
    routes = w.exec("lab-h2", ["ip", "-4", "route", "show", "default"]).stdout
    assert "default via 10.77.1.1 dev eth0" in routes
    assert w.exec("office-h1", ["ip", "-4", "route", "show", "default"]).stdout.strip() == ""
    # the internet: from the exit node only
    inet = w.node("inet-h1")
    assert w.ping("r1", inet.ipv4) and w.ping("r1", inet.ipv6)
    for other in ("client", "r2", "mgmt", "office-h1"):
        assert not w.ping(other, inet.ipv4, timeout=0.5), f"{other} reached the internet"
    assert "default via 203.0.113.254 dev wan0" in w.exec("r1", ["ip", "route"]).stdout
    # each namespace has its own resolv.conf, the host's is not in use
    assert "meshroute lab" in w.exec("client", ["cat", "/etc/resolv.conf"]).stdout
    w.set_resolv_conf("client", "nameserver 10.77.0.10\n")
    assert w.exec("client", ["cat", "/etc/resolv.conf"]).stdout == "nameserver 10.77.0.10\n"
    # command helpers
    failed = w.exec("client", ["sh", "-c", "echo out; echo err >&2; exit 3"], check=False)
    assert (failed.returncode, failed.stdout, failed.stderr) == (3, "out\n", "err\n")
    with pytest.raises(netns.CommandError, match=r"exit 3\nout\nerr"):
        w.exec("client", ["sh", "-c", "echo out; echo err >&2; exit 3"])
    with pytest.raises(netns.CommandError, match="timed out"):
        w.exec("client", ["sleep", "5"], timeout=0.2)


def test_two_worlds_side_by_side_do_not_collide(make_world: MakeWorld) -> None:
    a = make_world(peers=["client"], server=False)
    b = make_world(peers=["client"], server=False)
    assert a.tag != b.tag and a.netns("client") != b.netns("client")
    # same addresses, separate underlays: each client reaches its own mgmt node
    assert a.node("client").ipv4 == b.node("client").ipv4
    assert a.ping("client", a.node("mgmt").ipv4) and b.ping("client", b.node("mgmt").ipv4)


def test_server_behind_the_forwarder_survives_stop_and_kill(make_world: MakeWorld) -> None:
    w = make_world(peers=["client"])
    groups = w.api.get("/api/groups")
    assert groups.status_code == 200, groups.text
    assert [g["name"] for g in groups.json()] == ["All"]
    assert w.api.post("/api/groups", json={"name": "kept"}).status_code == 200
    # the host's admin CLI works against the forwarded URL
    listed = w.server.cli("groups", "list", "--json")
    assert sorted(g["name"] for g in json.loads(listed.stdout)) == ["All", "kept"]
    # the sync port listens on the management node's underlay address, reachable from peers
    sync_host, sync_port = w.server.sync_address.split(":")
    assert sync_host == w.node("mgmt").ipv4
    probe = f"import socket; socket.create_connection(('{sync_host}', {sync_port}), timeout=2).close()"
    w.exec("client", [sys.executable, "-c", probe])

    token = w.server.token
    assert w.server.stop() in (0, -signal.SIGTERM), w.server.proc.tail()
    with pytest.raises(httpx.TransportError):
        w.api.get("/api/groups")
    w.server.start()
    assert w.server.token == token  # same data dir: the token file was not rewritten
    assert sorted(g["name"] for g in w.api.get("/api/groups").json()) == ["All", "kept"]

    assert w.server.kill() == -signal.SIGKILL
    w.server.start()
    assert sorted(g["name"] for g in w.api.get("/api/groups").json()) == ["All", "kept"]
    assert w.server.setup_key()  # a setup key for agents
    assert w.server.peer("client") is None  # no agent has joined
    assert "server" in w.logs() and "using the existing store" in w.server.proc.tail(200)


def _run_state(tag: str) -> tuple[list[str], list[str]]:
    etc = os.listdir(netns.ETC_NETNS) if netns.ETC_NETNS.exists() else []
    return [n for n in netns.list_netns() if n.startswith(tag)], [n for n in etc if n.startswith(tag)]


def test_teardown_removes_everything_and_leaves_the_root_namespace_alone(
    lab_ready: None, tmp_path: Path
) -> None:
    before = snapshot(None)
    with World.build(peers=["client", "r1"], lans={"office": ["r1"]}, internet=["r1"], workdir=tmp_path) as w:
        tag = w.tag + "-"
        assert len(_run_state(tag)[0]) == len(w.nodes) == len(_run_state(tag)[1])
        # a process we started, an orphan (like a SIGKILLed agent's), and a real wireguard-go that
        # daemonizes (its own /run in its private mount namespace: no socket in the host's /run)
        w.popen("client", ["sleep", "300"])
        w.exec("r1", ["sh", "-c", "setsid sleep 300 >/dev/null 2>&1 </dev/null &"])
        w.exec(
            "client", ["sh", "-c", "mount -t tmpfs lab-run /run && exec wireguard-go wgtest >/dev/null 2>&1"]
        )

        def all_in() -> dict[str, list[int]] | None:
            pids = w.pids()
            return pids if [len(pids[n]) for n in ("client", "r1", "mgmt")] == [2, 1, 1] else None

        pids = w.wait_for(all_in, timeout=20, message="the processes in their namespaces")
        assert "wgtest" in w.exec("client", ["ip", "link"]).stdout
        started = [pid for found in pids.values() for pid in found]
    print(f"build {w.timings['build_s'] * 1000:.0f} ms, teardown {w.timings['teardown_s'] * 1000:.0f} ms")
    assert _run_state(tag) == ([], [])
    assert all(netns.process_gone(pid) for pid in started), [p for p in started if not netns.process_gone(p)]
    after = snapshot(None)
    assert before.diff(after, skip=["sysctls"]) == ""
    w.close()  # twice is fine


def test_a_failed_build_leaves_nothing(lab_ready: None, tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match="exited with 2 during start-up"):
        World.build(peers=["client"], workdir=tmp_path, server_args=["--no-such-option"])
    tag = f"{netns.DEFAULT_PREFIX}{os.getpid()}x"
    assert not [n for n in netns.list_netns() if n.startswith(tag)]


def test_sweeper_removes_leftovers_of_dead_runs_only(lab_ready: None) -> None:
    # above pid_max, so no process has it; unique per run, so concurrent runs do not share leftovers
    dead = int(Path("/proc/sys/kernel/pid_max").read_text()) + os.getpid()
    leftover, half_made = f"mrl{dead}x1-left", f"mrl{dead}x1-half"
    alive = f"mrl{os.getpid()}x99999-live"  # ours: the owner runs
    sleeper: subprocess.Popen[bytes] | None = None
    try:
        for name in (leftover, alive):
            netns.write_resolv_conf(name)
            netns.run(["ip", "netns", "add", name])
        netns.write_resolv_conf(half_made)  # a run that crashed between /etc/netns and `ip netns add`
        netns.run(["ip", "-n", leftover, "link", "add", "name", "v0", "type", "veth", "peer", "name", "v1"])
        sleeper = subprocess.Popen(["ip", "netns", "exec", leftover, "sleep", "300"])
        wait_for(lambda: netns.pids_in_netns([leftover])[leftover], timeout=20)

        removed = netns.sweep()  # (a concurrent run's sweeper may have been quicker: check the state)
        assert alive not in removed
        assert leftover not in netns.list_netns() and not (netns.ETC_NETNS / leftover).exists()
        assert not (netns.ETC_NETNS / half_made).exists()
        assert sleeper.wait(timeout=5) == -signal.SIGKILL
        assert alive in netns.list_netns() and (netns.ETC_NETNS / alive).exists()
    finally:
        if sleeper is not None and sleeper.poll() is None:
            sleeper.kill()
            sleeper.wait()
        netns.destroy([leftover, half_made, alive])


def test_snapshot_shows_configuration_changes_but_not_traffic(make_world: MakeWorld) -> None:
    w = make_world(peers=["client", "r1"], server=False)
    before = w.snapshot("client")
    # settled at once: no link-local address whose duplicate address detection would end later
    assert not [a for a in before.addresses if " fe80:" in a], before.addresses
    w.exec(
        "client", ["nft", "add table inet lab; add chain inet lab c { type filter hook input priority 0; }"]
    )
    w.exec("client", ["nft", "add rule inet lab c counter"])
    with_nft = w.snapshot("client")
    assert w.ping("client", w.node("r1").ipv4, count=3, interval=0.01)  # counters move, nothing else
    time.sleep(0.05)
    assert w.snapshot("client") == with_nft

    w.exec("client", ["ip", "route", "add", "10.77.0.0/24", "dev", "eth0", "table", "7120"])
    w.exec("client", ["ip", "-6", "rule", "add", "to", "fc00:77::/64", "lookup", "7120", "pref", "110"])
    w.exec("client", ["sysctl", "-qw", "net.ipv4.ip_forward=1"])
    w.exec("client", ["ip", "link", "set", "eth0", "mtu", "1400"])
    diff = before.diff(w.snapshot("client"))
    for part in ("== links", "== routes4", "== rules6", "== nftables", "== sysctls"):
        assert part in diff, diff
    assert "+10.77.0.0/24 dev eth0 table 7120" in diff and "+net.ipv4.ip_forward = 1" in diff

    w.exec("client", ["nft", "delete table inet lab"])
    w.exec("client", ["ip", "route", "del", "10.77.0.0/24", "table", "7120"])
    w.exec("client", ["ip", "-6", "rule", "del", "pref", "110"])
    w.exec("client", ["sysctl", "-qw", "net.ipv4.ip_forward=0"])
    w.exec("client", ["ip", "link", "set", "eth0", "mtu", "1500"])
    assert before.diff(w.snapshot("client")) == ""


def _carrier(w: World, node: str, iface: str) -> bool:
    link = json.loads(w.exec(node, ["ip", "-j", "link", "show", iface]).stdout)[0]
    return "UP" in link["flags"] and "NO-CARRIER" not in link["flags"]


def test_faults_and_probes(world: World) -> None:
    r1, r2, host = world.node("r1"), world.node("r2"), world.node("office-h1")
    # whoami: the far end reports the source address it saw (TCP and UDP, IPv4 and IPv6)
    world.start_whoami("office-h1")
    world.start_whoami("office-h1", udp=True)
    assert world.whoami("r1", host.ipv4) == r1.addr("lan0")
    assert world.whoami("r2", host.ipv6, udp=True) == r2.addr("lan0", 6)
    assert world.whoami("client", host.ipv4, timeout=0.5) is None

    # a pulled cable: the node sees no carrier; mended, it is back
    assert world.ping("client", r1.ipv4)
    world.cut("r1")
    assert not world.ping("client", r1.ipv4, timeout=0.5)
    assert not _carrier(world, "r1", "eth0")
    world.mend("r1")
    world.wait_for(lambda: world.ping("client", r1.ipv4, timeout=0.5), timeout=20, message="r1 back")
    # a silent cut: the switch drops the frames, the node's link stays up
    world.cut("r1", silent=True)
    assert not world.ping("client", r1.ipv4, timeout=0.5) and not world.ping("r1", r2.ipv6, timeout=0.5)
    assert _carrier(world, "r1", "eth0")
    assert world.ping("r1", host.ipv4)  # only the underlay was cut
    world.mend("r1")
    world.wait_for(lambda: world.ping("client", r1.ipv4, timeout=0.5), timeout=20, message="r1 back")
    with pytest.raises(KeyError, match="not on a segment"):
        world.cut("client", "office")

    # a node "dies": every process in it, ours and orphans alike
    sleeper = world.popen("r2", ["sleep", "300"])
    world.exec("r2", ["sh", "-c", "setsid sleep 300 >/dev/null 2>&1 </dev/null &"])
    assert len(world.kill_processes("r2")) == 2
    assert world.pids()["r2"] == [] and sleeper.returncode == -signal.SIGKILL
    sleeper.start()  # and comes back (in the namespace once `ip netns exec` has entered it)
    world.wait_for(lambda: world.pids()["r2"] == [sleeper.pid], timeout=20, message="sleeper in r2")
    assert "sleep in r2" in world.logs(["r2"])
