"""The agent protocol over gRPC (asyncio): Login and the Sync stream."""

from __future__ import annotations

import asyncio
import ipaddress
import logging
from collections.abc import AsyncIterator
from typing import Any

import grpc

from meshroute.core.errors import (
    AlreadyExists,
    InvalidArgument,
    MeshrouteError,
    NotFound,
    PermissionDenied,
    PreconditionFailed,
    Unauthorized,
)
from meshroute.core.model import Account, Peer
from meshroute.protocol import convert
from meshroute.protocol import meshroute_pb2 as pb
from meshroute.server.services import Services
from meshroute.server.services.peers import PeerMetaUpdate, PeerRegistration
from meshroute.server.store.repo import utcnow
from meshroute.server.sync.engine import MapEngine
from meshroute.server.sync.hub import FULL, Session, SyncHub

log = logging.getLogger(__name__)
PEER_KEY_MD = "x-meshroute-peer-key"
CREDENTIAL_MD = "x-meshroute-credential"

_CODES: list[tuple[type[MeshrouteError], grpc.StatusCode]] = [
    (Unauthorized, grpc.StatusCode.UNAUTHENTICATED),
    (PermissionDenied, grpc.StatusCode.PERMISSION_DENIED),
    (InvalidArgument, grpc.StatusCode.INVALID_ARGUMENT),
    (AlreadyExists, grpc.StatusCode.ALREADY_EXISTS),
    (NotFound, grpc.StatusCode.NOT_FOUND),
    (PreconditionFailed, grpc.StatusCode.FAILED_PRECONDITION),
]


def _status(exc: MeshrouteError) -> grpc.StatusCode:
    return next((code for kind, code in _CODES if isinstance(exc, kind)), grpc.StatusCode.INTERNAL)


def _meta(request: Any) -> PeerMetaUpdate:
    m = request.meta
    return PeerMetaUpdate(
        hostname=m.hostname,
        os=m.os,
        kernel_version=m.kernel_version,
        version=m.agent_version,
        endpoints=list(m.endpoints),
        ipv6_capable=m.ipv6,
    )


