"""The management link: identity, refusals, retries with backoff, resync, logging, counters."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import random
import stat
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import grpc
import pytest
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from meshroute.agent import link as link_module
from meshroute.agent.identity import (
    IDENTITY_FILE,
    FileIdentityStore,
    IdentityStore,
    MemoryIdentityStore,
    StoredIdentity,
    generate_private_key,
    public_key,
)
from meshroute.agent.link import Backoff, LinkRefused, LinkState, ManagementLink
from meshroute.core.networkmap.types import MapPeer, NetworkMap
from meshroute.protocol.client import Meta, SerialGap, Update
from meshroute.protocol.wire import PEER_DELETED

from .fakes import FakeServer, ScriptEnded, rpc_error, run

Code = grpc.StatusCode
ME = MapPeer("peer-1", base64.b64encode(b"\x01" * 32).decode(), "100.64.0.1", None, "me", "me")
LINK_LOGGER = "meshroute.agent.link"


def full(serial: int) -> Update:
    return Update(NetworkMap(serial, ME, (), (), ()), True)


def delta(serial: int) -> Update:
    return Update(NetworkMap(serial, ME, (), (), ()), False)


class MaxRng(random.Random):
    """Jitter at its top: every delay is the whole capped exponential delay."""

    def uniform(self, a: float, b: float) -> float:
        return b


class MinRng(random.Random):
    def uniform(self, a: float, b: float) -> float:
        return a


@dataclass
class Sleeps:
    """What the link waited, in order (nothing waits for real)."""

    delays: list[float] = field(default_factory=list)
    on_sleep: Callable[[float], None] | None = None


@pytest.fixture
def sleeps(monkeypatch: pytest.MonkeyPatch) -> Sleeps:
    recorder = Sleeps()
    real_sleep = asyncio.sleep

    async def fake_sleep(delay: float, result: Any = None) -> Any:
        recorder.delays.append(delay)
        if recorder.on_sleep is not None:
            recorder.on_sleep(delay)
        await real_sleep(0)
        return result

    class _AsyncioInLink:
        """The link module's view of asyncio, with `sleep` recorded instead of waited."""

        sleep = staticmethod(fake_sleep)

        def __getattr__(self, name: str) -> Any:
            return getattr(asyncio, name)

    monkeypatch.setattr(link_module, "asyncio", _AsyncioInLink())
    return recorder


def registered_store() -> MemoryIdentityStore:
    return MemoryIdentityStore(StoredIdentity(generate_private_key(), peer_id="peer-1", credential="cred-1"))


def make_link(
    server: FakeServer,
    store: IdentityStore | None = None,
    *,
    setup_key: str = "SETUP-KEY",
    meta: Callable[[], Meta] | None = None,
    backoff: Backoff | None = None,
) -> ManagementLink:
    return ManagementLink(
        cast(grpc.aio.Channel, None),
        store if store is not None else MemoryIdentityStore(),
        meta or (lambda: Meta("host-a", endpoints=["192.0.2.1:51820"])),
        setup_key=setup_key,
        server="mgmt.test:33073",
        backoff=backoff or Backoff(initial=0.5, cap=10.0, rng=MaxRng()),
        client_factory=server.factory,
    )


async def ignore(update: Update) -> None:
    return None


# -- identity --------------------------------------------------------------------------------------


def test_first_login_registers_with_the_setup_key_and_persists_the_identity(tmp_path: Path) -> None:
    server = FakeServer(ip="100.64.0.7/16", ipv6="fd00::7/64")
    link = make_link(server, FileIdentityStore(tmp_path), setup_key="SETUP-KEY")

    identity = run(link.login())

    assert [(c.setup_key, c.credential) for c in server.logins] == [("SETUP-KEY", "")]
    path = tmp_path / IDENTITY_FILE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    data = json.loads(path.read_text())
    assert (data["peer_id"], data["credential"]) == ("peer-1", "cred-1")
    assert data["server"] == "mgmt.test:33073"
    # the private key on disk is the one whose public key the server registered
    assert public_key(data["private_key"]) == server.logins[0].public_key == identity.wg_public_key
    assert (identity.ip, identity.ipv6) == ("100.64.0.7/16", "fd00::7/64")
    assert link.identity is not None and link.identity.peer_id == "peer-1"


def test_later_logins_use_the_credential_and_never_the_setup_key(tmp_path: Path) -> None:
    server = FakeServer()
    first = make_link(server, FileIdentityStore(tmp_path), setup_key="SETUP-KEY")
    run(first.login())
    run(first.login())  # the same run, reconnecting
    # restarts over the same state dir: with the setup key still on the command line, and without
    run(make_link(server, FileIdentityStore(tmp_path), setup_key="SETUP-KEY").login())
    run(make_link(server, FileIdentityStore(tmp_path), setup_key="").login())

    assert [c.setup_key for c in server.logins] == ["SETUP-KEY", "", "", ""]
    assert [(c.peer_id, c.credential) for c in server.logins[1:]] == [("peer-1", "cred-1")] * 3
    # the key was generated once and kept
    assert len({c.public_key for c in server.logins}) == 1
    stored = FileIdentityStore(tmp_path).load()
    assert stored is not None and stored.public_key == server.logins[0].public_key


