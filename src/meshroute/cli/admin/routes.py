"""`meshroute routes ...`: network routes, addressed by route ID or by network ID."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

import typer

from meshroute.cli.admin import routes_explain
from meshroute.cli.admin import routes_view as view
from meshroute.cli.admin.client import ROUTE, AdminClient, CliError, JSONObject
from meshroute.cli.admin.common import (
    DEFAULT_SERVER,
    JsonOpt,
    Resource,
    ServerOpt,
    TokenOpt,
    delete_item,
    emit,
    exclusive,
    list_items,
    session,
    show_item,
    usage_error,
)
from meshroute.cli.base import App

ROUTES = Resource(ROUTE, view.render_routes, view.render_route)

app = App(help="Network routes: networks or domains reached through routing peers.")
routes_explain.register(app)

RouteArg = Annotated[
    str,
    typer.Argument(
        metavar="ROUTE",
        help="Route ID, or its network ID when only one route has it.",
        show_default=False,
    ),
]
# Options shared by create and update, with what each is for.
NETWORK_HELP = "Network to route, as a CIDR: 192.168.1.0/24, 0.0.0.0/0 (exit node)."
DOMAIN_HELP = "Domain to route instead of a network (a DNS route), e.g. *.corp.example; repeatable."
PEER_HELP = "The routing peer (ID, name or overlay IP)."
PEER_GROUP_HELP = "Group whose peers all route it (high availability); repeatable."
GROUP_HELP = "Distribution group: the peers that receive the route; repeatable."
ACG_HELP = "Access-control group: who of the receiving peers may use the route; repeatable."
METRIC_HELP = "Preference among routes to the same network, 1-9999; the lowest wins."


@app.command("list")
def routes_list(server: ServerOpt = DEFAULT_SERVER, token: TokenOpt = None, as_json: JsonOpt = False) -> None:
    """List all routes, grouped by network ID; exit nodes and DNS routes are marked."""
    list_items(ROUTES, server, token, as_json)


@app.command("show")
def routes_show(
    route: RouteArg, server: ServerOpt = DEFAULT_SERVER, token: TokenOpt = None, as_json: JsonOpt = False
) -> None:
    """Show one route."""
    show_item(ROUTES, route, server, token, as_json)


@app.command("status")
def routes_status(
    route: Annotated[
        str,
        typer.Argument(metavar="ROUTE", help="Network ID (all its routes) or route ID.", show_default=False),
    ],
    server: ServerOpt = DEFAULT_SERVER,
    token: TokenOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Which routing peers serve a network ID, whether they are connected now, and which of them
    each client uses (as the clients' agents report it; stale while an agent is not connected)."""
    with session(server, token) as client:
        routes = client.cached_list("routes")
        chosen = [r for r in routes if r.get("id") == route] or [
            r for r in routes if str(r.get("network_id", "")).casefold() == route.casefold()
        ]
        if not chosen:
            raise CliError(f"no route {route!r}")
        status = view.route_status(chosen, client)
        emit(as_json, status, view.render_status)


