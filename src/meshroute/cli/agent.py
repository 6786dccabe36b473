"""`meshroute agent run` and `meshroute agent status`."""

from __future__ import annotations

import ipaddress
import json
import socket
import time
from pathlib import Path
from typing import Annotated, Any

import typer

from meshroute.agent.config import (
    BACKENDS,
    DEFAULT_INTERFACE,
    DEFAULT_MTU,
    DEFAULT_PORT,
    DEFAULT_STATE_DIR,
    AgentConfig,
)
from meshroute.cli.base import App
from meshroute.core.domains import safe_string, to_unicode

StateDir = Annotated[
    Path, typer.Option("--state-dir", help="Where the agent keeps its key, credential and records.")
]


def _host_port(value: str, option: str) -> str:
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise typer.BadParameter(f"expected HOST:PORT, got {value!r}", param_hint=option)
    return value


def _endpoint(value: str) -> str:
    """IP:PORT as given, or a host name resolved now (WireGuard endpoints are addresses)."""
    from meshroute.agent.endpoints import format_endpoint, parse_endpoint

    _host_port(value, "--endpoint")
    try:
        parse_endpoint(value)
        return value
    except ValueError:
        pass
    host, _, port = value.rpartition(":")
    try:
        info = socket.getaddrinfo(host.strip("[]"), int(port), type=socket.SOCK_DGRAM)
    except OSError as exc:
        raise typer.BadParameter(f"cannot resolve {host}: {exc}", param_hint="--endpoint") from None
    return format_endpoint(ipaddress.ip_address(info[0][4][0]), int(port))


