"""Peer health: the probe tracker (pure) and the probe socket's packet handling."""

from __future__ import annotations

import asyncio
import struct
from typing import Any, cast

import pytest

from meshroute.agent import health
from meshroute.agent.health import ProbeSocket, ProbeTracker, Transition

from .fakes import Clock

K, L = "key-k", "key-l"
AK, AL = "100.64.0.2", "100.64.0.3"
PACKET = struct.Struct("!4sB3xIQ")  # the wire format, written out independently of the module
REQUEST, REPLY = 1, 2


def tracker(down_after: int = 3) -> ProbeTracker:
    t = ProbeTracker(down_after)
    t.set_targets({K: AK})
    return t


def only_seq(sends: list[tuple[str, int]], address: str = AK) -> int:
    seqs = [seq for a, seq in sends if a == address]
    assert len(seqs) == 1
    return seqs[0]


# -- ProbeTracker ----------------------------------------------------------------------------------


def test_one_answer_makes_a_peer_up_and_measures_latency() -> None:
    t = tracker()
    sends, transitions = t.tick(10.0)
    assert transitions == [] and [a for a, _ in sends] == [AK]
    assert t.answer(AK, only_seq(sends), 10.025) == Transition(K, True)
    track = t.tracks[K]
    assert track.up is True and track.rtt_ms == pytest.approx(25.0)
    assert track.last_reply == 10.025 and track.changed_at == 10.025


@pytest.mark.parametrize("down_after", [1, 2, 3, 5])
def test_a_peer_is_down_after_exactly_down_after_unanswered_probes(down_after: int) -> None:
    t = tracker(down_after)
    sends, _ = t.tick(0.0)
    t.answer(AK, only_seq(sends), 0.01)
    # from now on nothing answers: each later tick counts the previous probe as missed
    verdicts = [t.tick(0.2 * (i + 1))[1] for i in range(down_after + 3)]
    assert verdicts[down_after] == [Transition(K, False)]
    assert all(v == [] for i, v in enumerate(verdicts) if i != down_after)
    assert t.tracks[K].up is False and t.tracks[K].missed == down_after + 2


def test_the_default_is_down_after_three_missed_probes() -> None:
    t = ProbeTracker()
    assert t.down_after == 3
    t.set_targets({K: AK})
    verdicts = [t.tick(0.2 * i)[1] for i in range(5)]  # nothing ever answers
    assert verdicts == [[], [], [], [Transition(K, False)], []]


def test_down_is_reported_once_and_up_is_reported_once() -> None:
    t = tracker(down_after=1)
    t.tick(0.0)
    assert t.tick(0.2)[1] == [Transition(K, False)]
    assert t.tick(0.4)[1] == []
    sends, _ = t.tick(0.6)
    seq = only_seq(sends)
    assert t.answer(AK, seq, 0.61) == Transition(K, True)
    sends, transitions = t.tick(0.8)
    assert transitions == []
    assert t.answer(AK, only_seq(sends), 0.81) is None  # already up


def test_a_late_answer_to_a_recent_probe_counts() -> None:
    t = tracker(down_after=3)
    first, _ = t.tick(0.0)
    t.tick(0.2)
    t.tick(0.4)  # two probes missed so far
    assert t.answer(AK, only_seq(first), 0.45) == Transition(K, True)
    assert t.tracks[K].missed == 0
    assert t.tracks[K].rtt_ms == pytest.approx(450.0)
    # the late answer stands for the current interval: no miss at the next tick
    t.tick(0.6)
    assert t.tracks[K].missed == 0
    assert t.answer(AK, only_seq(first), 0.7) is None  # a duplicate answer is nothing


def test_answers_to_probes_long_gone_are_ignored() -> None:
    t = tracker(down_after=100)
    first, _ = t.tick(0.0)
    for i in range(1, 40):
        t.tick(0.2 * i)
    assert t.answer(AK, only_seq(first), 8.0) is None
    assert t.tracks[K].up is None


def test_unknown_addresses_and_sequence_numbers_are_ignored() -> None:
    t = tracker()
    sends, _ = t.tick(0.0)
    seq = only_seq(sends)
    assert t.answer("100.64.0.99", seq, 0.1) is None
    assert t.answer(AK, seq + 1000, 0.1) is None
    track = t.tracks[K]
    assert track.up is None and track.rtt_ms is None and track.answered_last is False


