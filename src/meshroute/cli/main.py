"""`meshroute` command line: the server, the agent and the admin commands for people."""

from __future__ import annotations

import typer

from meshroute.cli import admin, server, sim

app = typer.Typer(
    name="meshroute",
    help="Route a WireGuard mesh into the networks around it.",
    no_args_is_help=True,
    add_completion=False,
)
server.register(app)
admin.register(app)
sim.register(app)


if __name__ == "__main__":  # pragma: no cover
    app()
