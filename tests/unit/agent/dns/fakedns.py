"""A DNS server for tests, on loopback in the test process (free ports, no root), written with
plain asyncio and dnspython so that it does not share code with what it tests.

`FakeUpstream(records)`: `records` maps a lower-case name (no final dot) to zone lines for its
answer section, for every query type (lines of other types are filtered by the question's type,
CNAMEs always go along). Unknown names get NXDOMAIN. `rcode` forces an RCODE, `silent` drops every
query, `truncate_udp` answers UDP with TC set and the records only over TCP, `delay` waits before
answering. Every query is recorded in `queries` as (name, type name, "udp"|"tcp", wire).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
from collections.abc import Mapping, Sequence
from typing import Any

import dns.flags
import dns.message
import dns.rcode
import dns.rdatatype
import dns.rrset


class FakeUpstream:
    def __init__(
        self,
        records: Mapping[str, Sequence[str]] | None = None,
        *,
        rcode: int | None = None,
        silent: bool = False,
        truncate_udp: bool = False,
        delay: float = 0.0,
    ) -> None:
        self.records = dict(records or {})
        self.rcode = rcode
        self.silent = silent
        self.truncate_udp = truncate_udp
        self.delay = delay
        self.queries: list[tuple[str, str, str, bytes]] = []
        self.address: tuple[str, int] = ("127.0.0.1", 0)
        self._udp: asyncio.DatagramTransport | None = None
        self._tcp: asyncio.Server | None = None
        self._tasks: set[asyncio.Future[None]] = set()

    async def start(self, host: str = "127.0.0.1") -> tuple[str, int]:
        loop = asyncio.get_running_loop()
        for _ in range(20):
            udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            udp.bind((host, 0))
            port = udp.getsockname()[1]
            tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            try:
                tcp.bind((host, port))
            except OSError:
                udp.close()
                tcp.close()
                continue
            break
        else:
            raise RuntimeError("no free port")
        upstream = self

        class Proto(asyncio.DatagramProtocol):
            def connection_made(self, transport: asyncio.BaseTransport) -> None:
                self.transport = transport

            def datagram_received(self, data: bytes, addr: Any) -> None:
                task = asyncio.ensure_future(self.reply(data, addr))
                upstream._tasks.add(task)
                task.add_done_callback(upstream._tasks.discard)

            async def reply(self, data: bytes, addr: Any) -> None:
                answer = await upstream.answer(data, "udp")
                if answer is not None:
                    self.transport.sendto(answer, addr)  # type: ignore[attr-defined]

        self._udp, _ = await loop.create_datagram_endpoint(Proto, sock=udp)
        tcp.listen(16)
        tcp.setblocking(False)
        self._tcp = await asyncio.start_server(self._serve_tcp, sock=tcp)
        self.address = (host, port)
        return self.address

    async def stop(self) -> None:
        if self._udp is not None:
            self._udp.close()
        if self._tcp is not None:
            self._tcp.close()

    async def __aenter__(self) -> FakeUpstream:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def _serve_tcp(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(asyncio.IncompleteReadError, ConnectionError):
            while True:
                (size,) = struct.unpack("!H", await reader.readexactly(2))
                answer = await self.answer(await reader.readexactly(size), "tcp")
                if answer is not None:
                    writer.write(struct.pack("!H", len(answer)) + answer)
                    await writer.drain()
        writer.close()

    def names(self, transport: str | None = None) -> list[str]:
        return [q[0] for q in self.queries if transport is None or q[2] == transport]

    async def answer(self, wire: bytes, transport: str) -> bytes | None:
        query = dns.message.from_wire(wire)
        q = query.question[0]
        name = q.name.to_text(omit_final_dot=True).lower()
        self.queries.append((name, dns.rdatatype.to_text(q.rdtype), transport, wire))
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.silent:
            return None
        reply = dns.message.make_response(query, recursion_available=True)
        if self.rcode is not None:
            reply.set_rcode(dns.rcode.Rcode(self.rcode))
            return reply.to_wire()
        if self.truncate_udp and transport == "udp":
            reply.flags |= dns.flags.TC
            return reply.to_wire()
        lines = self.records.get(name)
        if lines is None:
            reply.set_rcode(dns.rcode.NXDOMAIN)
            return reply.to_wire()
        for line in lines:
            owner, ttl, _cls, kind, *data = line.split()
            if (
                kind != "CNAME"
                and q.rdtype != dns.rdatatype.ANY
                and dns.rdatatype.from_text(kind) != q.rdtype
            ):
                continue
            rrset = dns.rrset.from_text(owner, int(ttl), "IN", kind, " ".join(data))
            for existing in reply.answer:
                if existing.name == rrset.name and existing.rdtype == rrset.rdtype:
                    for rdata in rrset:
                        existing.add(rdata)
                    break
            else:
                reply.answer.append(rrset)
        return reply.to_wire()
