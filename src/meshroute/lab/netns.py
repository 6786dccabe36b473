"""Network namespaces owned by one run: names, commands inside them, their processes, removal, sweeping.

Every namespace of a run is named ``{prefix}{pid}x{n}-{node}``: the owning process's PID makes the name
unique on the machine and tells a later run whether the owner is still alive (the sweeper removes
namespaces whose owner is dead). Nothing here touches the root namespace's network state: links are
created from the root namespace but directly inside their target namespaces.
"""

from __future__ import annotations

import contextlib
import ctypes
import itertools
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

NETNS_DIR = Path("/run/netns")
ETC_NETNS = Path("/etc/netns")
DEFAULT_PREFIX = "mrl"
CLONE_NEWNET = 0x40000000
DEFAULT_RESOLV_CONF = (
    "# meshroute lab: no name server unless a test starts one (nothing may leave the namespaces)\n"
    "nameserver 127.0.0.1\noptions timeout:1 attempts:1\n"
)

_run_counter = itertools.count(1)


class CommandError(RuntimeError):
    """A command failed; the message carries its output so a test failure explains itself."""

    def __init__(self, argv: Sequence[str], returncode: int, stdout: str, stderr: str) -> None:
        self.argv = list(argv)
        self.returncode = returncode
        self.stdout = stdout
        self.stderr = stderr
        out = "\n".join(part for part in (stdout.strip(), stderr.strip()) if part)
        super().__init__(f"{' '.join(self.argv)} -> exit {returncode}" + (f"\n{out[-4000:]}" if out else ""))


