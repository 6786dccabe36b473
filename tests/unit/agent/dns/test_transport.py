"""Raw DNS exchanges and the server's UDP limits (dns/transport.py)."""

from __future__ import annotations

import asyncio
import socket

import dns.flags
import dns.message
import dns.rcode
import dns.rrset
import pytest

from meshroute.agent.dns.transport import (
    Client,
    DnsServer,
    ExchangeError,
    error_reply,
    exchange,
    exchange_udp,
    rcode_of,
    truncate_for_udp,
    udp_limit,
)
from tests.unit.agent.fakes import run


def big_reply(query: dns.message.Message, n: int = 100) -> dns.message.Message:
    reply = dns.message.make_response(query)
    name = query.question[0].name
    reply.answer.append(
        dns.rrset.from_text_list(name, 60, "IN", "A", [f"10.1.{i // 250}.{i % 250}" for i in range(n)])
    )
    return reply


def test_an_answer_with_another_id_or_not_an_answer_is_ignored() -> None:
    """Only a reply with the query's ID (and QR set) ends the exchange: a spoofed or stray datagram
    from the server's address does not."""

    async def main() -> None:
        loop = asyncio.get_running_loop()
        server = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        server.bind(("127.0.0.1", 0))
        server.setblocking(False)
        query = dns.message.make_query("a.test", "A")
        good = dns.message.make_response(query)
        good.answer.append(dns.rrset.from_text("a.test.", 60, "IN", "A", "10.0.0.1"))

        async def serve() -> None:
            data, addr = await loop.sock_recvfrom(server, 512)
            wrong = bytearray(good.to_wire())
            wrong[0] ^= 0xFF
            await loop.sock_sendto(server, bytes(wrong), addr)
            await loop.sock_sendto(server, data, addr)  # the query itself echoed: QR not set
            await loop.sock_sendto(server, good.to_wire(), addr)

        task = asyncio.create_task(serve())
        got = await exchange_udp(query.to_wire(), server.getsockname(), 2.0)
        await task
        server.close()
        assert got == good.to_wire()

    run(main())


def test_exchange_errors() -> None:
    async def main() -> None:
        silent = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        silent.bind(("127.0.0.1", 0))
        wire = dns.message.make_query("a.test", "A").to_wire()
        with pytest.raises(ExchangeError, match=r"no answer from 127\.0\.0\.1:\d+ within 0\.2 s"):
            await exchange(wire, silent.getsockname(), 0.2)
        with pytest.raises(ExchangeError, match="over TCP"):
            await exchange(wire, silent.getsockname(), 0.2, tcp=True)  # nobody listens on TCP
        silent.close()

    run(main())


def test_error_replies_keep_the_id_and_question() -> None:
    query = dns.message.make_query("a.test", "AAAA", use_edns=0)
    reply = dns.message.from_wire(error_reply(query.to_wire(), dns.rcode.SERVFAIL) or b"")
    assert reply.id == query.id and reply.rcode() == dns.rcode.SERVFAIL
    assert reply.question == query.question and reply.edns == 0 and reply.flags & dns.flags.QR
    header_only = error_reply(b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\x03ab", dns.rcode.FORMERR)
    assert header_only == b"\x12\x34\x81\x01" + b"\x00" * 8
    assert rcode_of(header_only) == dns.rcode.FORMERR
    assert error_reply(b"\x12", dns.rcode.FORMERR) is None
    assert error_reply(dns.message.make_response(query).to_wire(), dns.rcode.SERVFAIL) is None


def test_udp_limits_follow_the_clients_edns_size() -> None:
    plain = dns.message.make_query("a.test", "A")
    edns = dns.message.make_query("a.test", "A", use_edns=0, payload=4096)
    assert udp_limit(plain.to_wire()) == 512 and udp_limit(edns.to_wire()) == 4096
    assert udp_limit(b"garbage") == 512
    big = big_reply(plain).to_wire()
    assert len(big) > 512
    short = dns.message.from_wire(truncate_for_udp(plain.to_wire(), big))
    assert short.flags & dns.flags.TC and short.answer == [] and short.id == plain.id
    fits = big_reply(edns).to_wire()
    assert truncate_for_udp(edns.to_wire(), fits) == fits
    small = dns.message.make_response(plain).to_wire()
    assert truncate_for_udp(plain.to_wire(), small) == small


def test_a_handler_that_raises_answers_servfail() -> None:
    async def main() -> None:
        async def broken(wire: bytes, client: Client) -> bytes | None:
            raise RuntimeError("bug")

        server = DnsServer(broken)
        host, port = await server.listen("127.0.0.1", 0)
        try:
            q = dns.message.make_query("a.test", "A").to_wire()
            reply = await exchange(q, (host, port), 2.0)
            assert rcode_of(reply) == dns.rcode.SERVFAIL
            reply = await exchange(q, (host, port), 2.0, tcp=True)
            assert rcode_of(reply) == dns.rcode.SERVFAIL
        finally:
            await server.close()
        assert server.bound == []

    run(main())
