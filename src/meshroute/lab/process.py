"""Long-running commands inside a namespace: started by us, output appended to a log file, stopped by PID."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path

from meshroute.lab.netns import exec_argv


class ProcessTimeout(AssertionError):
    """A process did not exit in time (it has been SIGKILLed); the message ends with its log."""


def tail(path: Path, lines: int = 40) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return f"({path}: no log)"
    return "\n".join(text.splitlines()[-lines:])


def clean_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The caller's environment without MESHROUTE_* settings (a stray database URL or token must not
    reach a process of the world), plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MESHROUTE_")}
    env.update(extra or {})
    return env


class Proc:
    """A command run with `ip netns exec` in a namespace; restartable with the same arguments.

    Output (stdout and stderr) is appended to ``log`` with a header line per start, so restarts are
    visible in one file. The process leads its own session: a Ctrl-C on the terminal reaches only the
    test process, whose teardown stops everything by PID.
    """

    def __init__(
        self,
        name: str,
        netns: str,
        argv: Sequence[str],
        log: Path,
        *,
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.name = name
        self.netns = netns
        self.argv = list(argv)
        self.log = log
        self.env = clean_env(env)
        self.starts = 0
        self._popen: subprocess.Popen[bytes] | None = None

    def start(self) -> Proc:
        if self.running:
            raise RuntimeError(f"{self.name} is already running (pid {self.pid})")
        self.log.parent.mkdir(parents=True, exist_ok=True)
        self.starts += 1
        with self.log.open("ab") as out:
            shown = " ".join(a if len(a) < 200 and "\n" not in a else "<script>" for a in self.argv)
            out.write(f"--- start #{self.starts}: {shown}\n".encode())
            out.flush()
            self._popen = subprocess.Popen(
                exec_argv(self.netns, self.argv),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=self.env,
                start_new_session=True,
            )
        return self

    @property
    def pid(self) -> int | None:
        return self._popen.pid if self._popen else None

    @property
    def running(self) -> bool:
        return self._popen is not None and self._popen.poll() is None

    @property
    def returncode(self) -> int | None:
        """The exit status of the last run (negative: killed by that signal), None while running."""
        return self._popen.poll() if self._popen else None

    def send_signal(self, sig: int) -> None:
        if self.running and self._popen is not None:
            with contextlib.suppress(ProcessLookupError):
                self._popen.send_signal(sig)

    def wait(self, timeout: float) -> int:
        """Wait for the exit; on timeout SIGKILL it and raise ProcessTimeout (with the log's tail)."""
        if self._popen is None:
            raise RuntimeError(f"{self.name} was never started")
        try:
            return self._popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self._popen.kill()
            self._popen.wait(timeout=10)
            raise ProcessTimeout(
                f"{self.name} (pid {self._popen.pid}) did not exit within {timeout} s; SIGKILLed.\n"
                f"--- last lines of {self.log}:\n{tail(self.log)}"
            ) from None

    def stop(self, timeout: float = 10.0, sig: int = signal.SIGTERM) -> int:
        """Send ``sig`` (SIGTERM) and wait for the exit; return its status (0 for a clean exit)."""
        if self._popen is None:
            raise RuntimeError(f"{self.name} was never started")
        self.send_signal(sig)
        return self.wait(timeout)

    def kill(self) -> int:
        """SIGKILL: no cleanup at all, children (e.g. wireguard-go) may stay behind as orphans."""
        return self.stop(timeout=10.0, sig=signal.SIGKILL)

    def ensure_stopped(self) -> None:
        """Teardown: SIGKILL if still running, reap it (our child: no zombie left)."""
        if self._popen is not None and self._popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self._popen.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._popen.wait(timeout=10)

    def tail(self, lines: int = 40) -> str:
        return tail(self.log, lines)
