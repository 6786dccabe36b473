"""The agent side of the protocol: login, then a stream of network maps kept by applying deltas.
Used by `meshroute agent` and by `meshroute sim`."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import grpc

from meshroute.core.networkmap.types import NetworkMap, apply_delta
from meshroute.protocol import convert
from meshroute.protocol import meshroute_pb2 as pb
from meshroute.protocol import meshroute_pb2_grpc as pb_grpc

PEER_KEY_MD = "x-meshroute-peer-key"
CREDENTIAL_MD = "x-meshroute-credential"


class SerialGap(Exception):
    """A delta did not follow the map we hold: reconnect for a full map."""


@dataclass(slots=True)
class Identity:
    wg_public_key: str
    peer_id: str = ""
    credential: str = ""
    ip: str = ""
    ipv6: str = ""


@dataclass(slots=True)
class Meta:
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


def open_channel(target: str, *, root_ca: bytes | None = None, tls: bool = False) -> grpc.aio.Channel:
    options = [("grpc.keepalive_time_ms", 30000), ("grpc.max_receive_message_length", 64 << 20)]
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

    def _metadata(self) -> tuple[tuple[str, str], ...]:
        return ((PEER_KEY_MD, self.identity.wg_public_key), (CREDENTIAL_MD, self.identity.credential))

    async def login(self, meta: Meta, setup_key: str = "") -> Any:
        """First time with a setup key (the credential comes back once), later with the credential."""
        request = pb.LoginRequest(
            wg_public_key=self.identity.wg_public_key, setup_key=setup_key, meta=meta.to_pb()
        )
        metadata = None if setup_key else self._metadata()
        resp = await self.stub.Login(request, metadata=metadata)
        self.identity.peer_id = resp.peer_id
        if resp.credential:
            self.identity.credential = resp.credential
        self.identity.ip, self.identity.ipv6 = resp.ip, resp.ipv6
        return resp

    async def maps(self) -> AsyncIterator[tuple[NetworkMap, Any]]:
        """Yields (map, raw message) after every update; raises SerialGap on a gap."""
        known = self.map.serial if self.map else 0
        call = self.stub.Sync(pb.SyncRequest(known_serial=known), metadata=self._metadata())
        async for msg in call:
            if msg.HasField("full"):
                self.map = convert.map_from_pb(msg.full)
            else:
                if self.map is None or msg.delta.prev_serial != self.map.serial:
                    call.cancel()
                    raise SerialGap(
                        f"delta after {msg.delta.prev_serial}, holding {self.map and self.map.serial}"
                    )
                self.map = apply_delta(self.map, convert.delta_from_pb(msg.delta))
            yield self.map, msg
