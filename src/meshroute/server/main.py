"""Assembles and runs the management server process."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

import uvicorn
from fastapi import FastAPI

from meshroute.server.api.app import create_app
from meshroute.server.services import Services
from meshroute.server.store.db import make_engine, migrate, sqlite_url

log = logging.getLogger("meshroute.server")
ADMIN_TOKEN_FILE = "admin-token"


@dataclass(slots=True)
class ServerConfig:
    data_dir: Path
    listen: str = "127.0.0.1:33073"
    database_url: str | None = None
    log_level: str = "info"

    @property
    def url(self) -> str:
        return self.database_url or sqlite_url(self.data_dir)


def split_host_port(value: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"expected HOST:PORT, got {value!r}")
    return host.strip("[]") or "127.0.0.1", int(port)


def build(cfg: ServerConfig) -> tuple[FastAPI, Services]:
    cfg.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    engine = make_engine(cfg.url)
    migrate(engine)
    services = Services.create(engine)
    boot = services.accounts.bootstrap()
    if boot is not None:
        path = cfg.data_dir / ADMIN_TOKEN_FILE
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(boot.token + "\n")
        os.chmod(path, 0o600)
        log.info(
            "created account %s with owner %s; the owner's API token is in %s",
            boot.account.id,
            boot.owner.id,
            path,
        )
    else:
        log.info("using the existing store (%s)", engine.url.render_as_string(hide_password=True))
    return create_app(services), services


def run(cfg: ServerConfig) -> None:
    host, port = split_host_port(cfg.listen)
    app, _ = build(cfg)
    log.info("REST API on http://%s:%d/api", host, port)
    # uvicorn installs SIGINT/SIGTERM handlers and shuts down gracefully on either.
    uvicorn.run(app, host=host, port=port, log_level=cfg.log_level, access_log=False)
