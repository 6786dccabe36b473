"""`meshroute users ...`: the people and service users of the account, and their roles."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from meshroute.cli.admin.client import USER, AdminClient, CliError, JSONObject
from meshroute.cli.admin.common import (
    DEFAULT_SERVER,
    JsonOpt,
    Resource,
    ServerOpt,
    TokenOpt,
    as_object,
    delete_item,
    emit,
    exclusive,
    list_items,
    session,
    usage_error,
)
from meshroute.cli.admin.output import (
    col,
    field,
    id_list,
    named_ids,
    print_detail,
    print_list,
    text,
    timestamp,
    yes_no,
)
from meshroute.cli.base import App

app = App(help="Users of the account: people and service users (for scripts), and their roles.")

ROLES = ("admin", "network_admin", "auditor", "user", "owner")
ROLE_HELP = (
    "Role: admin (everything but the account), network_admin (routes and groups), auditor (read "
    "only), user (nothing)."
)
UserArg = Annotated[str, typer.Argument(metavar="USER", help="User ID, name or email.", show_default=False)]


def _kind(user: JSONObject) -> str:
    return "service" if user.get("is_service_user") else "person"


def render_users(users: list[JSONObject], client: AdminClient) -> None:
    columns = [
        col("Name", field("name")),
        col("Email", field("email"), whole=True),
        col("Role", field("role"), whole=True),
        col("Kind", _kind, whole=True),
        col("Status", field("status"), whole=True),
        col("Last login", field("last_login", timestamp), whole=True),
        col("Auto groups", named_ids("auto_groups", client.group_names())),
        col("ID", field("id"), whole=True),
    ]
    print_list("Users", users, columns, "No users.")


def render_user(user: JSONObject, client: AdminClient) -> None:
    print_detail(
        f"User {text(user.get('name') or user.get('email'))}",
        user,
        [
            ("ID", field("id")),
            ("Name", field("name")),
            ("Email", field("email")),
            ("Role", field("role")),
            ("Kind", _kind),
            ("Status", field("status")),
            ("Blocked", field("is_blocked", yes_no)),
            ("Auto groups", named_ids("auto_groups", client.group_names())),
            ("Last login", field("last_login", timestamp)),
            ("You", field("is_current", yes_no)),
        ],
    )


USERS = Resource(USER, render_users, render_user)


def find_user(client: AdminClient, ref: str) -> JSONObject:
    """The user ``ref`` names (the API has no GET for one user: it comes from the list)."""
    user_id = client.resolve(USER, ref)
    for user in client.cached_list("users"):
        if user.get("id") == user_id:
            return user
    raise CliError(f"no user {ref!r}")


@app.command("list")
def users_list(server: ServerOpt = DEFAULT_SERVER, token: TokenOpt = None, as_json: JsonOpt = False) -> None:
    """List the users of the account."""
    list_items(USERS, server, token, as_json)


@app.command("show")
def users_show(
    user: UserArg, server: ServerOpt = DEFAULT_SERVER, token: TokenOpt = None, as_json: JsonOpt = False
) -> None:
    """Show one user."""
    with session(server, token) as client:
        USERS.emit(client, as_json, find_user(client, user))


@app.command("current")
def users_current(
    server: ServerOpt = DEFAULT_SERVER, token: TokenOpt = None, as_json: JsonOpt = False
) -> None:
    """Show the user the token belongs to."""
    with session(server, token) as client:
        USERS.emit(client, as_json, client.get_object("users/current"))


@app.command("create")
def users_create(
    name: Annotated[str, typer.Argument(metavar="NAME", help="Service user name.", show_default=False)],
    role: Annotated[str, typer.Option("--role", "-r", metavar="ROLE", help=ROLE_HELP, show_default=False)],
    auto_groups: Annotated[
        list[str] | None,
        typer.Option(
            "--auto-group", "-g", metavar="GROUP", help="Group (ID or name) of the user; repeatable."
        ),
    ] = None,
    server: ServerOpt = DEFAULT_SERVER,
    token: TokenOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Create a service user: an identity for scripts, which then gets tokens (`meshroute tokens`)."""
    with session(server, token) as client:
        body: JSONObject = {
            "name": name,
            "role": role,
            "auto_groups": client.resolve_groups(auto_groups or []),
            "is_service_user": True,
        }
        created = USERS.create(client, body)
        note = f"Created service user {created.get('name', name)} ({created.get('id', '')})."
        USERS.emit(client, as_json, created, note=note)


@app.command("update")
def users_update(
    user: UserArg,
    role: Annotated[str | None, typer.Option("--role", "-r", metavar="ROLE", help=ROLE_HELP)] = None,
    auto_groups: Annotated[
        list[str] | None,
        typer.Option("--auto-group", "-g", metavar="GROUP", help="Set the user's groups; repeatable."),
    ] = None,
    no_auto_groups: Annotated[
        bool, typer.Option("--no-auto-groups", help="Remove all of the user's groups.")
    ] = False,
    blocked: Annotated[
        bool | None,
        typer.Option(
            "--block/--unblock",
            help="Block the user (its tokens stop working) or unblock it.",
            show_default=False,
        ),
    ] = None,
    server: ServerOpt = DEFAULT_SERVER,
    token: TokenOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Change a user's role, groups or blocked state (everything not given is kept)."""
    exclusive(**{"--auto-group": auto_groups, "--no-auto-groups": no_auto_groups})
    if role is None and auto_groups is None and not no_auto_groups and blocked is None:
        usage_error("nothing to change: give --role, --auto-group, --no-auto-groups, --block or --unblock")
    with session(server, token) as client:
        current = find_user(client, user)
        user_id = str(current.get("id", user))
        groups: list[Any] = id_list(current.get("auto_groups"))
        if no_auto_groups:
            groups = []
        elif auto_groups is not None:
            groups = client.resolve_groups(auto_groups)
        body: JSONObject = {
            "role": role if role is not None else current.get("role", ""),
            "auto_groups": groups,
            "is_blocked": blocked if blocked is not None else bool(current.get("is_blocked", False)),
        }
        updated = as_object(client.put(USERS.path(user_id), body))
        USERS.emit(client, as_json, updated, note=f"Updated user {updated.get('name', '')} ({user_id}).")


@app.command("delete")
def users_delete(
    user: UserArg, server: ServerOpt = DEFAULT_SERVER, token: TokenOpt = None, as_json: JsonOpt = False
) -> None:
    """Delete a user (and its tokens)."""
    delete_item(USERS, user, server, token, as_json)


def current_user_id(client: AdminClient) -> str:
    return str(client.get_object("users/current").get("id", ""))


def user_id_of(client: AdminClient, ref: str | None) -> str:
    """``ref`` (a user ID, name or email) as an ID; the token's own user when None."""
    return current_user_id(client) if ref is None else client.resolve(USER, ref)


__all__ = ["ROLES", "app", "emit", "user_id_of"]
