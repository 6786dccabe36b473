"""Admin commands over the REST API (routes, groups, peers, setup keys, events).

Every command talks to a running ``meshroute server`` (or any NetBird-compatible management API) with a
personal access token, prints readable tables by default and the raw JSON reply with ``--json``. Errors
print ``error: <the server's message>`` on stderr and exit with status 1.

Wherever a command takes a group or a peer it accepts its name as well as its ID.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated, Any, NoReturn
from urllib.parse import quote

import typer

from meshroute.cli import admin_render as render
from meshroute.cli.admin_client import DEFAULT_SERVER, AdminClient, CliError, JSONObject, connect

# -- options shared by every command -------------------------------------------------------------

ServerOpt = Annotated[
    str,
    typer.Option(
        "--server",
        "-s",
        envvar="MESHROUTE_SERVER",
        help="Management server URL.",
        rich_help_panel="Connection",
    ),
]
TokenOpt = Annotated[
    str | None,
    typer.Option(
        "--token",
        "-t",
        envvar="MESHROUTE_TOKEN",
        help="Personal access token (the server writes the owner's to <data-dir>/admin-token).",
        show_default=False,
        rich_help_panel="Connection",
    ),
]
JsonOpt = Annotated[
    bool,
    typer.Option("--json", help="Print the raw JSON reply instead of a table.", rich_help_panel="Output"),
]

RouteIdArg = Annotated[str, typer.Argument(help="Route ID.", show_default=False)]
GroupArg = Annotated[str, typer.Argument(help="Group ID or name.", show_default=False)]
PeerArg = Annotated[str, typer.Argument(help="Peer ID or name.", show_default=False)]
SetupKeyArg = Annotated[str, typer.Argument(help="Setup key ID or name.", show_default=False)]


def fail(message: str) -> NoReturn:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(1)


def usage_error(message: str) -> NoReturn:
    """A command line that cannot work: say why and exit with status 2 (as for other usage errors)."""
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(2)


@contextmanager
def session(server: str, token: str | None) -> Iterator[AdminClient]:
    """A client for one command; any :class:`CliError` becomes ``error: ...`` and exit status 1."""
    try:
        with connect(server, token) as client:
            yield client
    except CliError as exc:
        fail(exc.message)


def _ids(client: AdminClient, kind: str, refs: list[str] | None) -> list[str] | None:
    if refs is None:
        return None
    if kind == "peer":
        return client.resolve_peers(refs)
    return client.resolve_groups(refs)


# ================================================================================================
# routes
# ================================================================================================

routes_app = typer.Typer(
    help="Network routes: networks or domains reached through routing peers.",
    no_args_is_help=True,
)


@routes_app.command("list")
def routes_list(server: ServerOpt = DEFAULT_SERVER, token: TokenOpt = None, as_json: JsonOpt = False) -> None:
    """List all routes."""
    with session(server, token) as client:
        routes = client.get_list("routes")
        if as_json:
            render.print_json(routes)
            return
        render.render_routes(routes, client.peer_names(), client.group_names())


@routes_app.command("show")
def routes_show(
    route_id: RouteIdArg,
    server: ServerOpt = DEFAULT_SERVER,
    token: TokenOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Show one route."""
    with session(server, token) as client:
        route = client.get_object(f"routes/{_path(route_id)}")
        if as_json:
            render.print_json(route)
            return
        render.render_route(route, client.peer_names(), client.group_names())


