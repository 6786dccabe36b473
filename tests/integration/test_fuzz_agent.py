"""Property-based fuzzing of the agent protocol (issue 9): `Login`, `Sync` and `ReportStatus`
messages drawn from every field's edges (odd and huge text, NUL, control characters, long and
malformed endpoint lists, bad keys, valid and invalid setup keys and credentials, unknown route
states, reports over their limits) and raw payloads that are no message at all, against a real
server on SQLite and on PostgreSQL.

The oracle: every answer is one of the statuses the protocol documents (never UNKNOWN or
INTERNAL), no status detail carries SQL or a traceback, and whatever was accepted is stored within
the agent-input rules. Throttling is off here so that validation, not the throttle, answers.
"""

from __future__ import annotations

import base64
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, select

from meshroute.core.agent_input import check_agent_meta, check_status_report
from meshroute.core.status import RouteState
from meshroute.protocol import meshroute_pb2 as pb
from meshroute.protocol import meshroute_pb2_grpc as pb_grpc
from meshroute.server.store import tables as t
from meshroute.server.store.mapping import report_from_json
from meshroute.server.throttle import ThrottleSettings
from tests.integration.test_sync import Running, start_server

FUZZ_SCALE = float(os.environ.get("MESHROUTE_FUZZ_SCALE", "1"))
DERANDOMIZE = os.environ.get("CI", "").lower() == "true"
SQLITE_EXAMPLES = max(1, int(80 * FUZZ_SCALE))
POSTGRES_EXAMPLES = max(1, int(30 * FUZZ_SCALE))

EXPECTED = {
    grpc.StatusCode.OK,
    grpc.StatusCode.INVALID_ARGUMENT,
    grpc.StatusCode.PERMISSION_DENIED,
    grpc.StatusCode.UNAUTHENTICATED,
    grpc.StatusCode.ALREADY_EXISTS,
    grpc.StatusCode.NOT_FOUND,
}
LEAKS = ("SELECT", "INSERT", "UPDATE ", "SQL", "Traceback", "psycopg", "sqlite3", "Error:")


@pytest.fixture
def server(engine: Engine, tmp_path: Path) -> Iterator[Running]:
    url = engine.url.render_as_string(hide_password=False)
    yield from start_server(tmp_path, url, throttle=ThrottleSettings(max_failures=0))


def wg_key() -> str:
    return base64.b64encode(os.urandom(32)).decode()


odd_text = st.one_of(
    st.text(max_size=40),
    st.sampled_from(["", " ", "\x00", "a\x00b", "\n", "\x7f", "\x85", "😀" * 70, "é" * 256, "x" * 300]),
    st.text(st.characters(min_codepoint=0, max_codepoint=0x9F), max_size=10),
    st.builds(
        lambda c, n: c * n, st.sampled_from(["a", "é", "\x00"]), st.sampled_from([64, 65, 255, 256, 5000])
    ),
)
endpoint = st.one_of(
    st.sampled_from(
        [
            "172.31.0.3:51820",
            "[fd00::1]:51820",
            "[fe80::1%eth0]:51820",
            "vpn.example.com:51820",
            "1.2.3.4:0",
            "1.2.3.4:65536",
            "fd00::1:51820",
            "[fd00::1]",
            "300.1.1.1:1",
            "host:port",
            ":",
            "",
        ]
    ),
    st.builds(lambda ip, port: f"{ip}:{port}", st.ip_addresses(v=4).map(str), st.integers(-5, 70_000)),
    st.builds(lambda ip, port: f"[{ip}]:{port}", st.ip_addresses(v=6).map(str), st.integers(0, 65_536)),
    odd_text,
)
endpoints = st.one_of(
    st.lists(endpoint, max_size=6),
    st.sampled_from([31, 32, 33, 300]).map(lambda n: [f"10.0.{i // 250}.{i % 250}:51820" for i in range(n)]),
    st.sampled_from([1000, 30_000]).map(lambda n: ["x" * 100] * n),
)
# gRPC metadata values are printable ASCII (the client itself refuses anything else).
header_text = st.one_of(
    st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), max_size=60),
    st.sampled_from(["", "x" * 4000]),
)
metas = st.builds(
    pb.PeerMeta,
    hostname=odd_text,
    os=odd_text,
    kernel_version=odd_text,
    agent_version=odd_text,
    endpoints=endpoints,
    ipv6=st.booleans(),
)
keys = st.one_of(
    st.builds(wg_key),
    st.sampled_from(["", "short", "A" * 44, base64.b64encode(b"x" * 31).decode(), "not base64!!"]),
    odd_text,
)
payloads = st.one_of(
    st.binary(max_size=64),
    st.sampled_from(
        [b"\xff\xff\xff", b"\x12\x02\xed\xa0", b"\x0a\x80", b"\x08\x80", b"\x1a\xff\xff\xff\x0f"]
    ),
)


