"""`meshroute tokens ...`: personal access tokens, the credentials of the API and of this CLI."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import quote

import typer

from meshroute.cli.admin.client import TOKEN, AdminClient, JSONObject
from meshroute.cli.admin.common import (
    DEFAULT_SERVER,
    JsonOpt,
    ServerOpt,
    TokenOpt,
    as_object,
    emit,
    session,
)
from meshroute.cli.admin.output import (
    col,
    expiry,
    field,
    print_detail,
    print_list,
    print_secret,
    text,
    timestamp,
)
from meshroute.cli.admin.users import user_id_of
from meshroute.cli.base import App

app = App(help="Personal access tokens: credentials for the API and this CLI, owned by a user.")

UserOpt = Annotated[
    str | None,
    typer.Option(
        "--user",
        "-u",
        metavar="USER",
        help="Whose tokens (ID, name or email); default: the user of --token.",
        show_default=False,
    ),
]
TokenArg = Annotated[str, typer.Argument(metavar="TOKEN_ID", help="Token ID or name.", show_default=False)]


def _collection(user_id: str) -> str:
    return f"users/{quote(user_id, safe='')}/tokens"


def _token_path(client: AdminClient, user_id: str, ref: str) -> str:
    collection = _collection(user_id)
    return f"{collection}/{quote(client.resolve_target(TOKEN, ref, collection), safe='')}"


def render_tokens(tokens: list[JSONObject]) -> None:
    columns = [
        col("Name", field("name")),
        col("Expires", field("expiration_date", expiry), whole=True),
        col("Last used", field("last_used", timestamp), whole=True),
        col("Created", field("created_at", timestamp), whole=True),
        col("ID", field("id"), whole=True),
    ]
    print_list("Tokens", tokens, columns, "No tokens.")


def render_token(token: JSONObject) -> None:
    print_detail(
        f"Token {text(token.get('name'))}",
        token,
        [
            ("ID", field("id")),
            ("Name", field("name")),
            ("Expires", field("expiration_date", expiry)),
            ("Last used", field("last_used", timestamp)),
            ("Created", field("created_at", timestamp)),
            ("Created by", field("created_by")),
        ],
    )


@app.command("list")
def tokens_list(
    user: UserOpt = None, server: ServerOpt = DEFAULT_SERVER, token: TokenOpt = None, as_json: JsonOpt = False
) -> None:
    """List a user's tokens (never the secrets: only their names and dates)."""
    with session(server, token) as client:
        emit(as_json, client.get_list(_collection(user_id_of(client, user))), render_tokens)


@app.command("show")
def tokens_show(
    token_ref: TokenArg,
    user: UserOpt = None,
    server: ServerOpt = DEFAULT_SERVER,
    token: TokenOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Show one token."""
    with session(server, token) as client:
        found = client.get_object(_token_path(client, user_id_of(client, user), token_ref))
        emit(as_json, found, render_token)


@app.command("create")
def tokens_create(
    name: Annotated[str, typer.Argument(metavar="NAME", help="Token name.", show_default=False)],
    expires_in_days: Annotated[
        int,
        typer.Option(
            "--expires-in-days", metavar="DAYS", min=1, max=365, help="Days until the token expires."
        ),
    ] = 30,
    user: UserOpt = None,
    server: ServerOpt = DEFAULT_SERVER,
    token: TokenOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Create a token. It is printed once: store it."""
    with session(server, token) as client:
        user_id = user_id_of(client, user)
        reply = as_object(client.post(_collection(user_id), {"name": name, "expires_in": expires_in_days}))
        created: JSONObject = reply.get("personal_access_token") or {}

        def show(_: JSONObject) -> None:
            render_token(created)
            print_secret(
                "Token",
                text(reply.get("plain_token")),
                "This is the only time the token is shown: store it now.",
            )

        note = f"Created token {created.get('name', name)} ({created.get('id', '')})."
        emit(as_json, reply, show, note=note)


@app.command("delete")
def tokens_delete(
    token_ref: TokenArg,
    user: UserOpt = None,
    server: ServerOpt = DEFAULT_SERVER,
    token: TokenOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Delete a token: it stops working at once."""
    with session(server, token) as client:
        path = _token_path(client, user_id_of(client, user), token_ref)
        reply = client.delete(path)
        emit(as_json, reply, note=f"Deleted token {path.rsplit('/', 1)[-1]}.")