class ManagementService:
    def __init__(self, services: Services, engine: MapEngine, hub: SyncHub) -> None:
        self.services = services
        self.engine = engine
        self.hub = hub

    async def _authenticate(self, context: grpc.aio.ServicerContext) -> Peer:
        md = dict(context.invocation_metadata() or ())
        key, credential = md.get(PEER_KEY_MD, ""), md.get(CREDENTIAL_MD, "")
        if not key or not credential:
            await context.abort(grpc.StatusCode.UNAUTHENTICATED, "peer key and credential required")
        try:
            return await asyncio.to_thread(self.services.peers.authenticate, str(key), str(credential))
        except MeshrouteError as exc:
            await context.abort(grpc.StatusCode.UNAUTHENTICATED, exc.message)
            raise  # unreachable: abort raises

    def _account_and_serial(self, account_id: str) -> tuple[Account, int]:
        with self.services.uow.read(account_id) as tx:
            account = tx.account(account_id)
        if account is None:
            raise NotFound(f"account: {account_id} not found")
        return account, account.network_serial

    async def _await_engine(self, peer: Peer) -> Any:
        """The peer exists but the engine has not applied its registration yet: give it a
        moment, then reload the account (costly for everyone, so only as a last resort)."""
        for _ in range(40):
            await asyncio.sleep(0.05)
            snapshot = await asyncio.to_thread(self.engine.full_map, peer.account_id, peer.id)
            if snapshot is not None:
                return snapshot
        self.engine.reload(peer.account_id)
        return await asyncio.to_thread(self.engine.full_map, peer.account_id, peer.id)

    def _exists(self, peer: Peer) -> bool:
        with self.services.uow.read(peer.account_id) as tx:
            return tx.peer(peer.id) is not None

    async def Login(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        meta = _meta(request)
        credential = ""
        try:
            if request.setup_key:
                reg = PeerRegistration(
                    setup_key=request.setup_key,
                    wg_public_key=request.wg_public_key,
                    hostname=meta.hostname,
                    os=meta.os,
                    kernel_version=meta.kernel_version,
                    version=meta.version,
                    endpoints=meta.endpoints,
                    ipv6_capable=meta.ipv6_capable,
                    connection_ip=_peer_ip(context.peer()),
                )
                peer, credential = await asyncio.to_thread(self.services.peers.register, reg)
            else:
                peer = await self._authenticate(context)
                if request.wg_public_key and request.wg_public_key != peer.key:
                    await context.abort(
                        grpc.StatusCode.PERMISSION_DENIED, "public key does not match credential"
                    )
                meta.connection_ip = _peer_ip(context.peer())
                peer = await asyncio.to_thread(self.services.peers.update_meta, peer, meta)
        except MeshrouteError as exc:
            await context.abort(_status(exc), exc.message)
        account, serial = await asyncio.to_thread(self._account_and_serial, peer.account_id)
        return pb.LoginResponse(
            peer_id=peer.id,
            credential=credential,
            ip=f"{peer.ip}/{account.network_v4.prefixlen}",
            ipv6=f"{peer.ipv6}/{account.network_v6.prefixlen}" if peer.ipv6 and peer.ipv6_capable else "",
            account_id=peer.account_id,
            serial=serial,
        )

    async def Sync(self, request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
        peer = await self._authenticate(context)
        session = Session(peer.account_id, peer.id)
        self.hub.register(session)
        try:
            session.connected_at = utcnow()
            await asyncio.to_thread(self.services.peers.set_connected, peer.id, session.connected_at)
            last = -1
            item: Any = FULL
            while True:
                if item is FULL:
                    snapshot = await asyncio.to_thread(self.engine.full_map, peer.account_id, peer.id)
                    if snapshot is None and await asyncio.to_thread(self._exists, peer):
                        snapshot = await self._await_engine(peer)
                    if snapshot is None:
                        await context.abort(grpc.StatusCode.NOT_FOUND, "peer has been deleted")
                        return
                    m, account = snapshot
                    last = m.serial
                    yield convert.full_response_bytes(m, str(account.network_v4), str(account.network_v6))
                elif item.serial > last:
                    yield pb.SyncResponse(delta=convert.delta_to_pb(item, last)).SerializeToString()
                    last = item.serial
                item = await session.queue.get()
        finally:
            self.hub.unregister(session)
            if session.connected_at is not None:
                await asyncio.to_thread(
                    self.services.peers.set_disconnected, peer.id, session.connected_at, utcnow()
                )
                session.connected_at = None

    def disconnect_all(self) -> None:
        """At shutdown, before the streams are cut: their own clean-up may never get to run."""
        for session in self.hub.sessions():
            if session.connected_at is not None:
                self.services.peers.set_disconnected(session.peer_id, session.connected_at, utcnow())
                session.connected_at = None


def _peer_ip(peer: str) -> str:
    """`ipv4:1.2.3.4:5678` / `ipv6:[::1]:5678` to the bare address."""
    _, _, rest = peer.partition(":")
    host = rest.rsplit(":", 1)[0].strip("[]")
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        return ""


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def make_grpc_server(
    service: ManagementService,
    address: str,
    *,
    tls: tuple[bytes, bytes] | None = None,
) -> grpc.aio.Server:
    options = [
        ("grpc.keepalive_time_ms", 30000),
        ("grpc.max_concurrent_streams", 100000),
        # gRPC turns SO_REUSEPORT on by default: a second server on the same port would silently
        # take half of the agents. Fail to bind instead.
        ("grpc.so_reuseport", 0),
    ]
    server = grpc.aio.server(options=options)
    # Registered by hand rather than with the generated helper: Sync yields pre-encoded bytes
    # (see convert.full_response_bytes), so its responses must not be serialized again.
    handlers = {
        "Login": grpc.unary_unary_rpc_method_handler(
            service.Login,
            request_deserializer=pb.LoginRequest.FromString,
            response_serializer=pb.LoginResponse.SerializeToString,
        ),
        "Sync": grpc.unary_stream_rpc_method_handler(
            service.Sync, request_deserializer=pb.SyncRequest.FromString, response_serializer=bytes
        ),
    }
    server.add_generic_rpc_handlers(
        (grpc.method_handlers_generic_handler("meshroute.v1.Management", handlers),)
    )
    try:
        if tls is not None:
            key, cert = tls
            server.add_secure_port(address, grpc.ssl_server_credentials([(key, cert)]))
        else:
            server.add_insecure_port(address)
    except RuntimeError as exc:
        raise ValueError(f"cannot listen for agent sync on {address}: {exc}") from None
    return server
