"""The typer application classes every `meshroute` command is built with.

typer shows each option's Python type as a placeholder (`--json <bool>`, `--name <str>`); these
classes show nothing for flags and an upper-case name (`--name NAME`, as argparse does) for options
that have no metavar of their own, so help reads as an operator expects.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import typer
from typer.core import TyperCommand, TyperGroup
from typer.models import CommandFunctionType


def _no_type(ctx: Any) -> None:
    return None


def _tidy(params: list[Any]) -> None:
    for param in params:
        kind = getattr(param, "param_type_name", "")
        if kind == "argument":
            # An argument is shown by its name (ROUTE, NAME); typer would add `<str>` after it.
            param.display_type_rich = _no_type
        elif kind == "option" and param.metavar is None:
            param.metavar = "" if param.is_flag else param.name.upper()


class Command(TyperCommand):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        _tidy(self.params)

    def get_help_option(self, ctx: Any) -> Any:
        option = super().get_help_option(ctx)
        if option is not None:
            option.metavar = ""
        return option


class Group(TyperGroup):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        _tidy(self.params)

    def get_help_option(self, ctx: Any) -> Any:
        option = super().get_help_option(ctx)
        if option is not None:
            option.metavar = ""
        return option


class App(typer.Typer):
    """A typer app whose groups and commands use the classes above unless told otherwise."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("cls", Group)
        kwargs.setdefault("no_args_is_help", True)
        super().__init__(**kwargs)

    def command(self, *args: Any, **kwargs: Any) -> Callable[[CommandFunctionType], CommandFunctionType]:
        kwargs.setdefault("cls", Command)
        return super().command(*args, **kwargs)

    def callback(self, *args: Any, **kwargs: Any) -> Callable[[CommandFunctionType], CommandFunctionType]:
        kwargs.setdefault("cls", Group)
        return super().callback(*args, **kwargs)
