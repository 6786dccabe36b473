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
            Path,
            typer.Option(
                "--data-dir", metavar="DIR", help="Where the SQLite store and the owner's first token live."
            ),
        ] = Path("./data"),
        listen: Annotated[
            str, typer.Option("--listen", metavar="HOST:PORT", help="Address of the REST API (HTTP).")
        ] = "127.0.0.1:33073",
        sync_listen: Annotated[
            str,
            typer.Option("--sync-listen", metavar="HOST:PORT", help="Address agents sync with (gRPC)."),
        ] = "127.0.0.1:33074",
        database_url: Annotated[
            str | None,
            typer.Option(
                "--database-url",
                envvar="MESHROUTE_DATABASE_URL",
                metavar="URL",
                help="SQLAlchemy URL, e.g. postgresql+psycopg://user@host/db; default: SQLite in --data-dir.",
            ),
        ] = None,
        tls_cert: Annotated[
            Path | None,
            typer.Option(
                "--tls-cert", metavar="FILE", help="PEM certificate of agent sync (with --tls-key)."
            ),
        ] = None,
        tls_key: Annotated[
            Path | None, typer.Option("--tls-key", metavar="FILE", help="PEM private key of agent sync.")
        ] = None,
        insecure: Annotated[
            bool, typer.Option("--insecure", help="Allow plaintext agent sync on a non-loopback address.")
        ] = False,
        log_level: Annotated[
            str,
            typer.Option("--log-level", metavar="LEVEL", help="debug, info, warning or error."),
        ] = "info",
        public_url: Annotated[
            str | None,
            typer.Option(
                "--public-url",
                envvar="MESHROUTE_PUBLIC_URL",
                metavar="URL",
                help="Where people reach the dashboard, e.g. https://mesh.example.com behind a TLS proxy "
                "(https:// makes the session cookie Secure).",
            ),
        ] = None,
        auth_max_failures: Annotated[
            int,
            typer.Option(
                "--auth-max-failures",
                min=0,
                help="Failed token, setup-key or credential checks one address may make per "
                "--auth-failure-window before it is refused (429); 0 turns throttling off.",
            ),
        ] = 20,
        auth_failure_window: Annotated[
            float, typer.Option("--auth-failure-window", min=1, help="Seconds (see --auth-max-failures).")
        ] = 60.0,
        http_header_timeout: Annotated[
            float,
            typer.Option(
                "--http-header-timeout", min=0.1, help="Seconds a client has to send request headers."
            ),
        ] = 10.0,
        http_body_timeout: Annotated[
            float,
            typer.Option("--http-body-timeout", min=0.1, help="Seconds a client has to send a request body."),
        ] = 30.0,
        http_max_connections_per_client: Annotated[
            int,
            typer.Option(
                "--http-max-connections-per-client",
                min=0,
                help="Open REST connections per client address (0: no cap).",
            ),
        ] = 64,
    ) -> None:
        """Run the management server (REST API and agent sync)."""
        from meshroute.server.config import ServerConfig, StartupError, check_public_url, split_host_port
        from meshroute.server.http_guard import HttpLimits
        from meshroute.server.main import run
        from meshroute.server.throttle import ThrottleSettings

        logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
        for name, value in (("--listen", listen), ("--sync-listen", sync_listen)):
            try:
                split_host_port(value)
            except ValueError as exc:
                raise typer.BadParameter(str(exc), param_hint=name) from None
        try:
            check_public_url(public_url)
        except ValueError as exc:
            raise typer.BadParameter(str(exc), param_hint="--public-url") from None
        cfg = ServerConfig(
            data_dir=data_dir,
            listen=listen,
            sync_listen=sync_listen,
            database_url=database_url,
            tls_cert=tls_cert,
            tls_key=tls_key,
            insecure=insecure,
            log_level=log_level,
            public_url=public_url,
            throttle=ThrottleSettings(auth_max_failures, auth_failure_window),
            http_limits=HttpLimits(http_header_timeout, http_body_timeout, http_max_connections_per_client),
        )
        try:
            run(cfg)
        except ValueError as exc:  # the configuration cannot work
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(2) from None
        except StartupError as exc:  # nothing was created: see run()
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(1) from None

    @app.command("admin-token")
    def admin_token(
        data_dir: Annotated[
            Path,
            typer.Option(
                "--data-dir", metavar="DIR", help="The server's data directory (the token is written there)."
            ),
        ] = Path("./data"),
        database_url: Annotated[
            str | None,
            typer.Option(
                "--database-url",
                envvar="MESHROUTE_DATABASE_URL",
                metavar="URL",
                help="As for `meshroute server`.",
            ),
        ] = None,
        days: Annotated[
            int, typer.Option("--days", metavar="DAYS", min=1, max=365, help="Days the new token is valid.")
        ] = 365,
    ) -> None:
        """Issue a new owner token in the store (lost or expired token), into DATA_DIR/admin-token."""
        from meshroute.core.errors import MeshrouteError
        from meshroute.server.config import ADMIN_TOKEN_FILE, ServerConfig
        from meshroute.server.files import write_secret
        from meshroute.server.services import Services
        from meshroute.server.services.uow import UnitOfWork
        from meshroute.server.store.db import make_engine, migrate
        from meshroute.server.store.sql import SqlStore

        cfg = ServerConfig(data_dir=data_dir, database_url=database_url)
        if not database_url and not (data_dir / "meshroute.db").exists():
            typer.echo(f"error: no store in {data_dir} (start the server once first)", err=True)
            raise typer.Exit(1)
        engine = make_engine(cfg.url)
        migrate(engine)
        try:
            # Offline, beside any running server: that server's engine finds the new serial by its audit.
            owner, token = Services.create(UnitOfWork(SqlStore(engine))).accounts.issue_owner_token(days)
        except MeshrouteError as exc:
            typer.echo(f"error: {exc.message}", err=True)
            raise typer.Exit(1) from None
        finally:
            engine.dispose()
        data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        path = data_dir / ADMIN_TOKEN_FILE
        write_secret(path, token)
        typer.echo(f"issued a new token for the owner {owner.id}, valid {days} days: {path}")
