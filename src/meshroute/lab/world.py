"""A world for end-to-end tests and `meshroute lab`: the namespaces of network.py plus a real
`meshroute server` in the management node and real agents in the peers.

    with World.build(peers=["client", "r1", "r2"], lans={"office": ["r1", "r2"]}, internet=["r1"]) as w:
        host = w.node("office-h1")
        assert w.ping("r1", host.ipv4) and not w.ping("client", host.ipv4, timeout=0.5)
        for node in w.peers:
            w.start_agent(node)
        w.wait_for(lambda: all((w.server.peer(n) or {}).get("connected") for n in w.peers))
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import httpx

from meshroute.lab import netns as ns
from meshroute.lab.daemons import Agent, ManagementServer
from meshroute.lab.network import Network
from meshroute.lab.process import Proc
from meshroute.lab.topology import MGMT, Internet, Lan, Plan
from meshroute.lab.wait import wait_for

log = logging.getLogger("meshroute.lab")
T = TypeVar("T")


class World(Network):
    """The namespaces, the management server and the agents started in them."""

    def __init__(self, layout: Plan, workdir: Path, *, owns_workdir: bool) -> None:
        super().__init__(layout, workdir, owns_workdir=owns_workdir)
        self.agents: dict[str, Agent] = {}
        self._server: ManagementServer | None = None
        self._default_key = ""

    @classmethod
    def build(
        cls,
        peers: Sequence[str],
        *,
        lans: Mapping[str, Sequence[str] | Lan] | None = None,
        internet: Sequence[str] | Internet | None = None,
        ipv6: bool = True,
        server: bool = True,
        server_args: Sequence[str] = (),
        workdir: Path | None = None,
        prefix: str = ns.DEFAULT_PREFIX,
        sweep: bool = True,
    ) -> World:
        """Sweep leftovers of dead runs, create the namespaces and links, start the server (unless
        ``server=False``). On any failure everything made so far is removed before the error propagates.

        ``peers``: peer node names (each gets ``eth0`` on the underlay). ``lans``: LAN name -> its
        router peers, or a :class:`Lan`. ``internet``: exit-node peers, or an :class:`Internet`.
        ``workdir``: where logs, the server's data and agents' state go (default: a new temporary
        directory, removed by close()). ``prefix``: of the namespace names (`meshroute lab` uses its
        own, so that a test run's sweeper never takes a lab down).
        """
        world = cls.create(
            peers, lans=lans, internet=internet, ipv6=ipv6, workdir=workdir, prefix=prefix, sweep=sweep
        )
        if server:
            try:
                world.start_server(server_args)
            except BaseException:
                world.close()
                raise
        return world

    # -- the management server -----------------------------------------------------------------------

    def start_server(self, extra_args: Sequence[str] = (), *, timeout: float = 60.0) -> ManagementServer:
        """Start `meshroute server` in the management node and wait for its API (see :attr:`api`).
        Later stops and starts go through ``world.server`` (same data dir, same addresses)."""
        if self._server is not None:
            raise RuntimeError("the server is already set up: use world.server.start()/stop()")
        mgmt = self.node(MGMT)
        self._server = ManagementServer(
            mgmt.netns,
            mgmt.ipv4,
            self.workdir / MGMT / "data",
            self.workdir / MGMT / "server.log",
            extra_args=extra_args,
        )
        self._server.start(timeout)
        self.timings["server_start_s"] = self._server.start_seconds
        log.info("%s: server ready in %.0f ms", self.tag, self._server.start_seconds * 1000)
        return self._server

    @property
    def server(self) -> ManagementServer:
        if self._server is None:
            raise RuntimeError("no server in this world: build it with server=True or call start_server()")
        return self._server

    @property
    def api(self) -> httpx.Client:
        """``world.server.api``: an owner-authenticated client through the forwarder (survives restarts)."""
        return self.server.api

    @property
    def api_url(self) -> str:
        """The REST API's base URL on the root namespace's loopback (for `meshroute ...` admin commands:
        see ``world.server.cli()`` and ``world.server.cli_env()``)."""
        return self.server.url

    # -- agents --------------------------------------------------------------------------------------

    def start_agent(
        self,
        node: str,
        *,
        setup_key: str | None = None,
        hostname: str | None = None,
        interface: str | None = None,
        listen_port: int | None = None,
        endpoints: Sequence[str] = (),
        wireguard: str | None = None,
        probe_interval_ms: int | None = None,
        extra_args: Sequence[str] = (),
        env: Mapping[str, str] | None = None,
    ) -> Agent:
        """Start `meshroute agent run` in a peer node (WORKDIR/NODE/state and WORKDIR/NODE/agent.log).

        ``setup_key``: None uses one reusable key made for the world; "" passes none (a restart with
        the stored credential). ``hostname`` defaults to the node name, so ``world.server.peer(node)``
        finds it. Returns at once: wait for what the test needs (``world.server.peer(node)["connected"]``).
        Stop, kill and restart through the returned object (also ``world.agents[node]``).
        """
        if self.node(node).role != "peer":
            raise ValueError(f"{node} is not a peer node")
        if node in self.agents and self.agents[node].running:
            raise RuntimeError(f"the agent in {node} is running: use world.agents[{node!r}].restart()")
        if setup_key is None:
            if not self._default_key:
                self._default_key = self.server.setup_key("lab-default")
            setup_key = self._default_key
        agent = Agent(
            node,
            self.netns(node),
            self.server.sync_address,
            self.workdir / node / "state",
            self.workdir / node / "agent.log",
            setup_key=setup_key,
            hostname=hostname,
            interface=interface,
            listen_port=listen_port,
            endpoints=endpoints,
            wireguard=wireguard,
            probe_interval_ms=probe_interval_ms,
            extra_args=extra_args,
            env=env,
        )
        self.agents[node] = agent
        return agent.start()

    # -- diagnostics ---------------------------------------------------------------------------------

    def logs(self, nodes: Sequence[str] | None = None, lines: int = 40) -> str:
        """The last lines of the server's, the agents' and other started processes' logs (all, or those
        of ``nodes``; the server counts as node "mgmt"), for assertion messages."""
        parts: list[tuple[str, Proc]] = []
        if self._server is not None and (nodes is None or MGMT in nodes):
            parts.append(("server", self._server.proc))
        parts += [(f"agent {n}", a.proc) for n, a in self.agents.items() if nodes is None or n in nodes]
        suffixes = tuple(f" in {n}" for n in nodes or ())
        parts += [(p.name, p) for p in self._procs if nodes is None or p.name.endswith(suffixes)]
        return "\n".join(f"--- {label} ({proc.log}):\n{proc.tail(lines)}" for label, proc in parts)

    def wait_for(
        self,
        condition: Callable[[], T | None],
        *,
        timeout: float = 10.0,
        interval: float = 0.05,
        message: str = "",
        logs: Sequence[str] | None = None,
    ) -> T:
        """:func:`wait_for` whose timeout message ends with the tails of the logs (of ``logs`` nodes)."""
        return wait_for(
            condition,
            timeout=timeout,
            interval=interval,
            message=lambda: f"{message or getattr(condition, '__name__', 'condition')}\n{self.logs(logs)}",
        )

    def describe(self) -> dict[str, Any]:
        """A JSON-able summary: namespaces, addresses, server URL, agents (for `meshroute lab status`)."""
        agents = {n: {"pid": a.pid, "running": a.running, "log": str(a.log)} for n, a in self.agents.items()}
        return {
            "tag": self.tag,
            "workdir": str(self.workdir),
            "nodes": {
                n.name: {
                    "netns": n.netns,
                    "role": n.role,
                    "interfaces": {i.name: [str(a) for a in (i.ipv4, i.ipv6) if a] for i in n.ifaces},
                }
                for n in self.nodes.values()
            },
            "server": {"api": self.server.url, "sync": self.server.sync_address} if self._server else None,
            "agents": agents,
        }

    # -- teardown ------------------------------------------------------------------------------------

    def _stop_programs(self) -> list[str]:
        # the forwarder first: its thread and sockets hold the management namespace
        problems: list[str] = []
        for agent in self.agents.values():
            agent.close()
        if self._server is not None:
            try:
                self._server.close()
            except Exception as exc:
                problems.append(f"server: {exc}")
        return problems
