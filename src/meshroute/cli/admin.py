"""Admin commands over the REST API (routes, groups, peers, setup keys, events).

Every command talks to a running ``meshroute server`` (or any NetBird-compatible management API) with a
personal access token, prints readable tables by default and the raw JSON reply with ``--json``. Errors
print ``error: <the server's message>`` on stderr and exit with status 1.

Wherever a command takes a group or a peer it accepts its name as well as its ID.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Annotated, Any, NoReturn, TypeVar
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


def fail(message: str, status: int = 1) -> NoReturn:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(status)


def usage_error(message: str) -> NoReturn:
    """A command line that cannot work: say why and exit with status 2 (as for other usage errors)."""
    fail(message, status=2)


@contextmanager
def session(server: str, token: str | None) -> Iterator[AdminClient]:
    """A client for one command; any :class:`CliError` becomes ``error: ...`` and exit status 1."""
    try:
        with connect(server, token) as client:
            yield client
    except CliError as exc:
        fail(exc.message)


# -- what the commands share --------------------------------------------------------------------

T = TypeVar("T")


def emit(as_json: bool, data: T, show: Callable[[T], None] | None = None, *, note: str | None = None) -> None:
    """Print a command's result: the raw JSON reply with ``--json``, else ``note`` and then ``show(data)``."""
    if as_json:
        render.print_json(data)
        return
    if note is not None:
        render.note(note)
    if show is not None:
        show(data)


def _as_object(data: Any) -> JSONObject:
    if not isinstance(data, dict):
        raise CliError("unexpected reply from the server: expected a JSON object")
    return data


@dataclass(frozen=True)
class Resource:
    """One collection of the API (``/api/<collection>``) and how the commands show its items."""

    kind: str  # in messages: "Deleted <kind> <id>."
    collection: str
    render_list: Callable[[list[JSONObject], render.Directory], None]
    render_item: Callable[[JSONObject, render.Directory], None]
    by_name: bool = True  # whether a reference may be a name as well as an ID

    def ref_id(self, client: AdminClient, ref: str) -> str:
        return client.id_of(self.kind, self.collection, ref) if self.by_name else ref

    def path(self, item_id: str) -> str:
        return f"{self.collection}/{quote(item_id, safe='')}"

    def fetch(self, client: AdminClient, ref: str) -> JSONObject:
        return client.get_object(self.path(self.ref_id(client, ref)))

    def create(self, client: AdminClient, body: JSONObject) -> JSONObject:
        return _as_object(client.post(self.collection, body))

    def replace(self, client: AdminClient, item_id: str, body: JSONObject) -> JSONObject:
        return _as_object(client.put(self.path(item_id), body))

    def emit(self, client: AdminClient, as_json: bool, item: JSONObject, note: str | None = None) -> None:
        emit(as_json, item, lambda shown: self.render_item(shown, client), note=note)


def _nameless(show: Callable[[T], None]) -> Callable[[T, render.Directory], None]:
    """A renderer that needs no names, as a :class:`Resource` renderer."""
    return lambda data, _names: show(data)


ROUTES = Resource("route", "routes", render.render_routes, render.render_route, by_name=False)
GROUPS = Resource("group", "groups", _nameless(render.render_groups), _nameless(render.render_group))
PEERS = Resource("peer", "peers", _nameless(render.render_peers), _nameless(render.render_peer))
SETUP_KEYS = Resource("setup key", "setup-keys", render.render_setup_keys, render.render_setup_key)


def list_items(resource: Resource, server: str, token: str | None, as_json: bool) -> None:
    """The ``list`` commands."""
    with session(server, token) as client:
        items = client.get_list(resource.collection)
        emit(as_json, items, lambda shown: resource.render_list(shown, client))


def show_item(resource: Resource, ref: str, server: str, token: str | None, as_json: bool) -> None:
    """The ``show`` commands: ``ref`` is an ID or (where the resource has names) a name."""
    with session(server, token) as client:
        resource.emit(client, as_json, resource.fetch(client, ref))


