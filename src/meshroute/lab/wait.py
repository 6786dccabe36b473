"""Polling until a condition holds, with a message that says what was awaited and what was last seen."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


class WaitTimeout(AssertionError):
    """The condition did not hold in time (an AssertionError, so pytest reports it as a failed check)."""


def wait_for(
    condition: Callable[[], T | None],
    *,
    timeout: float = 10.0,
    interval: float = 0.05,
    message: str | Callable[[], str] = "",
) -> T:
    """Call ``condition`` until it returns something truthy, and return that (so the type drops None).

    Exceptions from the condition count as "not yet" (the last one is shown on timeout). ``message`` may
    be a callable, evaluated only on timeout; its first line names the condition, further lines (e.g.
    the tails of the logs) follow the verdict.
    """
    deadline = time.monotonic() + timeout
    last: str = ""
    while True:
        try:
            value = condition()
            if value:
                return value
            last = f"last result: {value!r}"
        except Exception as exc:
            last = f"last error: {type(exc).__name__}: {exc}"
        if time.monotonic() >= deadline:
            text = message() if callable(message) else message
            head, _, details = text.partition("\n")  # e.g. log tails after the first line
            head = head or getattr(condition, "__name__", "condition")
            verdict = f"{head} not true after {timeout} s ({last})"
            raise WaitTimeout(f"{verdict}\n{details}" if details else verdict)
        time.sleep(interval)
