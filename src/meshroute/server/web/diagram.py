"""A route's picture, drawn on the server as SVG: its client peers, the routing peers of its HA group
and the network, with which routing peer each client uses now (as its agent last reported it) and
whether each routing peer is connected. Styles come from the stylesheet (classes only), so the
page's content security policy needs no inline styles; every text is escaped."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from markupsafe import Markup, escape

from meshroute.core.model import Route
from meshroute.core.route_status import STALE, UNKNOWN, ClientStatus
from meshroute.core.status import RouteState
from meshroute.server.web.data import Picture
from meshroute.server.web.render import destination, route_kind

WIDTH = 900
NODE_H = 32
ROW = 42
TOP = 44
COLUMNS = {"clients": (10, 230), "peers": (335, 240), "network": (675, 215)}  # x, width
MAX_CLIENTS = 20
MAX_CHARS = 30
_EDGES = {RouteState.ROUTING.value: "routing", RouteState.KEPT.value: "kept", STALE: "stale"}


@dataclass(frozen=True, slots=True)
class Node:
    key: str
    column: str
    row: int
    title: str
    sub: str
    css: str
    tip: str


@dataclass(frozen=True, slots=True)
class Drawing:
    svg: Markup
    no_data: bool  # clients exist but none has reported this route yet


def draw(route: Route, pic: Picture, clients: Sequence[ClientStatus]) -> Drawing:
    ha = pic.ha_group(route)
    nodes: list[Node] = []
    edges: list[tuple[str, str, str]] = []
    peer_rows: dict[str, int] = {}
    for r in ha:
        for p in pic.routing_peers(r):
            if p.id in peer_rows:
                continue
            peer_rows[p.id] = len(peer_rows)
            own = "this route" if r.id == route.id else f"HA sibling, metric {r.metric}"
            state = "connected" if p.connected else "not connected"
            css = ("up" if p.connected else "down") + ("" if r.id == route.id else " other")
            nodes.append(
                Node(
                    p.id,
                    "peers",
                    peer_rows[p.id],
                    p.name,
                    f"{state} · {own}",
                    css,
                    f"{p.name} ({p.ip}): {state}",
                )
            )
            edges.append((p.id, "network", "serve-up" if p.connected else "serve-down"))
    shown = list(clients[:MAX_CLIENTS])
    for i, c in enumerate(shown):
        name = pic.peer_name(c.peer_id)
        sub, css = _client_state(c, pic)
        nodes.append(Node(c.peer_id, "clients", i, name, sub, css, f"{name}: {sub}"))
        target = c.routing_peer_id if c.state != STALE else c.last_routing_peer_id
        if target in peer_rows and c.state in _EDGES:
            edges.append((c.peer_id, target, _EDGES[c.state]))
    if len(clients) > MAX_CLIENTS:
        more = len(clients) - MAX_CLIENTS
        nodes.append(
            Node("more", "clients", len(shown), f"+{more} more clients", "see the table below", "unknown", "")
        )
    rows = max(len(peer_rows), len(shown) + (len(clients) > MAX_CLIENTS), 1)
    height = TOP + rows * ROW + 16
    kind = route_kind(route)
    net_row = (rows - 1) / 2
    nodes.append(
        Node(
            "network",
            "network",
            0,
            destination(route),
            kind,
            "network",
            f"{route.net_id}: {destination(route)}",
        )
    )
    no_data = bool(clients) and all(c.state == UNKNOWN for c in clients)
    parts = [
        f'<svg class="diagram" viewBox="0 0 {WIDTH} {height}" role="img" '
        f'aria-label="{escape(_label(route, len(clients), len(peer_rows)))}" xmlns="http://www.w3.org/2000/svg">',
        _head("clients", f"Clients ({len(clients)})"),
        _head("peers", f"Routing peers ({len(peer_rows)})"),
        _head("network", "Network"),
    ]
    where = {n.key: _position(n, net_row) for n in nodes}
    for src, dst, css in edges:
        parts.append(_edge(where[src], where[dst], css))
    parts.extend(_node(n, where[n.key]) for n in nodes)
    if not clients:
        parts.append(_note("clients", TOP + 18, "no peer receives this route"))
    elif no_data:
        parts.append(_note("clients", height - 6, "no data yet: no client has reported"))
    if not peer_rows:
        parts.append(_note("peers", TOP + 18, "no routing peer (empty peer group)"))
    parts.append("</svg>")
    return Drawing(Markup("\n".join(parts)), no_data)


def _client_state(c: ClientStatus, pic: Picture) -> tuple[str, str]:
    if c.state == UNKNOWN:
        return "no data yet", "unknown"
    if c.state == STALE:
        return f"stale: last via {pic.peer_name(c.last_routing_peer_id)}", "unknown"
    if c.state == RouteState.ROUTING:
        return f"routing via {pic.peer_name(c.routing_peer_id)}", "up"
    if c.state == RouteState.KEPT:
        return f"kept on {pic.peer_name(c.routing_peer_id)} (KeepRoute)", "down"
    return c.state.replace("_", " "), "down"


def _label(route: Route, clients: int, peers: int) -> str:
    return f"Route {route.net_id} to {destination(route)}: {clients} client peers, {peers} routing peers"


def _position(n: Node, net_row: float) -> tuple[float, float, float]:
    x, w = COLUMNS[n.column]
    row = net_row if n.column == "network" else n.row
    return x, TOP + row * ROW, w


def _short(text: str) -> str:
    return text if len(text) <= MAX_CHARS else text[: MAX_CHARS - 1] + "…"


def _head(column: str, text: str) -> str:
    x, _ = COLUMNS[column]
    return f'<text class="head" x="{x}" y="24">{escape(text)}</text>'


def _note(column: str, y: float, text: str) -> str:
    x, _ = COLUMNS[column]
    return f'<text class="sub" x="{x}" y="{y:.0f}">{escape(text)}</text>'


def _node(n: Node, at: tuple[float, float, float]) -> str:
    x, y, w = at
    tip = f"<title>{escape(n.tip)}</title>" if n.tip else ""
    return (
        f'<g class="node {escape(n.css)}" data-peer="{escape(n.key)}">{tip}'
        f'<rect x="{x}" y="{y:.0f}" width="{w}" height="{NODE_H}" rx="6"/>'
        f'<text x="{x + 8}" y="{y + 13:.0f}">{escape(_short(n.title))}</text>'
        f'<text class="sub" x="{x + 8}" y="{y + 26:.0f}">{escape(_short(n.sub))}</text></g>'
    )


def _edge(a: tuple[float, float, float], b: tuple[float, float, float], css: str) -> str:
    x1, y1 = a[0] + a[2], a[1] + NODE_H / 2
    x2, y2 = b[0], b[1] + NODE_H / 2
    mid = (x1 + x2) / 2
    d = f"M{x1:.0f},{y1:.0f} C{mid:.0f},{y1:.0f} {mid:.0f},{y2:.0f} {x2:.0f},{y2:.0f}"
    return f'<path class="edge {css}" d="{d}"/>'
