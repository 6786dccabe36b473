"""The agent's management link: log in, hold the sync stream, and keep holding it.

- The identity (key pair, peer ID, credential) comes from an `IdentityStore`; the first login
  uses the setup key and stores the credential, later logins never need the key again.
- A lost connection is retried with capped exponential backoff and jitter; the backoff resets
  once a full map arrives. A serial gap resyncs at once (it is not the server's fault).
- A refusal (bad or revoked setup key or credential, deleted peer) is final: `LinkRefused`.
- It hands out core `NetworkMap`s only (`Update`); whoever consumes them never sees protobuf.
- Each state change is logged once, not once per retry.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from enum import StrEnum

import grpc

from meshroute.agent.identity import IdentityStore, StoredIdentity, generate_private_key
from meshroute.core.networkmap.types import NetworkMap
from meshroute.core.status import StatusReport
from meshroute.protocol.client import Identity, Meta, PeerClient, SerialGap, Update
from meshroute.protocol.wire import PEER_DELETED

log = logging.getLogger(__name__)

# Retrying cannot change these answers: the agent must stop and say why.
_REFUSALS = {
    grpc.StatusCode.UNAUTHENTICATED,
    grpc.StatusCode.PERMISSION_DENIED,
    grpc.StatusCode.NOT_FOUND,
    grpc.StatusCode.ALREADY_EXISTS,
    grpc.StatusCode.INVALID_ARGUMENT,
    grpc.StatusCode.FAILED_PRECONDITION,
}


class LinkRefused(Exception):
    """The server refused this peer for good; `str()` is a one-line explanation for people."""


class LinkState(StrEnum):
    STARTING = "starting"
    CONNECTED = "connected"
    RECONNECTING = "reconnecting"
    STOPPED = "stopped"


@dataclass(slots=True)
class LinkStatus:
    state: LinkState = LinkState.STARTING
    serial: int = 0
    last_error: str = ""
    connected_since: float | None = None  # wall clock
    full_maps: int = 0
    deltas: int = 0
    gaps: int = 0
    reconnects: int = 0


class Backoff:
    """Capped exponential backoff with "equal jitter": half the delay fixed, half random, so a
    fleet of agents that lost the same server does not come back in one wave."""

    def __init__(
        self, initial: float = 0.5, cap: float = 10.0, factor: float = 2.0, rng: random.Random | None = None
    ) -> None:
        self.initial, self.cap, self.factor = initial, cap, factor
        self.attempt = 0
        self._rng = rng or random.Random()

    def next(self) -> float:
        delay = min(self.cap, self.initial * self.factor**self.attempt)
        if delay < self.cap:  # past the cap the exponent stops growing (and cannot overflow)
            self.attempt += 1
        return delay / 2 + self._rng.uniform(0, delay / 2)

    def reset(self) -> None:
        self.attempt = 0


def _refusal(exc: grpc.aio.AioRpcError, registering: bool) -> LinkRefused | None:
    code, details = exc.code(), exc.details() or ""
    if code not in _REFUSALS:
        return None
    if code == grpc.StatusCode.NOT_FOUND and details == PEER_DELETED:
        return LinkRefused("this peer was deleted on the management server")
    if registering:
        return LinkRefused(f"the management server refused the setup key: {details}")
    if code == grpc.StatusCode.UNAUTHENTICATED:
        return LinkRefused(
            "the management server no longer accepts this peer's credential (the peer was deleted or "
            "its credential revoked): to register it anew, remove identity.json from the state "
            "directory and start with --setup-key"
        )
    return LinkRefused(f"the management server refused this peer: {details} ({code.name})")


class ManagementLink:
    def __init__(
        self,
        channel: grpc.aio.Channel,
        store: IdentityStore,
        meta: Callable[[], Meta],
        *,
        setup_key: str = "",
        server: str = "",
        backoff: Backoff | None = None,
        name: str = "",
        client_factory: Callable[[grpc.aio.Channel, Identity], PeerClient] = PeerClient,
    ) -> None:
        self.store = store
        self.meta = meta
        self.setup_key = setup_key
        self.server = server
        self.backoff = backoff or Backoff()
        self.status = LinkStatus()
        self.name = name  # prefix for log lines (the sim runs many links in one process)
        self._channel = channel
        self._client_factory = client_factory
        self._client: PeerClient | None = None
        self._problem = ""
        self._reports_supported = True

    @property
    def identity(self) -> Identity | None:
        return self._client.identity if self._client else None

    @property
    def map(self) -> NetworkMap | None:
        return self._client.map if self._client else None

    def _stored(self) -> StoredIdentity:
        stored = self.store.load()
        if stored is None:
            # Saved before it is used: a key the server may register is never a key we lost.
            stored = StoredIdentity(generate_private_key(), server=self.server)
            self.store.save(stored)
        return stored

    async def login(self) -> Identity:
        """One attempt. Raises `LinkRefused`, or `grpc.aio.AioRpcError` for what may pass."""
        stored = self._stored()
        if self._client is None or self._client.identity.wg_public_key != stored.public_key:
            self._client = self._client_factory(self._channel, Identity(stored.public_key))
        client = self._client
        client.identity.peer_id, client.identity.credential = stored.peer_id, stored.credential
        registering = not stored.registered
        if registering and not self.setup_key:
            raise LinkRefused("this peer is not registered yet: give a setup key (--setup-key)")
        try:
            identity = await client.login(self.meta(), self.setup_key if registering else "")
        except grpc.aio.AioRpcError as exc:
            refusal = _refusal(exc, registering)
            if refusal is not None:
                raise refusal from None
            raise
        if registering:
            stored.peer_id, stored.credential = identity.peer_id, identity.credential
            stored.server = self.server or stored.server
            self.store.save(stored)
            log.info("%sregistered as peer %s (%s)", self.name, identity.peer_id, identity.ip)
        return identity

    async def report_status(self, report: StatusReport) -> bool:
        """Tells the server what the agent does with its routes. False when it could not (not
        connected, a passing failure: the caller tries again later); a server that does not know
        the call (an older version) is asked no more."""
        if self._client is None or self.status.state != LinkState.CONNECTED or not self._reports_supported:
            return False
        try:
            await self._client.report_status(report)
        except grpc.aio.AioRpcError as exc:
            if exc.code() == grpc.StatusCode.UNIMPLEMENTED:
                self._reports_supported = False
                log.info("%sthe management server does not take status reports (an older version)", self.name)
            else:
                log.debug("%scould not report status: %s", self.name, exc.details())
            return False
        return True

    def close(self) -> None:
        """Cut the sync stream (at stop, before the task that reads it is cancelled)."""
        if self._client is not None:
            self._client.cancel()

    async def report(self) -> None:
        """What the agent reports changed (endpoints): log in again on the live connection. A
        failure is only logged: every reconnect logs in again anyway."""
        if self._client is None or not self._client.identity.credential:
            return
        try:
            await self._client.login(self.meta())
        except grpc.aio.AioRpcError as exc:
            log.warning("%scould not report a change to management: %s", self.name, exc.details())

    async def run(self, on_update: Callable[[Update], Awaitable[None]]) -> None:
        """Forever: log in, follow the stream, reconnect. Returns only by cancellation; raises
        `LinkRefused` when the server refuses the peer."""
        try:
            while True:
                try:
                    await self.login()
                    await self._follow(on_update)
                    self._trouble("EOF", "the management server closed the stream")
                except SerialGap as gap:
                    self.status.gaps += 1
                    log.info("%smissed a change (%s): resyncing", self.name, gap)
                    continue
                except grpc.aio.AioRpcError as exc:
                    refusal = _refusal(exc, registering=False)
                    if refusal is not None:
                        raise refusal from None
                    self._trouble(exc.code().name, f"{exc.code().name}: {exc.details()}")
                await asyncio.sleep(self.backoff.next())
        finally:
            self.status.state = LinkState.STOPPED
            self.status.connected_since = None

    async def _follow(self, on_update: Callable[[Update], Awaitable[None]]) -> None:
        assert self._client is not None
        async for update in self._client.maps():
            if update.full:
                self.status.full_maps += 1
                self.backoff.reset()
                if self.status.state != LinkState.CONNECTED:
                    log.info(
                        "%sconnected to management %s (serial %d)", self.name, self.server, update.map.serial
                    )
                    self.status.state = LinkState.CONNECTED
                    self.status.connected_since = time.time()
                    self.status.last_error = self._problem = ""
            else:
                self.status.deltas += 1
            self.status.serial = update.map.serial
            await on_update(update)

    def _trouble(self, kind: str, problem: str) -> None:
        """Logged when the state or the kind of problem changes, not at every retry."""
        self.status.last_error = problem
        if self.status.state == LinkState.CONNECTED:
            self.status.reconnects += 1
            log.warning("%slost the management connection (%s); reconnecting", self.name, problem)
        elif kind != self._problem:
            log.warning("%scannot reach management %s (%s); retrying", self.name, self.server, problem)
        else:
            log.debug("%sstill cannot reach management: %s", self.name, problem)
        self._problem = kind
        self.status.state = LinkState.RECONNECTING
        self.status.connected_since = None
