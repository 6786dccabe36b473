"""Throttling of failed authentications per source address (PAT on the REST API, setup keys and
peer credentials on agent sync).

Only failures count, so a valid caller is never slowed, however often it calls: a source that
has failed `max_failures` times within `window` seconds is refused (429 / RESOURCE_EXHAUSTED,
with the seconds to wait) until the window has let some failures go, whatever it sends. The
count is a token bucket per source: `max_failures` tokens, refilled evenly over `window`.
In memory, per server process: each replica counts for itself.
"""

from __future__ import annotations

import ipaddress
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from meshroute.core.errors import TooManyRequests

MAX_SOURCES = 100_000  # bounds the memory a flood of sources can take (about 10 MB)


@dataclass(frozen=True, slots=True)
class ThrottleSettings:
    max_failures: int = 20  # 0: no throttling
    window: float = 60.0  # seconds


def source_key(address: str) -> str:
    """IPv6 sources count per /64 (one host may own a whole /64); IPv4 per address."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return str(ip)


class AuthThrottle:
    def __init__(
        self,
        settings: ThrottleSettings | None = None,
        clock: Callable[[], float] = time.monotonic,
        max_sources: int = MAX_SOURCES,
    ) -> None:
        self.settings = settings or ThrottleSettings()
        self._clock = clock
        self._max_sources = max_sources
        self._lock = threading.Lock()
        # source -> (tokens, when counted); ordered from the least recently failed source on.
        self._buckets: dict[str, tuple[float, float]] = {}

    @property
    def enabled(self) -> bool:
        return self.settings.max_failures > 0

    def _rate(self) -> float:
        return self.settings.max_failures / self.settings.window

    def _tokens(self, source: str, now: float) -> float | None:
        bucket = self._buckets.get(source)
        if bucket is None:
            return None
        tokens, stamp = bucket
        tokens = min(float(self.settings.max_failures), tokens + (now - stamp) * self._rate())
        if tokens >= self.settings.max_failures:
            del self._buckets[source]  # fully refilled: forget the source
            return None
        return tokens

    def check(self, address: str) -> None:
        """Raises TooManyRequests while `address` may not try again. The common case, a source
        that never failed, costs one dictionary lookup."""
        if not self.enabled or not self._buckets:
            return
        source = source_key(address)
        with self._lock:
            tokens = self._tokens(source, self._clock())
        if tokens is not None and tokens < 1:
            wait = max(1, math.ceil((1 - tokens) / self._rate()))
            raise TooManyRequests(
                f"too many failed authentication attempts from this address: retry in {wait} s", wait
            )

    def failed(self, address: str) -> None:
        if not self.enabled:
            return
        source = source_key(address)
        with self._lock:
            now = self._clock()
            tokens = self._tokens(source, now)
            tokens = float(self.settings.max_failures) if tokens is None else tokens
            self._buckets.pop(source, None)
            self._buckets[source] = (max(0.0, tokens - 1), now)
            if len(self._buckets) > self._max_sources:
                del self._buckets[next(iter(self._buckets))]
