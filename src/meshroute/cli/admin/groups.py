"""`meshroute groups ...`: groups of peers (distribution, routing-peer and access-control groups)."""

from __future__ import annotations

from typing import Annotated

import typer

from meshroute.cli.admin.client import GROUP, JSONObject
from meshroute.cli.admin.common import (
    DEFAULT_SERVER,
    JsonOpt,
    Resource,
    ServerOpt,
    TokenOpt,
    delete_item,
    list_items,
    nameless,
    session,
    show_item,
    usage_error,
)
from meshroute.cli.admin.output import col, field, id_list, minimum_names, print_detail, print_list, text
from meshroute.cli.base import App

app = App(help="Groups of peers (distribution, routing-peer and access-control groups).")

GroupArg = Annotated[str, typer.Argument(metavar="GROUP", help="Group ID or name.", show_default=False)]


def group_resources(group: JSONObject) -> str:
    resources = group.get("resources")
    if not isinstance(resources, list) or not resources:
        return "-"
    return ", ".join(
        f"{r.get('id', '')} ({r.get('type', '')})" if isinstance(r, dict) else str(r) for r in resources
    )


def render_groups(groups: list[JSONObject]) -> None:
    columns = [
        col("Name", field("name")),
        col("Peers", field("peers_count"), whole=True, right=True),
        col("Resources", field("resources_count"), whole=True, right=True),
        col("Issued", field("issued"), whole=True),
        col("ID", field("id"), whole=True),
    ]
    print_list("Groups", groups, columns, "No groups.")


def render_group(group: JSONObject) -> None:
    print_detail(
        f"Group {text(group.get('name'))}",
        group,
        [
            ("ID", field("id")),
            ("Name", field("name")),
            ("Issued", field("issued")),
            ("Peers", lambda g: f"{text(g.get('peers_count'))}: {minimum_names(g.get('peers'))}"),
            ("Resources", group_resources),
        ],
    )


GROUPS = Resource(GROUP, nameless(render_groups), nameless(render_group))


@app.command("list")
def groups_list(server: ServerOpt = DEFAULT_SERVER, token: TokenOpt = None, as_json: JsonOpt = False) -> None:
    """List all groups."""
    list_items(GROUPS, server, token, as_json)


@app.command("show")
def groups_show(
    group: GroupArg, server: ServerOpt = DEFAULT_SERVER, token: TokenOpt = None, as_json: JsonOpt = False
) -> None:
    """Show one group and its peers."""
    show_item(GROUPS, group, server, token, as_json)


@app.command("create")
def groups_create(
    name: Annotated[str, typer.Argument(metavar="NAME", help="Group name.", show_default=False)],
    peers: Annotated[
        list[str] | None,
        typer.Option("--peer", "-p", metavar="PEER", help="Member peer (ID, name or IP); repeatable."),
    ] = None,
    server: ServerOpt = DEFAULT_SERVER,
    token: TokenOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Create a group."""
    with session(server, token) as client:
        body: JSONObject = {"name": name, "peers": client.resolve_peers(peers or [])}
        created = GROUPS.create(client, body)
        note = f"Created group {created.get('name', name)} ({created.get('id', '')})."
        GROUPS.emit(client, as_json, created, note=note)


@app.command("update")
def groups_update(
    group: GroupArg,
    name: Annotated[str | None, typer.Option("--name", metavar="NAME", help="New name.")] = None,
    peers: Annotated[
        list[str] | None,
        typer.Option(
            "--peer", "-p", metavar="PEER", help="Set the members to exactly these peers; repeatable."
        ),
    ] = None,
    add_peers: Annotated[
        list[str] | None, typer.Option("--add-peer", metavar="PEER", help="Add a member peer; repeatable.")
    ] = None,
    remove_peers: Annotated[
        list[str] | None,
        typer.Option("--remove-peer", metavar="PEER", help="Remove a member peer; repeatable."),
    ] = None,
    clear_peers: Annotated[bool, typer.Option("--no-peers", help="Remove all member peers.")] = False,
    server: ServerOpt = DEFAULT_SERVER,
    token: TokenOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Rename a group or change its members (everything not given is kept)."""
    replacing = peers is not None or clear_peers
    if replacing and (add_peers or remove_peers):
        usage_error("--peer/--no-peers replace the members; do not combine with --add/--remove-peer")
    if peers and clear_peers:
        usage_error("--peer and --no-peers exclude each other")
    if name is None and not replacing and not add_peers and not remove_peers:
        usage_error("nothing to change: give --name, --peer, --add-peer, --remove-peer or --no-peers")
    with session(server, token) as client:
        current = GROUPS.fetch(client, group)
        group_id = str(current.get("id", group))
        members = id_list(current.get("peers"))
        if clear_peers:
            members = []
        elif peers is not None:
            members = client.resolve_peers(peers)
        else:
            for peer_id in client.resolve_peers(add_peers or []):
                if peer_id not in members:
                    members.append(peer_id)
            removed = set(client.resolve_peers(remove_peers or []))
            members = [m for m in members if m not in removed]
        body: JSONObject = {"name": name if name is not None else current.get("name", ""), "peers": members}
        resources = current.get("resources")
        if isinstance(resources, list) and resources:
            body["resources"] = resources
        updated = GROUPS.replace(client, group_id, body)
        note = f"Updated group {updated.get('name', '')} ({updated.get('id', group_id)})."
        GROUPS.emit(client, as_json, updated, note=note)


@app.command("delete")
def groups_delete(
    group: GroupArg, server: ServerOpt = DEFAULT_SERVER, token: TokenOpt = None, as_json: JsonOpt = False
) -> None:
    """Delete a group (refused while a route, a setup key or a user uses it)."""
    delete_item(GROUPS, group, server, token, as_json)
