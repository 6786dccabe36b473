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

    @app.command("admin-token")
    def admin_token(
        data_dir: Annotated[
            Path, typer.Option("--data-dir", help="The server's data directory (the token is written there).")
        ] = Path("./data"),
        database_url: Annotated[
            str | None,
            typer.Option(
                "--database-url", envvar="MESHROUTE_DATABASE_URL", help="As for `meshroute server`."
            ),
        ] = None,
        days: Annotated[int, typer.Option("--days", min=1, max=365)] = 365,
    ) -> None:
        """Issue a new owner token in the store (lost or expired token), into DATA_DIR/admin-token."""
        from meshroute.core.errors import MeshrouteError
        from meshroute.server.main import ADMIN_TOKEN_FILE, ServerConfig, write_secret
        from meshroute.server.services import Services
        from meshroute.server.store.db import make_engine, migrate

        cfg = ServerConfig(data_dir=data_dir, database_url=database_url)
        if not database_url and not (data_dir / "meshroute.db").exists():
            typer.echo(f"error: no store in {data_dir} (start the server once first)", err=True)
            raise typer.Exit(1)
        engine = make_engine(cfg.url)
        migrate(engine)
        try:
            owner, token = Services.create(engine).accounts.issue_owner_token(days)
        except MeshrouteError as exc:
            typer.echo(f"error: {exc.message}", err=True)
            raise typer.Exit(1) from None
        finally:
            engine.dispose()
        data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        path = data_dir / ADMIN_TOKEN_FILE
        write_secret(path, token)
        typer.echo(f"issued a new token for the owner {owner.id}, valid {days} days: {path}")