@routes_app.command("create")
def routes_create(
    net_id: Annotated[
        str,
        typer.Option(
            "--net-id",
            help="Network identifier (1-40 characters); routes sharing it and the network form one HA group.",
            show_default=False,
        ),
    ],
    network: Annotated[
        str | None,
        typer.Option(
            "--network",
            "-n",
            help="Network to route, as a CIDR (0.0.0.0/0 = exit node).",
            rich_help_panel="Destination",
        ),
    ] = None,
    domains: Annotated[
        list[str] | None,
        typer.Option(
            "--domain", "-d", help="Domain to route (DNS route); repeatable.", rich_help_panel="Destination"
        ),
    ] = None,
    peer: Annotated[
        str | None,
        typer.Option("--peer", "-p", help="The routing peer (ID or name).", rich_help_panel="Routing peer"),
    ] = None,
    peer_groups: Annotated[
        list[str] | None,
        typer.Option(
            "--peer-group",
            help="Group whose peers all route (high availability); repeatable.",
            rich_help_panel="Routing peer",
        ),
    ] = None,
    groups: Annotated[
        list[str] | None,
        typer.Option(
            "--group",
            "-g",
            help="Distribution group: peers that receive the route; repeatable.",
            rich_help_panel="Distribution",
        ),
    ] = None,
    acgs: Annotated[
        list[str] | None,
        typer.Option(
            "--acg",
            help="Access-control group (limits what the route reaches); repeatable.",
            rich_help_panel="Distribution",
        ),
    ] = None,
    description: Annotated[str, typer.Option("--description", help="Free text.")] = "",
    metric: Annotated[int, typer.Option("--metric", help="1-9999; lower is preferred.")] = 9999,
    masquerade: Annotated[
        bool, typer.Option("--masquerade/--no-masquerade", help="NAT traffic into the routed network.")
    ] = True,
    keep_route: Annotated[
        bool, typer.Option("--keep-route", help="DNS routes: keep routed IPs when DNS stops returning them.")
    ] = False,
    skip_auto_apply: Annotated[
        bool, typer.Option("--skip-auto-apply", help="Exit nodes: clients do not select it automatically.")
    ] = False,
    disabled: Annotated[bool, typer.Option("--disabled", help="Create the route disabled.")] = False,
    server: ServerOpt = DEFAULT_SERVER,
    token: TokenOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Create a route: give --network or --domain, --peer or --peer-group, and at least one --group."""
    with session(server, token) as client:
        body: JSONObject = {
            "network_id": net_id,
            "description": description,
            "enabled": not disabled,
            "metric": metric,
            "masquerade": masquerade,
            "keep_route": keep_route,
            "skip_auto_apply": skip_auto_apply,
            "groups": _ids(client, "group", groups) or [],
        }
        if network is not None:
            body["network"] = network
        if domains:
            body["domains"] = domains
        if peer is not None:
            body["peer"] = client.resolve_peer(peer) if peer else ""
        if peer_groups:
            body["peer_groups"] = _ids(client, "group", peer_groups)
        if acgs:
            body["access_control_groups"] = _ids(client, "group", acgs)
        route = _as_object(client.post("routes", body))
        if as_json:
            render.print_json(route)
            return
        render.note(f"Created route {route.get('id', '')}.")
        render.render_route(route, client.peer_names(), client.group_names())


def route_request(route: JSONObject) -> JSONObject:
    """The RouteRequest that recreates ``route`` (a Route reply) as it is."""
    body: JSONObject = {
        "network_id": route.get("network_id", ""),
        "description": route.get("description", ""),
        "enabled": bool(route.get("enabled", False)),
        "metric": route.get("metric", 0),
        "masquerade": bool(route.get("masquerade", False)),
        "keep_route": bool(route.get("keep_route", False)),
        "skip_auto_apply": bool(route.get("skip_auto_apply", False)),
        "groups": list(route.get("groups") or []),
    }
    domains = route.get("domains")
    if isinstance(domains, list) and domains:
        body["domains"] = list(domains)
    else:
        body["network"] = route.get("network", "")
    peer_groups = route.get("peer_groups")
    if isinstance(peer_groups, list) and peer_groups:
        body["peer_groups"] = list(peer_groups)
    else:
        body["peer"] = route.get("peer") or ""
    acgs = route.get("access_control_groups")
    if isinstance(acgs, list) and acgs:
        body["access_control_groups"] = list(acgs)
    return body


@routes_app.command("update")
def routes_update(
    route_id: RouteIdArg,
    net_id: Annotated[str | None, typer.Option("--net-id", help="New network identifier.")] = None,
    network: Annotated[
        str | None,
        typer.Option(
            "--network",
            "-n",
            help="Route this CIDR instead (drops the domains).",
            rich_help_panel="Destination",
        ),
    ] = None,
    domains: Annotated[
        list[str] | None,
        typer.Option(
            "--domain",
            "-d",
            help="Route these domains instead (drops the network); repeatable.",
            rich_help_panel="Destination",
        ),
    ] = None,
    keep_route: Annotated[
        bool | None,
        typer.Option(
            "--keep-route/--no-keep-route",
            help="DNS routes: keep routed IPs.",
            rich_help_panel="Destination",
            show_default=False,
        ),
    ] = None,
    peer: Annotated[
        str | None,
        typer.Option(
            "--peer", "-p", help="New routing peer (drops the peer groups).", rich_help_panel="Routing peer"
        ),
    ] = None,
    peer_groups: Annotated[
        list[str] | None,
        typer.Option(
            "--peer-group",
            help="New routing peer groups (drops the peer); repeatable.",
            rich_help_panel="Routing peer",
        ),
    ] = None,
    groups: Annotated[
        list[str] | None,
        typer.Option(
            "--group",
            "-g",
            help="Replace the distribution groups; repeatable.",
            rich_help_panel="Distribution",
        ),
    ] = None,
    acgs: Annotated[
        list[str] | None,
        typer.Option(
            "--acg", help="Replace the access-control groups; repeatable.", rich_help_panel="Distribution"
        ),
    ] = None,
    no_acgs: Annotated[
        bool,
        typer.Option("--no-acgs", help="Remove all access-control groups.", rich_help_panel="Distribution"),
    ] = False,
    description: Annotated[str | None, typer.Option("--description", help="New description.")] = None,
    metric: Annotated[int | None, typer.Option("--metric", help="New metric (1-9999).")] = None,
    masquerade: Annotated[
        bool | None,
        typer.Option(
            "--masquerade/--no-masquerade", help="NAT traffic into the network.", show_default=False
        ),
    ] = None,
    skip_auto_apply: Annotated[
        bool | None,
        typer.Option(
            "--skip-auto-apply/--auto-apply", help="Exit nodes: auto-selection.", show_default=False
        ),
    ] = None,
    enabled: Annotated[
        bool | None,
        typer.Option("--enabled/--disabled", help="Enable or disable the route.", show_default=False),
    ] = None,
    server: ServerOpt = DEFAULT_SERVER,
    token: TokenOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Change a route: only the options given change, everything else is kept."""
    if acgs and no_acgs:
        usage_error("--acg and --no-acgs exclude each other")
    changes: dict[str, Any] = {
        "network_id": net_id,
        "description": description,
        "metric": metric,
        "masquerade": masquerade,
        "keep_route": keep_route,
        "skip_auto_apply": skip_auto_apply,
        "enabled": enabled,
    }
    changes = {key: value for key, value in changes.items() if value is not None}
    others = (network, domains, peer, peer_groups, groups, acgs)
    if not changes and all(value is None for value in others) and not no_acgs:
        usage_error("nothing to change: give at least one option (see --help)")
    with session(server, token) as client:
        body = route_request(client.get_object(f"routes/{_path(route_id)}"))
        body.update(changes)
        if network is not None or domains:
            body.pop("network", None)
            body.pop("domains", None)
            if network is not None:
                body["network"] = network
            if domains:
                body["domains"] = domains
        if peer is not None or peer_groups:
            body.pop("peer", None)
            body.pop("peer_groups", None)
            if peer is not None:
                body["peer"] = client.resolve_peer(peer) if peer else ""
            if peer_groups:
                body["peer_groups"] = _ids(client, "group", peer_groups)
        if groups is not None:
            body["groups"] = _ids(client, "group", groups)
        if no_acgs:
            body.pop("access_control_groups", None)
        elif acgs:
            body["access_control_groups"] = _ids(client, "group", acgs)
        route = _as_object(client.put(f"routes/{_path(route_id)}", body))
        if as_json:
            render.print_json(route)
            return
        render.note(f"Updated route {route.get('id', route_id)}.")
        render.render_route(route, client.peer_names(), client.group_names())


@routes_app.command("delete")
def routes_delete(
    route_id: RouteIdArg,
    server: ServerOpt = DEFAULT_SERVER,
    token: TokenOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Delete a route."""
    with session(server, token) as client:
        reply = client.delete(f"routes/{_path(route_id)}")
        if as_json:
            render.print_json(reply)
            return
        render.note(f"Deleted route {route_id}.")


# ================================================================================================
# groups
# ================================================================================================

groups_app = typer.Typer(
    help="Groups of peers (distribution, routing and access-control groups).", no_args_is_help=True
)


@groups_app.command("list")
def groups_list(server: ServerOpt = DEFAULT_SERVER, token: TokenOpt = None, as_json: JsonOpt = False) -> None:
    """List all groups."""
    with session(server, token) as client:
        groups = client.get_list("groups")
        if as_json:
            render.print_json(groups)
            return
        render.render_groups(groups)


@groups_app.command("show")
def groups_show(
    group: GroupArg,
    server: ServerOpt = DEFAULT_SERVER,
    token: TokenOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Show one group and its peers."""
    with session(server, token) as client:
        found = client.get_by_ref("group", "groups", group)
        if as_json:
            render.print_json(found)
            return
        render.render_group(found)


@groups_app.command("create")
def groups_create(
    name: Annotated[str, typer.Argument(help="Group name.", show_default=False)],
    peers: Annotated[
        list[str] | None, typer.Option("--peer", "-p", help="Member peer (ID or name); repeatable.")
    ] = None,
    server: ServerOpt = DEFAULT_SERVER,
    token: TokenOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Create a group."""
    with session(server, token) as client:
        body: JSONObject = {"name": name, "peers": _ids(client, "peer", peers) or []}
        created = _as_object(client.post("groups", body))
        if as_json:
            render.print_json(created)
            return
        render.note(f"Created group {created.get('name', name)} ({created.get('id', '')}).")
        render.render_group(created)


@groups_app.command("update")
def groups_update(
    group: GroupArg,
    name: Annotated[str | None, typer.Option("--name", help="New name.")] = None,
    peers: Annotated[
        list[str] | None,
        typer.Option("--peer", "-p", help="Set the members to exactly these peers; repeatable."),
    ] = None,
    add_peers: Annotated[
        list[str] | None, typer.Option("--add-peer", help="Add a member peer; repeatable.")
    ] = None,
    remove_peers: Annotated[
        list[str] | None, typer.Option("--remove-peer", help="Remove a member peer; repeatable.")
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
        current = client.get_by_ref("group", "groups", group)
        group_id = str(current.get("id", group))
        members = render.id_list(current.get("peers"))
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
        updated = _as_object(client.put(f"groups/{_path(group_id)}", body))
        if as_json:
            render.print_json(updated)
            return
        render.note(f"Updated group {updated.get('name', '')} ({updated.get('id', group_id)}).")
        render.render_group(updated)


@groups_app.command("delete")
def groups_delete(
    group: GroupArg,
    server: ServerOpt = DEFAULT_SERVER,
    token: TokenOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Delete a group (refused while a route or other object uses it)."""
    with session(server, token) as client:
        group_id = client.id_of("group", "groups", group)
        reply = client.delete(f"groups/{_path(group_id)}")
        if as_json:
            render.print_json(reply)
            return
        render.note(f"Deleted group {group_id}.")


# ================================================================================================
# peers
# ================================================================================================

peers_app = typer.Typer(
    help="Peers of the mesh (they join with a setup key through the agent).", no_args_is_help=True
)


@peers_app.command("list")
def peers_list(server: ServerOpt = DEFAULT_SERVER, token: TokenOpt = None, as_json: JsonOpt = False) -> None:
    """List all peers."""
    with session(server, token) as client:
        peers = client.get_list("peers")
        if as_json:
            render.print_json(peers)
            return
        render.render_peers(peers)


@peers_app.command("show")
def peers_show(
    peer: PeerArg,
    server: ServerOpt = DEFAULT_SERVER,
    token: TokenOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Show one peer."""
    with session(server, token) as client:
        found = client.get_by_ref("peer", "peers", peer)
        if as_json:
            render.print_json(found)
            return
        render.render_peer(found)


@peers_app.command("rename")
def peers_rename(
    peer: PeerArg,
    new_name: Annotated[str, typer.Argument(metavar="NAME", help="New name.", show_default=False)],
    server: ServerOpt = DEFAULT_SERVER,
    token: TokenOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Rename a peer (its other settings are kept)."""
    with session(server, token) as client:
        current = client.get_by_ref("peer", "peers", peer)
        peer_id = str(current.get("id", peer))
        body: JSONObject = {
            "name": new_name,
            "ssh_enabled": bool(current.get("ssh_enabled", False)),
            "login_expiration_enabled": bool(current.get("login_expiration_enabled", False)),
            "inactivity_expiration_enabled": bool(current.get("inactivity_expiration_enabled", False)),
        }
        if isinstance(current.get("approval_required"), bool):
            body["approval_required"] = current["approval_required"]
        updated = _as_object(client.put(f"peers/{_path(peer_id)}", body))
        if as_json:
            render.print_json(updated)
            return
        render.note(f"Renamed peer {peer_id} to {updated.get('name', new_name)}.")
        render.render_peer(updated)


@peers_app.command("delete")
def peers_delete(
    peer: PeerArg,
    server: ServerOpt = DEFAULT_SERVER,
    token: TokenOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Delete a peer."""
    with session(server, token) as client:
        peer_id = client.id_of("peer", "peers", peer)
        reply = client.delete(f"peers/{_path(peer_id)}")
        if as_json:
            render.print_json(reply)
            return
        render.note(f"Deleted peer {peer_id}.")


# ================================================================================================
# setup keys
# ================================================================================================

setup_keys_app = typer.Typer(help="Setup keys: how new peers join the mesh.", no_args_is_help=True)

SECONDS_PER_DAY = 86_400


@setup_keys_app.command("list")
def setup_keys_list(
    server: ServerOpt = DEFAULT_SERVER, token: TokenOpt = None, as_json: JsonOpt = False
) -> None:
    """List all setup keys (secrets are masked)."""
    with session(server, token) as client:
        keys = client.get_list("setup-keys")
        if as_json:
            render.print_json(keys)
            return
        render.render_setup_keys(keys, client.group_names())


@setup_keys_app.command("show")
def setup_keys_show(
    key: SetupKeyArg,
    server: ServerOpt = DEFAULT_SERVER,
    token: TokenOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Show one setup key."""
    with session(server, token) as client:
        found = client.get_by_ref("setup key", "setup-keys", key)
        if as_json:
            render.print_json(found)
            return
        render.render_setup_key(found, client.group_names())


@setup_keys_app.command("create")
def setup_keys_create(
    name: Annotated[str, typer.Argument(help="Setup key name.", show_default=False)],
    reusable: Annotated[
        bool, typer.Option("--reusable/--one-off", help="Usable by many peers, or by a single one.")
    ] = False,
    expires_in_days: Annotated[
        int, typer.Option("--expires-in-days", min=0, help="Days until the key expires; 0 = never.")
    ] = 30,
    usage_limit: Annotated[
        int,
        typer.Option("--usage-limit", min=0, help="Reusable keys: how many peers may use it; 0 = unlimited."),
    ] = 0,
    auto_groups: Annotated[
        list[str] | None,
        typer.Option("--auto-group", "-g", help="Group (ID or name) new peers join; repeatable."),
    ] = None,
    ephemeral: Annotated[
        bool, typer.Option("--ephemeral", help="Peers are removed after being offline for a while.")
    ] = False,
    allow_extra_dns_labels: Annotated[
        bool, typer.Option("--allow-extra-dns-labels", help="Peers may add extra DNS labels.")
    ] = False,
    server: ServerOpt = DEFAULT_SERVER,
    token: TokenOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Create a setup key. The plain key is printed once: store it."""
    with session(server, token) as client:
        body: JSONObject = {
            "name": name,
            "type": "reusable" if reusable else "one-off",
            "expires_in": expires_in_days * SECONDS_PER_DAY,
            "auto_groups": _ids(client, "group", auto_groups) or [],
            "usage_limit": usage_limit,
            "ephemeral": ephemeral,
            "allow_extra_dns_labels": allow_extra_dns_labels,
        }
        created = _as_object(client.post("setup-keys", body))
        if as_json:
            render.print_json(created)
            return
        render.note(f"Created setup key {created.get('name', name)} ({created.get('id', '')}).")
        render.render_new_setup_key(created, client.group_names())


@setup_keys_app.command("revoke")
def setup_keys_revoke(
    key: SetupKeyArg,
    server: ServerOpt = DEFAULT_SERVER,
    token: TokenOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Revoke a setup key: no new peer can join with it (peers already joined stay)."""
    with session(server, token) as client:
        current = client.get_by_ref("setup key", "setup-keys", key)
        key_id = str(current.get("id", key))
        body: JSONObject = {"revoked": True, "auto_groups": render.id_list(current.get("auto_groups"))}
        updated = _as_object(client.put(f"setup-keys/{_path(key_id)}", body))
        if as_json:
            render.print_json(updated)
            return
        render.note(f"Revoked setup key {updated.get('name', '')} ({key_id}).")
        render.render_setup_key(updated, client.group_names())


@setup_keys_app.command("delete")
def setup_keys_delete(
    key: SetupKeyArg,
    server: ServerOpt = DEFAULT_SERVER,
    token: TokenOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Delete a setup key."""
    with session(server, token) as client:
        key_id = client.id_of("setup key", "setup-keys", key)
        reply = client.delete(f"setup-keys/{_path(key_id)}")
        if as_json:
            render.print_json(reply)
            return
        render.note(f"Deleted setup key {key_id}.")


# ================================================================================================
# events
# ================================================================================================


def events(
    limit: Annotated[
        int,
        typer.Option("--limit", "-l", min=0, help="Show at most this many events (newest first); 0 = all."),
    ] = 50,
    server: ServerOpt = DEFAULT_SERVER,
    token: TokenOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Show the audit log (who changed what), newest first."""
    with session(server, token) as client:
        found = client.get_list("events/audit")
        if limit:
            found = found[:limit]
        if as_json:
            render.print_json(found)
            return
        render.render_events(found)


# ================================================================================================


def _path(ref: str) -> str:
    return quote(ref, safe="")


def _as_object(data: Any) -> JSONObject:
    if not isinstance(data, dict):
        raise CliError("unexpected reply from the server: expected a JSON object")
    return data


def register(app: typer.Typer) -> None:
    """Attach the admin sub-commands to the top-level app."""
    app.add_typer(routes_app, name="routes")
    app.add_typer(groups_app, name="groups")
    app.add_typer(peers_app, name="peers")
    app.add_typer(setup_keys_app, name="setup-keys")
    app.command("events")(events)
