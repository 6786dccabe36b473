"""The agent protocol over gRPC (asyncio): Login, the Sync stream and ReportStatus."""

from __future__ import annotations

import asyncio
import ipaddress
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import grpc
from google.protobuf.message import DecodeError

from meshroute.core.agent_input import route_state
from meshroute.core.errors import (
    InvalidArgument,
    MeshrouteError,
    PermissionDenied,
    TooManyRequests,
    Unauthorized,
)
from meshroute.core.model import Peer
from meshroute.protocol import convert
from meshroute.protocol import meshroute_pb2 as pb
from meshroute.protocol.wire import (
    CREDENTIAL_MD,
    KEEPALIVE_TIME_MS,
    KEEPALIVE_TIMEOUT_MS,
    PEER_DELETED,
    PEER_KEY_MD,
    RETRY_AFTER_MD,
)
from meshroute.server.clock import utcnow
from meshroute.server.services import Services
from meshroute.server.services.peers import PeerMetaUpdate, PeerRegistration
from meshroute.server.sync.engine import MapEngine
from meshroute.server.sync.errors import grpc_status
from meshroute.server.sync.hub import FULL, Session, SyncHub
from meshroute.server.throttle import AuthThrottle
from meshroute.server.views import Views

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class _Undecodable:
    """A request payload that is no valid message: answered INVALID_ARGUMENT by the handler
    (a deserializer that raises makes gRPC log a traceback and answer an opaque status)."""

    message_type: str
    size: int
    reason: str


def _decoder(message: Any) -> Callable[[bytes], Any]:
    def decode(raw: bytes) -> Any:
        try:
            return message.FromString(raw)
        except DecodeError as exc:
            return _Undecodable(message.DESCRIPTOR.name, len(raw), str(exc).rsplit(": ", 1)[-1])

    return decode