def run(
    argv: Sequence[str],
    *,
    input: str | None = None,
    timeout: float = 30.0,
    check: bool = True,
    env: Mapping[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run a command to completion, capturing text output; raise CommandError on failure if check."""
    try:
        done = subprocess.run(
            list(argv),
            input=input,
            capture_output=True,
            text=True,
            timeout=timeout,
            env=dict(env) if env is not None else None,
            stdin=None if input is not None else subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired as exc:
        out = exc.stdout.decode(errors="replace") if isinstance(exc.stdout, bytes) else exc.stdout or ""
        err = exc.stderr.decode(errors="replace") if isinstance(exc.stderr, bytes) else exc.stderr or ""
        raise CommandError(argv, -1, out, err + f"\n(timed out after {timeout} s)") from None
    if check and done.returncode != 0:
        raise CommandError(argv, done.returncode, done.stdout, done.stderr)
    return done


def exec_argv(netns: str, argv: Sequence[str]) -> list[str]:
    """`ip netns exec` keeps the PID (it execs), gives a private mount namespace and /etc/netns files."""
    return ["ip", "netns", "exec", netns, *argv]


def ip_batch(lines: Sequence[str], *, netns: str | None = None, force: bool = False) -> None:
    """Many `ip` commands in one process: about 3 ms in all instead of 3 ms each."""
    if not lines:
        return
    argv = ["ip"] + (["-n", netns] if netns else []) + (["-force"] if force else []) + ["-batch", "-"]
    run(argv, input="\n".join(lines) + "\n", check=not force)


def ip_batches(batches: Mapping[str, Sequence[str]]) -> None:
    """One batch per namespace, all running at once (each `ip -n` is its own process)."""
    procs: list[tuple[str, list[str], subprocess.Popen[str]]] = []
    for ns, lines in batches.items():
        if not lines:
            continue
        argv = ["ip", "-n", ns, "-batch", "-"]
        proc = subprocess.Popen(
            argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        procs.append((ns, argv, proc))
    errors: list[str] = []
    for ns, argv, proc in procs:
        out, err = proc.communicate("\n".join(batches[ns]) + "\n", timeout=30)
        if proc.returncode != 0:
            errors.append(str(CommandError(argv, proc.returncode, out, err)))
    if errors:
        raise RuntimeError("\n".join(errors))


# -- run names ---------------------------------------------------------------------------------------


def new_run_tag(prefix: str = DEFAULT_PREFIX) -> str:
    """A tag unique on this machine while this process lives: prefix, PID, a per-process counter."""
    return f"{prefix}{os.getpid()}x{next(_run_counter)}"


def _tag_re(prefix: str) -> re.Pattern[str]:
    return re.compile(rf"^{re.escape(prefix)}(\d+)x(\d+)-")


def owner_pid(name: str, prefix: str = DEFAULT_PREFIX) -> int | None:
    """The owning PID encoded in a namespace name of ours, or None for anybody else's namespace."""
    m = _tag_re(prefix).match(name)
    return int(m.group(1)) if m else None


def list_netns() -> list[str]:
    try:
        return sorted(os.listdir(NETNS_DIR))
    except FileNotFoundError:
        return []


# -- processes ---------------------------------------------------------------------------------------


def _stat_fields(pid: int) -> list[str] | None:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    # the command name may hold spaces and parentheses: the fields start after the last ')'
    return raw[raw.rfind(")") + 2 :].split()


def process_gone(pid: int) -> bool:
    """Exited, or a zombie (PID 1 reaps orphans lazily on these machines; a zombie holds nothing)."""
    fields = _stat_fields(pid)
    return fields is None or fields[0] in ("Z", "X")


def process_start_time(pid: int) -> float | None:
    """Wall-clock start time of a process, from /proc (clock ticks after boot)."""
    fields = _stat_fields(pid)
    if fields is None:
        return None
    btime = next(
        int(line.split()[1])
        for line in Path("/proc/stat").read_text().splitlines()
        if line.startswith("btime")
    )
    return btime + int(fields[19]) / os.sysconf("SC_CLK_TCK")


def pids_in_netns(names: Iterable[str]) -> dict[str, list[int]]:
    """Processes (not zombies) whose network namespace is one of ``names``: what `ip netns pids` does,
    for all namespaces in one pass over /proc."""
    wanted: dict[tuple[int, int], str] = {}
    for name in names:
        try:
            st = os.stat(NETNS_DIR / name)
        except FileNotFoundError:
            continue
        wanted[(st.st_dev, st.st_ino)] = name
    found: dict[str, list[int]] = {name: [] for name in wanted.values()}
    if not wanted:
        return found
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            st = os.stat(f"/proc/{entry}/ns/net")
        except OSError:  # gone, or a zombie (no namespaces left)
            continue
        owner = wanted.get((st.st_dev, st.st_ino))
        if owner is not None and not process_gone(int(entry)):
            found[owner].append(int(entry))
    return found


def kill_and_wait(pids: Iterable[int], *, sig: int = signal.SIGKILL, timeout: float = 5.0) -> list[int]:
    """Signal each PID, wait until all are gone (or zombies); return those still running."""
    pending = set(pids)
    for pid in pending:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)
    deadline = time.monotonic() + timeout
    while pending:
        pending = {pid for pid in pending if not process_gone(pid)}
        if not pending or time.monotonic() > deadline:
            break
        time.sleep(0.005)
    return sorted(pending)


def empty_netns(names: Sequence[str], *, timeout: float = 5.0) -> list[int]:
    """SIGKILL every process in these namespaces until none is left (a killed process may have forked,
    so look again); return the PIDs that would not die."""
    deadline = time.monotonic() + timeout
    while True:
        pids = [pid for found in pids_in_netns(names).values() for pid in found]
        if not pids:
            return []
        if time.monotonic() > deadline:
            return sorted(pids)
        kill_and_wait(pids, timeout=max(0.0, deadline - time.monotonic()))


def delete_netns(names: Sequence[str]) -> list[str]:
    """Delete namespaces (those already gone are fine); return the ones that still exist."""
    existing = [n for n in names if (NETNS_DIR / n).exists()]
    ip_batch([f"netns del {n}" for n in existing], force=True)
    return [n for n in existing if (NETNS_DIR / n).exists()]


def remove_etc_netns(names: Iterable[str]) -> None:
    for name in names:
        shutil.rmtree(ETC_NETNS / name, ignore_errors=True)


def write_resolv_conf(netns: str, text: str = DEFAULT_RESOLV_CONF) -> Path:
    """`ip netns exec` bind-mounts /etc/netns/NS/resolv.conf over /etc/resolv.conf: the host's stays."""
    path = ETC_NETNS / netns / "resolv.conf"
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(".resolv.conf.tmp")
    tmp.write_text(text)
    tmp.replace(path)  # atomic: a process starting now sees the old or the new file, never half of one
    return path


def destroy(names: Sequence[str], *, timeout: float = 5.0) -> list[str]:
    """Kill everything in the namespaces, delete them and their /etc/netns entries; return problems."""
    problems: list[str] = []
    left = empty_netns(names, timeout=timeout)
    if left:
        problems.append(f"processes would not die: {left}")
    stuck = delete_netns(names)
    if stuck:
        problems.append(f"namespaces could not be deleted: {stuck}")
    remove_etc_netns(names)
    return problems


# -- sweeping leftovers of dead runs -----------------------------------------------------------------


def owner_alive(name: str, prefix: str = DEFAULT_PREFIX) -> bool:
    """Whether the process that created this namespace still runs. A live PID that started after the
    namespace's /etc/netns entry was made is a reused PID, not the owner."""
    pid = owner_pid(name, prefix)
    if pid is None or process_gone(pid):
        return False
    started = process_start_time(pid)
    try:
        made = (ETC_NETNS / name).stat().st_mtime
    except FileNotFoundError:
        return True
    return started is None or started <= made + 2.0  # start time has clock-tick granularity


def sweep(prefix: str = DEFAULT_PREFIX) -> list[str]:
    """Remove namespaces (with their processes) and /etc/netns entries left by runs whose owner is dead,
    so a crashed run never breaks the next one. Returns what was removed."""
    pattern = _tag_re(prefix)
    try:
        etc = sorted(os.listdir(ETC_NETNS))
    except FileNotFoundError:
        etc = []
    candidates = sorted({n for n in [*list_netns(), *etc] if pattern.match(n)})
    dead = [n for n in candidates if not owner_alive(n, prefix)]
    if dead:
        destroy(dead)
    # default work dirs (tempfile.mkdtemp(prefix=TAG-)) of dead owners: logs and server data
    for path in Path(tempfile.gettempdir()).glob(f"{prefix}*x*-*"):
        pid = owner_pid(path.name, prefix)
        if pid is not None and path.is_dir() and process_gone(pid):
            shutil.rmtree(path, ignore_errors=True)
    return dead


def destroy_run(tag: str) -> list[str]:
    """Remove every namespace (with its processes) and /etc/netns entry of one run, whether its owner
    lives or not: for a lab that another process built (`meshroute lab down`). Returns problems."""
    try:
        etc = os.listdir(ETC_NETNS)
    except FileNotFoundError:
        etc = []
    return destroy(sorted({n for n in [*list_netns(), *etc] if n.startswith(tag + "-")}))


# -- entering a namespace from a thread ---------------------------------------------------------------

_libc: ctypes.CDLL | None = None


def setns_current_thread(netns: str) -> None:
    """Move the calling thread (only it: network namespaces are per task) into a named namespace."""
    global _libc
    if _libc is None:
        _libc = ctypes.CDLL(None, use_errno=True)
    fd = os.open(NETNS_DIR / netns, os.O_RDONLY | os.O_CLOEXEC)
    try:
        if _libc.setns(fd, CLONE_NEWNET) != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"setns({netns}): {os.strerror(err)}")
    finally:
        os.close(fd)