def _is_loopback(target: str) -> bool:
    host = target.rpartition(":")[0].strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def register(app: typer.Typer) -> None:
    agent = App(help="The peer daemon: joins this host to the mesh (WireGuard, health, status).")
    app.add_typer(agent, name="agent")

    @agent.command("run")
    def run(
        server: Annotated[
            str, typer.Option("--server", help="Management agent-sync address HOST:PORT.", show_default=False)
        ],
        setup_key: Annotated[
            str,
            typer.Option(
                "--setup-key",
                envvar="MESHROUTE_SETUP_KEY",
                help="Setup key for the first start; later starts use the stored credential.",
            ),
        ] = "",
        state_dir: StateDir = DEFAULT_STATE_DIR,
        interface: Annotated[
            str, typer.Option("--interface", help="WireGuard interface name.")
        ] = DEFAULT_INTERFACE,
        listen_port: Annotated[
            int, typer.Option("--listen-port", min=1, max=65535, help="WireGuard UDP port.")
        ] = DEFAULT_PORT,
        endpoint: Annotated[
            list[str] | None,
            typer.Option(
                "--endpoint",
                help="An extra IP:PORT (or HOST:PORT) where other peers can reach this one, "
                "reported before the interface addresses. Repeatable.",
            ),
        ] = None,
        hostname: Annotated[
            str | None, typer.Option("--hostname", help="Name to register with (default: the host name).")
        ] = None,
        wireguard: Annotated[
            str,
            typer.Option(
                "--wireguard", help="auto (kernel if present, else wireguard-go), kernel, userspace."
            ),
        ] = "auto",
        tls: Annotated[
            bool, typer.Option("--tls", help="TLS to the server, verified with the system CAs.")
        ] = False,
        ca: Annotated[
            Path | None, typer.Option("--ca", help="TLS to the server, verified with this PEM CA file.")
        ] = None,
        insecure: Annotated[
            bool, typer.Option("--insecure", help="Allow plaintext to a server that is not on loopback.")
        ] = False,
        probe_interval: Annotated[
            int,
            typer.Option("--probe-interval", min=20, max=60000, help="Milliseconds between health probes."),
        ] = 200,
        probe_down_after: Annotated[
            int,
            typer.Option(
                "--probe-down-after", min=1, max=100, help="Missed probes in a row that mark a peer down."
            ),
        ] = 3,
        mtu: Annotated[
            int, typer.Option("--mtu", min=1280, max=9000, help="Interface MTU in bytes.")
        ] = DEFAULT_MTU,
        dns_grace: Annotated[
            float,
            typer.Option(
                "--dns-grace",
                min=0,
                max=86400,
                help="Seconds a domain route's learned address outlives its DNS TTL (without keep-route).",
            ),
        ] = 60.0,
        dns_cap: Annotated[
            int,
            typer.Option("--dns-cap", min=1, max=1_000_000, help="Learned addresses kept per domain route."),
        ] = 4096,
        log_level: Annotated[
            str, typer.Option("--log-level", help="debug, info, warning or error.")
        ] = "info",
    ) -> None:
        """Run the agent in the foreground (systemd: Type=simple). Needs root."""
        from meshroute.agent import runtime

        _host_port(server, "--server")
        if wireguard not in BACKENDS:
            raise typer.BadParameter(f"expected one of {', '.join(BACKENDS)}", param_hint="--wireguard")
        if len(interface) > 15 or not interface or "/" in interface or " " in interface:
            raise typer.BadParameter(
                "an interface name has 1 to 15 characters, no '/' or space", param_hint="--interface"
            )
        if sum([tls, ca is not None, insecure]) > 1:
            raise typer.BadParameter("--tls, --ca and --insecure exclude each other")
        if not (tls or ca or insecure or _is_loopback(server)):
            raise typer.BadParameter(
                f"refusing plaintext to {server}: give --tls, --ca FILE or --insecure", param_hint="--server"
            )
        if ca is not None and not ca.is_file():
            raise typer.BadParameter(f"no such file {ca}", param_hint="--ca")
        if log_level.upper() not in ("DEBUG", "INFO", "WARNING", "ERROR"):
            raise typer.BadParameter("expected debug, info, warning or error", param_hint="--log-level")
        cfg = AgentConfig(
            server=server,
            state_dir=state_dir,
            setup_key=setup_key,
            interface=interface,
            listen_port=listen_port,
            endpoints=tuple(_endpoint(e) for e in endpoint or ()),
            wireguard=wireguard,
            tls=tls,
            ca=ca,
            insecure=insecure,
            probe_interval=probe_interval / 1000,
            probe_down_after=probe_down_after,
            mtu=mtu,
            dns_grace=dns_grace,
            dns_cap=dns_cap,
            wireguard_verbose=log_level.upper() == "DEBUG",
        )
        if hostname:
            cfg.hostname = hostname
        runtime.setup_logging(log_level)
        raise typer.Exit(runtime.run(cfg))

    routes = App(help="The routes this peer receives: what is used, through whom; select and deselect.")
    agent.add_typer(routes, name="routes")

    @routes.command("list")
    def routes_list(
        state_dir: StateDir = DEFAULT_STATE_DIR,
        as_json: Annotated[bool, typer.Option("--json", help="Print the full JSON list.")] = False,
    ) -> None:
        """Every route received: network or domains, candidates with metric, state and latency,
        the routing peer in use, selected or not, installed or not."""
        result = _call(state_dir, "routes")
        if as_json:
            typer.echo(json.dumps(result, indent=2))
            return
        typer.echo(_routes_table(result))

    @routes.command("select")
    def routes_select(
        net_ids: Annotated[
            list[str],
            typer.Argument(metavar="NETID...", help="Network IDs to use, or `all`.", show_default=False),
        ],
        append: Annotated[
            bool,
            typer.Option(
                "--append", "-a", help="Add to what is selected (default: only these, the rest off)."
            ),
        ] = False,
        state_dir: StateDir = DEFAULT_STATE_DIR,
    ) -> None:
        """Use these routes. Selecting an exit node turns every other exit node off."""
        everything = net_ids == ["all"]
        errors = _call(state_dir, "select", ids=[] if everything else net_ids, append=append, all=everything)
        _report(errors, "selected")

    @routes.command("deselect")
    def routes_deselect(
        net_ids: Annotated[
            list[str] | None,
            typer.Argument(metavar="NETID...", help="Network IDs to stop using.", show_default=False),
        ] = None,
        everything: Annotated[
            bool, typer.Option("--all", help="Every route, including ones that appear later.")
        ] = False,
        state_dir: StateDir = DEFAULT_STATE_DIR,
    ) -> None:
        """Stop using these routes (their traffic no longer enters the mesh)."""
        ids = list(net_ids or [])
        everything = everything or ids == ["all"]
        if not ids and not everything:
            typer.echo("error: name the network IDs to deselect, or --all", err=True)
            raise typer.Exit(2)
        errors = _call(state_dir, "deselect", ids=[] if everything else ids, all=everything)
        _report(errors, "deselected")

    @agent.command("status")
    def status(
        state_dir: StateDir = DEFAULT_STATE_DIR,
        as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
    ) -> None:
        """Show the running agent: management link, interface, and every peer's health."""
        from meshroute.agent.control import ControlError, call

        try:
            result = call(state_dir, "status")
        except ControlError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(1) from None
        if as_json:
            typer.echo(json.dumps(result, indent=2))
            return
        _print_status(result)


