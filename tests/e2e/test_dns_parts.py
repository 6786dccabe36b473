"""The agent's DNS parts in network namespaces, without agents or WireGuard (root).

    mgmt (172.31.0.2)      dnsmasq: the client's usual name server (www.outside.test, svc.internal.test)
    client (172.31.0.11)   interceptor on 127.0.0.77:53, its resolv.conf managed (tests/e2e/dns_node.py)
    r1 (172.31.0.12)       forwarder on 172.31.0.12:22054 (standing in for its overlay address),
                           resolving with its /etc/resolv.conf -> the LAN's dnsmasq
    office-h1 (10.77.0.10) dnsmasq for internal.test (the LAN DNS), behind r1

The client reaches r1 over the underlay's veth pairs instead of a tunnel: what is proven here is the
DNS path (interception, forwarding, answers reaching the engine before the application, names
outside the routes untouched, resolv.conf written in place through `ip netns exec`'s bind mount of
/etc/netns/NS/resolv.conf and restored after SIGTERM and after SIGKILL). Nothing here touches the
host's /etc/resolv.conf: every namespace has its own file.
"""

from __future__ import annotations

import hashlib
import json
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from meshroute.lab import Lan, Network, Proc, wait_for
from meshroute.lab import netns as ns
from meshroute.lab.dnsmasq import dnsmasq_argv
from tests.needs import need_dns_tools

from .conftest import need_lab

NODE = str(Path(__file__).with_name("dns_node.py"))
ORIGINAL = (
    "# the client's own resolv.conf\nsearch corp.test\nnameserver 172.31.0.2\noptions timeout:2 attempts:2\n"
)
FORWARDER = "172.31.0.12:22054"
ROUTES = ["app.internal.test=ha-app", "*.svc.internal.test=ha-svc"]


@dataclass
class Bed:
    net: Network
    lan_dns: Proc
    usual_dns: Proc
    forwarder: Proc
    state_dir: Path

    @property
    def resolv_conf(self) -> Path:
        """What `ip netns exec` mounts over the client's /etc/resolv.conf."""
        return ns.ETC_NETNS / self.net.netns("client") / "resolv.conf"

    def start_interceptor(self) -> Proc:
        argv = [sys.executable, NODE, "interceptor", "--listen", "127.0.0.77:53", "--forwarder", FORWARDER]
        argv += ["--state-dir", str(self.state_dir)] + [a for r in ROUTES for a in ("--route", r)]
        proc = self.net.popen("client", argv, name="interceptor")
        starts = proc.starts
        wait_for(
            lambda: _events(proc, "ready", start=starts) or not proc.running,
            timeout=15,
            message=lambda: f"interceptor ready\n{proc.tail()}",
        )
        assert proc.running, proc.tail()
        return proc

    def getent(self, name: str) -> set[str]:
        done = self.net.exec("client", ["getent", "ahostsv4", name], check=False, timeout=15)
        return {line.split()[0] for line in done.stdout.splitlines() if line.strip()}

    def dig(self, name: str, *extra: str, server: str = "127.0.0.77", port: int = 53) -> str:
        argv = ["dig", f"@{server}", "-p", str(port), "+time=3", "+tries=1", name, *extra]
        return self.net.exec("client", argv, check=False, timeout=15).stdout


def _events(proc: Proc, kind: str, start: int | None = None) -> list[dict[str, Any]]:
    """The JSON events of a dns_node.py process (of its start number `start`, default: all)."""
    out: list[dict[str, Any]] = []
    run = 0
    try:
        text = proc.log.read_text(errors="replace")
    except OSError:
        return out
    for line in text.splitlines():
        if line.startswith("--- start #"):
            run = int(line.split("#", 1)[1].split(":", 1)[0])
            continue
        if not line.startswith("{"):
            continue
        try:
            event = json.loads(line)
        except ValueError:
            continue
        if event.get("event") == kind and (start is None or run == start):
            out.append(event)
    return out


def _started(dnsmasq: Proc) -> None:
    wait_for(
        lambda: "started, version" in dnsmasq.tail() or not dnsmasq.running,
        timeout=10,
        message=lambda: f"{dnsmasq.name} started\n{dnsmasq.tail()}",
    )
    assert dnsmasq.running, dnsmasq.tail()


def _host_resolv_conf() -> tuple[str, str]:
    path = Path("/etc/resolv.conf")
    data = path.read_bytes() if path.exists() else b""
    return hashlib.sha256(data).hexdigest(), str(path.resolve())


