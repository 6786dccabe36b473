"""Limits on what users may store, checked before anything reaches a store."""

from __future__ import annotations

from collections.abc import Sized

from meshroute.core.errors import InvalidArgument

MAX_NAME = 255  # names, emails, hostnames: the width of their columns
MAX_INT32 = 2**31 - 1

# ID lists in request bodies. Group lists (a route's `groups`, `peer_groups` and
# `access_control_groups`, setup-key and user `auto_groups`) name groups of one account: a
# thousand is far beyond any real use. A group's `peers` may name every peer of a large account;
# the 1 MiB body limit alone allows about 45,000 real peer IDs. Without a bound, a body of short
# fake IDs carried over 250,000 of them.
MAX_GROUP_IDS = 1_000
MAX_PEER_IDS = 50_000


def check_length(value: str, what: str, limit: int = MAX_NAME) -> None:
    if len(value) > limit:
        raise InvalidArgument(f"{what} should not be longer than {limit} characters")


def check_range(value: int, what: str, low: int, high: int) -> None:
    if not low <= value <= high:
        raise InvalidArgument(f"{what} should be between {low} and {high}")


def check_count(values: Sized, what: str, limit: int) -> None:
    """Checked before anything looks the IDs up, so that the work a request causes is bounded."""
    if len(values) > limit:
        raise InvalidArgument(f"{what} should not have more than {limit} entries")
