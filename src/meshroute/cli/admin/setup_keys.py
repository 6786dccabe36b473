"""`meshroute setup-keys ...`: how new peers join the mesh."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from meshroute.cli.admin.client import SETUP_KEY, AdminClient, JSONObject
from meshroute.cli.admin.common import (
    DEFAULT_SERVER,
    JsonOpt,
    Resource,
    ServerOpt,
    TokenOpt,
    delete_item,
    emit,
    list_items,
    session,
    show_item,
)
from meshroute.cli.admin.output import (
    col,
    expiry,
    field,
    id_list,
    named_ids,
    print_detail,
    print_list,
    print_secret,
    text,
    timestamp,
    yes_no,
)
from meshroute.cli.base import App

app = App(help="Setup keys: how new peers join the mesh.")

SECONDS_PER_DAY = 86_400
KeyArg = Annotated[str, typer.Argument(metavar="KEY", help="Setup key ID or name.", show_default=False)]


def usage_limit(value: Any) -> str:
    return "unlimited" if value == 0 else text(value)


def render_setup_keys(keys: list[JSONObject], client: AdminClient) -> None:
    columns = [
        col("Name", field("name")),
        col("Type", field("type"), whole=True),
        col("State", field("state"), whole=True),
        col("Used", field("used_times"), whole=True, right=True),
        col("Limit", field("usage_limit", usage_limit), whole=True, right=True),
        col("Expires", field("expires", expiry), whole=True),
        col("Auto groups", named_ids("auto_groups", client.group_names())),
        col("ID", field("id"), whole=True),
    ]
    print_list("Setup keys", keys, columns, "No setup keys.")


def render_setup_key(key: JSONObject, client: AdminClient) -> None:
    print_detail(
        f"Setup key {text(key.get('name'))}",
        key,
        [
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
            ("Auto groups", named_ids("auto_groups", client.group_names())),
            ("Ephemeral", field("ephemeral", yes_no)),
            ("Extra DNS labels", field("allow_extra_dns_labels", yes_no)),
            ("Updated", field("updated_at", timestamp)),
        ],
    )


SETUP_KEYS = Resource(SETUP_KEY, render_setup_keys, render_setup_key)


@app.command("list")
def setup_keys_list(
    server: ServerOpt = DEFAULT_SERVER, token: TokenOpt = None, as_json: JsonOpt = False
) -> None:
    """List all setup keys (the keys themselves are masked)."""
    list_items(SETUP_KEYS, server, token, as_json)


@app.command("show")
def setup_keys_show(
    key: KeyArg, server: ServerOpt = DEFAULT_SERVER, token: TokenOpt = None, as_json: JsonOpt = False
) -> None:
    """Show one setup key."""
    show_item(SETUP_KEYS, key, server, token, as_json)


@app.command("create")
def setup_keys_create(
    name: Annotated[str, typer.Argument(metavar="NAME", help="Setup key name.", show_default=False)],
    reusable: Annotated[
        bool, typer.Option("--reusable/--one-off", help="Usable by many peers, or by a single one.")
    ] = False,
    expires_in_days: Annotated[
        int,
        typer.Option(
            "--expires-in-days", metavar="DAYS", min=0, max=365, help="Days until the key expires; 0 = never."
        ),
    ] = 30,
    usage_limit: Annotated[
        int,
        typer.Option(
            "--usage-limit",
            metavar="N",
            min=0,
            help="Reusable keys: how many peers may join with it; 0 = no limit.",
        ),
    ] = 0,
    auto_groups: Annotated[
        list[str] | None,
        typer.Option(
            "--auto-group", "-g", metavar="GROUP", help="Group (ID or name) new peers join; repeatable."
        ),
    ] = None,
    ephemeral: Annotated[
        bool,
        typer.Option(
            "--ephemeral",
            help="Mark the peers that join with it ephemeral (NetBird removes those after 10 minutes "
            "offline; meshroute keeps them for now).",
        ),
    ] = False,
    allow_extra_dns_labels: Annotated[
        bool, typer.Option("--allow-extra-dns-labels", help="Peers may add extra DNS labels of their own.")
    ] = False,
    server: ServerOpt = DEFAULT_SERVER,
    token: TokenOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Create a setup key. The key is printed once: store it."""
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

        def show(key: JSONObject) -> None:
            render_setup_key(key, client)
            print_secret(
                "Setup key", text(key.get("key")), "This is the only time the key is shown: store it now."
            )

        emit(as_json, created, show, note=note)


@app.command("revoke")
def setup_keys_revoke(
    key: KeyArg, server: ServerOpt = DEFAULT_SERVER, token: TokenOpt = None, as_json: JsonOpt = False
) -> None:
    """Revoke a setup key: no new peer can join with it (peers already joined stay)."""
    with session(server, token) as client:
        current = SETUP_KEYS.fetch(client, key)
        key_id = str(current.get("id", key))
        body: JSONObject = {"revoked": True, "auto_groups": id_list(current.get("auto_groups"))}
        updated = SETUP_KEYS.replace(client, key_id, body)
        note = f"Revoked setup key {updated.get('name', '')} ({key_id})."
        SETUP_KEYS.emit(client, as_json, updated, note=note)


@app.command("delete")
def setup_keys_delete(
    key: KeyArg, server: ServerOpt = DEFAULT_SERVER, token: TokenOpt = None, as_json: JsonOpt = False
) -> None:
    """Delete a setup key."""
    delete_item(SETUP_KEYS, key, server, token, as_json)
