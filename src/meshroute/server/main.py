"""Assembles and runs the management server process: REST API and agent sync on one event loop."""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import uvicorn
from fastapi import FastAPI

from meshroute.server.api.app import create_app
from meshroute.server.services import Services
from meshroute.server.store.db import make_engine, migrate, sqlite_url
from meshroute.server.sync.engine import MapEngine
from meshroute.server.sync.grpc_service import ManagementService, is_loopback, make_grpc_server
from meshroute.server.sync.hub import SyncHub
from meshroute.server.sync.replicas import ReplicaBus

log = logging.getLogger("meshroute.server")
ADMIN_TOKEN_FILE = "admin-token"


@dataclass(slots=True)
class ServerConfig:
    data_dir: Path
    listen: str = "127.0.0.1:33073"
    sync_listen: str = "127.0.0.1:33074"
    database_url: str | None = None
    tls_cert: Path | None = None
    tls_key: Path | None = None
    insecure: bool = False
    log_level: str = "info"

    @property
    def url(self) -> str:
        return self.database_url or sqlite_url(self.data_dir)


def split_host_port(value: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"expected HOST:PORT, got {value!r}")
    return host.strip("[]") or "127.0.0.1", int(port)


def check_transport(cfg: ServerConfig) -> tuple[bytes, bytes] | None:
    """TLS when given; plaintext only on loopback or when asked for with --insecure."""
    if bool(cfg.tls_cert) != bool(cfg.tls_key):
        raise ValueError("--tls-cert and --tls-key go together")
    if cfg.tls_cert and cfg.tls_key:
        return cfg.tls_key.read_bytes(), cfg.tls_cert.read_bytes()
    host, _ = split_host_port(cfg.sync_listen)
    if not cfg.insecure and not is_loopback(host):
        raise ValueError(
            f"refusing plaintext agent sync on {cfg.sync_listen}: give --tls-cert/--tls-key or --insecure"
        )
    return None


def write_secret(path: Path, secret: str) -> None:
    """Readable by the owner only, from the first byte on."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(secret + "\n")
    os.chmod(path, 0o600)


@dataclass(slots=True)
class Server:
    app: FastAPI
    services: Services
    engine: MapEngine
    hub: SyncHub


def build(cfg: ServerConfig) -> Server:
    tls = check_transport(cfg)
    cfg.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    db = make_engine(cfg.url)
    migrate(db)
    services = Services.create(db)
    boot = services.accounts.bootstrap()
    if boot is not None:
        path = cfg.data_dir / ADMIN_TOKEN_FILE
        write_secret(path, boot.token)
        log.info(
            "created account %s with owner %s; the owner's API token is in %s",
            boot.account.id,
            boot.owner.id,
            path,
        )
    else:
        log.info("using the existing store (%s)", db.url.render_as_string(hide_password=True))

    hub = SyncHub()
    engine = MapEngine(services.uow, hub.publish_threadsafe)
    services.uow.listeners.append(engine.submit)
    bus = ReplicaBus(db, engine) if db.dialect.name == "postgresql" else None
    if bus is not None:
        services.uow.before_commit = bus.before_commit

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        hub.bind(asyncio.get_running_loop())
        engine.start()
        if bus is not None:
            bus.start()
            # Serve agents only once changes from other replicas can be heard.
            if not await asyncio.to_thread(bus.ready.wait, 30):
                raise RuntimeError("could not LISTEN for changes from other replicas within 30 s")
        if db.dialect.name == "sqlite":  # the store's only server: nobody can be connected yet
            await asyncio.to_thread(services.peers.reset_connections)
        service = ManagementService(services, engine, hub)
        grpc_server = make_grpc_server(service, cfg.sync_listen, tls=tls)
        await grpc_server.start()
        log.info("agent sync (gRPC%s) on %s", "+TLS" if tls else "", cfg.sync_listen)
        try:
            yield
        finally:
            await asyncio.to_thread(service.disconnect_all)
            await grpc_server.stop(grace=2)
            if bus is not None:
                bus.stop()
            engine.stop()

    app = create_app(services, engine, lifespan=lifespan)
    return Server(app, services, engine, hub)


def run(cfg: ServerConfig) -> None:
    host, port = split_host_port(cfg.listen)
    server = build(cfg)
    log.info("REST API on http://%s:%d/api", host, port)
    # uvicorn installs SIGINT/SIGTERM handlers and shuts down gracefully (lifespan included).
    uvicorn.run(server.app, host=host, port=port, log_level=cfg.log_level, access_log=False)
