"""Human output of the admin CLI: tables and detail views, plus the raw ``--json`` printer.

On a terminal, tables are drawn with rich; columns that hold identifiers (IDs, codes, addresses,
times) are never wrapped or cut: when the terminal is too narrow for them the table is drawn wider
than the terminal rather than folding an ID in half. When standard output is not a terminal (a pipe,
a file), the same tables come out plain: one line per row, columns aligned with spaces, nothing
truncated, no colours, no box characters, so `grep`, `awk` and `cut` work on them.

Tables are declared as :class:`Column` objects: a header and a cell that turns one API object into
the text shown for it (:func:`field` for a plain ``item[key]``).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol

import typer
from rich import box
from rich.cells import cell_len
from rich.console import Console
from rich.measure import Measurement
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

JSONObject = dict[str, Any]
Names = Mapping[str, str]
Cell = Callable[[JSONObject], str]


@dataclass(frozen=True)
class Column:
    header: str
    cell: Cell
    whole: bool = False  # an identifier: never wrapped or cut
    justify: Literal["left", "right"] = "left"


def col(header: str, cell: Cell, *, whole: bool = False, right: bool = False) -> Column:
    return Column(header, cell, whole, "right" if right else "left")


class Directory(Protocol):
    """Display names by ID (the admin client; asked only when a table needs them)."""

    def peer_names(self) -> dict[str, str]: ...

    def group_names(self) -> dict[str, str]: ...


def console(width: int | None = None) -> Console:
    # Built per call so that it follows the current sys.stdout (tests swap it).
    return Console(highlight=False, soft_wrap=False, width=width)


def is_plain() -> bool:
    """Plain output (no terminal on standard output)."""
    return not console().is_terminal


def print_json(data: Any) -> None:
    """The raw API reply, pretty-printed, with nothing else on stdout (pipe it to jq)."""
    typer.echo(json.dumps(data, indent=2, ensure_ascii=False))


def note(message: str) -> None:
    typer.echo(message)


# -- formatting helpers --------------------------------------------------------------------------


def yes_no(value: Any) -> str:
    if value is None:
        return "-"
    return "yes" if value else "no"


def text(value: Any) -> str:
    if value is None or value == "":
        return "-"
    if isinstance(value, bool):
        return yes_no(value)
    return str(value)


def timestamp(value: Any) -> str:
    """RFC 3339 → ``YYYY-MM-DD HH:MM:SS`` (the zone as sent, normally UTC); unset/zero times print ``-``."""
    if not isinstance(value, str) or not value or value.startswith("0001-01-01"):
        return "-"
    if len(value) >= 19 and value[10] in "T ":
        return value[:10] + " " + value[11:19]
    return value


def expiry(value: Any) -> str:
    """An expiry time; unset (or Go's zero time) means the thing never expires."""
    shown = timestamp(value)
    return "never" if shown == "-" else shown


def id_list(values: Any) -> list[str]:
    if not isinstance(values, list):
        return []
    return [str(v.get("id", "")) if isinstance(v, dict) else str(v) for v in values]


def named(ids: Iterable[str], names: Names) -> str:
    """``name`` for each ID that has one (else the ID), comma-separated; ``-`` for none."""
    shown = [names.get(i) or i for i in ids]
    return ", ".join(shown) if shown else "-"


def minimum_names(values: Any) -> str:
    """Names from a list of ``{id, name}`` objects (GroupMinimum / PeerMinimum)."""
    if not isinstance(values, list) or not values:
        return "-"
    out = [str(v.get("name") or v.get("id", "")) if isinstance(v, dict) else str(v) for v in values]
    return ", ".join(out)


def field(key: str, show: Callable[[Any], str] = text) -> Cell:
    """The cell for ``item[key]``, formatted by ``show``."""
    return lambda item: show(item.get(key))


def named_ids(key: str, names: Names) -> Cell:
    """The cell for a list of IDs in ``item[key]``, shown by name."""
    return lambda item: named(id_list(item.get(key)), names)


# -- tables --------------------------------------------------------------------------------------


def print_list(title: str, items: Sequence[JSONObject], columns: Sequence[Column], empty: str) -> None:
    """A table with a row per item, or the ``empty`` message when there are none."""
    if not items:
        note(empty)
        return
    print_rows(columns, [[c.cell(item) for c in columns] for item in items], title=title)


def print_rows(
    columns: Sequence[Column],
    rows: Sequence[Sequence[str]],
    *,
    title: str | None = None,
    title_when_plain: bool = False,
    breaks: Iterable[int] = (),
) -> None:
    """A table of ready-made cells; a rule after each row index in ``breaks`` (terminal only).

    The title is shown on a terminal, and in plain output only with ``title_when_plain`` (where a
    view prints several tables); a plain list is just its header line and rows.
    """
    if is_plain():
        if title and title_when_plain:
            note(f"\n{title}:")
        note(_plain_table([c.header for c in columns], rows))
        return
    table = Table(title=title, box=box.SIMPLE_HEAD, show_edge=False, title_justify="left", title_style="bold")
    needed = 0  # the table's narrowest drawing: whole columns, wrapped ones at their floor, padding
    for i, column in enumerate(columns):
        values = [column.header, *(row[i] for row in rows)]
        if column.whole:
            width = max(cell_len(line) for v in values for line in v.splitlines() or [""])
            table.add_column(column.header, no_wrap=True, min_width=width, justify=column.justify)
        else:
            # Wrapped text may break anywhere, but not into slivers of a few characters.
            longest_word = max((cell_len(word) for v in values for word in v.split()), default=1)
            width = min(longest_word, WRAP_FLOOR)
            table.add_column(column.header, overflow="fold", min_width=width, justify=column.justify)
        needed += width + 3
    ends = set(breaks)
    for index, row in enumerate(rows):
        # Text, not markup: names and event details may contain "[...]".
        table.add_row(*(Text(cell) for cell in row), end_section=index in ends)
    _print_whole(table, needed)


WRAP_FLOOR = 10


def _print_whole(renderable: Table | Panel, needed: int | None = None) -> None:
    """Print on the terminal; drawn wider than the terminal when it cannot fit otherwise, because
    rich would then cut every column, identifiers included."""
    out = console()
    if needed is None:
        needed = Measurement.get(out, out.options.update_width(10_000), renderable).minimum
    if needed > out.width:
        out = console(width=needed)
    out.print(renderable)


def _one_line(value: str) -> str:
    return " ".join(value.split()) if "\n" in value or "\t" in value else value


def _plain_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    cells = [[_one_line(c) for c in row] for row in rows]
    widths = [max([cell_len(h), *(cell_len(row[i]) for row in cells)]) for i, h in enumerate(headers)]
    lines = []
    for row in [list(headers), *cells]:
        padded = [cell + " " * (widths[i] - cell_len(cell)) for i, cell in enumerate(row)]
        lines.append("  ".join(padded).rstrip())
    return "\n".join(lines)


def print_detail(title: str, item: JSONObject, rows: Sequence[tuple[str, Cell]]) -> None:
    """One ``label  value`` line per row: in a panel on a terminal, plain otherwise."""
    pairs = [(label, cell(item)) for label, cell in rows]
    if is_plain():
        width = max(cell_len(label) for label, _ in pairs)
        for label, value in pairs:
            note(f"{label}{' ' * (width - cell_len(label))}  {_one_line(value)}".rstrip())
        return
    table = Table.grid(padding=(0, 2))
    table.add_column(style="bold", no_wrap=True)
    table.add_column(overflow="fold")
    for label, value in pairs:
        table.add_row(label, Text(value))
    _print_whole(Panel(table, title=title, title_align="left", expand=False))


def print_secret(title: str, secret: str, warning: str) -> None:
    """A secret shown once (a setup key, a token), with the warning that it is not shown again."""
    if is_plain():
        note(f"{title}: {secret}")
        note(warning)
        return
    body = Text.assemble((secret, "bold green"), f"\n\n{warning}")
    _print_whole(Panel(body, title=title, title_align="left", expand=False))
