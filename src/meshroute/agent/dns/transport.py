"""DNS over UDP and TCP: a small server (both transports on one address and port) and one-shot
exchanges with an upstream, on raw messages so that what is forwarded is forwarded byte for byte
(ID, flags, EDNS options, everything).

An exchange uses a fresh connected UDP socket (a random source port per query, and the kernel
delivers only the upstream's datagrams to it); an answer must carry the query's ID. A truncated
UDP answer (TC) is asked again over TCP. Errors are `ExchangeError` (timeouts included).

The server answers every message with what its handler returns (None: no answer). A UDP answer
larger than the client can take (512 bytes, or its EDNS payload size) is replaced by a truncated
one (header and question, TC set) so the client asks again over TCP.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import socket
import struct
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any, cast

import dns.exception
import dns.flags
import dns.message
import dns.rcode

log = logging.getLogger(__name__)

HEADER = 12
MAX_MESSAGE = 65535
MIN_UDP_PAYLOAD = 512
TCP_IDLE_S = 10.0
MAX_INFLIGHT = 1024  # UDP queries being handled at once; beyond that, datagrams are dropped
_TC = 0x02  # in the third header byte
_QR = 0x80

Server = tuple[str, int]


class ExchangeError(Exception):
    """No usable answer from an upstream (timeout, refused, closed, garbled)."""


@dataclass(frozen=True, slots=True)
class Client:
    """Who asked: the client's address and port, the local address it asked, and over what."""

    host: str
    port: int
    local: str
    tcp: bool


Handler = Callable[[bytes, Client], Awaitable[bytes | None]]
_TcpServe = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


# -- raw messages ----------------------------------------------------------------------------------
def message_id(wire: bytes) -> bytes:
    return wire[:2]


def rcode_of(wire: bytes) -> int:
    """The header's RCODE (extended RCODEs live in EDNS; what matters here fits in four bits)."""
    return wire[3] & 0x0F if len(wire) >= 4 else dns.rcode.FORMERR


def truncated(wire: bytes) -> bool:
    return len(wire) >= 3 and bool(wire[2] & _TC)


def error_reply(query: bytes, rcode: int) -> bytes | None:
    """A reply with `rcode` to a raw query (question and EDNS echoed); None if it has no header."""
    if len(query) < HEADER or query[2] & _QR:
        return None
    try:
        msg = dns.message.from_wire(query)
    except dns.exception.DNSException:
        # Header only: the ID, opcode and RD bit back, QR set, no sections.
        flags = (query[2] & 0x79) | _QR
        return query[:2] + bytes([flags, rcode & 0x0F]) + b"\x00" * 8
    reply = dns.message.make_response(msg, recursion_available=True)
    reply.set_rcode(dns.rcode.Rcode(rcode))
    return reply.to_wire()


def udp_limit(query: bytes) -> int:
    """How large a UDP answer the client takes: its EDNS payload size, at least 512."""
    try:
        msg = dns.message.from_wire(query)
    except dns.exception.DNSException:
        return MIN_UDP_PAYLOAD
    if msg.edns < 0:
        return MIN_UDP_PAYLOAD
    return max(MIN_UDP_PAYLOAD, min(msg.payload, MAX_MESSAGE))


def truncate_for_udp(query: bytes, reply: bytes) -> bytes:
    """`reply` if it fits the client's UDP limit, else a truncated answer (TC) to retry over TCP."""
    if len(reply) <= MIN_UDP_PAYLOAD or len(reply) <= udp_limit(query):
        return reply
    try:
        msg = dns.message.from_wire(reply)
        short = dns.message.make_response(dns.message.from_wire(query), recursion_available=True)
    except dns.exception.DNSException:
        return reply[:2] + bytes([reply[2] | _TC, reply[3]]) + b"\x00" * 8
    short.flags = msg.flags | dns.flags.TC
    short.set_rcode(msg.rcode())
    return short.to_wire()


