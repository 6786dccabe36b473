"""Runs the management server process: REST API and agent sync on one event loop.

Start-up order matters: both ports are bound before anything is written to the store, so a server
that cannot listen (port in use, bad address) leaves a new data directory as it found it.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import signal
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import uvicorn

from meshroute.server.assembly import assemble, prepare_store
from meshroute.server.config import ServerConfig, StartupError, check_transport
from meshroute.server.http_guard import uvicorn_options
from meshroute.server.listen import listen_socket

log = logging.getLogger("meshroute.server")
# The cyclic garbage collector runs after every 700 new containers by default. A long list answer
# makes ~100,000 of them (25,000 peers), all alive until it is sent: the collector ran hundreds of
# times per such request, rescanning them, and took a third of its time. The server makes little
# cyclic garbage, so it can run far less often.
GC_THRESHOLD = (50_000, 10, 10)


class _Uvicorn(uvicorn.Server):
    @contextmanager
    def capture_signals(self) -> Iterator[None]:
        """SIGINT/SIGTERM start the graceful shutdown, after which the process exits normally
        (status 0); uvicorn's own handler re-raises the signal, which kills the process instead."""
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        previous = {sig: signal.signal(sig, self.handle_exit) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)


async def _serve(cfg: ServerConfig, rest: socket.socket) -> None:
    server = assemble(cfg)
    grpc_server = server.bind_sync()
    try:
        prepare_store(server)
    except BaseException:
        await grpc_server.stop(None)
        raise
    host, port = rest.getsockname()[:2]
    where = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    log.info("REST API on http://%s/api, dashboard on %s/", where, cfg.public_url or f"http://{where}")
    config = uvicorn.Config(
        server.app, log_level=cfg.log_level, access_log=False, **uvicorn_options(cfg.http_limits)
    )
    uv = _Uvicorn(config)
    await uv.serve(sockets=[rest])
    if not uv.started:  # the lifespan failed; uvicorn has logged why
        raise StartupError("the server could not start")
    log.info("stopped")


def run(cfg: ServerConfig) -> None:
    """Bind the REST port, then the agent-sync port, then prepare the store, then serve."""
    check_transport(cfg)
    gc.set_threshold(*GC_THRESHOLD)
    rest = listen_socket(cfg.listen, "the REST API")
    try:
        asyncio.run(_serve(cfg, rest))
    finally:
        rest.close()