def test_an_unregistered_peer_without_a_setup_key_is_refused_before_any_login() -> None:
    server = FakeServer()
    with pytest.raises(LinkRefused, match="setup key"):
        run(make_link(server, setup_key="").login())
    assert server.logins == []


def test_a_registration_that_failed_transiently_is_retried_with_the_setup_key(sleeps: Sleeps) -> None:
    server = FakeServer(logins=[rpc_error(Code.UNAVAILABLE, "connection refused")], streams=[[full(1)]])
    store = MemoryIdentityStore()
    link = make_link(server, store)
    with pytest.raises(ScriptEnded):
        run(link.run(ignore))
    assert [c.setup_key for c in server.logins[:2]] == ["SETUP-KEY", "SETUP-KEY"]
    assert store.identity is not None and store.identity.credential == "cred-1"
    assert server.logins[2].setup_key == ""  # once registered, the credential
    assert len({c.public_key for c in server.logins}) == 1  # the same key across attempts


def test_generated_keys_are_clamped_x25519_keys_and_public_keys_match_cryptography() -> None:
    keys = {generate_private_key() for _ in range(32)}
    assert len(keys) == 32
    for key in keys:
        raw = base64.b64decode(key)
        assert len(raw) == 32
        assert raw[0] & 0b111 == 0 and raw[31] & 0x80 == 0 and raw[31] & 0x40 == 0x40  # as `wg genkey`
        expected = (
            X25519PrivateKey.from_private_bytes(raw).public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        )
        assert base64.b64decode(public_key(key)) == expected
        assert StoredIdentity(key).public_key == public_key(key)


def test_public_key_is_x25519_of_the_base_point_as_wg_pubkey_computes_it() -> None:
    # RFC 7748 section 6.1, Alice's key pair
    private = bytes.fromhex("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a")
    public = bytes.fromhex("8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a")
    assert public_key(base64.b64encode(private).decode()) == base64.b64encode(public).decode()


# -- refusals --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "details", "registered", "where", "expected"),
    [
        pytest.param(
            Code.UNAUTHENTICATED, "unknown credential", True, "login", "credential", id="revoked-cred"
        ),
        pytest.param(
            Code.UNAUTHENTICATED, "setup key unknown", False, "login", "setup key", id="bad-setup-key"
        ),
        pytest.param(
            Code.PERMISSION_DENIED, "setup key revoked", False, "login", "setup key", id="revoked-key"
        ),
        pytest.param(Code.NOT_FOUND, PEER_DELETED, True, "stream", "deleted", id="deleted-while-connected"),
        pytest.param(Code.NOT_FOUND, PEER_DELETED, True, "login", "deleted", id="deleted-at-login"),
        pytest.param(Code.ALREADY_EXISTS, "key already registered", False, "login", "setup key", id="exists"),
        pytest.param(Code.INVALID_ARGUMENT, "bad hostname", False, "login", "setup key", id="invalid-reg"),
        pytest.param(Code.INVALID_ARGUMENT, "bad endpoint", True, "login", "bad endpoint", id="invalid"),
        pytest.param(
            Code.PERMISSION_DENIED, "peer blocked", True, "stream", "peer blocked", id="denied-stream"
        ),
    ],
)
def test_refusals_stop_the_link_with_a_one_line_reason_and_no_retry(
    sleeps: Sleeps, code: grpc.StatusCode, details: str, registered: bool, where: str, expected: str
) -> None:
    error = rpc_error(code, details)
    if where == "login":
        server = FakeServer(logins=[error], streams=[[full(1)]])
    else:
        server = FakeServer(streams=[[full(1), error], [full(2)]])
    link = make_link(server, registered_store() if registered else MemoryIdentityStore())

    with pytest.raises(LinkRefused) as caught:
        run(link.run(ignore))

    message = str(caught.value)
    assert expected in message
    assert "\n" not in message and message.strip() == message and message
    assert "Traceback" not in message and "AioRpcError" not in message
    assert len(server.logins) == 1  # not retried
    assert sleeps.delays == []
    assert link.status.state == LinkState.STOPPED


def test_the_deleted_detail_only_means_deleted_with_not_found(sleeps: Sleeps) -> None:
    server = FakeServer(logins=[rpc_error(Code.PERMISSION_DENIED, PEER_DELETED)])
    with pytest.raises(LinkRefused) as caught:
        run(make_link(server, registered_store()).run(ignore))
    assert "was deleted" not in str(caught.value)


