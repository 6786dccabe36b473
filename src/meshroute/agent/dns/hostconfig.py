"""Pointing the host's resolver at the interceptor, and putting it back.

Two modes, chosen by `detect()`:

**systemd-resolved** (`/etc/resolv.conf` is resolved's stub: a symlink into /run/systemd/resolve/
whose only name server is 127.0.0.53, and `resolvectl` is there). Nothing in /etc is written. The
WireGuard interface gets per-link DNS: the interceptor on the overlay address (port 53) as its
server, the zones of the domain routes as *routing-only* domains (`~app.example.com`,
`~example.com` for `*.example.com`) and `default-route false`, so resolved sends exactly those
names there and everything else where it did before (`resolvectl dns/domain/default-route`,
undone by `resolvectl revert`, and by the link going away). The interceptor's upstreams for the
names inside those zones that match no route (`example.com` itself under `*.example.com`) are the
servers resolved itself uses (/run/systemd/resolve/resolv.conf). Not testable in CI: resolved does
not run in the test namespaces; the commands and the detection are unit-tested against fakes.

**managed resolv.conf** (everything else). The current file's text is recorded in the ledger
(section "dns") *before* anything changes, then the file is rewritten **in place** (open, truncate,
write: under `ip netns exec` /etc/resolv.conf is a bind mount, which a rename cannot replace; a
symlinked file is written through the link) with `nameserver 127.0.0.77` and the original's
`search`, `domain`, `options` and `sortlist` lines. The original name servers become the
interceptor's upstreams. On stop the original text is written back byte for byte; after a crash
`restore_leftovers` does it at the next start, from the ledger. If somebody else rewrote the file
meanwhile (a DHCP client, NetworkManager) theirs is newer than our original: it is left alone
and the record dropped. A missing file is created and removed again.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import os
import shutil
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from meshroute.agent.dns.interceptor import DNS_PORT, INTERCEPTOR_ADDRESS
from meshroute.agent.dns.transport import Server
from meshroute.agent.ledger import Ledger

log = logging.getLogger(__name__)

SECTION = "dns"  # ledger section
RESOLV_CONF = Path("/etc/resolv.conf")
RESOLVED_DIR = Path("/run/systemd/resolve")
RESOLVED_STUB = "127.0.0.53"
MARKER = "# meshroute: domain routes; the agent puts the original back when it stops"
_KEPT = ("search", "domain", "options", "sortlist")

Mode = Literal["systemd-resolved", "resolv.conf"]
MODE_RESOLVED: Mode = "systemd-resolved"
MODE_RESOLV_CONF: Mode = "resolv.conf"

Runner = Callable[[Sequence[str]], Awaitable[tuple[int, str]]]


class HostDnsError(Exception):
    """The host's resolver cannot be pointed at the interceptor; the message says why."""