def _call(state_dir: Path, command: str, **args: Any) -> Any:
    from meshroute.agent.control import ControlError, call

    try:
        return call(state_dir, command, **args)
    except ControlError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None


def _report(errors: list[str], done: str) -> None:
    for error in errors:
        typer.echo(f"warning: {error}", err=True)
    typer.echo(f"routes {done}")


def _routes_table(routes: list[dict[str, Any]]) -> str:
    if not routes:
        return "no routes"
    rows = [["NETWORK ID", "NETWORK", "SELECTED", "INSTALLED", "VIA", "CANDIDATES (metric, state, latency)"]]
    for r in routes:
        network = r["network"] or safe_string(r["domains"])
        if r["exit_node"]:
            network += " (exit node)"
        candidates = " ".join(
            f"{'*' if c['chosen'] else ''}{c['peer']}"
            f"({c['metric']},{c['state'] or '-'},{_ms(c['latency_ms'])})"
            for c in r["candidates"]
        )
        rows.append(
            [
                r["network_id"],
                network,
                "yes" if r["selected"] else "no",
                "yes" if r["installed"] else "no",
                r["routing_peer"] or "-",
                candidates + (f"  [{r['note']}]" if r["note"] else ""),
            ]
        )
    lines = _columns(rows)
    for r in routes:
        lines += _learned_lines(r)
    return "\n".join(lines)


def _learned_lines(route: dict[str, Any]) -> list[str]:
    """A domain route's resolved names and their addresses, with the seconds each has left."""
    learned: dict[str, list[dict[str, Any]]] = route.get("learned") or {}
    if "learned" not in route:
        return []
    # the domains too: two routes may share a network ID
    label = f"{route['network_id']} ({safe_string(route.get('domains') or [])})"
    out = [f"\n{label}: {len(learned)} name(s) resolved through the route"]
    for name, entries in learned.items():
        shown = []
        for e in entries:
            left = "kept" if e["remaining"] is None else f"{e['remaining']:.0f}s"
            shown.append(f"{e['prefix']} ({left}{'' if e['current'] else ', dropped from the answer'})")
        out.append(f"  {to_unicode(name)}: {', '.join(shown)}")
    return out


def _ms(value: float | None) -> str:
    return f"{value:.1f}ms" if value is not None else "-"


def _ago(t: float | None) -> str:
    if not t:
        return "never"
    seconds = max(0, time.time() - t)
    if seconds < 120:
        return f"{seconds:.0f}s ago"
    if seconds < 7200:
        return f"{seconds / 60:.0f}m ago"
    return f"{seconds / 3600:.0f}h ago"


def _columns(rows: list[list[str]]) -> list[str]:
    """Aligned plain columns: IDs, keys and addresses are never cut or wrapped."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in rows]


def _print_status(s: dict[str, Any]) -> None:
    mg, iface = s["management"], s["interface"]
    since = f", since {_ago(mg['connected_since'])}" if mg["connected_since"] else ""
    error = f" ({mg['last_error']})" if mg["state"] != "connected" and mg["last_error"] else ""
    backend = iface["backend"] or "not up yet"
    lines = [
        f"management  {mg['server']} {mg['state']}{since}{error}, serial {mg['serial']}",
        f"peer        {mg['peer_id'] or '(not registered)'} {iface['public_key']}",
        f"interface   {iface['name']} ({backend}) {' '.join(iface['addresses']) or '-'}"
        f", UDP {iface['listen_port']}, MTU {iface['mtu']}",
        f"endpoints   {' '.join(s['endpoints']) or '-'}",
        f"peers       {len(s['peers'])}",
    ]
    rows = [["PEER", "OVERLAY", "ENDPOINT", "STATE", "HANDSHAKE", "LATENCY"]]
    for p in s["peers"]:
        latency = f"{p['latency_ms']:.1f} ms" if p["latency_ms"] is not None else "-"
        overlay = p["ip"] + (f" {p['ipv6']}" if p["ipv6"] else "")
        handshake = _ago(p["last_handshake"])
        rows.append([p["name"], overlay, p["endpoint"] or "-", p["state"], handshake, latency])
    if len(rows) > 1:
        lines += ["", *_columns(rows)]
    typer.echo("\n".join(lines))
