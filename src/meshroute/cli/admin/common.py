"""What every admin command shares: connection options, the client session, printing a result, and
list/show/delete over one API collection.

Every command talks to a running ``meshroute server`` (or any NetBird-compatible management API)
with a personal access token, prints readable tables by default and the raw JSON reply with
``--json``. Errors print ``error: <message>`` on stderr and exit with status 1; a command line that
cannot work exits with status 2. Wherever a command takes a group, a peer, a setup key or a user it
accepts its name as well as its ID; a route may be named by its network ID.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Annotated, Any, NoReturn, TypeVar
from urllib.parse import quote

import typer

from meshroute.cli.admin import output
from meshroute.cli.admin.client import DEFAULT_SERVER, AdminClient, CliError, JSONObject, Kind, connect

__all__ = ["DEFAULT_SERVER", "AdminClient", "CliError", "JSONObject"]

ServerOpt = Annotated[
    str,
    typer.Option(
        "--server",
        "-s",
        envvar="MESHROUTE_SERVER",
        metavar="URL",
        help="REST API of the management server.",
        rich_help_panel="Connection",
    ),
]
TokenOpt = Annotated[
    str | None,
    typer.Option(
        "--token",
        "-t",
        envvar="MESHROUTE_TOKEN",
        metavar="TOKEN",
        help="Personal access token (the server writes the owner's to <data-dir>/admin-token).",
        show_default=False,
        rich_help_panel="Connection",
    ),
]
JsonOpt = Annotated[
    bool,
    typer.Option("--json", help="Print the raw JSON reply instead of a table.", rich_help_panel="Output"),
]


def fail(message: str, status: int = 1) -> NoReturn:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(status)


def usage_error(message: str) -> NoReturn:
    """A command line that cannot work: say why and exit with status 2 (as for other usage errors)."""
    fail(message, status=2)


def exclusive(**given: Any) -> None:
    """Usage error when more than one of the options (``--flag-name=value``) is given."""
    named = [name for name, value in given.items() if value not in (None, False, [])]
    if len(named) > 1:
        usage_error(f"{' and '.join(named)} exclude each other")


@contextmanager
def session(server: str, token: str | None) -> Iterator[AdminClient]:
    """A client for one command; any :class:`CliError` becomes ``error: ...`` and exit status 1."""
    try:
        with connect(server, token) as client:
            yield client
    except CliError as exc:
        fail(exc.message)


T = TypeVar("T")


def emit(as_json: bool, data: T, show: Callable[[T], None] | None = None, *, note: str | None = None) -> None:
    """Print a command's result: the raw JSON reply with ``--json``, else ``note`` and then ``show(data)``."""
    if as_json:
        output.print_json(data)
        return
    if note is not None:
        output.note(note)
    if show is not None:
        show(data)


def as_object(data: Any) -> JSONObject:
    if not isinstance(data, dict):
        raise CliError("unexpected reply from the server: expected a JSON object")
    return data


@dataclass(frozen=True)
class Resource:
    """One collection of the API (``/api/<collection>``) and how the commands show its items."""

    kind: Kind
    render_list: Callable[[list[JSONObject], AdminClient], None]
    render_item: Callable[[JSONObject, AdminClient], None]

    @property
    def collection(self) -> str:
        return self.kind.collection

    def ref_id(self, client: AdminClient, ref: str) -> str:
        return client.resolve_target(self.kind, ref)

    def path(self, item_id: str) -> str:
        return f"{self.collection}/{quote(item_id, safe='')}"

    def fetch(self, client: AdminClient, ref: str) -> JSONObject:
        return client.get_object(self.path(self.ref_id(client, ref)))

    def create(self, client: AdminClient, body: JSONObject) -> JSONObject:
        return as_object(client.post(self.collection, body))

    def replace(self, client: AdminClient, item_id: str, body: JSONObject) -> JSONObject:
        return as_object(client.put(self.path(item_id), body))

    def emit(self, client: AdminClient, as_json: bool, item: JSONObject, note: str | None = None) -> None:
        emit(as_json, item, lambda shown: self.render_item(shown, client), note=note)


def nameless(show: Callable[[T], None]) -> Callable[[T, AdminClient], None]:
    """A renderer that needs no names, as a :class:`Resource` renderer."""
    return lambda data, _client: show(data)


def list_items(resource: Resource, server: str, token: str | None, as_json: bool) -> None:
    """The ``list`` commands."""
    with session(server, token) as client:
        items = client.get_list(resource.collection)
        emit(as_json, items, lambda shown: resource.render_list(shown, client))


def show_item(resource: Resource, ref: str, server: str, token: str | None, as_json: bool) -> None:
    """The ``show`` commands: ``ref`` is an ID or a label (name, network ID)."""
    with session(server, token) as client:
        resource.emit(client, as_json, resource.fetch(client, ref))


def delete_item(resource: Resource, ref: str, server: str, token: str | None, as_json: bool) -> None:
    """The ``delete`` commands; the reply (normally ``{}``) is printed with ``--json``."""
    with session(server, token) as client:
        item_id = resource.ref_id(client, ref)
        reply = client.delete(resource.path(item_id))
        emit(as_json, reply, note=f"Deleted {resource.kind.name} {item_id}.")