def check_status(err: grpc.RpcError, what: object) -> None:
    code, details = err.code(), err.details() or ""  # type: ignore[attr-defined]
    assert code in EXPECTED, f"{code} {details!r} for {what!r}"
    assert not any(leak in details for leak in LEAKS), f"{details!r} for {what!r}"


def stored_peers(engine: Engine) -> list[Any]:
    with engine.connect() as conn:
        return list(conn.execute(select(t.peers)))


def examples(engine: Engine) -> int:
    return SQLITE_EXAMPLES if engine.dialect.name == "sqlite" else POSTGRES_EXAMPLES


def test_fuzz_login(server: Running, engine: Engine) -> None:
    valid_key = server.setup_key()
    channel = grpc.insecure_channel(server.sync)
    stub = pb_grpc.ManagementStub(channel)  # type: ignore[no-untyped-call]
    joined: dict[str, str] = {}  # wg key -> credential, of peers that registered
    setup_keys = st.one_of(st.just(valid_key), st.sampled_from(["", "nope", valid_key.lower()]), odd_text)

    @settings(
        max_examples=examples(engine),
        deadline=None,
        database=None,
        derandomize=DERANDOMIZE,
        suppress_health_check=list(HealthCheck),
    )
    @given(
        key=keys,
        setup_key=setup_keys,
        meta=st.one_of(st.none(), metas),
        relogin=st.booleans(),
        credential=st.one_of(st.none(), header_text),
    )
    def run(key: str, setup_key: str, meta: Any, relogin: bool, credential: str | None) -> None:
        request = pb.LoginRequest(wg_public_key=key, meta=meta)
        metadata = None
        if relogin and joined:
            key, real = next(iter(joined.items()))
            request = pb.LoginRequest(wg_public_key=key, meta=meta)
            metadata = (("x-meshroute-peer-key", key), ("x-meshroute-credential", credential or real))
        else:
            request.setup_key = setup_key
        try:
            response = stub.Login(request, metadata=metadata, timeout=30)
        except grpc.RpcError as err:
            check_status(err, request)
            return
        if response.credential:
            joined[key] = response.credential

    try:
        run()
    finally:
        channel.close()
    for row in stored_peers(engine):
        check_agent_meta(
            hostname=row.hostname,
            os=row.os,
            kernel_version=row.kernel_version,
            agent_version=row.version,
            endpoints=list(row.endpoints),
        )


