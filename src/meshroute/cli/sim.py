"""`meshroute sim`."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Annotated, Any

import grpc
import httpx
import typer

DEFAULT_API = "http://127.0.0.1:33073"


def register(app: typer.Typer) -> None:
    @app.command("sim")
    def sim(
        setup_key: Annotated[
            str,
            typer.Option(
                "--setup-key",
                envvar="MESHROUTE_SETUP_KEY",
                help="A reusable setup key with enough uses left for every virtual peer.",
                show_default=False,
            ),
        ],
        sync: Annotated[
            str, typer.Option("--sync", help="The server's agent-sync address HOST:PORT (--sync-listen).")
        ] = "127.0.0.1:33074",
        peers: Annotated[int, typer.Option("--peers", min=1, max=100000, help="Virtual peers to run.")] = 10,
        duration: Annotated[
            float,
            typer.Option("--duration", min=0, help="Seconds to hold the streams (and make route changes)."),
        ] = 10.0,
        api: Annotated[
            str,
            typer.Option(
                "--api",
                envvar="MESHROUTE_SERVER",
                help="REST base URL: route changes, the map check, and removing the virtual peers.",
            ),
        ] = DEFAULT_API,
        token: Annotated[
            str | None,
            typer.Option("--token", envvar="MESHROUTE_TOKEN", help="API token (needed unless --keep)."),
        ] = None,
        interval: Annotated[
            float, typer.Option("--change-interval", min=0.05, help="Seconds between two route changes.")
        ] = 1.0,
        tls: Annotated[
            bool, typer.Option("--tls", help="TLS to the sync address (system CAs or --ca).")
        ] = False,
        ca: Annotated[
            Path | None, typer.Option("--ca", help="PEM CA file for the server's certificate.")
        ] = None,
        keep: Annotated[
            bool, typer.Option("--keep", help="Leave the virtual peers and the route registered afterwards.")
        ] = False,
        as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object on stdout.")] = False,
    ) -> None:
        """Run N virtual agents (the agent's own management link): register, hold sync streams,
        measure how fast route changes reach them, check every map against the server's.

        Exits 1 when a virtual peer saw an error or a map differs from the server's."""
        from meshroute.agent.link import LinkRefused
        from meshroute.agent.sim import SimConfig, run

        if not (token or keep):
            typer.echo(
                "error: removing the virtual peers afterwards needs an API token (--token or "
                "MESHROUTE_TOKEN); give --keep to leave them registered",
                err=True,
            )
            raise typer.Exit(2)
        if not api.startswith(("http://", "https://")):
            api = "http://" + api
        cfg = SimConfig(
            server=sync,
            setup_key=setup_key,
            peers=peers,
            duration=duration,
            api=api if token else None,
            token=token,
            change_interval=interval,
            tls=tls,
            root_ca=ca.read_bytes() if ca else None,
            cleanup=not keep,
        )
        try:
            result = _run_with_progress(cfg, run, show=not as_json)
        except LinkRefused as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(1) from None
        except grpc.aio.AioRpcError as exc:
            typer.echo(f"error: cannot reach {sync}: {exc.details()} ({exc.code().name})", err=True)
            raise typer.Exit(1) from None
        except (httpx.HTTPError, TimeoutError) as exc:
            typer.echo(f"error: {exc or type(exc).__name__}", err=True)
            raise typer.Exit(1) from None
        for error in result["errors"]:
            typer.echo(f"error: {error}", err=True)
        if as_json:
            typer.echo(json.dumps(result))
        else:
            summary = {**result, "errors": len(result["errors"])}
            width = max(len(k) for k in summary)
            typer.echo("\n".join(f"{k.ljust(width)}  {v}" for k, v in summary.items()))
        if result["errors"] or result["mismatches"]:
            raise typer.Exit(1)


def _run_with_progress(cfg: Any, run: Any, *, show: bool) -> dict[str, Any]:
    """The run, with a progress bar on stderr while the peers register and sync (a terminal only)."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    console = Console(stderr=True)
    if not show or not console.is_terminal:
        return dict(asyncio.run(run(cfg)))
    with Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), console=console
    ) as bar:
        tasks = {
            "registering": bar.add_task("registering", total=cfg.peers),
            "syncing": bar.add_task("first maps", total=cfg.peers),
        }

        def progress(what: str, done: int, total: int) -> None:
            bar.update(tasks[what], completed=done, total=total)

        cfg.progress = progress
        return dict(asyncio.run(run(cfg)))
