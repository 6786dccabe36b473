"""Admin commands over the REST API: one module per resource (see common.py for what they share)."""

from __future__ import annotations

import typer

from meshroute.cli.admin import events, groups, peers, routes, setup_keys, tokens, users


def register(app: typer.Typer) -> None:
    """Attach the admin sub-commands to the top-level app."""
    app.add_typer(routes.app, name="routes")
    app.add_typer(groups.app, name="groups")
    app.add_typer(peers.app, name="peers")
    app.add_typer(setup_keys.app, name="setup-keys")
    app.add_typer(users.app, name="users")
    app.add_typer(tokens.app, name="tokens")
    app.command("events")(events.events)