def test_set_targets_keeps_the_history_of_peers_that_stay() -> None:
    t = tracker()
    sends, _ = t.tick(0.0)
    t.answer(AK, only_seq(sends), 0.01)
    t.set_targets({K: AK, L: AL})
    assert t.tracks[K].up is True and t.tracks[K].rtt_ms == pytest.approx(10.0)
    assert t.tracks[L].up is None
    sends, _ = t.tick(0.2)
    assert sorted(a for a, _ in sends) == [AK, AL]
    assert t.answer(AL, only_seq(sends, AL), 0.22) == Transition(L, True)


def test_set_targets_forgets_removed_peers_and_restarts_a_peer_whose_address_changed() -> None:
    t = tracker()
    sends, _ = t.tick(0.0)
    seq = only_seq(sends)
    t.answer(AK, seq, 0.01)
    t.set_targets({K: "100.64.0.20", L: AL})
    assert t.tracks[K].up is None  # a new address: nothing known about it
    sends, _ = t.tick(0.2)
    assert t.answer(AK, only_seq(sends, "100.64.0.20"), 0.3) is None  # the old address is no one's
    t.set_targets({})
    assert t.tracks == {}
    assert t.tick(0.4) == ([], [])


def test_down_after_must_be_positive() -> None:
    with pytest.raises(ValueError):
        ProbeTracker(0)


def test_sequence_numbers_are_distinct_across_peers() -> None:
    t = ProbeTracker()
    t.set_targets({K: AK, L: AL})
    sends, _ = t.tick(0.0)
    more, _ = t.tick(0.2)
    seqs = [s for _, s in sends + more]
    assert len(set(seqs)) == 4


# -- ProbeSocket -----------------------------------------------------------------------------------


class FakeTransport:
    def __init__(self) -> None:
        self.sent: list[tuple[bytes, tuple[str, int]]] = []

    def sendto(self, data: bytes, addr: tuple[str, int]) -> None:
        self.sent.append((data, addr))


def probe_socket() -> tuple[ProbeSocket, list[tuple[str, int, float]]]:
    answers: list[tuple[str, int, float]] = []
    return ProbeSocket(lambda a, s, t: answers.append((a, s, t))), answers


def transport(t: FakeTransport) -> asyncio.DatagramTransport:
    return cast(asyncio.DatagramTransport, t)


def test_a_request_is_answered_with_the_same_sequence_and_stamp() -> None:
    sock, answers = probe_socket()
    t = FakeTransport()
    sock._received(PACKET.pack(b"MRP1", REQUEST, 77, 123456789), ("100.64.0.9", 40000), transport(t))
    assert t.sent == [(PACKET.pack(b"MRP1", REPLY, 77, 123456789), ("100.64.0.9", 40000))]
    assert answers == []


def test_a_reply_is_handed_to_the_tracker_with_the_receive_time(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(health, "time", Clock(mono=42.5))
    sock, answers = probe_socket()
    t = FakeTransport()
    sock._received(PACKET.pack(b"MRP1", REPLY, 9, 1), ("100.64.0.2", 51830), transport(t))
    assert answers == [("100.64.0.2", 9, 42.5)]
    assert t.sent == []


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"hello",
        PACKET.pack(b"MRP1", REQUEST, 1, 1) + b"x",
        PACKET.pack(b"MRP1", REQUEST, 1, 1)[:-1],
        PACKET.pack(b"XXXX", REQUEST, 1, 1),
        PACKET.pack(b"MRP1", 3, 1, 1),
        PACKET.pack(b"MRP1", 0, 1, 1),
    ],
)
def test_garbage_is_ignored(data: bytes) -> None:
    sock, answers = probe_socket()
    t = FakeTransport()
    sock._received(data, ("100.64.0.9", 40000), transport(t))
    assert t.sent == [] and answers == []


def test_send_uses_the_socket_of_the_address_family(monkeypatch: pytest.MonkeyPatch) -> None:
    sock, _ = probe_socket()
    v4, v6 = FakeTransport(), FakeTransport()
    transports: dict[str, Any] = {"100.64.0.1": v4, "fd00::1": v6}
    monkeypatch.setattr(sock, "_transports", transports)
    sock.send("100.64.0.2", 5)
    sock.send("fd00::2", 6)
    assert [(PACKET.unpack(d)[:3], a) for d, a in v4.sent] == [((b"MRP1", REQUEST, 5), ("100.64.0.2", 51830))]
    assert [(PACKET.unpack(d)[:3], a) for d, a in v6.sent] == [((b"MRP1", REQUEST, 6), ("fd00::2", 51830))]


def test_send_without_a_socket_of_that_family_sends_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    sock, _ = probe_socket()
    v4 = FakeTransport()
    transports: dict[str, Any] = {"100.64.0.1": v4}
    monkeypatch.setattr(sock, "_transports", transports)
    sock.send("fd00::2", 1)
    assert v4.sent == []