def delete_item(resource: Resource, ref: str, server: str, token: str | None, as_json: bool) -> None:
    """The ``delete`` commands; the reply (normally ``{}``) is printed with ``--json``."""
    with session(server, token) as client:
        item_id = resource.ref_id(client, ref)
        reply = client.delete(resource.path(item_id))
        emit(as_json, reply, note=f"Deleted {resource.kind} {item_id}.")


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
    list_items(ROUTES, server, token, as_json)


@routes_app.command("show")
def routes_show(
    route_id: RouteIdArg,
    server: ServerOpt = DEFAULT_SERVER,
    token: TokenOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Show one route."""
    show_item(ROUTES, route_id, server, token, as_json)


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
            "groups": client.resolve_groups(groups or []),
        }
        _set_destination(body, network, domains)
        _set_routing_peer(client, body, peer, peer_groups)
        _set_acgs(client, body, acgs)
        route = ROUTES.create(client, body)
        ROUTES.emit(client, as_json, route, note=f"Created route {route.get('id', '')}.")


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


def _set_destination(body: JSONObject, network: str | None, domains: list[str] | None) -> None:
    """Route ``network`` or ``domains`` instead of what ``body`` routes, if either is given."""
    if network is None and not domains:
        return
    body.pop("network", None)
    body.pop("domains", None)
    if network is not None:
        body["network"] = network
    if domains:
        body["domains"] = domains


def _set_routing_peer(
    client: AdminClient, body: JSONObject, peer: str | None, peer_groups: list[str] | None
) -> None:
    """Route through ``peer`` or ``peer_groups`` (IDs or names) instead, if either is given."""
    if peer is None and not peer_groups:
        return
    body.pop("peer", None)
    body.pop("peer_groups", None)
    if peer is not None:
        body["peer"] = client.resolve_peer(peer) if peer else ""
    if peer_groups:
        body["peer_groups"] = client.resolve_groups(peer_groups)


def _set_acgs(client: AdminClient, body: JSONObject, acgs: list[str] | None, clear: bool = False) -> None:
    """Replace (``acgs``) or drop (``clear``) the access-control groups; keep them if neither is given."""
    if clear:
        body.pop("access_control_groups", None)
    elif acgs:
        body["access_control_groups"] = client.resolve_groups(acgs)


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
        body = route_request(ROUTES.fetch(client, route_id))
        body.update(changes)
        _set_destination(body, network, domains)
        _set_routing_peer(client, body, peer, peer_groups)
        if groups is not None:
            body["groups"] = client.resolve_groups(groups)
        _set_acgs(client, body, acgs, clear=no_acgs)
        route = ROUTES.replace(client, route_id, body)
        ROUTES.emit(client, as_json, route, note=f"Updated route {route.get('id', route_id)}.")


@routes_app.command("delete")
def routes_delete(
    route_id: RouteIdArg,
    server: ServerOpt = DEFAULT_SERVER,
    token: TokenOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Delete a route."""
    delete_item(ROUTES, route_id, server, token, as_json)


# ================================================================================================
# groups
# ================================================================================================

groups_app = typer.Typer(
    help="Groups of peers (distribution, routing and access-control groups).", no_args_is_help=True
)


@groups_app.command("list")
def groups_list(server: ServerOpt = DEFAULT_SERVER, token: TokenOpt = None, as_json: JsonOpt = False) -> None:
    """List all groups."""
    list_items(GROUPS, server, token, as_json)


@groups_app.command("show")
def groups_show(
    group: GroupArg,
    server: ServerOpt = DEFAULT_SERVER,
    token: TokenOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Show one group and its peers."""
    show_item(GROUPS, group, server, token, as_json)


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
        body: JSONObject = {"name": name, "peers": client.resolve_peers(peers or [])}
        created = GROUPS.create(client, body)
        note = f"Created group {created.get('name', name)} ({created.get('id', '')})."
        GROUPS.emit(client, as_json, created, note=note)


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
        current = GROUPS.fetch(client, group)
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
        updated = GROUPS.replace(client, group_id, body)
        note = f"Updated group {updated.get('name', '')} ({updated.get('id', group_id)})."
        GROUPS.emit(client, as_json, updated, note=note)


@groups_app.command("delete")
def groups_delete(
    group: GroupArg,
    server: ServerOpt = DEFAULT_SERVER,
    token: TokenOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Delete a group (refused while a route or other object uses it)."""
    delete_item(GROUPS, group, server, token, as_json)


# ================================================================================================
# peers
# ================================================================================================

peers_app = typer.Typer(
    help="Peers of the mesh (they join with a setup key through the agent).", no_args_is_help=True
)


@peers_app.command("list")
def peers_list(server: ServerOpt = DEFAULT_SERVER, token: TokenOpt = None, as_json: JsonOpt = False) -> None:
    """List all peers."""
    list_items(PEERS, server, token, as_json)


@peers_app.command("show")
def peers_show(
    peer: PeerArg,
    server: ServerOpt = DEFAULT_SERVER,
    token: TokenOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Show one peer."""
    show_item(PEERS, peer, server, token, as_json)


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
        note = f"Renamed peer {peer_id} to {updated.get('name', new_name)}."
        PEERS.emit(client, as_json, updated, note=note)


@peers_app.command("delete")
def peers_delete(
    peer: PeerArg,
    server: ServerOpt = DEFAULT_SERVER,
    token: TokenOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Delete a peer."""
    delete_item(PEERS, peer, server, token, as_json)


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
    list_items(SETUP_KEYS, server, token, as_json)


@setup_keys_app.command("show")
def setup_keys_show(
    key: SetupKeyArg,
    server: ServerOpt = DEFAULT_SERVER,
    token: TokenOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Show one setup key."""
    show_item(SETUP_KEYS, key, server, token, as_json)


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
            "auto_groups": client.resolve_groups(auto_groups or []),
            "usage_limit": usage_limit,
            "ephemeral": ephemeral,
            "allow_extra_dns_labels": allow_extra_dns_labels,
        }
        created = SETUP_KEYS.create(client, body)
        note = f"Created setup key {created.get('name', name)} ({created.get('id', '')})."
        emit(as_json, created, lambda key: render.render_new_setup_key(key, client), note=note)


@setup_keys_app.command("revoke")
def setup_keys_revoke(
    key: SetupKeyArg,
    server: ServerOpt = DEFAULT_SERVER,
    token: TokenOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Revoke a setup key: no new peer can join with it (peers already joined stay)."""
    with session(server, token) as client:
        current = SETUP_KEYS.fetch(client, key)
        key_id = str(current.get("id", key))
        body: JSONObject = {"revoked": True, "auto_groups": render.id_list(current.get("auto_groups"))}
        updated = SETUP_KEYS.replace(client, key_id, body)
        note = f"Revoked setup key {updated.get('name', '')} ({key_id})."
        SETUP_KEYS.emit(client, as_json, updated, note=note)


@setup_keys_app.command("delete")
def setup_keys_delete(
    key: SetupKeyArg,
    server: ServerOpt = DEFAULT_SERVER,
    token: TokenOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Delete a setup key."""
    delete_item(SETUP_KEYS, key, server, token, as_json)


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
        emit(as_json, found, render.render_events)


# ================================================================================================


def register(app: typer.Typer) -> None:
    """Attach the admin sub-commands to the top-level app."""
    app.add_typer(routes_app, name="routes")
    app.add_typer(groups_app, name="groups")
    app.add_typer(peers_app, name="peers")
    app.add_typer(setup_keys_app, name="setup-keys")
    app.command("events")(events)