async def _refuse_undecodable(request: Any, context: grpc.aio.ServicerContext) -> None:
    if isinstance(request, _Undecodable):
        log.warning(
            "undecodable %s from %s (%d bytes): %s",
            request.message_type,
            context.peer(),
            request.size,
            request.reason,
        )
        await context.abort(
            grpc.StatusCode.INVALID_ARGUMENT, f"malformed {request.message_type}: {request.reason}"
        )


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
    def __init__(
        self, services: Services, views: Views, engine: MapEngine, hub: SyncHub, throttle: AuthThrottle
    ) -> None:
        self.services = services
        self.views = views
        self.engine = engine
        self.hub = hub
        self.throttle = throttle

    async def _check_throttle(self, context: grpc.aio.ServicerContext) -> str:
        """The caller's address, once it is known that it may try to authenticate."""
        source = _peer_ip(context.peer())
        try:
            self.throttle.check(source)
        except TooManyRequests as exc:
            await context.abort(
                grpc_status(exc),
                exc.message,
                trailing_metadata=((RETRY_AFTER_MD, str(exc.retry_after)),),
            )
        return source

    async def _authenticate(self, context: grpc.aio.ServicerContext) -> Peer:
        source = await self._check_throttle(context)
        md = dict(context.invocation_metadata() or ())
        key, credential = md.get(PEER_KEY_MD, ""), md.get(CREDENTIAL_MD, "")
        if not key or not credential:
            self.throttle.failed(source)
            await context.abort(grpc.StatusCode.UNAUTHENTICATED, "peer key and credential required")
        try:
            return await asyncio.to_thread(self.services.peers.authenticate, str(key), str(credential))
        except Unauthorized as exc:
            self.throttle.failed(source)
            await context.abort(grpc_status(exc), exc.message)
            raise  # unreachable: abort raises

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

    async def Login(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        await _refuse_undecodable(request, context)
        try:
            return await self._login(request, context)
        except grpc.aio.AbortError:
            raise
        except Exception:
            _if_caller_gone(context)
            # The detail (SQL, parameters, a traceback) stays in the log; the agent learns nothing.
            log.exception("Login from %s failed", context.peer())
            await context.abort(grpc.StatusCode.INTERNAL, "internal error")
            raise  # unreachable: abort raises

    async def _login(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
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
                source = await self._check_throttle(context)
                try:
                    peer, credential = await asyncio.to_thread(self.services.peers.register, reg)
                except PermissionDenied:  # unknown, expired, revoked or used-up setup key
                    self.throttle.failed(source)
                    raise
            else:
                peer = await self._authenticate(context)
                if request.wg_public_key and request.wg_public_key != peer.key:
                    await context.abort(
                        grpc.StatusCode.PERMISSION_DENIED, "public key does not match credential"
                    )
                meta.connection_ip = _peer_ip(context.peer())
                peer = await asyncio.to_thread(self.services.peers.update_meta, peer, meta)
        except MeshrouteError as exc:
            await context.abort(grpc_status(exc), exc.message)
        account = await asyncio.to_thread(self.views.agent_account, peer.account_id)
        return pb.LoginResponse(
            peer_id=peer.id,
            credential=credential,
            ip=f"{peer.ip}/{account.network_v4.prefixlen}",
            ipv6=f"{peer.ipv6}/{account.network_v6.prefixlen}" if peer.ipv6 and peer.ipv6_capable else "",
            account_id=peer.account_id,
            serial=account.network_serial,
        )

    async def Sync(self, request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
        await _refuse_undecodable(request, context)
        try:
            async for message in self._sync(context):
                yield message
        except grpc.aio.AbortError:
            raise
        except Exception:
            _if_caller_gone(context)
            log.exception("Sync stream of %s failed", context.peer())
            await context.abort(grpc.StatusCode.INTERNAL, "internal error")

    async def _sync(self, context: grpc.aio.ServicerContext) -> AsyncIterator[bytes]:
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
                    exists = self.views.peer_exists
                    if snapshot is None and await asyncio.to_thread(exists, peer.account_id, peer.id):
                        snapshot = await self._await_engine(peer)
                    if snapshot is None:
                        await context.abort(grpc.StatusCode.NOT_FOUND, PEER_DELETED)
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

    async def ReportStatus(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        """The agent's last word on its routes; authenticated (and throttled) as Sync is."""
        await _refuse_undecodable(request, context)
        try:
            peer = await self._authenticate(context)
            try:
                await asyncio.to_thread(self._report_status, peer, request)
            except MeshrouteError as exc:
                await context.abort(grpc_status(exc), exc.message)
            return pb.StatusAck()
        except grpc.aio.AbortError:
            raise
        except Exception:
            _if_caller_gone(context)
            log.exception("ReportStatus from %s failed", context.peer())
            await context.abort(grpc.StatusCode.INTERNAL, "internal error")
            raise  # unreachable: abort raises

    def _report_status(self, peer: Peer, request: Any) -> None:
        try:
            report = convert.status_from_pb(request)
        except ValueError:  # a state this version does not know: name it
            for use in request.routes:
                route_state(use.state)
            raise InvalidArgument("invalid status report") from None
        self.services.peers.report_status(peer, report)

    def disconnect_all(self) -> None:
        """At shutdown, before the streams are cut: their own clean-up may never get to run."""
        for session in self.hub.sessions():
            if session.connected_at is not None:
                self.services.peers.set_disconnected(session.peer_id, session.connected_at, utcnow())
                session.connected_at = None


def _if_caller_gone(context: grpc.aio.ServicerContext) -> None:
    """A caller that hung up (an agent stopping, `meshroute sim` exiting on a refusal while other
    calls are in flight) makes the answer itself fail: no server error, nothing to tell anyone.
    Raised as a cancellation, which gRPC takes quietly."""
    if context.cancelled() or context.done():
        log.debug("call from %s ended before its answer: the caller went away", context.peer())
        raise asyncio.CancelledError


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
        # An agent whose network is cut is seen disconnected within 15 s (ping every 10 s, 5 s to
        # answer); agents may ping as often as every 5 s.
        ("grpc.keepalive_time_ms", KEEPALIVE_TIME_MS),
        ("grpc.keepalive_timeout_ms", KEEPALIVE_TIMEOUT_MS),
        ("grpc.http2.min_ping_interval_without_data_ms", KEEPALIVE_TIMEOUT_MS),
        ("grpc.keepalive_permit_without_calls", 1),
        ("grpc.max_concurrent_streams", 100000),
        # gRPC turns SO_REUSEPORT on by default: a second server on the same port would silently
        # take half of the agents. Fail to bind instead.
        ("grpc.so_reuseport", 0),
    ]
    server = grpc.aio.server(options=options)
    # Registered by hand rather than with the generated helper: Sync yields pre-encoded bytes
    # (see convert.full_response_bytes), so its responses must not be serialized again; and every
    # request decodes through `_decoder`, so that an undecodable one is answered INVALID_ARGUMENT.
    handlers = {
        "Login": grpc.unary_unary_rpc_method_handler(
            service.Login,
            request_deserializer=_decoder(pb.LoginRequest),
            response_serializer=pb.LoginResponse.SerializeToString,
        ),
        "Sync": grpc.unary_stream_rpc_method_handler(
            service.Sync, request_deserializer=_decoder(pb.SyncRequest), response_serializer=bytes
        ),
        "ReportStatus": grpc.unary_unary_rpc_method_handler(
            service.ReportStatus,
            request_deserializer=_decoder(pb.StatusReport),
            response_serializer=pb.StatusAck.SerializeToString,
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