@pytest.fixture
def bed(tmp_path: Path) -> Iterator[Bed]:
    need_lab()
    need_dns_tools()
    host_before = _host_resolv_conf()
    net = Network.create(
        ["client", "r1"], lans={"office": Lan(routers=["r1"])}, ipv6=False, workdir=tmp_path / "net"
    )
    try:
        lan_host = net.node("office-h1").ipv4  # 10.77.0.10
        lan_dns = net.popen(
            "office-h1",
            dnsmasq_argv(
                lan_host,
                "internal.test",
                "--host-record=app.internal.test,10.77.0.20",
                "--host-record=lb.internal.test,10.77.0.31",
                "--cname=a.svc.internal.test,lb.internal.test",
                "--host-record=svc.internal.test,10.77.0.30",
                "--local-ttl=30",
            ),
            name="dnsmasq-lan",
        )
        usual_dns = net.popen(
            "mgmt",
            dnsmasq_argv(
                net.node("mgmt").ipv4,
                "test",
                "--host-record=www.outside.test,192.0.2.80",
                "--host-record=svc.internal.test,192.0.2.30",  # a different answer: who answered shows
                "--host-record=host.corp.test,192.0.2.81",
            ),
            name="dnsmasq-usual",
        )
        net.set_resolv_conf("r1", f"nameserver {lan_host}\n")  # the routing peer's own resolver
        net.set_resolv_conf("client", ORIGINAL)
        _started(lan_dns)
        _started(usual_dns)
        argv = [sys.executable, NODE, "forwarder", "--listen", FORWARDER, "--source", "172.31.0.0/24"]
        argv += ["--route", "app.internal.test=r-app", "--route", "*.svc.internal.test=r-svc"]
        forwarder = net.popen("r1", argv, name="forwarder")
        wait_for(lambda: _events(forwarder, "ready") or not forwarder.running, timeout=15)
        assert forwarder.running, forwarder.tail()
        yield Bed(net, lan_dns, usual_dns, forwarder, tmp_path / "state")
    finally:
        failed = False
        try:
            net.close()
        except RuntimeError as exc:
            failed = True
            print(exc)
        assert _host_resolv_conf() == host_before, "the host's /etc/resolv.conf changed"
        assert not failed


def test_forwarder_resolves_route_names_through_the_lan_dns_and_refuses_the_rest(bed: Bed) -> None:
    out = bed.dig("app.internal.test", "+short", server="172.31.0.12", port=22054)
    assert out.split() == ["10.77.0.20"]
    (resolved,) = _events(bed.forwarder, "resolved")
    assert resolved["routes"] == ["r-app"] and resolved["addresses"] == ["10.77.0.20"]
    assert resolved["ttl"] == 30
    tcp = bed.dig("a.svc.internal.test", "+tcp", server="172.31.0.12", port=22054)
    assert "status: NOERROR" in tcp and "lb.internal.test" in tcp and "10.77.0.31" in tcp
    assert _events(bed.forwarder, "resolved")[-1]["name"] == "a.svc.internal.test"
    for name in ("www.outside.test", "svc.internal.test", "internal.test"):
        assert "status: REFUSED" in bed.dig(name, server="172.31.0.12", port=22054), name
    assert "www.outside.test" not in bed.lan_dns.tail(200)  # refused names are never resolved


