"""`meshroute lab up|status|down`: the whole system on one machine, in network namespaces (root).

`up` stays in the foreground (its process holds the REST forwarder into the lab) until Ctrl-C,
SIGTERM or `meshroute lab down` from another terminal; it records what it built in
/run/meshroute-lab.json for `status` and `down`.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Annotated, Any

import typer

from meshroute.cli.base import App

STATE = Path(os.environ.get("MESHROUTE_LAB_STATE", "/run/meshroute-lab.json"))


def register(app: typer.Typer) -> None:
    lab = App(help="A whole mesh on this machine in network namespaces: try routes and failover (root).")
    app.add_typer(lab, name="lab")

    @lab.command("up")
    def up(
        workdir: Annotated[
            Path | None,
            typer.Option(
                "--workdir", help="Where logs, the server's data and agents' state go (default: temporary)."
            ),
        ] = None,
        no_exit_node: Annotated[bool, typer.Option("--no-exit-node", help="Only the office route.")] = False,
    ) -> None:
        """Build the lab, create an HA route to the office LAN, an exit node and a domain route
        (app.office.test), print what to try, and keep it running until Ctrl-C."""
        from meshroute.lab import demo

        _require_root()
        if STATE.exists() and _alive(_read_state()):
            typer.echo(
                f"error: a lab is already up (pid {_read_state()['pid']}); `meshroute lab down` first",
                err=True,
            )
            raise typer.Exit(1)
        stop = threading.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: stop.set())
        t0 = time.monotonic()
        typer.echo("building the lab (namespaces, server, three agents, routes)...")
        d = demo.build(workdir=workdir, exit_node=not no_exit_node)
        try:
            state = _describe(d, time.monotonic() - t0)
            STATE.write_text(json.dumps(state, indent=2) + "\n")
            typer.echo(_instructions(state))
            stop.wait()
        finally:
            typer.echo("tearing the lab down...")
            d.world.close()
            STATE.unlink(missing_ok=True)
            typer.echo("done")

    @lab.command("status")
    def status(
        as_json: Annotated[bool, typer.Option("--json", help="Print the lab's record.")] = False,
    ) -> None:
        """What the running lab is made of, and which routing peer the client uses now."""
        state = _state_or_exit()
        if as_json:
            typer.echo(json.dumps(state, indent=2))
            return
        typer.echo(_summary(state))
        client = state["nodes"]["client"]
        routes = _in_node(client["netns"], ["agent", "routes", "list", "--state-dir", client["state_dir"]])
        typer.echo("\nthe client's routes:\n" + routes)

    @lab.command("down")
    def down() -> None:
        """Stop the running lab (its `up` process tears everything down), or clean up after one
        that died."""
        _require_root()
        state = _state_or_exit()
        if _alive(state):
            os.kill(int(state["pid"]), signal.SIGTERM)
            deadline = time.monotonic() + 30
            while _alive(state) and time.monotonic() < deadline:
                time.sleep(0.1)
        if _alive(state):
            typer.echo(f"error: the lab's process {state['pid']} did not stop", err=True)
            raise typer.Exit(1)
        from meshroute.lab.netns import destroy_run

        problems = destroy_run(state["tag"])  # what a killed `up` left
        STATE.unlink(missing_ok=True)
        for problem in problems:
            typer.echo(f"warning: {problem}", err=True)
        typer.echo(f"lab {state['tag']} is down")


def _require_root() -> None:
    if os.geteuid() != 0:
        typer.echo("error: the lab needs root (network namespaces)", err=True)
        raise typer.Exit(1)


def _read_state() -> dict[str, Any]:
    return dict(json.loads(STATE.read_text()))


def _state_or_exit() -> dict[str, Any]:
    try:
        return _read_state()
    except (OSError, ValueError):
        typer.echo("error: no lab is up (start one with `meshroute lab up`)", err=True)
        raise typer.Exit(1) from None


def _alive(state: dict[str, Any]) -> bool:
    """The `up` process still runs (a zombie waiting for its parent does not count)."""
    from meshroute.agent.procs import process_start_time

    try:
        return process_start_time(int(state["pid"])) is not None
    except (KeyError, ValueError):
        return False


def _describe(d: Any, took: float) -> dict[str, Any]:
    world = d.world
    nodes: dict[str, Any] = {}
    for name, node in world.nodes.items():
        entry: dict[str, Any] = {"netns": node.netns, "role": node.role, "addresses": []}
        for iface in node.ifaces:
            entry["addresses"] += [str(a.ip) for a in (iface.ipv4, iface.ipv6) if a is not None]
        if name in world.agents:
            entry["state_dir"] = str(world.agents[name].state_dir)
            peer = world.server.peer(name) or {}
            entry["overlay"] = peer.get("ip")
        nodes[name] = entry
    return {
        "tag": world.tag,
        "pid": os.getpid(),
        "workdir": str(world.workdir),
        "built_s": round(took, 2),
        "api": world.api_url,
        "token": world.server.token,
        "routes": d.routes,
        "lan_host": d.lan_host,
        "internet_host": d.internet_host,
        "underlay_switch": world.netns(world.underlay.switch),
        "nodes": nodes,
    }


def _summary(state: dict[str, Any]) -> str:
    lines = [
        f"lab {state['tag']} (pid {state['pid']}, built in {state['built_s']} s, files in {state['workdir']})"
    ]
    lines.append(f"  REST API: {state['api']}")
    for name, node in sorted(state["nodes"].items()):
        if node["role"] in ("peer", "host"):
            overlay = f"  overlay {node['overlay']}" if node.get("overlay") else ""
            lines.append(f"  {name:<10} {node['netns']:<22} {' '.join(node['addresses'])}{overlay}")
    return "\n".join(lines)


def _instructions(state: dict[str, Any]) -> str:
    from meshroute.lab.demo import APP

    nodes = state["nodes"]
    client = nodes["client"]["netns"]
    lan = nodes[state["lan_host"]]["addresses"][0]
    inet = nodes[state["internet_host"]]["addresses"][0]
    me = Path(sys.executable).with_name("meshroute")
    switch = state["underlay_switch"]
    try_lines = [
        f"ip netns exec {client} ping {lan}                 # the office LAN, through r1 or r2",
        f"ip netns exec {client} ping {inet}              # the internet, through the exit node",
        *(
            [f"ip netns exec {client} ping {APP}          # a domain route: resolved, then routed"]
            if "office-apps" in state["routes"]
            else []
        ),
        f"ip netns exec {client} {me} agent routes list --state-dir {nodes['client']['state_dir']}",
        f"ip netns exec {switch} ip link set p-r1 down    # cut r1 off: watch the route move to r2",
        f"ip netns exec {switch} ip link set p-r1 up",
        "meshroute lab status",
        f"MESHROUTE_SERVER={state['api']} MESHROUTE_TOKEN={state['token']} meshroute routes list",
        "meshroute lab down                                (or Ctrl-C here)",
    ]
    return "\n".join([_summary(state), "", "try:", *(f"  {line}" for line in try_lines)])


def _in_node(netns: str, args: list[str]) -> str:
    import subprocess

    me = str(Path(sys.executable).with_name("meshroute"))
    done = subprocess.run(
        ["ip", "netns", "exec", netns, me, *args], capture_output=True, text=True, check=False
    )
    return done.stdout if done.returncode == 0 else f"(failed: {done.stderr.strip()})"
