"""What an operator chooses when starting the server, and the checks on it that need no store."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from meshroute.server.http_guard import HttpLimits
from meshroute.server.store.db import sqlite_url
from meshroute.server.sync.grpc_service import is_loopback
from meshroute.server.throttle import ThrottleSettings

ADMIN_TOKEN_FILE = "admin-token"


class StartupError(Exception):
    """The server cannot start (a port is taken, a file is unreadable): one line for the operator."""


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
    public_url: str | None = None  # where people reach the dashboard (https:// -> Secure cookies)
    throttle: ThrottleSettings = field(default_factory=ThrottleSettings)
    http_limits: HttpLimits = field(default_factory=HttpLimits)

    @property
    def url(self) -> str:
        return self.database_url or sqlite_url(self.data_dir)


def split_host_port(value: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"expected HOST:PORT, got {value!r}")
    return host.strip("[]") or "127.0.0.1", int(port)


def check_public_url(value: str | None) -> str | None:
    """`http(s)://host[:port]` without a path: the dashboard's address as people reach it."""
    if value is None:
        return None
    parts = urlsplit(value)
    if (
        parts.scheme not in ("http", "https")
        or not parts.netloc
        or parts.path not in ("", "/")
        or parts.query
    ):
        raise ValueError(f"--public-url must be http(s)://HOST[:PORT], got {value!r}")
    return f"{parts.scheme}://{parts.netloc}"


def check_transport(cfg: ServerConfig) -> tuple[bytes, bytes] | None:
    """TLS when given; plaintext only on loopback or when asked for with --insecure."""
    if bool(cfg.tls_cert) != bool(cfg.tls_key):
        raise ValueError("--tls-cert and --tls-key go together")
    if cfg.tls_cert and cfg.tls_key:
        return _read(cfg.tls_key, "--tls-key"), _read(cfg.tls_cert, "--tls-cert")
    host, _ = split_host_port(cfg.sync_listen)
    if not cfg.insecure and not is_loopback(host):
        raise ValueError(
            f"refusing plaintext agent sync on {cfg.sync_listen}: give --tls-cert/--tls-key or --insecure"
        )
    return None


def _read(path: Path, option: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise ValueError(f"cannot read {option} {path}: {exc.strerror or exc}") from None
