"""Human output of the admin CLI: rich tables and panels, plus the raw ``--json`` printer.

Tables and panels are declared as rows of ``(label, cell)``: a cell turns one API object into the text
shown for it (:func:`field` for a plain ``item[key]``).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Protocol

import typer
from rich import box
from rich.console import Console
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

JSONObject = dict[str, Any]
Names = Mapping[str, str]
Cell = Callable[[JSONObject], str]
Columns = Sequence[tuple[str, Cell]]


class Directory(Protocol):
    """Display names by ID (the admin client; asked only when a table needs them)."""

    def peer_names(self) -> dict[str, str]: ...

    def group_names(self) -> dict[str, str]: ...


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


def usage_limit(value: Any) -> str:
    return "unlimited" if value == 0 else text(value)


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


# -- cells and tables ----------------------------------------------------------------------------


def field(key: str, show: Callable[[Any], str] = text) -> Cell:
    """The cell for ``item[key]``, formatted by ``show``."""
    return lambda item: show(item.get(key))


def named_ids(key: str, names: Names) -> Cell:
    """The cell for a list of IDs in ``item[key]``, shown by name."""
    return lambda item: named(id_list(item.get(key)), names)


def print_list(title: str, items: Sequence[JSONObject], columns: Columns, empty: str) -> None:
    """A table with a row per item, or the ``empty`` message when there are none."""
    out = console()
    if not items:
        out.print(Text(empty))
        return
    table = Table(title=title, box=box.SIMPLE_HEAD, title_justify="left", title_style="bold")
    for header, _ in columns:
        table.add_column(header, overflow="fold")
    for item in items:
        # Text, not markup: names and event details may contain "[...]".
        table.add_row(*(Text(cell(item)) for _, cell in columns))
    out.print(table)


def print_detail(title: str, item: JSONObject, rows: Columns) -> None:
    """A panel with one ``label  value`` line per row."""
    table = Table.grid(padding=(0, 2))
    table.add_column(style="bold", no_wrap=True)
    table.add_column(overflow="fold")
    for label, cell in rows:
        table.add_row(label, Text(cell(item)))
    console().print(Panel(table, title=title, title_align="left", expand=False))


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


def render_routes(routes: list[JSONObject], names: Directory) -> None:
    peers, groups = names.peer_names(), names.group_names()
    columns: Columns = [
        ("ID", field("id")),
        ("Net ID", field("network_id")),
        ("Network", route_network),
        ("Routing peer", lambda r: route_routing_peer(r, peers, groups)),
        ("Metric", field("metric")),
        ("Masq.", field("masquerade", yes_no)),
        ("Enabled", field("enabled", yes_no)),
        ("Distribution groups", named_ids("groups", groups)),
    ]
    print_list("Routes", routes, columns, "No routes.")


def render_route(route: JSONObject, names: Directory) -> None:
    peers, groups = names.peer_names(), names.group_names()
    dns = route.get("network_type") == "Domain"
    rows: list[tuple[str, Cell]] = [
        ("ID", field("id")),
        ("Net ID", field("network_id")),
        ("Description", field("description")),
        ("Type", field("network_type")),
        ("Domains" if dns else "Network", route_network),
    ]
    if dns:
        rows.append(("Keep route", field("keep_route", yes_no)))
    rows += [
        ("Routing peer", lambda r: route_routing_peer(r, peers, groups)),
        ("Metric", field("metric")),
        ("Masquerade", field("masquerade", yes_no)),
        ("Enabled", field("enabled", yes_no)),
        ("Distribution groups", named_ids("groups", groups)),
        ("Access-control groups", named_ids("access_control_groups", groups)),
        ("Skip auto-apply", field("skip_auto_apply", yes_no)),
    ]
    print_detail(f"Route {text(route.get('network_id'))}", route, rows)


# -- groups --------------------------------------------------------------------------------------


def group_resources(group: JSONObject) -> str:
    resources = group.get("resources")
    if not isinstance(resources, list) or not resources:
        return "-"
    return ", ".join(
        f"{r.get('id', '')} ({r.get('type', '')})" if isinstance(r, dict) else str(r) for r in resources
    )


def render_groups(groups: list[JSONObject]) -> None:
    columns: Columns = [
        ("ID", field("id")),
        ("Name", field("name")),
        ("Peers", field("peers_count")),
        ("Resources", field("resources_count")),
        ("Issued", field("issued")),
    ]
    print_list("Groups", groups, columns, "No groups.")


def render_group(group: JSONObject) -> None:
    rows: Columns = [
        ("ID", field("id")),
        ("Name", field("name")),
        ("Issued", field("issued")),
        ("Peers", lambda g: f"{text(g.get('peers_count'))}: {minimum_names(g.get('peers'))}"),
        ("Resources", group_resources),
    ]
    print_detail(f"Group {text(group.get('name'))}", group, rows)


# -- peers ---------------------------------------------------------------------------------------


def render_peers(peers: list[JSONObject]) -> None:
    columns: Columns = [
        ("ID", field("id")),
        ("Name", field("name")),
        ("IP", field("ip")),
        ("DNS label", field("dns_label")),
        ("Connected", field("connected", yes_no)),
        ("Last seen", field("last_seen", timestamp)),
        ("OS", field("os")),
        ("Groups", field("groups", minimum_names)),
    ]
    print_list("Peers", peers, columns, "No peers.")


def render_peer(peer: JSONObject) -> None:
    rows: Columns = [
        ("ID", field("id")),
        ("Name", field("name")),
        ("Hostname", field("hostname")),
        ("DNS label", field("dns_label")),
        ("IP", field("ip")),
        ("IPv6", field("ipv6")),
        ("Connection IP", field("connection_ip")),
        ("Connected", field("connected", yes_no)),
        ("Last seen", field("last_seen", timestamp)),
        ("OS", field("os")),
        ("Version", field("version")),
        ("Groups", field("groups", minimum_names)),
        ("SSH enabled", field("ssh_enabled", yes_no)),
        ("Login expiration", field("login_expiration_enabled", yes_no)),
        ("Login expired", field("login_expired", yes_no)),
        ("Inactivity expiration", field("inactivity_expiration_enabled", yes_no)),
        ("Ephemeral", field("ephemeral", yes_no)),
        ("Created", field("created_at", timestamp)),
    ]
    print_detail(f"Peer {text(peer.get('name'))}", peer, rows)


# -- setup keys ----------------------------------------------------------------------------------


def render_setup_keys(keys: list[JSONObject], names: Directory) -> None:
    columns: Columns = [
        ("ID", field("id")),
        ("Name", field("name")),
        ("Type", field("type")),
        ("State", field("state")),
        ("Used", field("used_times")),
        ("Limit", field("usage_limit", usage_limit)),
        ("Expires", field("expires", expiry)),
        ("Auto groups", named_ids("auto_groups", names.group_names())),
    ]
    print_list("Setup keys", keys, columns, "No setup keys.")


def render_setup_key(key: JSONObject, names: Directory) -> None:
    rows: Columns = [
        ("ID", field("id")),
        ("Name", field("name")),
        ("Key", field("key")),
        ("Type", field("type")),
        ("State", field("state")),
        ("Valid", field("valid", yes_no)),
        ("Revoked", field("revoked", yes_no)),
        ("Used", field("used_times")),
        ("Usage limit", field("usage_limit", usage_limit)),
        ("Last used", field("last_used", timestamp)),
        ("Expires", field("expires", expiry)),
        ("Auto groups", named_ids("auto_groups", names.group_names())),
        ("Ephemeral", field("ephemeral", yes_no)),
        ("Extra DNS labels", field("allow_extra_dns_labels", yes_no)),
        ("Updated", field("updated_at", timestamp)),
    ]
    print_detail(f"Setup key {text(key.get('name'))}", key, rows)


def render_new_setup_key(key: JSONObject, names: Directory) -> None:
    render_setup_key(key, names)
    body = Text.assemble(
        (text(key.get("key")), "bold green"),
        "\n\nThis is the only time the key is shown: store it now.",
    )
    console().print(Panel(body, title="Setup key", title_align="left", expand=False))


# -- events --------------------------------------------------------------------------------------


def event_initiator(e: JSONObject) -> str:
    for key in ("initiator_name", "initiator_email", "initiator_id"):
        value = e.get(key)
        if isinstance(value, str) and value:
            return value
    return "-"


def event_meta(e: JSONObject) -> str:
    meta = e.get("meta")
    if not isinstance(meta, dict) or not meta:
        return "-"
    return ", ".join(f"{k}={v}" for k, v in sorted(meta.items()) if v not in ("", None, "[]")) or "-"


def render_events(events: list[JSONObject]) -> None:
    columns: Columns = [
        ("Time", field("timestamp", timestamp)),
        ("Activity", field("activity")),
        ("Code", field("activity_code")),
        ("Initiator", event_initiator),
        ("Target", field("target_id")),
        ("Details", event_meta),
    ]
    print_list("Events", events, columns, "No events.")