def test_fuzz_sync_and_raw_payloads(server: Running, engine: Engine) -> None:
    channel = grpc.insecure_channel(server.sync)
    stub = pb_grpc.ManagementStub(channel)  # type: ignore[no-untyped-call]
    wg = wg_key()
    joined = stub.Login(
        pb.LoginRequest(wg_public_key=wg, setup_key=server.setup_key(), meta=pb.PeerMeta(hostname="real")),
        timeout=30,
    )
    raw_login = channel.unary_unary("/meshroute.v1.Management/Login")
    raw_sync = channel.unary_stream("/meshroute.v1.Management/Sync")

    @settings(
        max_examples=examples(engine),
        deadline=None,
        database=None,
        derandomize=DERANDOMIZE,
        suppress_health_check=list(HealthCheck),
    )
    @given(
        serial=st.integers(0, 2**64 - 1),
        peer_key=st.one_of(st.just(wg), keys),
        credential=st.one_of(st.just(joined.credential), header_text),
        payload=payloads,
        raw=st.booleans(),
    )
    def run(serial: int, peer_key: str, credential: str, payload: bytes, raw: bool) -> None:
        if raw:
            for call in (lambda: raw_login(payload, timeout=30), lambda: next(raw_sync(payload, timeout=30))):
                try:
                    call()
                except grpc.RpcError as err:
                    check_status(err, payload)
            return
        metadata = (("x-meshroute-peer-key", peer_key), ("x-meshroute-credential", credential))
        if not (peer_key.isascii() and peer_key.isprintable() and peer_key.strip() == peer_key):
            metadata = (("x-meshroute-credential", credential),)  # gRPC metadata is ASCII text
        stream = stub.Sync(pb.SyncRequest(known_serial=serial), metadata=metadata, timeout=30)
        try:
            first = next(stream)
            assert first.WhichOneof("update") == "full"
            assert (peer_key, credential) == (wg, joined.credential)
        except grpc.RpcError as err:
            check_status(err, (peer_key, credential))
        finally:
            stream.cancel()

    try:
        run()
    finally:
        channel.close()
    assert [row.hostname for row in stored_peers(engine)] == ["real"]


states = st.one_of(st.sampled_from([s.value for s in RouteState]), odd_text)
route_uses = st.builds(
    pb.RouteUse,
    ha_id=odd_text,
    route_ids=st.one_of(st.lists(odd_text, max_size=4), st.sampled_from([["r"] * 10_001, ["r:p"] * 3])),
    routing_peer_id=odd_text,
    state=states,
)
requirement_checks = st.builds(pb.RequirementCheck, name=odd_text, ok=st.booleans(), detail=odd_text)
status_reports = st.builds(
    pb.StatusReport,
    routes=st.one_of(
        st.lists(route_uses, max_size=4),
        st.sampled_from([1000, 1001]).map(lambda n: [pb.RouteUse(ha_id="h", state="kept")] * n),
    ),
    checks=st.one_of(
        st.lists(requirement_checks, max_size=4),
        st.sampled_from([64, 65]).map(lambda n: [pb.RequirementCheck(name="c")] * n),
    ),
)


def test_fuzz_report_status(server: Running, engine: Engine) -> None:
    channel = grpc.insecure_channel(server.sync)
    stub = pb_grpc.ManagementStub(channel)  # type: ignore[no-untyped-call]
    wg = wg_key()
    joined = stub.Login(
        pb.LoginRequest(wg_public_key=wg, setup_key=server.setup_key(), meta=pb.PeerMeta(hostname="real")),
        timeout=30,
    )
    raw = channel.unary_unary("/meshroute.v1.Management/ReportStatus")

    @settings(
        max_examples=examples(engine),
        deadline=None,
        database=None,
        derandomize=DERANDOMIZE,
        suppress_health_check=list(HealthCheck),
    )
    @given(
        report=status_reports,
        credential=st.one_of(st.just(joined.credential), header_text),
        payload=st.one_of(st.none(), payloads),
    )
    def run(report: Any, credential: str, payload: bytes | None) -> None:
        metadata = (("x-meshroute-peer-key", wg), ("x-meshroute-credential", credential))
        try:
            if payload is not None:
                raw(payload, metadata=metadata, timeout=30)
            else:
                stub.ReportStatus(report, metadata=metadata, timeout=30)
        except grpc.RpcError as err:
            check_status(err, report if payload is None else payload)

    try:
        run()
    finally:
        channel.close()
    with engine.connect() as conn:
        rows = list(conn.execute(select(t.status_reports)))
    for row in rows:  # whatever was accepted is within the rules
        check_status_report(report_from_json(row.report))
