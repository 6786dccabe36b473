"""`meshroute server`."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated

import typer


def register(app: typer.Typer) -> None:
    @app.command("server")
    def server(
        data_dir: Annotated[
            Path, typer.Option("--data-dir", help="Where the store and admin token live.")
        ] = Path("./data"),
        listen: Annotated[
            str, typer.Option("--listen", help="REST API address HOST:PORT.")
        ] = "127.0.0.1:33073",
        database_url: Annotated[
            str | None,
            typer.Option(
                "--database-url",
                envvar="MESHROUTE_DATABASE_URL",
                help="SQLAlchemy URL, e.g. postgresql+psycopg://user@host/db (default: SQLite in data dir).",
            ),
        ] = None,
        log_level: Annotated[str, typer.Option("--log-level")] = "info",
    ) -> None:
        """Run the management server (REST API and agent sync)."""
        from meshroute.server.main import ServerConfig, run, split_host_port

        logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
        try:
            split_host_port(listen)
        except ValueError as exc:
            raise typer.BadParameter(str(exc), param_hint="--listen") from None
        run(ServerConfig(data_dir=data_dir, listen=listen, database_url=database_url, log_level=log_level))
