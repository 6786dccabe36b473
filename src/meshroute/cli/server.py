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
            Path, typer.Option("--data-dir", help="Where the SQLite store and the admin token live.")
        ] = Path("./data"),
        listen: Annotated[str, typer.Option("--listen", help="REST API HOST:PORT.")] = "127.0.0.1:33073",
        sync_listen: Annotated[
            str, typer.Option("--sync-listen", help="Agent sync (gRPC) address HOST:PORT.")
        ] = "127.0.0.1:33074",
        database_url: Annotated[
            str | None,
            typer.Option(
                "--database-url",
                envvar="MESHROUTE_DATABASE_URL",
                help="SQLAlchemy URL, e.g. postgresql+psycopg://user@host/db (default: SQLite).",
            ),
        ] = None,
        tls_cert: Annotated[Path | None, typer.Option("--tls-cert", help="PEM certificate (sync).")] = None,
        tls_key: Annotated[Path | None, typer.Option("--tls-key", help="PEM private key (sync).")] = None,
        insecure: Annotated[
            bool, typer.Option("--insecure", help="Allow plaintext agent sync on a non-loopback address.")
        ] = False,
        log_level: Annotated[str, typer.Option("--log-level")] = "info",
    ) -> None:
        """Run the management server (REST API and agent sync)."""
        from meshroute.server.main import ServerConfig, run, split_host_port

        logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
        for name, value in (("--listen", listen), ("--sync-listen", sync_listen)):
            try:
                split_host_port(value)
            except ValueError as exc:
                raise typer.BadParameter(str(exc), param_hint=name) from None
        cfg = ServerConfig(
            data_dir=data_dir,
            listen=listen,
            sync_listen=sync_listen,
            database_url=database_url,
            tls_cert=tls_cert,
            tls_key=tls_key,
            insecure=insecure,
            log_level=log_level,
        )
        try:
            run(cfg)
        except ValueError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(2) from None
