"""`meshroute` command line: the server, the agent and the admin commands for people."""

from __future__ import annotations

from typing import Annotated

import typer

from meshroute import __version__
from meshroute.cli import admin, agent, lab, server, sim
from meshroute.cli.base import App

app = App(
    name="meshroute",
    help="Route a WireGuard mesh into the networks around it.",
    add_completion=False,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"meshroute {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    _version_flag: Annotated[
        bool,
        typer.Option("--version", help="Print the version and exit.", callback=_version, is_eager=True),
    ] = False,
) -> None:
    """Route a WireGuard mesh into the networks around it."""


server.register(app)
admin.register(app)
agent.register(app)
lab.register(app)
sim.register(app)


if __name__ == "__main__":  # pragma: no cover
    app()
