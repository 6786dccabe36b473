"""The composition root: every part of the server, wired in one place.

`meshroute server` (`server.main`) and the tests build the server here, so the path a change takes
after its commit (unit of work -> map engine worker -> sync hub -> agents; on PostgreSQL also the
replica fan-out) is the same in both. Building touches neither the store nor the network; the
app's lifespan starts the engine, the replica listener and agent sync, and stops them again.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import grpc
from fastapi import FastAPI
from sqlalchemy import Engine

from meshroute.server.api.app import create_app
from meshroute.server.config import (
    ADMIN_TOKEN_FILE,
    ServerConfig,
    StartupError,
    check_public_url,
    check_transport,
)
from meshroute.server.files import secure_storage, write_secret
from meshroute.server.listen import bind_failure
from meshroute.server.services import Services
from meshroute.server.services.uow import Reader, UnitOfWork
from meshroute.server.store.db import make_engine, migrate
from meshroute.server.store.sql import SqlStore
from meshroute.server.sync.engine import MapEngine
from meshroute.server.sync.grpc_service import ManagementService, make_grpc_server
from meshroute.server.sync.hub import SyncHub
from meshroute.server.sync.replicas import ReplicaBus
from meshroute.server.throttle import AuthThrottle
from meshroute.server.views import Views
from meshroute.server.web import install as install_dashboard

log = logging.getLogger("meshroute.server")


@dataclass(slots=True)
class Server:
    app: FastAPI
    services: Services
    engine: MapEngine
    hub: SyncHub
    service: ManagementService
    cfg: ServerConfig
    db: Engine
    tls: tuple[bytes, bytes] | None = None
    grpc_server: grpc.aio.Server | None = field(default=None)

    def bind_sync(self) -> grpc.aio.Server:
        """Listen on the agent-sync address (in the running event loop); serving starts later."""
        if self.grpc_server is None:
            address = self.cfg.sync_listen
            # gRPC reports a failed bind only as "failed to bind" (and logs to stderr on its own):
            # a plain bind first finds the common cases (port in use, unknown address) and why.
            reason = bind_failure(address)
            if reason is None:
                try:
                    self.grpc_server = make_grpc_server(self.service, address, tls=self.tls)
                except ValueError:  # taken in between
                    reason = bind_failure(address) or "the address cannot be bound"
            if reason is not None:
                raise StartupError(f"cannot listen for agent sync on {address}: {reason}")
        assert self.grpc_server is not None
        return self.grpc_server


def assemble(cfg: ServerConfig, db: Engine | None = None) -> Server:
    """Every part of the server, wired, without touching the store or the network yet. `db`: a
    store engine the caller already has and keeps (tests share one per store: the server does not
    close it); made from `cfg` and closed at shutdown otherwise."""
    tls = check_transport(cfg)
    owns_db = db is None
    db = db if db is not None else make_engine(cfg.url)
    hub = SyncHub()
    throttle = AuthThrottle(cfg.throttle)  # one count per address for REST and agent sync
    store = SqlStore(db)
    engine = MapEngine(Reader(store), hub.publish_threadsafe)
    bus = ReplicaBus(db, engine) if db.dialect.name == "postgresql" else None
    uow = UnitOfWork(store, after_commit=engine.submit, before_commit=bus.before_commit if bus else None)
    services = Services.create(uow)
    views = Views(Reader(store), engine)
    service = ManagementService(services, views, engine, hub, throttle)
    server: Server

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
        grpc_server = server.bind_sync()
        await grpc_server.start()
        log.info("agent sync (gRPC%s) on %s", "+TLS" if tls else "", cfg.sync_listen)
        try:
            yield
        finally:
            streams = len(hub.sessions())
            await asyncio.to_thread(service.disconnect_all)
            await grpc_server.stop(grace=2)
            server.grpc_server = None
            log.info("closed %d agent stream%s", streams, "" if streams == 1 else "s")
            if bus is not None:
                bus.stop()
            engine.stop()
            if owns_db:
                await asyncio.to_thread(close_store, db)

    app = create_app(services, views, lifespan=lifespan, throttle=throttle)
    install_dashboard(app, public_url=check_public_url(cfg.public_url))
    server = Server(app, services, engine, hub, service, cfg, db, tls)
    return server


def prepare_store(server: Server) -> None:
    """Migrate the schema and, on an empty store, create the account, its owner and the owner's token."""
    cfg = server.cfg
    secure_storage(cfg.data_dir, cfg.url, secrets=(ADMIN_TOKEN_FILE,))
    migrate(server.db)
    boot = server.services.accounts.bootstrap()
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
        log.info("using the existing store (%s)", server.db.url.render_as_string(hide_password=True))


def build(cfg: ServerConfig) -> Server:
    """The server with its store ready; agent sync binds when the app starts (tests drive it so)."""
    server = assemble(cfg)
    prepare_store(server)
    return server


def close_store(db: Engine) -> None:
    """On SQLite, fold the write-ahead log back into the database file, so a copy of the file alone
    is complete; then close every connection."""
    if db.dialect.name == "sqlite":
        try:
            # A raw connection (autocommit): inside a transaction the checkpoint could not finish.
            raw = db.raw_connection()
            try:
                busy, _, _ = raw.cursor().execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
            finally:
                raw.close()
            if busy:
                log.warning("SQLite WAL checkpoint incomplete (database busy)")
            else:
                log.info("checkpointed the SQLite WAL into %s", db.url.database)
        except Exception:  # the store is still consistent; the next start replays the WAL
            log.exception("SQLite WAL checkpoint failed")
    db.dispose()
