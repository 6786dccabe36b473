"""`meshroute peers ...`: the peers of the mesh, the routes each serves and receives, its map."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from meshroute.cli.admin import routes_view
from meshroute.cli.admin.client import PEER, AdminClient, CliError, JSONObject
from meshroute.cli.admin.common import (
    DEFAULT_SERVER,
    JsonOpt,
    Resource,
    ServerOpt,
    TokenOpt,
    delete_item,
    emit,
    list_items,
    nameless,
    session,
)
from meshroute.cli.admin.output import (
    col,
    field,
    minimum_names,
    note,
    print_detail,
    print_list,
    print_rows,
    text,
    timestamp,
    yes_no,
)
from meshroute.cli.base import App

app = App(help="Peers of the mesh (they join with a setup key through the agent).")

PeerArg = Annotated[
    str, typer.Argument(metavar="PEER", help="Peer ID, name or overlay IP.", show_default=False)
]


def render_peers(peers: list[JSONObject]) -> None:
    columns = [
        col("Name", field("name")),
        col("IP", field("ip"), whole=True),
        col("DNS label", field("dns_label"), whole=True),
        col("Connected", field("connected", yes_no), whole=True),
        col("Last seen", field("last_seen", timestamp), whole=True),
        col("OS", field("os")),
        col("Groups", field("groups", minimum_names)),
        col("ID", field("id"), whole=True),
    ]
    print_list("Peers", peers, columns, "No peers.")


def render_peer(peer: JSONObject) -> None:
    print_detail(
        f"Peer {text(peer.get('name'))}",
        peer,
        [
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
        ],
    )


PEERS = Resource(PEER, nameless(render_peers), nameless(render_peer))


def network_map(client: AdminClient, peer_id: str) -> JSONObject | None:
    """meshroute's network-map view of a peer; None from a server without it (NetBird)."""
    try:
        return client.get_object(f"{PEERS.path(peer_id)}/network-map")
    except CliError as exc:
        if exc.status in (403, 404, 405, 501):
            return None
        raise


def _routes(view: JSONObject, ids_key: str) -> list[Any]:
    wanted = set(view.get(ids_key) or [])
    return [r for r in view.get("routes") or [] if isinstance(r, dict) and r.get("id") in wanted]


@app.command("list")
def peers_list(server: ServerOpt = DEFAULT_SERVER, token: TokenOpt = None, as_json: JsonOpt = False) -> None:
    """List all peers."""
    list_items(PEERS, server, token, as_json)


@app.command("show")
def peers_show(
    peer: PeerArg, server: ServerOpt = DEFAULT_SERVER, token: TokenOpt = None, as_json: JsonOpt = False
) -> None:
    """Show one peer and the routes it serves and receives (the JSON is the peer alone)."""
    with session(server, token) as client:
        shown = PEERS.fetch(client, peer)
        if as_json:
            emit(True, shown)
            return
        render_peer(shown)
        view = network_map(client, str(shown.get("id", peer)))
        if view is None:
            return
        routes_view.print_map_routes("Routes served", _routes(view, "routes_served"), client, with_peer=False)
        received = _routes(view, "routes_received")
        routes_view.print_map_routes("Routes received", received, client, with_peer=True)


@app.command("map")
def peers_map(
    peer: PeerArg, server: ServerOpt = DEFAULT_SERVER, token: TokenOpt = None, as_json: JsonOpt = False
) -> None:
    """Show the network map the server sends a peer: the peers it sees, its routes, its firewall rules."""
    with session(server, token) as client:
        peer_id = PEERS.ref_id(client, peer)
        view = client.get_object(f"{PEERS.path(peer_id)}/network-map")
        emit(as_json, view, lambda v: render_map(v, client))


def render_map(view: JSONObject, client: AdminClient) -> None:
    me: JSONObject = view.get("self") or {}
    names = client.peer_names()
    print_detail(
        f"Network map of {names.get(str(me.get('id'))) or text(me.get('id'))}",
        view,
        [
            ("Serial", field("serial")),
            ("IP", lambda v: f"{text(me.get('ip'))} in {text(me.get('network'))}"),
            (
                "IPv6",
                lambda v: (
                    f"{text(me.get('ipv6'))} in {text(me.get('network_v6'))}" if me.get("ipv6") else "-"
                ),
            ),
            ("Peers", lambda v: str(len(v.get("peers") or []))),
        ],
    )
    peers = [p for p in view.get("peers") or [] if isinstance(p, dict)]
    peer_columns = [
        col("Name", lambda p: names.get(str(p.get("id"))) or text(p.get("dns_label"))),
        col("IP", field("ip"), whole=True),
        col("IPv6", field("ipv6"), whole=True),
        col("Endpoints", lambda p: ", ".join(p.get("endpoints") or []) or "-"),
        col("ID", field("id"), whole=True),
    ]
    if peers:
        print_rows(
            peer_columns,
            [[c.cell(p) for c in peer_columns] for p in peers],
            title="Peers",
            title_when_plain=True,
        )
    else:
        note("Peers: none.")
    routes_view.print_map_routes("Routes served", _routes(view, "routes_served"), client, with_peer=False)
    routes_view.print_map_routes("Routes received", _routes(view, "routes_received"), client, with_peer=True)
    rules = [r for r in view.get("firewall_rules") or [] if isinstance(r, dict)]
    if not rules:
        note("Firewall rules: none.")
        return
    rule_columns = [
        col("Route ID", lambda r: routes_view.base_route_id(str(r.get("route_id", ""))), whole=True),
        col("Sources", lambda r: ", ".join(r.get("sources") or []) or "-"),
        col("Destination", lambda r: ", ".join(r.get("domains") or []) or text(r.get("destination"))),
        col("Protocol", field("protocol"), whole=True),
        col("Action", field("action"), whole=True),
    ]
    print_rows(
        rule_columns,
        [[c.cell(r) for c in rule_columns] for r in rules],
        title="Firewall rules",
        title_when_plain=True,
    )


@app.command("rename")
def peers_rename(
    peer: PeerArg,
    new_name: Annotated[str, typer.Argument(metavar="NAME", help="New name.", show_default=False)],
    server: ServerOpt = DEFAULT_SERVER,
    token: TokenOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Rename a peer (its other settings are kept)."""
    with session(server, token) as client:
        current = PEERS.fetch(client, peer)
        peer_id = str(current.get("id", peer))
        body: JSONObject = {
            "name": new_name,
            "ssh_enabled": bool(current.get("ssh_enabled", False)),
            "login_expiration_enabled": bool(current.get("login_expiration_enabled", False)),
            "inactivity_expiration_enabled": bool(current.get("inactivity_expiration_enabled", False)),
        }
        if isinstance(current.get("approval_required"), bool):
            body["approval_required"] = current["approval_required"]
        updated = PEERS.replace(client, peer_id, body)
        note_text = f"Renamed peer {peer_id} to {updated.get('name', new_name)}."
        PEERS.emit(client, as_json, updated, note=note_text)


@app.command("delete")
def peers_delete(
    peer: PeerArg, server: ServerOpt = DEFAULT_SERVER, token: TokenOpt = None, as_json: JsonOpt = False
) -> None:
    """Delete a peer (refused while it is the single routing peer of a route)."""
    delete_item(PEERS, peer, server, token, as_json)
