"""Processes the agent started, identified beyond their PID (PIDs are reused): a process is ours
only if its start time is the one recorded when it was started."""

from __future__ import annotations

import asyncio
import os
import signal
import time


def process_start_time(pid: int) -> int | None:
    """Field 22 of /proc/PID/stat (clock ticks after boot); None if the process is gone or a
    zombie (a zombie is as good as gone: PID 1 may reap it late)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read().decode(errors="replace")
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2 :].split()
    if fields[0] in ("Z", "X"):
        return None
    return int(fields[19])


def is_running(pid: int, start_time: int | None) -> bool:
    return start_time is not None and process_start_time(pid) == start_time


async def stop_process(pid: int, start_time: int | None, timeout: float = 2.0) -> bool:
    """SIGTERM, then SIGKILL after `timeout`; nothing if the PID is no longer that process.
    True if it was running."""
    if not is_running(pid, start_time):
        return False
    for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 2.0)):
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            return True
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            if not is_running(pid, start_time):
                return True
            await asyncio.sleep(0.01)
    return True
