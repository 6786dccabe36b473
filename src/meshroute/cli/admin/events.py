"""`meshroute events`: the audit log."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from meshroute.cli.admin.client import JSONObject
from meshroute.cli.admin.common import DEFAULT_SERVER, JsonOpt, ServerOpt, TokenOpt, emit, session
from meshroute.cli.admin.output import col, field, print_list, timestamp

MAX_EVENTS = 10_000  # what the server returns at most


def event_initiator(e: JSONObject) -> str:
    for key in ("initiator_name", "initiator_email", "initiator_id"):
        value = e.get(key)
        if isinstance(value, str) and value:
            return value
    return "-"


def event_meta(e: JSONObject) -> str:
    meta: Any = e.get("meta")
    if not isinstance(meta, dict) or not meta:
        return "-"
    return ", ".join(f"{k}={v}" for k, v in sorted(meta.items()) if v not in ("", None, "[]")) or "-"


def render_events(events: list[JSONObject]) -> None:
    columns = [
        col("Time", field("timestamp", timestamp), whole=True),
        col("Activity", field("activity")),
        col("Code", field("activity_code"), whole=True),
        col("Initiator", event_initiator),
        col("Target", field("target_id"), whole=True),
        col("Details", event_meta),
    ]
    print_list("Events", events, columns, "No events.")


def events(
    limit: Annotated[
        int,
        typer.Option(
            "--limit",
            "-l",
            metavar="N",
            min=0,
            max=MAX_EVENTS,
            help=f"Show the newest N events; 0 = all the server keeps (up to {MAX_EVENTS:,}).",
        ),
    ] = 50,
    server: ServerOpt = DEFAULT_SERVER,
    token: TokenOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Show the audit log (who changed what), newest first."""
    with session(server, token) as client:
        # The server cuts the list (NetBird's `limit`): only what is shown crosses the network.
        params = {"limit": str(limit)} if limit else None
        found = client.get_list("events/audit", params)[: limit or None]
        emit(as_json, found, render_events)