@app.command("create")
def routes_create(
    net_id: Annotated[
        str,
        typer.Option(
            "--net-id",
            metavar="NAME",
            help="Network ID, 1-40 characters: routes sharing it and the destination form one HA group.",
            show_default=False,
        ),
    ],
    groups: Annotated[
        list[str],
        typer.Option("--group", "-g", metavar="GROUP", help=GROUP_HELP, show_default=False),
    ],
    network: Annotated[
        str | None,
        typer.Option("--network", "-n", metavar="CIDR", help=NETWORK_HELP, rich_help_panel="Destination"),
    ] = None,
    domains: Annotated[
        list[str] | None,
        typer.Option("--domain", "-d", metavar="DOMAIN", help=DOMAIN_HELP, rich_help_panel="Destination"),
    ] = None,
    peer: Annotated[
        str | None,
        typer.Option("--peer", "-p", metavar="PEER", help=PEER_HELP, rich_help_panel="Routing peer"),
    ] = None,
    peer_groups: Annotated[
        list[str] | None,
        typer.Option("--peer-group", metavar="GROUP", help=PEER_GROUP_HELP, rich_help_panel="Routing peer"),
    ] = None,
    acgs: Annotated[
        list[str] | None,
        typer.Option("--acg", metavar="GROUP", help=ACG_HELP + " Default: all of them."),
    ] = None,
    description: Annotated[str, typer.Option("--description", metavar="TEXT", help="Free text.")] = "",
    metric: Annotated[int, typer.Option("--metric", metavar="N", help=METRIC_HELP)] = 9999,
    masquerade: Annotated[
        bool,
        typer.Option(
            "--masquerade/--no-masquerade",
            help="The routing peer NATs the traffic into the network (no route back needed).",
        ),
    ] = True,
    keep_route: Annotated[
        bool,
        typer.Option("--keep-route", help="DNS routes: keep routed addresses when DNS stops returning them."),
    ] = False,
    skip_auto_apply: Annotated[
        bool, typer.Option("--skip-auto-apply", help="Exit nodes: clients do not select it by themselves.")
    ] = False,
    disabled: Annotated[bool, typer.Option("--disabled", help="Create the route disabled.")] = False,
    server: ServerOpt = DEFAULT_SERVER,
    token: TokenOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Create a route: --network or --domain, --peer or --peer-group, and at least one --group."""
    exclusive(**{"--network": network, "--domain": domains})
    exclusive(**{"--peer": peer, "--peer-group": peer_groups})
    if network is None and not domains:
        usage_error("give the destination: --network or --domain")
    if peer is None and not peer_groups:
        usage_error("give the routing peer: --peer or --peer-group")
    with session(server, token) as client:
        body: JSONObject = {
            "network_id": net_id,
            "description": description,
            "enabled": not disabled,
            "metric": metric,
            "masquerade": masquerade,
            "keep_route": keep_route,
            "skip_auto_apply": skip_auto_apply,
            "groups": client.resolve_groups(groups),
        }
        _set_destination(body, network, domains)
        _set_routing_peer(client, body, peer, peer_groups)
        _set_acgs(client, body, acgs)
        created = _saving(client, lambda: ROUTES.create(client, body))
        ROUTES.emit(client, as_json, created, note=f"Created route {created.get('id', '')}.")


@app.command("update")
def routes_update(
    route: RouteArg,
    net_id: Annotated[str | None, typer.Option("--net-id", metavar="NAME", help="New network ID.")] = None,
    network: Annotated[
        str | None,
        typer.Option(
            "--network",
            "-n",
            metavar="CIDR",
            help="Route this network instead (drops the domains).",
            rich_help_panel="Destination",
        ),
    ] = None,
    domains: Annotated[
        list[str] | None,
        typer.Option(
            "--domain",
            "-d",
            metavar="DOMAIN",
            help="Route these domains instead (drops the network); repeatable.",
            rich_help_panel="Destination",
        ),
    ] = None,
    keep_route: Annotated[
        bool | None,
        typer.Option(
            "--keep-route/--no-keep-route",
            help="DNS routes: keep routed addresses when DNS stops returning them.",
            rich_help_panel="Destination",
            show_default=False,
        ),
    ] = None,
    peer: Annotated[
        str | None,
        typer.Option(
            "--peer",
            "-p",
            metavar="PEER",
            help="New routing peer (drops the peer groups).",
            rich_help_panel="Routing peer",
        ),
    ] = None,
    peer_groups: Annotated[
        list[str] | None,
        typer.Option(
            "--peer-group",
            metavar="GROUP",
            help="New routing peer groups (drops the peer); repeatable.",
            rich_help_panel="Routing peer",
        ),
    ] = None,
    groups: Annotated[
        list[str] | None,
        typer.Option(
            "--group",
            "-g",
            metavar="GROUP",
            help="Replace the distribution groups (the peers that receive the route); repeatable.",
        ),
    ] = None,
    acgs: Annotated[
        list[str] | None,
        typer.Option(
            "--acg",
            metavar="GROUP",
            help="Replace the access-control groups (who of the receiving peers may use the route); "
            "repeatable.",
        ),
    ] = None,
    no_acgs: Annotated[
        bool,
        typer.Option("--no-acgs", help="Drop the access-control groups: every receiving peer may use it."),
    ] = False,
    description: Annotated[
        str | None, typer.Option("--description", metavar="TEXT", help="New description.")
    ] = None,
    metric: Annotated[int | None, typer.Option("--metric", metavar="N", help=METRIC_HELP)] = None,
    masquerade: Annotated[
        bool | None,
        typer.Option(
            "--masquerade/--no-masquerade",
            help="The routing peer NATs the traffic into the network.",
            show_default=False,
        ),
    ] = None,
    skip_auto_apply: Annotated[
        bool | None,
        typer.Option(
            "--skip-auto-apply/--auto-apply",
            help="Exit nodes: whether clients select it by themselves.",
            show_default=False,
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
    exclusive(**{"--network": network, "--domain": domains})
    exclusive(**{"--peer": peer, "--peer-group": peer_groups})
    exclusive(**{"--acg": acgs, "--no-acgs": no_acgs})
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
        current = ROUTES.fetch(client, route)
        route_id = str(current.get("id", route))
        body = route_request(current)
        body.update(changes)
        _set_destination(body, network, domains)
        _set_routing_peer(client, body, peer, peer_groups)
        if groups is not None:
            body["groups"] = client.resolve_groups(groups)
        _set_acgs(client, body, acgs, clear=no_acgs)
        updated = _saving(client, lambda: ROUTES.replace(client, route_id, body))
        ROUTES.emit(client, as_json, updated, note=f"Updated route {updated.get('id', route_id)}.")


@app.command("delete")
def routes_delete(
    route: RouteArg, server: ServerOpt = DEFAULT_SERVER, token: TokenOpt = None, as_json: JsonOpt = False
) -> None:
    """Delete a route."""
    delete_item(ROUTES, route, server, token, as_json)


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


def _saving(client: AdminClient, save: Callable[[], JSONObject]) -> JSONObject:
    """Create or replace a route; a conflict message names the peers by name, not only by ID."""
    try:
        return save()
    except CliError as exc:
        if exc.status != 409:
            raise
        message = exc.message
        for peer_id, name in client.peer_names().items():
            if peer_id and name and peer_id in message:
                message = message.replace(peer_id, f"{name} ({peer_id})")
        raise CliError(message, status=exc.status) from None
