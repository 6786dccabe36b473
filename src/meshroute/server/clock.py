"""The server's clock: aware UTC, as everything it stores and answers."""

from __future__ import annotations

from datetime import UTC, datetime


def utcnow() -> datetime:
    return datetime.now(UTC)