# -- retries ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("code", [Code.UNAVAILABLE, Code.DEADLINE_EXCEEDED, Code.INTERNAL])
def test_transient_login_errors_retry_with_growing_delays_reset_by_a_full_map(
    sleeps: Sleeps, code: grpc.StatusCode
) -> None:
    server = FakeServer(logins=[rpc_error(code, "try later")] * 3, streams=[[full(1)]])
    link = make_link(server, registered_store())

    with pytest.raises(ScriptEnded):
        run(link.run(ignore))

    # 3 failures (0.5, 1, 2), a full map, the stream ends: back to the first delay
    assert sleeps.delays == [0.5, 1.0, 2.0, 0.5]
    assert len(server.logins) == 5


@pytest.mark.parametrize("code", [Code.UNAVAILABLE, Code.DEADLINE_EXCEEDED, Code.INTERNAL])
def test_transient_stream_errors_reconnect(sleeps: Sleeps, code: grpc.StatusCode) -> None:
    server = FakeServer(streams=[[full(1), rpc_error(code, "stream broke")], [full(2), ScriptEnded()]])
    seen: list[int] = []

    async def record(update: Update) -> None:
        seen.append(update.map.serial)

    link = make_link(server, registered_store())
    with pytest.raises(ScriptEnded):
        run(link.run(record))
    assert seen == [1, 2]
    assert sleeps.delays == [0.5]
    assert link.status.reconnects == 1
    assert server.syncs == [0, 1]  # the reconnect says which serial it holds


def test_the_stream_ending_is_retried_after_a_backoff(sleeps: Sleeps) -> None:
    server = FakeServer(streams=[[full(1)], [full(2)]])
    states: list[LinkState] = []
    link = make_link(server, registered_store())
    sleeps.on_sleep = lambda _: states.append(link.status.state)
    with pytest.raises(ScriptEnded):
        run(link.run(ignore))
    assert sleeps.delays == [0.5, 0.5]
    assert states == [LinkState.RECONNECTING, LinkState.RECONNECTING]
    assert link.status.reconnects == 2
    assert "closed" in link.status.last_error


def test_delays_keep_growing_while_no_full_map_arrives(sleeps: Sleeps) -> None:
    unavailable = rpc_error(Code.UNAVAILABLE, "connection refused")
    server = FakeServer(logins=[unavailable] * 8)
    link = make_link(server, registered_store(), backoff=Backoff(initial=0.5, cap=4.0, rng=MaxRng()))
    with pytest.raises(ScriptEnded):
        run(link.run(ignore))
    assert sleeps.delays == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0, 4.0, 4.0]


def test_a_serial_gap_resyncs_at_once_without_backoff(sleeps: Sleeps) -> None:
    server = FakeServer(streams=[[full(5), SerialGap("delta after 6, holding 5")], [full(7), ScriptEnded()]])
    link = make_link(server, registered_store())
    with pytest.raises(ScriptEnded):
        run(link.run(ignore))
    assert sleeps.delays == []
    assert server.syncs == [0, 5]
    assert len(server.logins) == 2
    assert (link.status.gaps, link.status.reconnects, link.status.full_maps) == (1, 0, 2)


# -- backoff ---------------------------------------------------------------------------------------


def test_backoff_grows_by_its_factor_up_to_the_cap() -> None:
    b = Backoff(initial=0.5, cap=10.0, rng=MaxRng())
    assert [b.next() for _ in range(8)] == [0.5, 1.0, 2.0, 4.0, 8.0, 10.0, 10.0, 10.0]


def test_backoff_jitter_never_takes_off_more_than_half() -> None:
    b = Backoff(initial=0.5, cap=10.0, rng=MinRng())
    assert [b.next() for _ in range(7)] == [0.25, 0.5, 1.0, 2.0, 4.0, 5.0, 5.0]


def test_backoff_jitter_is_random_within_bounds() -> None:
    b = Backoff(initial=1.0, cap=8.0, factor=2.0, rng=random.Random(1234))
    delays = [b.next() for _ in range(60)]
    bounds = [min(8.0, 2.0**i) for i in range(60)]
    assert all(full_delay / 2 <= d <= full_delay for d, full_delay in zip(delays, bounds, strict=True))
    at_cap = delays[10:]
    assert len(set(at_cap)) > 40  # jittered, not one value
    assert min(at_cap) < 5.0 and max(at_cap) > 7.0  # spread over the window


def test_backoff_reset_starts_again_from_the_first_delay() -> None:
    b = Backoff(initial=0.5, cap=10.0, rng=MaxRng())
    for _ in range(5):
        b.next()
    b.reset()
    assert b.next() == 0.5