async def run_command(argv: Sequence[str]) -> tuple[int, str]:
    """Exit status and output (stdout and stderr) of a command."""
    proc = await asyncio.create_subprocess_exec(
        *argv,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await proc.communicate()
    return proc.returncode or 0, out.decode(errors="replace").strip()


# -- resolv.conf text -----------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class ResolvConf:
    nameservers: tuple[str, ...]
    kept: tuple[str, ...]  # the search/domain/options/sortlist lines, as written

    @property
    def upstreams(self) -> list[Server]:
        """Where glibc would send queries: its name servers on port 53 (none: 127.0.0.1)."""
        servers = [s for s in self.nameservers if s != INTERCEPTOR_ADDRESS]
        return [(s, DNS_PORT) for s in servers] if self.nameservers else [("127.0.0.1", DNS_PORT)]


def parse_resolv_conf(text: str) -> ResolvConf:
    nameservers: list[str] = []
    kept: list[str] = []
    for line in text.splitlines():
        words = line.split()
        if not words or words[0].startswith(("#", ";")):
            continue
        if words[0] == "nameserver" and len(words) > 1:
            address = words[1].split("%")[0]  # fe80::1%eth0: the scope is not ours to keep
            try:
                nameservers.append(str(ipaddress.ip_address(address)))
            except ValueError:
                continue
        elif words[0] in _KEPT:
            kept.append(line.strip())
    return ResolvConf(tuple(nameservers), tuple(kept))


def managed_text(original: str, address: str = INTERCEPTOR_ADDRESS) -> str:
    """What the managed file says: the interceptor, then the original's search/options lines."""
    lines = [MARKER, f"nameserver {address}", *parse_resolv_conf(original).kept]
    return "\n".join(lines) + "\n"


def write_in_place(path: Path, text: str) -> None:
    """Truncate and write the same inode (a bind mount or a symlink target stays what it is)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
    try:
        data = text.encode()
        written = 0
        while written < len(data):
            written += os.write(fd, data[written:])
        os.fsync(fd)
    finally:
        os.close(fd)


def _read(path: Path) -> str | None:
    try:
        return path.read_text()
    except FileNotFoundError:
        return None


# -- which mode ------------------------------------------------------------------------------------
def detect(
    path: Path = RESOLV_CONF,
    resolved_dir: Path = RESOLVED_DIR,
    which: Callable[[str], str | None] = shutil.which,
) -> Mode:
    """systemd-resolved when `path` is resolved's stub file and resolvectl is installed."""
    if not path.is_symlink() or which("resolvectl") is None:
        return MODE_RESOLV_CONF
    target = Path(os.path.realpath(path))
    if not target.is_relative_to(os.path.realpath(resolved_dir)):
        return MODE_RESOLV_CONF
    text = _read(path)
    if text is None or parse_resolv_conf(text).nameservers != (RESOLVED_STUB,):
        return MODE_RESOLV_CONF  # resolved's full list (resolv.conf, not the stub): not routed by it
    return MODE_RESOLVED


# -- managed resolv.conf ---------------------------------------------------------------------------
class ManagedResolvConf:
    """`install()` points the file at the interceptor; `restore()` puts the original back."""

    mode: Mode = MODE_RESOLV_CONF

    def __init__(self, ledger: Ledger, path: Path = RESOLV_CONF, address: str = INTERCEPTOR_ADDRESS) -> None:
        self.ledger = ledger
        self.path = path
        self.address = address
        self.original: str | None = None
        self.written: str | None = None

    @property
    def installed(self) -> bool:
        return self.written is not None

    @property
    def upstreams(self) -> list[Server]:
        """The host's original name servers (where every other name goes)."""
        text = self.original if self.installed else _read(self.path)
        return parse_resolv_conf(text or "").upstreams

    @property
    def listen(self) -> list[Server]:
        return [(self.address, DNS_PORT)]

    def install(self) -> None:
        """Record the original in the ledger, then rewrite the file in place. Idempotent."""
        if self.installed:
            return
        if self.path.is_symlink() and not self.path.exists():
            # e.g. resolved's stub before resolved runs: writing through it (or restoring "no
            # file" later) would replace the user's link; wait until it points somewhere
            raise HostDnsError(f"{self.path} is a link to a file that does not exist (yet): not touched")
        original = _read(self.path)
        if original is not None and MARKER in original and self.ledger.sections.get(SECTION):
            raise HostDnsError(
                f"{self.path} still points at the interceptor: an earlier run's original could not be "
                f"put back (see the warning at start); it is kept in {self.ledger.path}"
            )
        if original is not None and MARKER in original:
            raise HostDnsError(
                f"{self.path} was left pointing at the interceptor by an earlier run that kept no "
                f"record of the original (its state directory was removed): put it back by hand"
            )
        text = managed_text(original or "", self.address)
        self.ledger.record(
            SECTION, _record(MODE_RESOLV_CONF, path=str(self.path), original=original, written=text)
        )
        try:
            write_in_place(self.path, text)
        except OSError as exc:
            self._put_back(original, text)
            self.ledger.drop(SECTION)
            raise HostDnsError(f"cannot write {self.path}: {exc.strerror or exc}") from None
        self.original, self.written = original, text
        log.info("%s now sends DNS queries to the interceptor (%s)", self.path, self.address)

    def drifted(self) -> bool:
        """Somebody else rewrote the file while it is installed (queries bypass the interceptor)."""
        return self.installed and _read(self.path) != self.written

    def adopt(self) -> None:
        """Somebody else rewrote the file (a DHCP client, NetworkManager): theirs is the original
        now, to be put back at the end; the file points at the interceptor again."""
        self.original = self.written = None
        self.ledger.drop(SECTION)
        self.install()

    def restore(self) -> bool:
        """Put the original back (unless somebody else rewrote the file); True if it was."""
        if self.written is None:
            return False
        done = _restore_file(self.path, self.original, self.written)
        self.ledger.drop(SECTION)
        self.original = self.written = None
        return done

    def _put_back(self, original: str | None, written: str) -> None:
        with contextlib.suppress(OSError):
            _restore_file(self.path, original, written)


def _restore_file(path: Path, original: str | None, written: str) -> bool:
    current = _read(path)
    torn = current is not None and (written.startswith(current) or (original or "").startswith(current))
    if current is not None and current != written and not torn:
        # Neither ours nor a torn write of ours (or of the original, cut short by a crash while
        # being put back): somebody else's, newer than our original.
        log.warning("%s was changed by something else while the agent ran: left as it is", path)
        return False
    if original is None:
        path.unlink(missing_ok=True)
    else:
        write_in_place(path, original)
    log.info("%s restored", path)
    return True


# -- systemd-resolved ------------------------------------------------------------------------------
class ResolvedLink:
    """Per-link DNS on the WireGuard interface, through resolvectl."""

    mode: Mode = MODE_RESOLVED

    def __init__(
        self,
        ledger: Ledger,
        interface: str,
        *,
        run: Runner = run_command,
        resolved_dir: Path = RESOLVED_DIR,
    ) -> None:
        self.ledger = ledger
        self.interface = interface
        self.run = run
        self.resolved_dir = resolved_dir
        self.applied: tuple[str, tuple[str, ...]] | None = None  # (server, zones)

    @property
    def installed(self) -> bool:
        return self.applied is not None

    @property
    def upstreams(self) -> list[Server]:
        """The servers resolved itself uses (its non-stub resolv.conf)."""
        text = _read(self.resolved_dir / "resolv.conf") or ""
        return [u for u in parse_resolv_conf(text).upstreams if u[0] != RESOLVED_STUB]

    @staticmethod
    def commands(interface: str, server: str, zones: Sequence[str]) -> list[list[str]]:
        """What `apply` runs: the server, the routing-only domains, and no default route."""
        return [
            ["resolvectl", "dns", interface, server],
            ["resolvectl", "domain", interface, *(f"~{z}" for z in sorted(set(zones)))],
            ["resolvectl", "default-route", interface, "false"],
        ]

    async def apply(self, server: str, zones: Sequence[str]) -> None:
        """Send `zones` (and their subdomains) to `server` (the interceptor's overlay address)."""
        wanted = (server, tuple(sorted(set(zones))))
        if wanted == self.applied:
            return
        if not zones:
            await self.revert()
            return
        self.ledger.record(SECTION, _record(MODE_RESOLVED, interface=self.interface))
        for argv in self.commands(self.interface, server, zones):
            code, out = await self.run(argv)
            if code != 0:
                raise HostDnsError(f"{' '.join(argv)} failed: {out or f'exit {code}'}")
        self.applied = wanted
        log.info("systemd-resolved sends %s to %s on %s", ", ".join(wanted[1]), server, self.interface)

    async def revert(self) -> None:
        if self.applied is None and not self.ledger.sections.get(SECTION):
            return
        await _revert(self.run, self.interface)
        self.ledger.drop(SECTION)
        self.applied = None


async def _revert(run: Runner, interface: str) -> bool:
    code, out = await run(["resolvectl", "revert", interface])
    if code != 0:  # the link is gone (and resolved forgot it with it), or resolved is not running
        log.debug("resolvectl revert %s: %s", interface, out)
    return code == 0


# -- after a crash ---------------------------------------------------------------------------------
async def restore_leftovers(ledger: Ledger, run: Runner = run_command) -> list[str]:
    """Undo what a run that did not stop recorded in the ledger's "dns" section; returns what was
    done (for the agent's "removed what an earlier run left behind" line)."""
    record = ledger.load().get(SECTION)
    if not record:
        return []
    done: list[str] = []
    if record.get("mode") == MODE_RESOLV_CONF:
        path = Path(str(record.get("path", RESOLV_CONF)))
        original = record.get("original")
        written = str(record.get("written", ""))
        try:
            if _restore_file(path, original if isinstance(original, str) else None, written):
                done.append(f"the original {path}")
        except OSError as exc:
            # the record is the only copy of the user's file: kept for the next start
            log.warning("cannot restore %s (%s): the original is kept for the next start", path, exc)
            ledger.record(SECTION, record)  # this run's own: it survives the ledger's clean-up
            return done
    elif record.get("mode") == MODE_RESOLVED:
        interface = str(record.get("interface", ""))
        if interface and await _revert(run, interface):
            done.append(f"systemd-resolved settings of {interface}")
    ledger.drop(SECTION)
    return done


def _record(mode: Mode, **fields: Any) -> dict[str, Any]:
    return {"mode": mode, **fields}
