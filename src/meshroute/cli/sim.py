"""`meshroute sim`."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Annotated

import grpc
import httpx
import typer
from rich.console import Console
from rich.table import Table


def register(app: typer.Typer) -> None:
    @app.command("sim")
    def sim(
        server: Annotated[
            str, typer.Option("--server", help="Agent sync address HOST:PORT.")
        ] = "127.0.0.1:33074",
        setup_key: Annotated[str, typer.Option("--setup-key", envvar="MESHROUTE_SETUP_KEY")] = "",
        peers: Annotated[int, typer.Option("--peers", min=1, max=100000)] = 10,
        duration: Annotated[float, typer.Option("--duration", min=0)] = 10.0,
        api: Annotated[
            str | None,
            typer.Option("--api", envvar="MESHROUTE_SERVER", help="REST base URL, for changes/checks."),
        ] = None,
        token: Annotated[str | None, typer.Option("--token", envvar="MESHROUTE_TOKEN")] = None,
        interval: Annotated[float, typer.Option("--change-interval", min=0.05)] = 1.0,
        tls: Annotated[bool, typer.Option("--tls", help="Use TLS (system roots or --ca).")] = False,
        ca: Annotated[Path | None, typer.Option("--ca", help="PEM CA for the server certificate.")] = None,
        keep: Annotated[
            bool, typer.Option("--keep", help="Keep the virtual peers and route afterwards.")
        ] = False,
        as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
    ) -> None:
        """Simulate N agents: register, hold sync streams, measure update latency, check maps."""
        from meshroute.sim import SimConfig, run

        if not setup_key:
            raise typer.BadParameter("a setup key is required", param_hint="--setup-key")
        if api and not api.startswith(("http://", "https://")):
            api = "http://" + api
        cfg = SimConfig(
            server=server,
            setup_key=setup_key,
            peers=peers,
            duration=duration,
            api=api,
            token=token,
            change_interval=interval,
            tls=tls,
            root_ca=ca.read_bytes() if ca else None,
            cleanup=not keep,
        )
        try:
            result = asyncio.run(run(cfg))
        except grpc.aio.AioRpcError as exc:
            typer.echo(f"error: {exc.details()} ({exc.code().name})", err=True)
            raise typer.Exit(1) from None
        except (httpx.HTTPError, TimeoutError) as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(1) from None
        if as_json:
            typer.echo(json.dumps(result))
            return
        table = Table(title="meshroute sim")
        table.add_column("figure")
        table.add_column("value", justify="right")
        for k, v in result.items():
            table.add_row(k, str(v))
        Console().print(table)
        if result["mismatches"]:
            raise typer.Exit(1)