def test_backoff_survives_a_very_long_outage() -> None:
    b = Backoff(initial=0.5, cap=10.0, rng=MaxRng())
    delays = [b.next() for _ in range(1100)]
    assert delays[-1] == 10.0


# -- logging and status ----------------------------------------------------------------------------


def _messages(caplog: pytest.LogCaptureFixture, level: int) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == LINK_LOGGER and r.levelno == level]


def test_an_outage_is_logged_once_not_once_per_retry(
    sleeps: Sleeps, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger=LINK_LOGGER)
    unavailable = rpc_error(Code.UNAVAILABLE, "connection refused")
    server = FakeServer(
        logins=[unavailable] * 5 + [None] + [unavailable] * 4,
        streams=[[full(1), unavailable]],
    )
    link = make_link(server, registered_store())
    with pytest.raises(ScriptEnded):
        run(link.run(ignore))

    warnings = _messages(caplog, logging.WARNING)
    assert len(warnings) == 2, warnings
    assert "cannot reach management" in warnings[0]
    assert "lost the management connection" in warnings[1]
    connected = [m for m in _messages(caplog, logging.INFO) if "connected to management" in m]
    assert len(connected) == 1
    assert len(sleeps.delays) == 10  # every retry happened, quietly


def test_a_new_kind_of_problem_is_logged_again(sleeps: Sleeps, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger=LINK_LOGGER)
    server = FakeServer(
        logins=[rpc_error(Code.UNAVAILABLE, "refused")] * 2 + [rpc_error(Code.DEADLINE_EXCEEDED, "slow")] * 2
    )
    with pytest.raises(ScriptEnded):
        run(make_link(server, registered_store()).run(ignore))
    warnings = _messages(caplog, logging.WARNING)
    assert len(warnings) == 2
    assert "UNAVAILABLE" in warnings[0] and "DEADLINE_EXCEEDED" in warnings[1]


def test_status_counts_maps_deltas_gaps_and_reconnects(sleeps: Sleeps) -> None:
    server = FakeServer(
        streams=[
            [full(1), delta(2), delta(3), rpc_error(Code.UNAVAILABLE, "gone")],
            [full(5), delta(6), SerialGap("delta after 7, holding 6")],
            [full(9), ScriptEnded()],
        ]
    )
    link = make_link(server, registered_store())
    seen: list[tuple[int, bool, LinkState, int]] = []

    async def record(update: Update) -> None:
        seen.append((update.map.serial, update.full, link.status.state, link.status.serial))

    assert link.status.state == LinkState.STARTING
    with pytest.raises(ScriptEnded):
        run(link.run(record))

    assert [(s, f) for s, f, _, _ in seen] == [
        (1, True),
        (2, False),
        (3, False),
        (5, True),
        (6, False),
        (9, True),
    ]
    assert all(state == LinkState.CONNECTED for _, _, state, _ in seen)
    assert all(serial == status_serial for serial, _, _, status_serial in seen)
    st = link.status
    assert (st.full_maps, st.deltas, st.gaps, st.reconnects, st.serial) == (3, 3, 1, 1, 9)
    assert st.last_error == ""  # cleared once connected again
    assert st.state == LinkState.STOPPED and st.connected_since is None
    assert sleeps.delays == [0.5]


def test_connected_since_is_set_while_connected(sleeps: Sleeps) -> None:
    server = FakeServer(streams=[[full(1), ScriptEnded()]])
    link = make_link(server, registered_store())
    since: list[float | None] = []

    async def record(update: Update) -> None:
        since.append(link.status.connected_since)

    with pytest.raises(ScriptEnded):
        run(link.run(record))
    assert since[0] is not None


# -- reporting changes -----------------------------------------------------------------------------


def test_report_logs_in_again_with_the_credential_and_the_current_endpoints() -> None:
    server = FakeServer()
    endpoints = ["192.0.2.1:51820"]
    link = make_link(server, registered_store(), meta=lambda: Meta("host-a", endpoints=list(endpoints)))

    async def scenario() -> None:
        await link.login()
        endpoints.append("198.51.100.1:51820")
        await link.report()

    run(scenario())
    last = server.logins[-1]
    assert (last.setup_key, last.credential) == ("", "cred-1")
    assert last.meta.endpoints == ["192.0.2.1:51820", "198.51.100.1:51820"]


def test_a_failed_report_is_only_logged(caplog: pytest.LogCaptureFixture) -> None:
    server = FakeServer(logins=[None, rpc_error(Code.UNAVAILABLE, "down")])
    link = make_link(server, registered_store())

    async def scenario() -> None:
        await link.login()
        await link.report()

    run(scenario())
    assert any("could not report" in m for m in _messages(caplog, logging.WARNING))


def test_report_before_any_login_sends_nothing() -> None:
    server = FakeServer()
    run(make_link(server, registered_store()).report())
    assert server.logins == []
