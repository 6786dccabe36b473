"""Unit tests never touch the host: a test that changed the namespace it runs in (policy rules,
routes of any table, links, addresses, nftables) fails, so a fake that is missing is found at once
instead of leaving state behind on a developer's machine or in CI."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator

import pytest

_COMMANDS = [
    ["ip", "-4", "rule"],
    ["ip", "-6", "rule"],
    ["ip", "-4", "route", "show", "table", "all"],
    ["ip", "-6", "route", "show", "table", "all"],
    ["ip", "-o", "link"],
    ["ip", "-o", "addr"],
]


def _state() -> list[str]:
    out = []
    for argv in _COMMANDS:
        done = subprocess.run(argv, capture_output=True, text=True, check=False)
        out.append(done.stdout)
    if shutil.which("nft"):
        out.append(subprocess.run(["nft", "list", "ruleset"], capture_output=True, text=True).stdout)
    return out


@pytest.fixture(autouse=True, scope="module")
def host_untouched() -> Iterator[None]:
    if shutil.which("ip") is None:
        yield
        return
    before = _state()
    yield
    after = _state()
    changed = [argv for argv, b, a in zip([*_COMMANDS, ["nft"]], before, after, strict=False) if b != a]
    assert not changed, f"a unit test changed the host's network state: {changed}"
