"""One agent session over the wire: Login, then the Sync stream turned into core `NetworkMap`s.

This layer knows the protocol and nothing else: it neither retries nor persists anything. The
agent's management link (`meshroute.agent.link`) adds reconnects, backoff and the stored identity;
`meshroute sim` runs many of those links.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import grpc

from meshroute.core.networkmap.types import NetworkMap, apply_delta
from meshroute.core.status import StatusReport
from meshroute.protocol import convert
from meshroute.protocol import meshroute_pb2 as pb
from meshroute.protocol import meshroute_pb2_grpc as pb_grpc
from meshroute.protocol.wire import (
    CREDENTIAL_MD,
    KEEPALIVE_TIME_MS,
    KEEPALIVE_TIMEOUT_MS,
    MAX_MESSAGE_BYTES,
    PEER_KEY_MD,
)

LOGIN_TIMEOUT_S = 15.0


class SerialGap(Exception):
    """A delta did not follow the map we hold: reconnect for a full map."""


@dataclass(slots=True)
class Identity:
    """Who the peer is to the server. The credential comes back once, from the first Login."""

    wg_public_key: str
    peer_id: str = ""
    credential: str = ""
    ip: str = ""  # overlay IPv4 with prefix length, e.g. 100.64.3.7/16
    ipv6: str = ""  # overlay IPv6 with prefix length, or ""


@dataclass(slots=True)
class Meta:
    """What the agent reports about itself at every Login."""

    hostname: str
    os: str = "linux"
    kernel_version: str = ""
    agent_version: str = ""
    endpoints: list[str] = field(default_factory=list)
    ipv6: bool = False

    def to_pb(self) -> Any:
        return pb.PeerMeta(
            hostname=self.hostname,
            os=self.os,
            kernel_version=self.kernel_version,
            agent_version=self.agent_version,
            endpoints=list(self.endpoints),
            ipv6=self.ipv6,
        )


@dataclass(frozen=True, slots=True)
class Update:
    """The map after one message of the stream; `full` when the server sent the whole map."""

    map: NetworkMap
    full: bool


def open_channel(
    target: str,
    *,
    root_ca: bytes | None = None,
    tls: bool = False,
    max_reconnect_backoff_s: float = 10.0,
) -> grpc.aio.Channel:
    # gRPC's own reconnect backoff grows to 120 s by default: an agent would then sit out a server
    # that is long back. Keep it within the agent's own backoff cap.
    backoff_ms = int(max_reconnect_backoff_s * 1000)
    options = [
        # A server that went silent (its network cut) is left within 15 s, for a reconnect.
        ("grpc.keepalive_time_ms", KEEPALIVE_TIME_MS),
        ("grpc.keepalive_timeout_ms", KEEPALIVE_TIMEOUT_MS),
        ("grpc.http2.max_pings_without_data", 0),  # the Sync stream is quiet between maps
        ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
        ("grpc.initial_reconnect_backoff_ms", min(500, backoff_ms)),
        ("grpc.min_reconnect_backoff_ms", min(500, backoff_ms)),
        ("grpc.max_reconnect_backoff_ms", backoff_ms),
    ]
    if tls or root_ca is not None:
        return grpc.aio.secure_channel(
            target, grpc.ssl_channel_credentials(root_certificates=root_ca), options
        )
    return grpc.aio.insecure_channel(target, options)


class PeerClient:
    def __init__(self, channel: grpc.aio.Channel, identity: Identity) -> None:
        self.stub = pb_grpc.ManagementStub(channel)  # type: ignore[no-untyped-call]
        self.identity = identity
        self.map: NetworkMap | None = None
        self._call: Any = None

    def cancel(self) -> None:
        """End the open Sync stream now (a task blocked reading it may not see a plain task
        cancellation in time)."""
        if self._call is not None:
            self._call.cancel()

    def _metadata(self) -> tuple[tuple[str, str], ...]:
        return ((PEER_KEY_MD, self.identity.wg_public_key), (CREDENTIAL_MD, self.identity.credential))

    async def login(self, meta: Meta, setup_key: str = "") -> Identity:
        """First time with a setup key (the credential comes back once), later with the credential."""
        request = pb.LoginRequest(
            wg_public_key=self.identity.wg_public_key, setup_key=setup_key, meta=meta.to_pb()
        )
        metadata = None if setup_key else self._metadata()
        resp = await self.stub.Login(request, metadata=metadata, timeout=LOGIN_TIMEOUT_S)
        self.identity.peer_id = resp.peer_id
        if resp.credential:
            self.identity.credential = resp.credential
        self.identity.ip, self.identity.ipv6 = resp.ip, resp.ipv6
        return self.identity

    async def report_status(self, report: StatusReport) -> None:
        await self.stub.ReportStatus(
            convert.status_to_pb(report), metadata=self._metadata(), timeout=LOGIN_TIMEOUT_S
        )

    async def maps(self) -> AsyncIterator[Update]:
        """The map after every message; raises SerialGap when a delta does not follow it."""
        known = self.map.serial if self.map else 0
        call = self.stub.Sync(pb.SyncRequest(known_serial=known), metadata=self._metadata())
        self._call = call
        try:
            async for msg in call:
                if msg.HasField("full"):
                    self.map = convert.map_from_pb(msg.full)
                    yield Update(self.map, True)
                    continue
                if self.map is None or msg.delta.prev_serial != self.map.serial:
                    raise SerialGap(
                        f"delta after {msg.delta.prev_serial}, holding {self.map and self.map.serial}"
                    )
                self.map = apply_delta(self.map, convert.delta_from_pb(msg.delta))
                yield Update(self.map, False)
        finally:
            call.cancel()
            self._call = None
