"""`meshroute agent run` assembled: the one place the agent's parts are wired together."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from collections.abc import Callable

from meshroute import __version__
from meshroute.agent.config import AgentConfig
from meshroute.agent.control import ControlServer
from meshroute.agent.engine import EXIT_FAILED, STOP_WAIT_S, Agent, System
from meshroute.agent.identity import FileIdentityStore, IdentityError
from meshroute.agent.lifecycle import StartupError
from meshroute.agent.link import Backoff, ManagementLink
from meshroute.agent.netlink import Netlink
from meshroute.protocol.client import Meta, open_channel

log = logging.getLogger("meshroute.agent")


def setup_logging(level: str) -> None:
    # Under systemd the journal stamps every line itself.
    stamp = "" if os.environ.get("JOURNAL_STREAM") else "%(asctime)s "
    logging.basicConfig(level=level.upper(), format=stamp + "%(levelname)s %(name)s: %(message)s")


def run(cfg: AgentConfig) -> int:
    """Runs until SIGTERM/SIGINT (exit 0), a refusal by the server (2) or a failure (1)."""
    cfg.state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(cfg.state_dir, 0o700)
    loop = asyncio.new_event_loop()
    try:
        return loop.run_until_complete(_main(cfg))
    finally:
        # Like asyncio.run, but a task stuck in a library (a gRPC read) cannot hold the exit.
        pending = asyncio.all_tasks(loop)
        for task in pending:
            task.cancel()
        if pending:
            loop.run_until_complete(asyncio.wait(pending, timeout=STOP_WAIT_S))
        loop.close()


async def _main(cfg: AgentConfig) -> int:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    root_ca = cfg.ca.read_bytes() if cfg.ca else None
    channel = open_channel(
        cfg.server, root_ca=root_ca, tls=cfg.tls, max_reconnect_backoff_s=cfg.reconnect_cap
    )
    store = FileIdentityStore(cfg.state_dir)
    netlink = Netlink()
    await netlink.open()

    def make_link(meta: Callable[[], Meta]) -> ManagementLink:
        return ManagementLink(
            channel,
            store,
            meta,
            setup_key=cfg.setup_key,
            server=cfg.server,
            backoff=Backoff(cap=cfg.reconnect_cap),
        )

    agent = Agent(cfg, store, System(netlink), make_link, version=__version__)
    control = ControlServer(
        cfg.state_dir,
        {
            "status": agent.status,
            "routes": agent.routes_list,
            "select": agent.routes_select,
            "deselect": agent.routes_deselect,
        },
    )
    try:
        try:
            store.load()
            await agent.prepare()
        except (StartupError, IdentityError) as exc:
            log.error("%s", exc)
            return EXIT_FAILED
        await control.start()
        log.info(
            "meshroute agent %s starting: management %s, interface %s", __version__, cfg.server, cfg.interface
        )
        code = await agent.run(stop)
        log.info("stopped")
        return code
    finally:
        await control.stop()
        try:
            await asyncio.wait_for(channel.close(), STOP_WAIT_S)
        except TimeoutError:
            log.debug("the management channel did not close in time")
        netlink.close()
