"""What a test needs that the project's install script provides: missing locally, the test is
skipped with the reason; missing under CI (`CI` set), it fails, because then the install script
is what is broken and a skip would turn that into a green run."""

from __future__ import annotations

import os
import shutil
from typing import NoReturn

import pytest


def missing(reason: str, *, module: bool = False) -> NoReturn:
    """`module`: called at a module's top level (a conftest), not inside a test or fixture."""
    if os.environ.get("CI"):
        pytest.fail(f"{reason} (CI: scripts/install.sh should have installed it)", pytrace=False)
    pytest.skip(reason, allow_module_level=module)


def need_dns_tools() -> None:
    """dnsmasq (Debian: dnsmasq-base), dig (dnsutils) and getent (libc-bin)."""
    if shutil.which("dnsmasq") is None:
        missing("dnsmasq is missing (Debian: dnsmasq-base; scripts/install.sh installs it)")
    if shutil.which("dig") is None or shutil.which("getent") is None:
        missing("dig and getent are needed (dnsutils, libc-bin)")
