"""The namespaces of a plan, and what a test does with them: commands, pings, snapshots, faults, probes.

Guarantees: every namespace is named ``{prefix}{pid}x{n}-{node}``; the root namespace is never changed
(links are created directly in their namespaces, each namespace gets its own /etc/netns resolv.conf);
close() kills every process in the namespaces by PID (also orphans such as a SIGKILLed agent's
wireguard-go), deletes the namespaces and their /etc/netns entries; building first sweeps leftovers of
dead runs. See topology.py for the addressing plan.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import math
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Self

from meshroute.lab import netns as ns
from meshroute.lab import probes
from meshroute.lab.process import Proc, clean_env
from meshroute.lab.snapshot import NetSnapshot, snapshot
from meshroute.lab.topology import Internet, Lan, Node, Plan, Segment, plan
from meshroute.lab.wait import wait_for

log = logging.getLogger("meshroute.lab")

_live: set[Network] = set()
_live_lock = threading.Lock()


@atexit.register
def _close_live() -> None:
    """Last line of defence when a caller forgot close() (the next run's sweeper is the one after)."""
    for network in list(_live):
        with contextlib.suppress(Exception):
            network.close()


class Network:
    """Namespaces, links and addresses of one plan, and the processes started in them."""

    def __init__(self, layout: Plan, workdir: Path, *, owns_workdir: bool) -> None:
        self.plan = layout
        self.tag = layout.tag
        self.workdir = workdir
        self.timings: dict[str, float] = {}
        self._owns_workdir = owns_workdir
        self._procs: list[Proc] = []
        self._closed = False

    @classmethod
    def create(
        cls,
        peers: Sequence[str],
        *,
        lans: Mapping[str, Sequence[str] | Lan] | None = None,
        internet: Sequence[str] | Internet | None = None,
        ipv6: bool = True,
        workdir: Path | None = None,
        prefix: str = ns.DEFAULT_PREFIX,
        sweep: bool = True,
    ) -> Self:
        """Sweep leftovers of dead runs, then create the namespaces, links, addresses and routes.
        On failure, whatever was made is removed before the error propagates."""
        t0 = time.monotonic()
        if sweep:
            removed = ns.sweep(prefix)
            if removed:
                log.info("swept %d leftovers of dead runs: %s", len(removed), " ".join(removed))
        tag = ns.new_run_tag(prefix)
        layout = plan(tag, peers, lans=lans, internet=internet, ipv6=ipv6)
        owns = workdir is None
        workdir = Path(tempfile.mkdtemp(prefix=f"{tag}-")) if workdir is None else workdir
        workdir.mkdir(parents=True, exist_ok=True)
        network = cls(layout, workdir, owns_workdir=owns)
        with _live_lock:
            _live.add(network)
        try:
            names = [n.netns for n in layout.nodes.values()]
            # /etc/netns first: a run that dies half-way leaves entries the sweeper recognises
            for name in names:
                ns.write_resolv_conf(name)
            ns.ip_batch(layout.root_batch())
            ns.ip_batches({n.netns: layout.node_batch(n.name) for n in layout.nodes.values()})
        except BaseException:
            network.close()
            raise
        network.timings["build_s"] = time.monotonic() - t0
        log.info("%s: %d namespaces built in %.0f ms", tag, len(names), network.timings["build_s"] * 1000)
        return network

    # -- topology ------------------------------------------------------------------------------------

    @property
    def nodes(self) -> dict[str, Node]:
        return self.plan.nodes

    @property
    def peers(self) -> list[str]:
        return self.plan.peers

    def node(self, name: str) -> Node:
        try:
            return self.plan.nodes[name]
        except KeyError:
            raise KeyError(f"no node {name!r} here (nodes: {sorted(self.plan.nodes)})") from None

    def netns(self, node: str) -> str:
        return self.node(node).netns

    @property
    def underlay(self) -> Segment:
        return self.plan.segments["underlay"]

    def lan(self, name: str) -> Segment:
        seg = self.plan.segments.get(name)
        if seg is None or seg.kind != "lan":
            raise KeyError(f"no LAN {name!r} here")
        return seg

    @property
    def internet(self) -> Segment:
        seg = self.plan.segments.get("internet")
        if seg is None:
            raise KeyError("there is no internet segment here")
        return seg

    # -- commands in nodes ---------------------------------------------------------------------------

    def exec(
        self,
        node: str,
        argv: Sequence[str],
        *,
        check: bool = True,
        timeout: float = 30.0,
        input: str | None = None,
        env: Mapping[str, str] | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """Run a command in a node to completion (text output); CommandError if ``check`` and it fails,
        and when it times out (it is killed then). A child left running in the background must not
        keep stdout/stderr open (redirect them), or this waits for it; use popen() for daemons."""
        full = ns.exec_argv(self.netns(node), argv)
        return ns.run(full, input=input, timeout=timeout, check=check, env=clean_env(env))

    def popen(
        self, node: str, argv: Sequence[str], *, name: str | None = None, env: Mapping[str, str] | None = None
    ) -> Proc:
        """Start a long-running command in a node (log: WORKDIR/NODE/NAME.log); stopped by close()."""
        label = name or Path(argv[0]).name
        log_file = self.workdir / node / f"{label}.log"
        proc = Proc(f"{label} in {node}", self.netns(node), argv, log_file, env=env)
        self._procs.append(proc)
        return proc.start()

    def ping(
        self, node: str, addr: str, *, count: int = 1, timeout: float = 5.0, interval: float = 0.2
    ) -> bool:
        """Whether ``count`` echo replies come back within ``timeout`` seconds (IPv4 or IPv6)."""
        deadline = str(math.ceil(timeout))
        argv = ["ping", "-n", "-q", "-c", str(count), "-i", str(interval), "-w", deadline, addr]
        try:
            return self.exec(node, argv, check=False, timeout=max(timeout, 0.1) + 0.25).returncode == 0
        except ns.CommandError:  # ping's -w is whole seconds: a shorter timeout ends here
            return False

    def snapshot(self, node: str) -> NetSnapshot:
        """The node's network state (links, addresses, routes and rules v4/v6, nftables, sysctls)."""
        return snapshot(self.netns(node))

    def set_resolv_conf(self, node: str, text: str) -> None:
        """What processes started in the node from now on see as /etc/resolv.conf."""
        ns.write_resolv_conf(self.netns(node), text)

    def pids(self) -> dict[str, list[int]]:
        """Every process in the namespaces, per node. A process started a moment ago shows up once
        `ip netns exec` has entered the namespace (a few ms)."""
        by_ns = ns.pids_in_netns(n.netns for n in self.nodes.values())
        return {n.name: by_ns.get(n.netns, []) for n in self.nodes.values()}

    # -- faults and probes ---------------------------------------------------------------------------

    def cut(self, node: str, segment: str = "underlay", *, silent: bool = False) -> None:
        """Cut a node off a segment. Default: its switch port goes down, so the node loses carrier (a
        pulled cable). ``silent``: the switch drops the node's frames both ways and the node notices
        nothing (a failure further away). Only the switch namespace changes, never the node's."""
        switch = self._switch_of(node, segment)
        if silent:
            table = _cut_table(node)
            rules = (
                f"add table bridge {table}\n"
                f"add chain bridge {table} pre {{ type filter hook prerouting priority -300; }}\n"
                f"add chain bridge {table} post {{ type filter hook postrouting priority 300; }}\n"
                f'add rule bridge {table} pre iifname "p-{node}" drop\n'
                f'add rule bridge {table} post oifname "p-{node}" drop\n'
            )
            ns.run(ns.exec_argv(switch, ["nft", "-f", "-"]), input=rules)
        else:
            ns.ip_batch([f"link set p-{node} down"], netns=switch)

    def mend(self, node: str, segment: str = "underlay") -> None:
        """Undo :meth:`cut` (either kind)."""
        switch = self._switch_of(node, segment)
        ns.run(ns.exec_argv(switch, ["nft", "delete", "table", "bridge", _cut_table(node)]), check=False)
        ns.ip_batch([f"link set p-{node} up"], netns=switch)

    def _switch_of(self, node: str, segment: str) -> str:
        seg = self.plan.segments.get(segment)
        if seg is None or (node not in seg.members and node not in seg.hosts):
            raise KeyError(f"{node} is not on a segment {segment!r}")
        return self.netns(seg.switch)

    def kill_processes(self, node: str) -> list[int]:
        """SIGKILL every process in a node (e.g. an agent and its wireguard-go: the peer "dies");
        returns their PIDs. What was started with popen()/start_agent() can be started again."""
        pids = self.pids()[node]
        ns.kill_and_wait(pids)
        return pids

    def start_whoami(self, node: str, port: int = probes.WHOAMI_PORT, *, udp: bool = False) -> Proc:
        """A server in ``node`` that answers each TCP connection (UDP datagram) with the source address
        it saw, on IPv4 and IPv6; returns once it listens. Ask it with :meth:`whoami`."""
        proc = self.popen(node, probes.whoami_server_argv(port, udp=udp), name=f"whoami-{port}")
        wait_for(lambda: "whoami listening" in proc.tail(5) or not proc.running, timeout=10)
        if not proc.running:
            raise RuntimeError(f"the whoami server in {node} failed:\n{proc.tail()}")
        return proc

    def whoami(
        self, node: str, addr: str, port: int = probes.WHOAMI_PORT, *, udp: bool = False, timeout: float = 5.0
    ) -> str | None:
        """From ``node``, the source address the whoami server at addr:port saw (None: no answer)."""
        return probes.whoami(self.netns(node), addr, port, udp=udp, timeout=timeout)

    # -- teardown ------------------------------------------------------------------------------------

    def _stop_programs(self) -> list[str]:
        """Stop what subclasses started before the namespaces go; return problems."""
        return []

    def close(self) -> None:
        """Stop everything and remove the namespaces; safe to call twice and after a failed build.

        Order: the programs we started (SIGKILL and reap: no zombie of ours), then every other
        process still in a namespace (orphans such as wireguard-go, found via /proc), then the
        namespaces and /etc/netns entries. Raises RuntimeError afterwards if something stayed.
        """
        if self._closed:
            return
        self._closed = True
        t0 = time.monotonic()
        problems = self._stop_programs()
        for proc in self._procs:
            proc.ensure_stopped()
        problems += ns.destroy([n.netns for n in self.nodes.values()])
        if self._owns_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)
        self.timings["teardown_s"] = time.monotonic() - t0
        with _live_lock:
            _live.discard(self)
        log.info("%s: torn down in %.0f ms", self.tag, self.timings["teardown_s"] * 1000)
        if problems:
            raise RuntimeError(f"{self.tag} teardown: " + "; ".join(problems))

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def _cut_table(node: str) -> str:
    return f"cut_{node.replace('-', '_')}"