# -- exchanges with an upstream --------------------------------------------------------------------
def _family(host: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ":" in host else socket.AF_INET


async def exchange_udp(wire: bytes, server: Server, timeout: float) -> bytes:
    loop = asyncio.get_running_loop()
    sock = socket.socket(_family(server[0]), socket.SOCK_DGRAM)
    try:
        sock.setblocking(False)
        sock.connect(server)  # a UDP connect is immediate; only the server's datagrams reach us
        async with asyncio.timeout(timeout):
            await loop.sock_sendall(sock, wire)
            while True:
                data = await loop.sock_recv(sock, MAX_MESSAGE)
                if len(data) >= HEADER and data[:2] == wire[:2] and data[2] & _QR:
                    return data
    except TimeoutError:
        raise ExchangeError(f"no answer from {show_server(server)} within {timeout:g} s") from None
    except OSError as exc:
        raise ExchangeError(f"{show_server(server)}: {exc.strerror or exc}") from None
    finally:
        sock.close()


async def exchange_tcp(wire: bytes, server: Server, timeout: float) -> bytes:
    writer: asyncio.StreamWriter | None = None
    try:
        async with asyncio.timeout(timeout):
            reader, writer = await asyncio.open_connection(server[0], server[1])
            writer.write(struct.pack("!H", len(wire)) + wire)
            await writer.drain()
            while True:
                (size,) = struct.unpack("!H", await reader.readexactly(2))
                data = await reader.readexactly(size)
                if len(data) >= HEADER and data[:2] == wire[:2] and data[2] & _QR:
                    return data
    except TimeoutError:
        raise ExchangeError(f"no answer from {show_server(server)} over TCP within {timeout:g} s") from None
    except (OSError, asyncio.IncompleteReadError) as exc:
        raise ExchangeError(f"{show_server(server)} over TCP: {exc}") from None
    finally:
        if writer is not None:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()


async def exchange(wire: bytes, server: Server, timeout: float, tcp: bool = False) -> bytes:
    """UDP first (unless `tcp`), then TCP when the UDP answer is truncated; one `timeout` for
    the whole exchange."""
    if tcp:
        return await exchange_tcp(wire, server, timeout)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    answer = await exchange_udp(wire, server, timeout)
    if not truncated(answer):
        return answer
    return await exchange_tcp(wire, server, max(0.1, deadline - loop.time()))


def show_server(server: Server) -> str:
    host, port = server
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


# -- the server ------------------------------------------------------------------------------------
class _Udp(asyncio.DatagramProtocol):
    def __init__(self, server: DnsServer, local: str) -> None:
        self.server = server
        self.local = local
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)  # a selector transport, not a subclass

    def datagram_received(self, data: bytes, addr: tuple[str | Any, ...]) -> None:
        if len(self.server.tasks) >= self.server.max_inflight:
            return  # overloaded: the client will ask again
        client = Client(str(addr[0]), int(addr[1]), self.local, tcp=False)
        task = asyncio.ensure_future(self._answer(data, client, addr))
        self.server.tasks.add(task)
        task.add_done_callback(self.server.tasks.discard)

    async def _answer(self, data: bytes, client: Client, addr: tuple[str | Any, ...]) -> None:
        reply = await self.server.call(data, client)
        if reply is not None and self.transport is not None and not self.transport.is_closing():
            self.transport.sendto(truncate_for_udp(data, reply), addr)

    def error_received(self, exc: Exception) -> None:
        log.debug("DNS server on %s: %s", self.local, exc)


