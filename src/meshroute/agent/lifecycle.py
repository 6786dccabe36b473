"""Installing and removing what the agent owns on the host, recorded in the ledger first.

Start: remove what a crashed run left (its wireguard-go, its interface), then make sure the
interface name is free and a WireGuard implementation is there, all before the first contact
with the server. Stop: remove everything that was installed.
"""

from __future__ import annotations

import glob
import logging
import os
import platform
import shutil
from pathlib import Path

from meshroute.agent import firewall
from meshroute.agent.config import AgentConfig
from meshroute.agent.desired import CONTROL_PLANE_MARK
from meshroute.agent.dns import hostconfig
from meshroute.agent.ledger import Ledger
from meshroute.agent.netlink import NetlinkOps
from meshroute.agent.procs import stop_process
from meshroute.agent.routing import policy
from meshroute.agent.wireguard.backend import BackendUnavailable, WireGuardDevice
from meshroute.agent.wireguard.kernel import KernelDevice
from meshroute.agent.wireguard.model import DeviceSettings
from meshroute.agent.wireguard.userspace import UserspaceDevice

log = logging.getLogger(__name__)
WIREGUARD = "wireguard"  # ledger section
WIREGUARD_GO_LOG = "wireguard-go.log"


class StartupError(Exception):
    """The agent cannot run here as configured; the message says what to change."""


async def remove_leftovers(ledger: Ledger, netlink: NetlinkOps) -> list[str]:
    """Undo what an earlier run recorded and did not remove (it crashed or was killed): its
    WireGuard device and process, its policy rules and routes, the host's resolver set-up, its
    nftables table and forwarding values."""
    removed = await _wireguard_leftovers(ledger, netlink)
    if ledger.load().get(policy.SECTION):
        removed += await policy.remove_leftovers(ledger)
    if ledger.load().get(hostconfig.SECTION):
        removed += await hostconfig.restore_leftovers(ledger)
    # a resolv.conf that could not be put back: its original stays recorded, never lost
    unrestored = ledger.sections.get(hostconfig.SECTION)
    recorded = ledger.load()
    if recorded.get(firewall.SECTION) or recorded.get(firewall.forwarding.SECTION):
        removed += await firewall.restore_leftovers(ledger)
    ledger.path.unlink(missing_ok=True)
    if unrestored:
        ledger.record(hostconfig.SECTION, unrestored)
    return removed


async def _wireguard_leftovers(ledger: Ledger, netlink: NetlinkOps) -> list[str]:
    removed: list[str] = []
    record = ledger.load().get(WIREGUARD)
    if record:
        pid, start_time = record.get("pid"), record.get("start_time")
        if isinstance(pid, int) and isinstance(start_time, int) and await stop_process(pid, start_time):
            removed.append(f"wireguard-go (pid {pid})")
        name = str(record.get("interface", ""))
        if name and await netlink.delete_link(name):
            removed.append(f"interface {name}")
    return removed


def kernel_wireguard_possible() -> bool:
    """The kernel has WireGuard loaded, built in, or as a module it can load on demand."""
    if os.path.exists("/sys/module/wireguard"):
        return True
    release = platform.release()
    return bool(glob.glob(f"/lib/modules/{release}/**/wireguard.ko*", recursive=True)) or _builtin(release)


def _builtin(release: str) -> bool:
    try:
        return "wireguard.ko" in Path(f"/lib/modules/{release}/modules.builtin").read_text()
    except OSError:
        return False


async def preflight(cfg: AgentConfig, netlink: NetlinkOps) -> None:
    """Everything that can be known to fail before the server is contacted."""
    if await netlink.link_exists(cfg.interface):
        raise StartupError(
            f"interface {cfg.interface} already exists and this agent did not create it "
            f"(nothing about it in {cfg.state_dir}): choose another --interface or remove it"
        )
    wants_userspace = cfg.wireguard == "userspace" or (
        cfg.wireguard == "auto" and not kernel_wireguard_possible()
    )
    if cfg.wireguard == "kernel" and not kernel_wireguard_possible():
        raise StartupError("--wireguard kernel: this kernel has no WireGuard module")
    if wants_userspace and shutil.which(cfg.wireguard_go) is None:
        why = (
            "--wireguard userspace" if cfg.wireguard == "userspace" else "the kernel has no WireGuard module"
        )
        raise StartupError(
            f"no WireGuard: {why} and {cfg.wireguard_go} is not installed (apt install wireguard-go)"
        )


async def install_device(
    cfg: AgentConfig, ledger: Ledger, netlink: NetlinkOps, private_key: str
) -> WireGuardDevice:
    """Create the interface, give it the key, port and mark, and bring it up (MTU from config)."""
    ledger.record(WIREGUARD, {"interface": cfg.interface, "kind": "pending"})  # before it exists
    device: WireGuardDevice | None = None
    try:
        if cfg.wireguard in ("auto", "kernel"):
            try:
                device = await KernelDevice.create(cfg.interface)
            except BackendUnavailable:
                if cfg.wireguard == "kernel":
                    raise
        if device is None:
            device = await UserspaceDevice.start(
                cfg.interface,
                cfg.state_dir / WIREGUARD_GO_LOG,
                binary=cfg.wireguard_go,
                verbose=cfg.wireguard_verbose,
            )
        ledger.record(WIREGUARD, {"interface": cfg.interface, "kind": device.kind, **device.owner_record()})
        try:
            await device.configure(DeviceSettings(private_key, cfg.listen_port, CONTROL_PLANE_MARK), [])
        except Exception as exc:
            raise StartupError(
                f"WireGuard refused its settings (is UDP port {cfg.listen_port} taken?): {exc}"
            ) from None
        await netlink.set_up(cfg.interface, cfg.mtu)
    except BaseException:
        if device is not None:
            await device.close()
        await netlink.delete_link(cfg.interface)
        ledger.drop(WIREGUARD)
        raise
    log.info(
        "WireGuard interface %s up (%s, UDP %d, MTU %d)", cfg.interface, device.kind, cfg.listen_port, cfg.mtu
    )
    return device


async def remove_device(device: WireGuardDevice, ledger: Ledger, netlink: NetlinkOps) -> None:
    await device.close()
    await netlink.delete_link(device.interface)
    ledger.drop(WIREGUARD)
