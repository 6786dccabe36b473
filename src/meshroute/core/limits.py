"""Limits on what users may store, checked before anything reaches a store."""

from __future__ import annotations

from meshroute.core.errors import InvalidArgument

MAX_NAME = 255  # names, emails, hostnames: the width of their columns
MAX_INT32 = 2**31 - 1


def check_length(value: str, what: str, limit: int = MAX_NAME) -> None:
    if len(value) > limit:
        raise InvalidArgument(f"{what} should not be longer than {limit} characters")


def check_range(value: int, what: str, low: int, high: int) -> None:
    if not low <= value <= high:
        raise InvalidArgument(f"{what} should be between {low} and {high}")
