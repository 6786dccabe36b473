"""Identifiers in NetBird's shape: xid (20 lowercase base32hex characters, time-ordered)."""

from __future__ import annotations

import os
import secrets
import threading
import time

_B32HEX = "0123456789abcdefghijklmnopqrstuv"
_lock = threading.Lock()
_counter = secrets.randbits(24)
_machine = secrets.token_bytes(3)


def new_id() -> str:
    """A 12-byte xid (4 bytes time, 3 machine, 2 pid, 3 counter) encoded as 20 base32hex chars."""
    global _counter
    with _lock:
        _counter = (_counter + 1) & 0xFFFFFF
        count = _counter
    raw = (
        int(time.time()).to_bytes(4, "big")
        + _machine
        + (os.getpid() & 0xFFFF).to_bytes(2, "big")
        + count.to_bytes(3, "big")
    )
    value = int.from_bytes(raw, "big") << 4  # 96 bits padded to 100 = 20 x 5 bits
    return "".join(_B32HEX[(value >> (5 * (19 - i))) & 0x1F] for i in range(20))
