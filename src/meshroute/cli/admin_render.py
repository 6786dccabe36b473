"""Human output of the admin CLI: rich tables and panels, plus the raw ``--json`` printer."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import typer
from rich import box
from rich.console import Console
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

JSONObject = dict[str, Any]
Names = Mapping[str, str]


def console() -> Console:
    # Built per call so that it follows the current sys.stdout (tests swap it).
    return Console(highlight=False, soft_wrap=False)


def print_json(data: Any) -> None:
    """The raw API reply, pretty-printed, with nothing else on stdout (pipe it to jq)."""
    typer.echo(json.dumps(data, indent=2, ensure_ascii=False))


def note(message: str) -> None:
    console().print(Text(message))


# -- formatting helpers --------------------------------------------------------------------------


def yes_no(value: Any) -> str:
    if value is None:
        return "-"
    return "yes" if value else "no"


def text(value: Any) -> str:
    if value is None or value == "":
        return "-"
    if isinstance(value, bool):
        return yes_no(value)
    return str(value)


def timestamp(value: Any) -> str:
    """RFC 3339 → ``YYYY-MM-DD HH:MM:SS`` (the zone as sent, normally UTC); unset/zero times print ``-``."""
    if not isinstance(value, str) or not value or value.startswith("0001-01-01"):
        return "-"
    if len(value) >= 19 and value[10] in "T ":
        return value[:10] + " " + value[11:19]
    return value


def expiry(value: Any) -> str:
    """An expiry time; unset (or Go's zero time) means the thing never expires."""
    shown = timestamp(value)
    return "never" if shown == "-" else shown


def id_list(values: Any) -> list[str]:
    if not isinstance(values, list):
        return []
    return [str(v.get("id", "")) if isinstance(v, dict) else str(v) for v in values]


def named(ids: Iterable[str], names: Names) -> str:
    """``name`` for each ID that has one (else the ID), comma-separated; ``-`` for none."""
    shown = [names.get(i) or i for i in ids]
    return ", ".join(shown) if shown else "-"


def minimum_names(values: Any) -> str:
    """Names from a list of ``{id, name}`` objects (GroupMinimum / PeerMinimum)."""
    if not isinstance(values, list) or not values:
        return "-"
    out = [str(v.get("name") or v.get("id", "")) if isinstance(v, dict) else str(v) for v in values]
    return ", ".join(out)


def _list_table(title: str, columns: Sequence[str]) -> Table:
    table = Table(title=title, box=box.SIMPLE_HEAD, title_justify="left", title_style="bold")
    for column in columns:
        table.add_column(column, overflow="fold")
    return table


def _add_row(table: Table, *cells: str) -> None:
    # Text, not markup: names and event details may contain "[...]".
    table.add_row(*(Text(cell) for cell in cells))


def _detail_table(title: str, rows: Sequence[tuple[str, str]]) -> Panel:
    table = Table.grid(padding=(0, 2))
    table.add_column(style="bold", no_wrap=True)
    table.add_column(overflow="fold")
    for label, value in rows:
        table.add_row(label, Text(value))
    return Panel(table, title=title, title_align="left", expand=False)


def _print_list(table: Table, count: int, empty: str) -> None:
    out = console()
    if count == 0:
        out.print(Text(empty))
        return
    out.print(table)


# -- routes --------------------------------------------------------------------------------------


def route_network(route: JSONObject) -> str:
    domains = route.get("domains")
    if isinstance(domains, list) and domains:
        return ", ".join(str(d) for d in domains)
    return text(route.get("network"))


def route_routing_peer(route: JSONObject, peers: Names, groups: Names) -> str:
    peer_groups = id_list(route.get("peer_groups"))
    if peer_groups:
        return "groups: " + named(peer_groups, groups)
    peer = route.get("peer")
    if isinstance(peer, str) and peer:
        return peers.get(peer) or peer
    return "-"


def render_routes(routes: list[JSONObject], peers: Names, groups: Names) -> None:
    table = _list_table(
        "Routes",
        ["ID", "Net ID", "Network", "Routing peer", "Metric", "Masq.", "Enabled", "Distribution groups"],
    )
    for r in routes:
        _add_row(
            table,
            text(r.get("id")),
            text(r.get("network_id")),
            route_network(r),
            route_routing_peer(r, peers, groups),
            text(r.get("metric")),
            yes_no(r.get("masquerade")),
            yes_no(r.get("enabled")),
            named(id_list(r.get("groups")), groups),
        )
    _print_list(table, len(routes), "No routes.")


def render_route(r: JSONObject, peers: Names, groups: Names) -> None:
    rows = [
        ("ID", text(r.get("id"))),
        ("Net ID", text(r.get("network_id"))),
        ("Description", text(r.get("description"))),
        ("Type", text(r.get("network_type"))),
        ("Network" if r.get("network_type") != "Domain" else "Domains", route_network(r)),
    ]
    if r.get("network_type") == "Domain":
        rows.append(("Keep route", yes_no(r.get("keep_route"))))
    rows += [
        ("Routing peer", route_routing_peer(r, peers, groups)),
        ("Metric", text(r.get("metric"))),
        ("Masquerade", yes_no(r.get("masquerade"))),
        ("Enabled", yes_no(r.get("enabled"))),
        ("Distribution groups", named(id_list(r.get("groups")), groups)),
        ("Access-control groups", named(id_list(r.get("access_control_groups")), groups)),
        ("Skip auto-apply", yes_no(r.get("skip_auto_apply"))),
    ]
    console().print(_detail_table(f"Route {text(r.get('network_id'))}", rows))


# -- groups --------------------------------------------------------------------------------------


def render_groups(groups: list[JSONObject]) -> None:
    table = _list_table("Groups", ["ID", "Name", "Peers", "Resources", "Issued"])
    for g in groups:
        _add_row(
            table,
            text(g.get("id")),
            text(g.get("name")),
            text(g.get("peers_count")),
            text(g.get("resources_count")),
            text(g.get("issued")),
        )
    _print_list(table, len(groups), "No groups.")


def render_group(g: JSONObject) -> None:
    resources = g.get("resources")
    resource_text = "-"
    if isinstance(resources, list) and resources:
        resource_text = ", ".join(
            f"{r.get('id', '')} ({r.get('type', '')})" if isinstance(r, dict) else str(r) for r in resources
        )
    rows = [
        ("ID", text(g.get("id"))),
        ("Name", text(g.get("name"))),
        ("Issued", text(g.get("issued"))),
        ("Peers", f"{text(g.get('peers_count'))}: {minimum_names(g.get('peers'))}"),
        ("Resources", resource_text),
    ]
    console().print(_detail_table(f"Group {text(g.get('name'))}", rows))


# -- peers ---------------------------------------------------------------------------------------


def render_peers(peers: list[JSONObject]) -> None:
    table = _list_table("Peers", ["ID", "Name", "IP", "DNS label", "Connected", "Last seen", "OS", "Groups"])
    for p in peers:
        _add_row(
            table,
            text(p.get("id")),
            text(p.get("name")),
            text(p.get("ip")),
            text(p.get("dns_label")),
            yes_no(p.get("connected")),
            timestamp(p.get("last_seen")),
            text(p.get("os")),
            minimum_names(p.get("groups")),
        )
    _print_list(table, len(peers), "No peers.")


def render_peer(p: JSONObject) -> None:
    rows = [
        ("ID", text(p.get("id"))),
        ("Name", text(p.get("name"))),
        ("Hostname", text(p.get("hostname"))),
        ("DNS label", text(p.get("dns_label"))),
        ("IP", text(p.get("ip"))),
        ("IPv6", text(p.get("ipv6"))),
        ("Connection IP", text(p.get("connection_ip"))),
        ("Connected", yes_no(p.get("connected"))),
        ("Last seen", timestamp(p.get("last_seen"))),
        ("OS", text(p.get("os"))),
        ("Version", text(p.get("version"))),
        ("Groups", minimum_names(p.get("groups"))),
        ("SSH enabled", yes_no(p.get("ssh_enabled"))),
        ("Login expiration", yes_no(p.get("login_expiration_enabled"))),
        ("Login expired", yes_no(p.get("login_expired"))),
        ("Inactivity expiration", yes_no(p.get("inactivity_expiration_enabled"))),
        ("Ephemeral", yes_no(p.get("ephemeral"))),
        ("Created", timestamp(p.get("created_at"))),
    ]
    console().print(_detail_table(f"Peer {text(p.get('name'))}", rows))


# -- setup keys ----------------------------------------------------------------------------------


def render_setup_keys(keys: list[JSONObject], groups: Names) -> None:
    table = _list_table(
        "Setup keys", ["ID", "Name", "Type", "State", "Used", "Limit", "Expires", "Auto groups"]
    )
    for k in keys:
        limit = k.get("usage_limit")
        _add_row(
            table,
            text(k.get("id")),
            text(k.get("name")),
            text(k.get("type")),
            text(k.get("state")),
            text(k.get("used_times")),
            "unlimited" if limit == 0 else text(limit),
            expiry(k.get("expires")),
            named(id_list(k.get("auto_groups")), groups),
        )
    _print_list(table, len(keys), "No setup keys.")


def render_setup_key(k: JSONObject, groups: Names) -> None:
    limit = k.get("usage_limit")
    rows = [
        ("ID", text(k.get("id"))),
        ("Name", text(k.get("name"))),
        ("Key", text(k.get("key"))),
        ("Type", text(k.get("type"))),
        ("State", text(k.get("state"))),
        ("Valid", yes_no(k.get("valid"))),
        ("Revoked", yes_no(k.get("revoked"))),
        ("Used", text(k.get("used_times"))),
        ("Usage limit", "unlimited" if limit == 0 else text(limit)),
        ("Last used", timestamp(k.get("last_used"))),
        ("Expires", expiry(k.get("expires"))),
        ("Auto groups", named(id_list(k.get("auto_groups")), groups)),
        ("Ephemeral", yes_no(k.get("ephemeral"))),
        ("Extra DNS labels", yes_no(k.get("allow_extra_dns_labels"))),
        ("Updated", timestamp(k.get("updated_at"))),
    ]
    console().print(_detail_table(f"Setup key {text(k.get('name'))}", rows))


def render_new_setup_key(k: JSONObject, groups: Names) -> None:
    render_setup_key(k, groups)
    key = text(k.get("key"))
    body = Text.assemble(
        (key, "bold green"),
        "\n\nThis is the only time the key is shown: store it now.",
    )
    console().print(Panel(body, title="Setup key", title_align="left", expand=False))


# -- events --------------------------------------------------------------------------------------


def event_initiator(e: JSONObject) -> str:
    for field in ("initiator_name", "initiator_email", "initiator_id"):
        value = e.get(field)
        if isinstance(value, str) and value:
            return value
    return "-"


def event_meta(e: JSONObject) -> str:
    meta = e.get("meta")
    if not isinstance(meta, dict) or not meta:
        return "-"
    return ", ".join(f"{k}={v}" for k, v in sorted(meta.items()) if v not in ("", None, "[]"))


def render_events(events: list[JSONObject]) -> None:
    table = _list_table("Events", ["Time", "Activity", "Code", "Initiator", "Target", "Details"])
    for e in events:
        _add_row(
            table,
            timestamp(e.get("timestamp")),
            text(e.get("activity")),
            text(e.get("activity_code")),
            event_initiator(e),
            text(e.get("target_id")),
            event_meta(e) or "-",
        )
    _print_list(table, len(events), "No events.")
