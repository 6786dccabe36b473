"""Failed-authentication throttling per source address (server.throttle), on a clock the test
moves: only failures count, a blocked source is told how long to wait, and it recovers."""

from __future__ import annotations

import pytest

from meshroute.core.errors import TooManyRequests
from meshroute.server.api.errors import http_status
from meshroute.server.throttle import AuthThrottle, ThrottleSettings, source_key


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def throttle(max_failures: int = 5, window: float = 60.0, **kw: int) -> tuple[AuthThrottle, Clock]:
    clock = Clock()
    return AuthThrottle(ThrottleSettings(max_failures, window), clock, **kw), clock


def blocked_for(t: AuthThrottle, address: str) -> int | None:
    try:
        t.check(address)
    except TooManyRequests as exc:
        assert http_status(exc) == 429
        return exc.retry_after
    return None


def test_a_source_that_never_fails_is_never_refused() -> None:
    t, _ = throttle(max_failures=1)
    for _ in range(10_000):
        t.check("10.0.0.1")


def test_max_failures_then_refused_with_the_time_to_wait_then_recovered() -> None:
    t, clock = throttle(max_failures=5, window=60)
    for _ in range(5):
        assert blocked_for(t, "10.0.0.1") is None
        t.failed("10.0.0.1")
    assert blocked_for(t, "10.0.0.1") == 12  # one failure comes back every 60/5 s
    clock.now += 11.5
    assert blocked_for(t, "10.0.0.1") == 1
    clock.now += 0.5
    assert blocked_for(t, "10.0.0.1") is None
    t.failed("10.0.0.1")
    assert blocked_for(t, "10.0.0.1") == 12
    clock.now += 60
    for _ in range(5):  # a full window later the whole allowance is back
        assert blocked_for(t, "10.0.0.1") is None
        t.failed("10.0.0.1")
    assert blocked_for(t, "10.0.0.1") is not None


def test_sources_are_counted_apart() -> None:
    t, _ = throttle(max_failures=2)
    t.failed("10.0.0.1")
    t.failed("10.0.0.1")
    assert blocked_for(t, "10.0.0.1") is not None
    assert blocked_for(t, "10.0.0.2") is None


def test_ipv6_sources_count_per_64_and_mapped_ipv4_as_ipv4() -> None:
    assert source_key("2001:db8:1:2:aaaa::1") == source_key("2001:db8:1:2:bbbb::2") == "2001:db8:1:2::/64"
    assert source_key("2001:db8:1:3::1") != source_key("2001:db8:1:2::1")
    assert source_key("::ffff:10.0.0.1") == "10.0.0.1"
    assert source_key("testclient") == "testclient"
    t, _ = throttle(max_failures=2)
    t.failed("2001:db8:1:2::1")
    t.failed("2001:db8:1:2::2")
    assert blocked_for(t, "2001:db8:1:2::3") is not None


def test_zero_turns_throttling_off() -> None:
    t, _ = throttle(max_failures=0)
    for _ in range(100):
        t.failed("10.0.0.1")
    assert blocked_for(t, "10.0.0.1") is None


def test_memory_is_bounded_by_forgetting_the_least_recently_failed_sources() -> None:
    t, clock = throttle(max_failures=1, max_sources=3)
    for i in range(4):
        t.failed(f"10.0.0.{i}")
        clock.now += 0.01
    assert blocked_for(t, "10.0.0.0") is None  # forgotten
    assert all(blocked_for(t, f"10.0.0.{i}") is not None for i in (1, 2, 3))


@pytest.mark.parametrize("window", [1.0, 60.0, 3600.0])
def test_retry_after_is_a_whole_number_of_seconds_of_at_least_one(window: float) -> None:
    t, _ = throttle(max_failures=3, window=window)
    for _ in range(3):
        t.failed("10.0.0.1")
    wait = blocked_for(t, "10.0.0.1")
    assert isinstance(wait, int) and wait >= 1
