"""`meshroute routes explain`: which route a peer uses for a destination, and why
(`GET /api/routes/explain`)."""

from __future__ import annotations

from typing import Annotated

import typer

from meshroute.cli.admin.client import JSONObject
from meshroute.cli.admin.common import DEFAULT_SERVER, JsonOpt, ServerOpt, TokenOpt, as_object, emit, session
from meshroute.cli.admin.output import col, note, print_rows, text


def register(app: typer.Typer) -> None:
    @app.command("explain")
    def routes_explain(
        peer: Annotated[
            str,
            typer.Option(
                "--peer", "-p", metavar="PEER", help="The peer (ID, name or overlay IP).", show_default=False
            ),
        ],
        destination: Annotated[
            str,
            typer.Option(
                "--destination",
                "-d",
                metavar="IP|NAME",
                help="An IP address, or a domain name (matched against domain routes and exit nodes).",
                show_default=False,
            ),
        ],
        server: ServerOpt = DEFAULT_SERVER,
        token: TokenOpt = None,
        as_json: JsonOpt = False,
    ) -> None:
        """Which route PEER uses to reach a destination: every route it receives that covers it, in
        the order its agent uses them (longest prefix, then metric, then HA candidates), the one that
        wins, and why the other routes that cover it do not reach the peer."""
        with session(server, token) as client:
            params = {"peer": client.resolve_peer(peer), "destination": destination}
            found = as_object(client.get("routes/explain", params))
            emit(as_json, found, render_explanation)


def render_explanation(found: JSONObject) -> None:
    note(text(found.get("verdict")))
    routes = [{**r, "rank": n} for n, r in enumerate(found.get("routes") or [], 1) if isinstance(r, dict)]
    if routes:
        columns = [
            col("#", lambda r: str(r["rank"]), whole=True, right=True),
            col("Net ID", lambda r: text(r.get("network_id")), whole=True),
            col("Network", lambda r: text(r.get("network")), whole=True),
            col("Use", lambda r: text(r.get("use")), whole=True),
            col("Routing peer", _routing_peer),
            col("Candidates", _candidates),
            col("Why", lambda r: text(r.get("note") or r.get("match"))),
        ]
        print_rows(
            columns,
            [[c.cell(r) for c in columns] for r in routes],
            title="Routes it receives",
            title_when_plain=True,
        )
    missing = [n for n in found.get("not_received") or [] if isinstance(n, dict)]
    if missing:
        columns = [
            col("Net ID", lambda n: text(n.get("network_id")), whole=True),
            col("Network", lambda n: text(n.get("network")), whole=True),
            col("Route ID", lambda n: text(n.get("route_id")), whole=True),
            col("Why not", lambda n: "; ".join(str(x) for x in n.get("reasons") or [])),
        ]
        print_rows(
            columns,
            [[c.cell(n) for c in columns] for n in missing],
            title="Routes it does not receive",
            title_when_plain=True,
        )
    for extra in found.get("notes") or []:
        note(f"note: {extra}")


def _routing_peer(group: JSONObject) -> str:
    name = group.get("routing_peer_name") or group.get("routing_peer_id")
    if not name:
        return "-"
    reported = group.get("reported")
    if reported is None:
        return f"{name} (predicted)"
    if reported == "stale":
        return f"{name} (predicted: agent away)"
    return f"{name} (reported {reported})"


def _candidates(group: JSONObject) -> str:
    parts = []
    for c in group.get("candidates") or []:
        if isinstance(c, dict):
            up = "up" if c.get("connected") else "down"
            access = "" if c.get("allowed", True) else ", drops this peer"
            name = c.get("routing_peer_name") or c.get("routing_peer_id")
            parts.append(f"{name} ({up}, metric {c.get('metric')}{access})")
    return ", ".join(parts) or "-"
