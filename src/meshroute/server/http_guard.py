"""Slow and greedy HTTP clients: a deadline for request headers and for request bodies, and a cap
on the connections one client address holds open.

uvicorn closes idle keep-alive connections but has no deadline for a request that arrives byte
by byte: 600 connections sending headers slowly were held for as long as their clients liked.
This is uvicorn's own HTTP/1.1 protocol (h11) with those three limits added; a client that
breaks one is answered 408 or 429 (when no response has started) and disconnected, logged at
debug level (it is the client's doing, not the server's).
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from dataclasses import dataclass
from typing import Any

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class HttpLimits:
    # Seconds from the connection (or the end of the previous response) to complete headers.
    header_timeout: float = 10.0
    # Seconds from the end of the headers to the end of the body (bodies are at most 1 MiB).
    body_timeout: float = 30.0
    # Open connections per client address; 0: no cap. Behind a reverse proxy every request
    # comes from the proxy unless it is trusted for X-Forwarded-For (see docs/operations.md).
    max_connections_per_client: int = 64


def _raw_response(status: int, reason: str, message: str) -> bytes:
    body = f'{{"message":"{message}","code":{status}}}'.encode()
    head = (
        f"HTTP/1.1 {status} {reason}\r\ncontent-type: application/json; charset=UTF-8\r\n"
        f"content-length: {len(body)}\r\nconnection: close\r\n\r\n"
    )
    return head.encode() + body


_TOO_MANY = _raw_response(429, "Too Many Requests", "too many connections from this address")
_TIMEOUT = _raw_response(408, "Request Timeout", "request not received in time")


def protocol_class(limits: HttpLimits) -> type[asyncio.Protocol]:
    """A protocol class for `uvicorn.Config(http=...)`; its connection counts are its own."""
    open_by_client: Counter[str] = Counter()

    class GuardedH11Protocol(H11Protocol):
        _client_host = ""
        _counted = False
        _phase = ""
        _timer: asyncio.TimerHandle | None = None

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self._client_host = self.client[0] if self.client else ""
            cap = limits.max_connections_per_client
            if cap and open_by_client[self._client_host] >= cap:
                log.debug("refusing a connection from %s: %d already open", self._client_host, cap)
                transport.write(_TOO_MANY)
                transport.close()
                return
            open_by_client[self._client_host] += 1
            self._counted = True
            self._follow()

        def connection_lost(self, exc: Exception | None) -> None:
            self._set_phase("")
            if self._counted:
                self._counted = False
                open_by_client[self._client_host] -= 1
                if open_by_client[self._client_host] <= 0:
                    del open_by_client[self._client_host]
            super().connection_lost(exc)

        def data_received(self, data: bytes) -> None:
            super().data_received(data)
            self._follow()

        def on_response_complete(self) -> None:
            super().on_response_complete()
            self._follow()

        def _follow(self) -> None:
            """Arms the deadline of what the client owes now: headers, a body, or nothing."""
            if self.transport is None or self.transport.is_closing():
                return
            state = self.conn.their_state
            if state is h11.IDLE:
                self._set_phase("headers")
            elif state is h11.SEND_BODY:
                self._set_phase("body")
            else:
                self._set_phase("")

        def _set_phase(self, phase: str) -> None:
            if phase == self._phase:
                return
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
            self._phase = phase
            if phase:
                timeout = limits.header_timeout if phase == "headers" else limits.body_timeout
                self._timer = self.loop.call_later(timeout, self._expired, phase, timeout)

        def _expired(self, phase: str, timeout: float) -> None:
            self._timer = None
            if self.transport.is_closing():
                return
            log.debug("closing the connection of %s: no complete %s within %s s", self.client, phase, timeout)
            if self.cycle is None or not self.cycle.response_started:
                self.transport.write(_TIMEOUT)
            self.transport.close()

    return GuardedH11Protocol


def uvicorn_options(limits: HttpLimits) -> dict[str, Any]:
    """What `uvicorn.run`/`uvicorn.Config` need to apply `limits`."""
    return {"http": protocol_class(limits)}
