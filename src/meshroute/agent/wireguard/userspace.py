"""Userspace WireGuard: a `wireguard-go` child process, configured through its UAPI socket.

wireguard-go puts its socket at the fixed path /run/wireguard/IFNAME.sock, so two agents on one
host (each in its own network namespace, same interface name) would collide. Each instance runs
in a private mount namespace with its own tmpfs on /run; the agent reaches the socket through
/proc/PID/root. Nothing is created in the host's /run. `wg` works with
`nsenter -t PID -m wg show IFNAME`.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path

from meshroute.agent.procs import process_start_time, stop_process
from meshroute.agent.wireguard import uapi
from meshroute.agent.wireguard.backend import BackendUnavailable
from meshroute.agent.wireguard.model import DeviceSettings, PeerOp, PeerStats

_LAUNCH = 'mount -t tmpfs -o mode=0700,size=1m meshroute /run && exec "$0" -f "$1"'


class UserspaceDevice:
    kind = "userspace"

    def __init__(self, interface: str, proc: subprocess.Popen[bytes], log_path: Path) -> None:
        self.interface = interface
        self.proc = proc
        self.pid = proc.pid
        self.start_time = process_start_time(proc.pid)
        self.log_path = log_path
        self.socket = f"/proc/{proc.pid}/root/run/wireguard/{interface}.sock"

    @classmethod
    async def start(
        cls, interface: str, log_path: Path, *, binary: str = "wireguard-go", verbose: bool = False
    ) -> UserspaceDevice:
        exe = shutil.which(binary)
        if exe is None:
            raise BackendUnavailable(
                f"{binary} is not installed (apt install wireguard-go) and the kernel has no WireGuard"
            )
        for tool in ("unshare", "mount"):
            if shutil.which(tool) is None:
                raise BackendUnavailable(f"{tool} (util-linux) is needed to run wireguard-go")
        env = {
            "PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"),
            "WG_PROCESS_FOREGROUND": "1",
            "LOG_LEVEL": "verbose" if verbose else "error",
        }
        # 0600: at verbose level wireguard-go logs peer keys and addresses.
        log = os.fdopen(os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600), "ab")
        try:
            proc = subprocess.Popen(
                ["unshare", "--mount", "--propagation", "private", "sh", "-c", _LAUNCH, exe, interface],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                # Its own session: a Ctrl-C meant for the agent must not kill the tunnel before the
                # agent has cleaned up.
                start_new_session=True,
            )
        finally:
            log.close()
        device = cls(interface, proc, log_path)
        try:
            await device._wait_ready()
        except BaseException:  # also a SIGTERM that arrives while it starts: never leave it behind
            await asyncio.shield(device.close())
            raise
        return device

    async def _wait_ready(self, timeout: float = 5.0) -> None:
        deadline = time.monotonic() + timeout
        while not os.path.exists(self.socket):
            if self.proc.poll() is not None:
                raise BackendUnavailable(f"wireguard-go exited at start: {self._log_tail()}")
            if time.monotonic() > deadline:
                await self.close()
                raise BackendUnavailable(f"wireguard-go did not open its UAPI socket within {timeout:.0f} s")
            await asyncio.sleep(0.01)

    def _log_tail(self) -> str:
        try:
            lines = self.log_path.read_text(errors="replace").strip().splitlines()
        except OSError:
            return "(no log)"
        return lines[-1] if lines else "(no output)"

    # UAPI requests take about 0.1 ms on the local socket: not worth a thread.
    async def configure(self, settings: DeviceSettings | None, ops: Sequence[PeerOp]) -> None:
        if settings is None and not ops:
            return
        uapi.apply(self.socket, settings, ops)

    async def peers(self) -> list[PeerStats]:
        return uapi.get(self.socket)[1]

    async def close(self) -> None:
        """SIGTERM: wireguard-go removes its interface and socket itself, then exits."""
        await stop_process(self.proc.pid, self.start_time)
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()

    def owner_record(self) -> dict[str, object]:
        return {"pid": self.pid, "start_time": self.start_time}
