"""Listening sockets, and why an address cannot be listened on, in the operator's words."""

from __future__ import annotations

import os
import socket

from meshroute.server.config import StartupError, split_host_port


def listen_socket(address: str, what: str) -> socket.socket:
    """A listening socket on `address`, or a StartupError naming `what` would have listened there."""
    host, port = split_host_port(address)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        return socket.create_server((host, port), family=family, backlog=2048)
    except OSError as exc:
        raise StartupError(f"cannot listen for {what} on {address}: {_reason(exc)}") from None


def bind_failure(address: str) -> str | None:
    """Why ``address`` cannot be listened on, or None if it can (the probe socket is closed again)."""
    host, port = split_host_port(address)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        with socket.create_server((host, port), family=family):
            return None
    except OSError as exc:
        return _reason(exc)


def _reason(exc: OSError) -> str:
    if isinstance(exc, socket.gaierror) or (exc.errno or 0) < 0:  # resolver errors are negative
        return "the host name cannot be resolved"
    return (os.strerror(exc.errno) if exc.errno else str(exc)).lower()
