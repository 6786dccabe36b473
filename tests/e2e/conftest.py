"""End-to-end fixtures: worlds of network namespaces with a real server (and, later, real agents).

Root only. Every world is torn down after its test, also when the test fails; a failed test gets the
tails of the world's logs in its report ("Captured stdout teardown").
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Generator, Iterator
from pathlib import Path
from typing import Any

import pytest

from meshroute.lab import Lan, World
from tests.needs import missing

MakeWorld = Callable[..., World]
# A failed end-to-end test runs once more: real processes and userspace WireGuard on a loaded
# 2-core machine miss a deadline now and then. The summary lists every rerun with its error (-rR),
# and a wait that times out prints each agent's device and peer view, so a rerun is a finding to
# read, not noise. Two failures in a row fail the run.
RERUNS = 1
_first_attempts: list[pytest.TestReport] = []
REQUIRED_TOOLS = ("ip", "nft", "ping", "sysctl", "wireguard-go")
_reports = pytest.StashKey[dict[str, pytest.TestReport]]()


def lab_unavailable() -> str | None:
    """Why worlds cannot be built here, or None."""
    if os.geteuid() != 0:
        return "needs root (network namespaces)"
    missing = [tool for tool in REQUIRED_TOOLS if shutil.which(tool) is None]
    if missing:
        return f"missing {', '.join(missing)} (run scripts/install.sh as root)"
    if not Path("/dev/net/tun").exists():
        return "/dev/net/tun is missing (userspace WireGuard needs it)"
    return None


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if item.path.is_relative_to(here) and item.get_closest_marker("flaky") is None:
            item.add_marker(pytest.mark.flaky(reruns=RERUNS))


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.outcome == "rerun":  # pytest-rerunfailures marks a failed first attempt so
        _first_attempts.append(report)


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """The failures that a rerun passed or repeated, in full: what to investigate."""
    for report in _first_attempts:
        terminalreporter.section(f"failed attempt (rerun): {report.nodeid}", sep="-")
        terminalreporter.line(str(report.longrepr)[-20_000:])


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, Any, Any]:
    report = yield
    item.stash.setdefault(_reports, {})[report.when] = report
    return report


def need_lab() -> None:
    """Skip where worlds cannot be built (not root, no TUN device); a tool the install script
    provides that is missing fails under CI (tests.needs)."""
    reason = lab_unavailable()
    if reason and reason.startswith("missing "):
        missing(reason)
    if reason:
        pytest.skip(reason)


@pytest.fixture
def lab_ready() -> None:
    need_lab()


@pytest.fixture
def make_world(lab_ready: None, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[MakeWorld]:
    """``world = make_world(peers=[...], lans={...}, internet=[...], server=True)``: the arguments of
    :meth:`World.build`; logs and state go under the test's tmp_path. All worlds are closed afterwards."""
    worlds: list[World] = []

    def make(**kwargs: Any) -> World:
        kwargs.setdefault("workdir", tmp_path / f"world{len(worlds) + 1}")
        world = World.build(**kwargs)
        worlds.append(world)
        server = world.timings.get("server_start_s")
        started = f", server ready after {server * 1000:.0f} ms" if server is not None else ""
        print(f"world {world.tag}: built in {world.timings['build_s'] * 1000:.0f} ms{started}")
        return world

    yield make
    failed = any(r.failed for r in request.node.stash.get(_reports, {}).values())
    errors: list[str] = []
    for world in reversed(worlds):
        if failed:
            print(f"=== logs of world {world.tag} ({world.workdir})\n{world.logs()}")
        try:
            world.close()
            print(f"world {world.tag}: torn down in {world.timings['teardown_s'] * 1000:.0f} ms")
        except Exception as exc:
            errors.append(str(exc))
    if errors:
        pytest.fail("\n".join(errors))


@pytest.fixture
def world(make_world: MakeWorld) -> World:
    """The usual world: a client and two routing peers, an office LAN behind both routers (its host
    routes back through r1), the internet behind r1, and a running server."""
    return make_world(
        peers=["client", "r1", "r2"],
        lans={"office": Lan(routers=["r1", "r2"], default_via="r1")},
        internet=["r1"],
    )