def test_interceptor_routes_route_names_and_leaves_everything_else_as_it_was(bed: Bed) -> None:
    before = bed.resolv_conf.stat().st_ino
    icpt = bed.start_interceptor()
    text = bed.resolv_conf.read_text()
    assert "nameserver 127.0.0.77" in text and "nameserver 172.31.0.2" not in text
    assert "search corp.test" in text and "options timeout:2 attempts:2" in text
    assert bed.resolv_conf.stat().st_ino == before  # written in place, through the bind mount
    (ready,) = _events(icpt, "ready")
    assert ready["upstreams"] == [["172.31.0.2", 53]]

    # A route name: through the routing peer's forwarder, learned before getent has its answer.
    assert bed.getent("app.internal.test") == {"10.77.0.20"}
    learned = _events(icpt, "learned")
    assert learned and learned[0]["ha_id"] == "ha-app" and learned[0]["added"] == ["10.77.0.20/32"]
    assert any(e["name"] == "app.internal.test" for e in _events(bed.forwarder, "resolved"))

    # A wildcard route: a CNAME chain is learned under the name asked for; the base is not routed.
    assert bed.getent("a.svc.internal.test") == {"10.77.0.31"}
    last = _events(icpt, "learned")[-1]
    assert (last["ha_id"], last["name"], last["added"]) == (
        "ha-svc",
        "a.svc.internal.test",
        ["10.77.0.31/32"],
    )
    assert bed.getent("svc.internal.test") == {"192.0.2.30"}  # the usual name server's answer

    # Other names: the usual name server, search list included, never the routing peer.
    assert bed.getent("www.outside.test") == {"192.0.2.80"}
    assert bed.getent("host") == {"192.0.2.81"}  # search corp.test
    assert "status: NOERROR" in bed.dig("www.outside.test", "+tcp")
    assert "status: NXDOMAIN" in bed.dig("nothere.test")
    asked_r1 = {e["name"] for e in _events(bed.forwarder, "resolved")}
    assert asked_r1 == {"app.internal.test", "a.svc.internal.test"}
    assert "www.outside.test" not in bed.lan_dns.tail(400) and "svc.internal.test" in bed.usual_dns.tail(400)
    assert len(_events(icpt, "learned")) == 2

    # SIGTERM: the original file comes back, byte for byte, in the same inode.
    assert icpt.stop(timeout=10) == 0
    assert bed.resolv_conf.read_text() == ORIGINAL and bed.resolv_conf.stat().st_ino == before
    assert bed.getent("www.outside.test") == {"192.0.2.80"}
    assert not (bed.state_dir / "installed.json").exists()


def test_resolv_conf_comes_back_after_a_crash(bed: Bed) -> None:
    icpt = bed.start_interceptor()
    assert bed.getent("app.internal.test") == {"10.77.0.20"}
    icpt.kill()  # SIGKILL: no cleanup at all
    assert "nameserver 127.0.0.77" in bed.resolv_conf.read_text()
    assert json.loads((bed.state_dir / "installed.json").read_text())["dns"]["original"] == ORIGINAL
    assert bed.getent("www.outside.test") == set()  # nobody answers on 127.0.0.77 now

    # The next start puts the original back first (and takes the host over again).
    icpt.start()
    wait_for(lambda: _events(icpt, "ready", start=2) or not icpt.running, timeout=15)
    (leftovers,) = _events(icpt, "leftovers", start=2)
    assert leftovers["restored"] == ["the original /etc/resolv.conf"]
    assert _events(icpt, "ready", start=2)[0]["upstreams"] == [["172.31.0.2", 53]]  # not itself
    assert bed.getent("app.internal.test") == {"10.77.0.20"}
    icpt.kill()

    # Or a start that only restores (the agent's start without domain routes).
    ns.run(
        ns.exec_argv(
            bed.net.netns("client"), [sys.executable, NODE, "restore", "--state-dir", str(bed.state_dir)]
        )
    )
    assert bed.resolv_conf.read_text() == ORIGINAL
    assert not (bed.state_dir / "installed.json").exists()
    assert bed.getent("www.outside.test") == {"192.0.2.80"}


def test_no_routing_peer_answer_is_servfail_for_route_names_only(bed: Bed) -> None:
    icpt = bed.start_interceptor()
    bed.forwarder.stop(timeout=10)  # the routing peer's forwarder is gone
    assert "status: SERVFAIL" in bed.dig("app.internal.test")
    assert "status: NOERROR" in bed.dig("www.outside.test")
    assert _events(icpt, "learned") == []
    icpt.stop(timeout=10)
    assert bed.resolv_conf.read_text() == ORIGINAL


SEND = ["bash", "-c", "echo x > /dev/udp/172.31.0.2/9"]  # one UDP datagram: a tracked flow


def test_conntrack_tells_which_learned_addresses_are_in_use(bed: Bed) -> None:
    def inuse(*addresses: str) -> dict[str, bool]:
        argv = [sys.executable, NODE, "inuse", *addresses]
        out = bed.net.exec("client", argv, timeout=15).stdout
        return dict(json.loads(out.splitlines()[-1])["used"])

    # Without a rule that uses conntrack nothing is tracked: the engine loads one on clients.
    bed.net.exec("client", SEND, check=False)
    assert inuse("172.31.0.2") == {"172.31.0.2": False}
    rules = "table inet dnstest {\n chain out {\n type filter hook output priority 0;\n ct state new\n }\n}\n"
    bed.net.exec("client", ["nft", "-f", "-"], input=rules)
    bed.net.exec("client", SEND, check=False)
    assert inuse("172.31.0.2", "10.77.0.20") == {"172.31.0.2": True, "10.77.0.20": False}
