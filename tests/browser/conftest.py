"""The dashboard in a real browser: Debian's chromium driven by Playwright for Python (its driver
only: no browser download), against a real `meshroute server` process on free loopback ports.

One server for the whole browser suite (SQLite in a temporary directory); the account's world is
built through the REST API, and what only agents do (joining, connecting, reporting which routing
peer they use) is written to the server's store from here, as a second replica would. Screenshots
of the main pages go to `tests/browser/artifacts/` (not compared: looked at).
"""

from __future__ import annotations

import base64
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.integration.server_process import server_process
from tests.needs import missing

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).parent / "artifacts"
LAUNCH_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

try:
    from playwright.sync_api import Browser, BrowserContext, Page, sync_playwright
except ImportError:  # pragma: no cover - the dev extras install it
    sync_playwright = None  # type: ignore[assignment]

if not CHROMIUM.exists() or sync_playwright is None:
    missing(
        "the browser tests need Debian's chromium at /usr/bin/chromium and the playwright package "
        "(scripts/install.sh installs both)",
        module=True,
    )


@dataclass
class Mesh:
    """The server, its owner's token, and the account's world as the tests built it."""

    url: str
    token: str
    data_dir: Path
    groups: dict[str, str] = field(default_factory=dict)  # name -> ID
    peers: dict[str, str] = field(default_factory=dict)  # name -> ID

    def api(self, method: str, path: str, body: Any = None, token: str | None = None) -> Any:
        headers = {"Authorization": f"Token {token or self.token}"}
        reply = httpx.request(method, f"{self.url}/api/{path}", json=body, headers=headers, timeout=10)
        assert reply.status_code == 200, reply.text
        return reply.json()

    def group(self, name: str) -> str:
        self.groups[name] = self.api("POST", "groups", {"name": name})["id"]
        return self.groups[name]

    def join(self, hostname: str, *groups: str) -> str:
        """A peer joins with a setup key of `groups`, as an agent does."""
        key = self.api(
            "POST",
            "setup-keys",
            {"name": f"key-{hostname}", "type": "one-off", "auto_groups": [self.groups[g] for g in groups]},
        )["key"]
        with self.services() as services:
            from meshroute.server.services.peers import PeerRegistration

            wg = base64.b64encode(os.urandom(32)).decode()
            peer, _ = services.peers.register(
                PeerRegistration(
                    setup_key=key, wg_public_key=wg, hostname=hostname, os="linux", version="0.1.0"
                )
            )
        self.peers[hostname] = peer.id
        return peer.id

    def services(self) -> Any:
        from contextlib import contextmanager

        from meshroute.server.services import Services
        from meshroute.server.services.uow import UnitOfWork
        from meshroute.server.store.db import make_engine, sqlite_url
        from meshroute.server.store.sql import SqlStore

        @contextmanager
        def opened() -> Iterator[Services]:
            engine = make_engine(sqlite_url(self.data_dir))
            try:
                yield Services.create(UnitOfWork(SqlStore(engine)))
            finally:
                engine.dispose()

        return opened()

    def auditor_token(self) -> str:
        user = self.api("POST", "users", {"name": "auditor-ann", "role": "auditor", "is_service_user": True})
        made = self.api("POST", f"users/{user['id']}/tokens", {"name": "dashboard", "expires_in": 1})
        return str(made["plain_token"])


@pytest.fixture(scope="session")
def mesh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mesh]:
    data_dir = tmp_path_factory.mktemp("browser-server") / "data"
    with server_process(data_dir, log_level="warning") as proc:
        mesh = Mesh(proc.url, proc.token, data_dir)
        mesh.group("office-gateways")
        mesh.group("remote-workers")
        for name in ("gw-1", "gw-2"):
            mesh.join(name, "office-gateways")
        for name in ("alice-laptop", "bob-laptop", "carol-laptop"):
            mesh.join(name, "remote-workers")
        yield mesh
        log = proc.log_text()
    assert mesh.token not in log, "the token was written to the server's log"


# module scope: sync Playwright keeps an event loop running while open, which would break every
# later test that calls asyncio.run
@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as pw:
        found = shutil.which("chromium") or str(CHROMIUM)
        b = pw.chromium.launch(executable_path=found, args=LAUNCH_ARGS)
        yield b
        b.close()


@pytest.fixture
def context(browser: Browser) -> Iterator[BrowserContext]:
    ctx = browser.new_context(viewport={"width": 1360, "height": 900})
    ctx.set_default_timeout(10_000)
    yield ctx
    ctx.close()


@pytest.fixture
def page(context: BrowserContext) -> Page:
    return context.new_page()


def sign_in(page: Page, mesh: Mesh, token: str | None = None) -> None:
    page.goto(f"{mesh.url}/")
    assert page.url.startswith(f"{mesh.url}/signin")
    page.fill("#token", token or mesh.token)
    page.click("button[type=submit]")
    page.wait_for_url(f"{mesh.url}/routes")


def shot(page: Page, name: str) -> None:
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)
