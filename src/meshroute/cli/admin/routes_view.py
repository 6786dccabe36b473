"""How routes look in the admin CLI: the list grouped by network ID (as NetBird's "Network Routes"
page), one route, a network ID's status (its routing peers, and which of them each client uses),
and the routes of a peer's network map."""

from __future__ import annotations

from collections.abc import Sequence
from itertools import groupby
from typing import Any

from meshroute.cli.admin.client import AdminClient, CliError, JSONObject
from meshroute.cli.admin.output import (
    Cell,
    Column,
    col,
    field,
    id_list,
    is_plain,
    named,
    named_ids,
    note,
    print_detail,
    print_rows,
    text,
    timestamp,
    yes_no,
)

EXIT_NETWORKS = ("0.0.0.0/0", "::/0")


def destination(route: JSONObject) -> str:
    domains = route.get("domains")
    if isinstance(domains, list) and domains:
        return ", ".join(str(d) for d in domains)
    return text(route.get("network"))


def destination_lines(route: JSONObject) -> str:
    """As :func:`destination`, a domain per line on a terminal (where the column is never wrapped)."""
    shown = destination(route)
    return shown if is_plain() else shown.replace(", ", ",\n")


def kind(route: JSONObject) -> str:
    """``exit node`` (0.0.0.0/0, ::/0), ``domains`` (a DNS route), else the address family."""
    domains = route.get("domains")
    if isinstance(domains, list) and domains:
        return "domains"
    if route.get("network") in EXIT_NETWORKS:
        return "exit node"
    return text(route.get("network_type"))


def _group_members(client: AdminClient) -> dict[str, list[str]]:
    groups = client.try_cached_list("groups")
    return {str(g.get("id", "")): id_list(g.get("peers")) for g in groups}


def routing_peer(route: JSONObject, client: AdminClient) -> str:
    """The routing peer by name, or the peer groups by name with how many peers each has (HA)."""
    peer_groups = id_list(route.get("peer_groups"))
    if peer_groups:
        names, members = client.group_names(), _group_members(client)
        parts = []
        for gid in peer_groups:
            count = len(members.get(gid, []))
            parts.append(f"{names.get(gid) or gid} ({count} peer{'' if count == 1 else 's'})")
        return "group " + ", ".join(parts)
    peer = route.get("peer")
    if isinstance(peer, str) and peer:
        return client.peer_names().get(peer) or peer
    return "-"


def _sort_key(route: JSONObject) -> tuple[str, str, str, int, str]:
    net_id = str(route.get("network_id", ""))
    metric = route.get("metric")
    order = metric if isinstance(metric, int) else 0
    return (net_id.casefold(), net_id, destination(route), order, str(route.get("id", "")))


def render_routes(routes: list[JSONObject], client: AdminClient) -> None:
    """One block of rows per network ID (its HA routes together), exit nodes and DNS routes marked."""
    if not routes:
        note("No routes.")
        return
    groups = client.group_names()
    cells: list[tuple[str, Cell, bool]] = [  # (masquerade and the rest: `routes show`)
        ("Net ID", field("network_id"), True),
        ("Network", destination_lines, True),
        ("Type", kind, True),
        ("Routing peer", lambda r: routing_peer(r, client), False),
        ("Metric", field("metric"), True),
        ("Enabled", field("enabled", yes_no), True),
        ("Distribution", named_ids("groups", groups), False),
        ("ID", field("id"), True),
    ]
    columns = [col(header, cell, whole=whole, right=header == "Metric") for header, cell, whole in cells]
    rows: list[list[str]] = []
    breaks: list[int] = []
    plain = is_plain()
    for _, block in groupby(sorted(routes, key=_sort_key), key=lambda r: str(r.get("network_id", ""))):
        for n, route in enumerate(block):
            row = [c.cell(route) for c in columns]
            if n and not plain:  # the network ID once per block on a terminal; on every line in a pipe
                row[0] = ""
            rows.append(row)
        breaks.append(len(rows) - 1)
    print_rows(columns, rows, title="Routes", breaks=breaks[:-1])


def render_route(route: JSONObject, client: AdminClient) -> None:
    groups = client.group_names()
    dns = route.get("network_type") == "Domain"
    rows: list[tuple[str, Cell]] = [
        ("ID", field("id")),
        ("Net ID", field("network_id")),
        ("Description", field("description")),
        ("Type", kind),
        ("Domains" if dns else "Network", destination),
    ]
    if dns:
        rows.append(("Keep route", field("keep_route", yes_no)))
    rows += [
        ("Routing peer", lambda r: routing_peer(r, client)),
        ("Metric", field("metric")),
        ("Masquerade", field("masquerade", yes_no)),
        ("Enabled", field("enabled", yes_no)),
        ("Distribution groups", named_ids("groups", groups)),
        ("Access control", lambda r: _acgs(r, groups)),
        ("Skip auto-apply", field("skip_auto_apply", yes_no)),
    ]
    print_detail(f"Route {text(route.get('network_id'))}", route, rows)


def _acgs(route: JSONObject, groups: dict[str, str]) -> str:
    acgs = id_list(route.get("access_control_groups"))
    return named(acgs, groups) if acgs else "- (every peer that receives it)"


# -- status of a network ID -----------------------------------------------------------------------