class DnsServer:
    """One handler behind UDP and TCP listeners on any number of (address, port) pairs."""

    def __init__(
        self,
        handler: Handler,
        *,
        max_inflight: int = MAX_INFLIGHT,
        tcp_idle: float = TCP_IDLE_S,
        freebind: bool = False,
    ) -> None:
        self.handler = handler
        self.max_inflight = max_inflight
        self.tcp_idle = tcp_idle
        self.freebind = freebind
        self.tasks: set[asyncio.Future[None]] = set()
        self.bound: list[Server] = []
        self._udp: list[asyncio.DatagramTransport] = []
        self._tcp: list[asyncio.Server] = []
        self._conns: set[asyncio.StreamWriter] = set()

    @classmethod
    async def open(cls, handler: Handler, listen: Iterable[Server], *, freebind: bool = False) -> DnsServer:
        """Listening on every (address, port), UDP and TCP; on failure nothing stays bound."""
        server = cls(handler, freebind=freebind)
        try:
            for host, port in listen:
                await server.listen(host, port)
        except BaseException:
            await server.close()
            raise
        return server

    async def call(self, data: bytes, client: Client) -> bytes | None:
        try:
            return await self.handler(data, client)
        except Exception:
            log.exception("DNS handler failed for a query from %s", client.host)
            return error_reply(data, dns.rcode.SERVFAIL)

    async def listen(self, host: str, port: int) -> Server:
        """Bind UDP and TCP on host:port (port 0: one free port for both); returns what was bound."""
        for _ in range(20):
            udp_sock = self._socket(host, socket.SOCK_DGRAM)
            try:
                udp_sock.bind((host, port))
            except OSError:
                udp_sock.close()
                raise
            bound_port = int(udp_sock.getsockname()[1])
            tcp_sock = self._socket(host, socket.SOCK_STREAM)
            tcp_sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                tcp_sock.bind((host, bound_port))
            except OSError as exc:
                udp_sock.close()
                tcp_sock.close()
                if port == 0 and exc.errno == errno.EADDRINUSE:
                    continue  # that UDP port's TCP twin is taken: another free port
                raise
            break
        else:
            raise OSError(errno.EADDRINUSE, f"no free port on {host} for both UDP and TCP")
        loop = asyncio.get_running_loop()
        transport, _ = await loop.create_datagram_endpoint(lambda: _Udp(self, host), sock=udp_sock)
        self._udp.append(transport)
        tcp_sock.listen(128)
        tcp_sock.setblocking(False)
        server = await asyncio.start_server(self._tcp_client(host), sock=tcp_sock)
        self._tcp.append(server)
        self.bound.append((host, bound_port))
        return host, bound_port

    def _socket(self, host: str, kind: socket.SocketKind) -> socket.socket:
        sock = socket.socket(_family(host), kind)
        if self.freebind:  # bind an address the interface does not have yet
            sock.setsockopt(socket.SOL_IP, getattr(socket, "IP_FREEBIND", 15), 1)
        return sock

    def _tcp_client(
        self, local: str
    ) -> Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]:
        async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            peer = writer.get_extra_info("peername")
            client = Client(str(peer[0]), int(peer[1]), local, tcp=True)
            self._conns.add(writer)
            try:
                while True:
                    async with asyncio.timeout(self.tcp_idle):
                        (size,) = struct.unpack("!H", await reader.readexactly(2))
                        data = await reader.readexactly(size)
                    reply = await self.call(data, client)
                    if reply is None:
                        continue
                    writer.write(struct.pack("!H", len(reply)) + reply)
                    await writer.drain()
            except (TimeoutError, asyncio.IncompleteReadError, OSError):
                pass
            finally:
                self._conns.discard(writer)
                writer.close()
                with contextlib.suppress(OSError):
                    await writer.wait_closed()

        return serve

    async def close(self) -> None:
        for transport in self._udp:
            transport.close()
        for server in self._tcp:
            server.close()
        for writer in list(self._conns):
            writer.close()
        # (a handler may be the one closing: it is neither cancelled nor awaited here)
        others = [t for t in self.tasks if t is not asyncio.current_task()]
        for task in others:
            task.cancel()
        await asyncio.gather(*others, return_exceptions=True)
        for server in self._tcp:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(server.wait_closed(), 1.0)
        self._udp.clear()
        self._tcp.clear()
        self.bound.clear()