def route_status(routes: Sequence[JSONObject], client: AdminClient) -> list[JSONObject]:
    """For each route, its routing peers and whether the server has them connected now, and its
    clients as `GET /api/routes/{id}/status` has them (None from a server without that endpoint)."""
    peers = {str(p.get("id", "")): p for p in client.try_cached_list("peers")}
    members = _group_members(client)
    out = []
    for route in routes:
        ids = [str(route["peer"])] if route.get("peer") else []
        for gid in id_list(route.get("peer_groups")):
            ids += [p for p in members.get(gid, []) if p not in ids]
        serving = []
        for pid in ids:
            peer = peers.get(pid, {})
            serving.append(
                {
                    "id": pid,
                    "name": peer.get("name", ""),
                    "ip": peer.get("ip", ""),
                    "connected": bool(peer.get("connected", False)),
                    "last_seen": peer.get("last_seen", ""),
                }
            )
        out.append({"route": route, "routing_peers": serving, "clients": _clients(route, client)})
    return out


def _clients(route: JSONObject, client: AdminClient) -> list[JSONObject] | None:
    try:
        return client.get_list(f"routes/{route.get('id', '')}/status")
    except CliError as exc:
        if exc.status in (404, 405, 501):  # NetBird, or an older meshroute: no per-client status
            return None
        raise


def render_status(status: list[JSONObject]) -> None:
    columns = [
        col("Route ID", lambda r: str(r["route"].get("id", "")), whole=True),
        col("Network", lambda r: destination_lines(r["route"]), whole=True),
        col("Enabled", lambda r: yes_no(r["route"].get("enabled")), whole=True),
        col("Metric", lambda r: text(r["route"].get("metric")), whole=True, right=True),
        col("Routing peer", lambda r: text(r["peer"].get("name") or r["peer"].get("id"))),
        col("IP", lambda r: text(r["peer"].get("ip")), whole=True),
        col("Connected", lambda r: yes_no(r["peer"].get("connected")), whole=True),
        col("Last seen", lambda r: timestamp(r["peer"].get("last_seen")), whole=True),
    ]
    rows: list[list[str]] = []
    for entry in status:
        for peer in entry["routing_peers"] or [{}]:
            rows.append([c.cell({"route": entry["route"], "peer": peer}) for c in columns])
    net_ids = sorted({str(e["route"].get("network_id", "")) for e in status})
    print_rows(columns, rows, title=f"Status of {', '.join(net_ids)}")
    total = len(status)
    routes = "route" if total == 1 else "routes"
    note(f"{_usable(status)} of {total} {routes} enabled with a connected routing peer.")
    _render_clients(status)


def _render_clients(status: list[JSONObject]) -> None:
    """Per client peer: the routing peer it uses now and its state, from its agent's reports."""
    if any(e.get("clients") is None for e in status):
        note("Clients: this server does not report which routing peer each client uses.")
        return
    clients = [(e["route"], c) for e in status for c in e["clients"]]
    if not clients:
        note("Clients: none (no peer receives these routes).")
        return
    columns = [
        col("Route ID", lambda r: str(r["route"].get("id", "")), whole=True),
        col("Client", lambda r: text(r["client"].get("peer_name") or r["client"].get("peer_id"))),
        col("State", lambda r: text(r["client"].get("state")), whole=True),
        col("Routing peer", lambda r: _peer(r["client"], "routing_peer")),
        col("Last known", lambda r: _peer(r["client"], "last_routing_peer")),
        col("Updated", lambda r: timestamp(r["client"].get("updated_at")), whole=True),
    ]
    if any(c.get("learned_addresses") is not None for _, c in clients):  # domain routes
        columns.insert(5, col("Learned", lambda r: text(r["client"].get("learned_addresses")), whole=True))
    rows = [[c.cell({"route": route, "client": item}) for c in columns] for route, item in clients]
    print_rows(columns, rows, title="Clients", title_when_plain=True)
    current = sum(1 for _, c in clients if c.get("routing_peer_id"))
    stale = sum(1 for _, c in clients if c.get("state") == "stale")
    note(
        f"{current} of {len(clients)} client{'' if len(clients) == 1 else 's'} with a routing peer now"
        + (f"; {stale} stale (agent not connected)." if stale else ".")
    )


def _peer(item: JSONObject, key: str) -> str:
    """A routing peer of a client row by name (its ID when it is no peer any more)."""
    return text(item.get(f"{key}_name") or item.get(f"{key}_id"))


def _usable(status: list[JSONObject]) -> int:
    return sum(
        1 for e in status if e["route"].get("enabled") and any(p["connected"] for p in e["routing_peers"])
    )


# -- a peer's network map -----------------------------------------------------------------------


def base_route_id(map_route_id: str) -> str:
    """The API route ID of a map entry (``<id>:<peer>`` for a peer-group member, ``<id>-v6-default``
    for the IPv6 twin of an exit node)."""
    return map_route_id.split(":", 1)[0].removesuffix("-v6-default")


def map_route_columns(client: AdminClient, with_peer: bool) -> list[Column]:
    peers = client.peer_names()
    columns = [
        col("Net ID", field("network_id"), whole=True),
        col("Network", destination_lines, whole=True),
        col("Type", _map_kind, whole=True),
    ]
    if with_peer:
        columns.append(
            col("Routing peer", lambda r: peers.get(str(r.get("peer_id"))) or text(r.get("peer_id")))
        )
    columns += [
        col("Metric", field("metric"), whole=True, right=True),
        col("Route ID", lambda r: base_route_id(str(r.get("id", ""))), whole=True),
    ]
    return columns


def _map_kind(route: JSONObject) -> str:
    types = {1: "IPv4", 2: "IPv6", 3: "domains"}
    return kind({**route, "network_type": types.get(route.get("network_type", 0), "-")})


def print_map_routes(title: str, routes: list[Any], client: AdminClient, *, with_peer: bool) -> None:
    if not routes:
        note(f"{title}: none.")
        return
    columns = map_route_columns(client, with_peer)
    print_rows(columns, [[c.cell(r) for c in columns] for r in routes], title=title, title_when_plain=True)
