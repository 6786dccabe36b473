"""IP forwarding while this peer serves routes, and the previous values back when it stops (system).

IPv4: ``net.ipv4.ip_forward`` while an IPv4 route (exit node ``0.0.0.0/0`` included) is served.
IPv6: ``net.ipv6.conf.all.forwarding`` while an IPv6 route (the ``::/0`` twin included) is served.
A family whose forwarding is already on is left alone, and then nothing is restored for it either.

Restoring *exactly* takes more than the one value, because the kernel copies it: writing
``ip_forward`` (= ``conf.all.forwarding``) sets ``conf.<every interface>.forwarding`` and
``conf.default.forwarding`` too, and so does IPv6's ``conf.all.forwarding``. So before the first
change every ``conf.*.forwarding`` of the family is recorded; afterwards the family's main value is
written back first and then every value the copy changed.

IPv6 forwarding makes the kernel ignore router advertisements where ``accept_ra`` is 1, which would
drop an RA-learned default route. As the reference does, ``accept_ra`` goes 1 -> 2 (accept them even
when forwarding) for ``default`` and every interface but ``lo`` and the overlay, only where it is 1;
those values are recorded and restored too.

Everything recorded is written to the agent's ledger (section ``forwarding``) *before* anything is
changed, so a start after a crash puts the values back (``restore_leftovers``). The reference never
restores ``ip_forward`` (other software may rely on it); we restore what we changed, and change
nothing where forwarding was already on, which is the case on hosts where Docker or libvirt need it.

/proc/sys reads and writes never block, so this module is synchronous (like the ledger).
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Protocol

from meshroute.agent.ledger import Ledger

log = logging.getLogger(__name__)

SECTION = "forwarding"  # ledger section
PROC_SYS = Path("/proc/sys")
IPV4_FORWARD = "net/ipv4/ip_forward"
IPV6_FORWARD = "net/ipv6/conf/all/forwarding"
IPV4_CONF = "net/ipv4/conf"
IPV6_CONF = "net/ipv6/conf"
PRIMARY = {"ipv4": IPV4_FORWARD, "ipv6": IPV6_FORWARD}
ACCEPT_RA_WHEN_FORWARDING = "2"


class SysctlError(Exception):
    pass


class Sysctl(Protocol):
    """Keys are paths under /proc/sys (``net/ipv4/ip_forward``): unambiguous even for interface
    names with dots (``eth0.100``), which the dotted form is not."""

    def read(self, key: str) -> str | None:
        """The value, or None if there is no such key (IPv6 off, interface gone)."""
        ...

    def write(self, key: str, value: str) -> None: ...

    def names(self, directory: str) -> list[str]:
        """The entries of a directory (``net/ipv6/conf`` -> all, default, lo, eth0...)."""
        ...


class ProcSys:
    """The real /proc/sys, as the calling thread's network namespace sees it."""

    def __init__(self, root: Path = PROC_SYS) -> None:
        self.root = root

    def read(self, key: str) -> str | None:
        try:
            return (self.root / key).read_text().strip()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise SysctlError(f"cannot read {_dotted(key)}: {exc.strerror}") from None

    def write(self, key: str, value: str) -> None:
        try:
            with open(self.root / key, "w") as f:
                f.write(value)
        except OSError as exc:
            raise SysctlError(
                f"cannot set {_dotted(key)}={value}: {exc.strerror} "
                "(needs CAP_NET_ADMIN and a writable /proc/sys)"
            ) from None

    def names(self, directory: str) -> list[str]:
        try:
            return sorted(os.listdir(self.root / directory))
        except OSError:
            return []


def _dotted(key: str) -> str:
    """sysctl(8)'s spelling: net/ipv4/conf/eth0.100/forwarding -> net.ipv4.conf.eth0/100.forwarding."""
    return key.translate(_SWAP)


_SWAP = str.maketrans("./", "/.")


class Forwarding:
    """Turns forwarding on per family while wanted; `release()` puts back what it changed."""

    def __init__(self, ledger: Ledger, overlay_interface: str, sysctl: Sysctl | None = None) -> None:
        self.ledger = ledger
        self.overlay_interface = overlay_interface
        self.sysctl: Sysctl = sysctl or ProcSys()
        # family -> {key: previous value}; a family is present while we hold it ({} = it was on)
        self.saved: dict[str, dict[str, str]] = {}

    @property
    def held(self) -> set[str]:
        return set(self.saved)

    def want(self, ipv4: bool, ipv6: bool) -> list[str]:
        """Forwarding on for the wanted families, back to before for the others; what changed.

        IPv6 trouble (disabled on the host, read-only) is logged and never stops IPv4.
        """
        changes: list[str] = []
        for family, wanted in (("ipv4", ipv4), ("ipv6", ipv6)):
            if wanted and family not in self.saved:
                try:
                    changes += self._enable(family)
                except SysctlError as exc:
                    if family == "ipv4":
                        raise
                    log.warning("IPv6 forwarding not enabled: %s", exc)
            elif not wanted and family in self.saved:
                changes += self._restore(family)
        return changes

    def release(self) -> list[str]:
        """Everything back as it was before (at stop, or when no route is served any more)."""
        return self.want(False, False)

    def _enable(self, family: str) -> list[str]:
        primary = PRIMARY[family]
        current = self.sysctl.read(primary)
        if current is None:
            raise SysctlError(f"{_dotted(primary)} does not exist ({family} disabled on this host?)")
        if current == "1":
            self.saved[family] = {}  # on already: not ours to restore
            return []
        conf = IPV4_CONF if family == "ipv4" else IPV6_CONF
        saved = {primary: current}
        for name in self.sysctl.names(conf):
            key = f"{conf}/{name}/forwarding"
            value = self.sysctl.read(key)
            if value is not None:
                saved[key] = value
        bump = []
        if family == "ipv6":
            for name in self.sysctl.names(conf):
                if name in ("all", "lo", self.overlay_interface):
                    continue
                key = f"{conf}/{name}/accept_ra"
                value = self.sysctl.read(key)
                if value == "1":
                    saved[key] = value
                    bump.append(key)
        self.saved[family] = saved
        self._record()  # before the first write: a crash from here on is undone at the next start
        changes = []
        try:
            for key in bump:
                self.sysctl.write(key, ACCEPT_RA_WHEN_FORWARDING)
                changes.append(f"{_dotted(key)}=2")
            self.sysctl.write(primary, "1")
        except SysctlError:
            # undo what got through, and let the next map try again
            with contextlib.suppress(SysctlError):
                restore_values(self.sysctl, family, saved)
            del self.saved[family]
            self._record()
            raise
        changes.append(f"{_dotted(primary)}=1")
        log.info("forwarding on: %s", ", ".join(changes))
        return changes

    def _restore(self, family: str) -> list[str]:
        changes = restore_values(self.sysctl, family, self.saved[family])
        del self.saved[family]
        self._record()
        if changes:
            log.info("forwarding restored: %s", ", ".join(changes))
        return changes

    def _record(self) -> None:
        held = {family: values for family, values in self.saved.items() if values}
        if held:
            self.ledger.record(SECTION, held)
        else:
            self.ledger.drop(SECTION)


def restore_values(sysctl: Sysctl, family: str, saved: Mapping[str, str]) -> list[str]:
    """Write back one family's recorded values: the main one first (it is copied to every interface),
    then each value that is not what was recorded (interfaces gone since are skipped)."""
    changes = []
    primary = PRIMARY.get(family)
    keys = sorted(saved, key=lambda k: (k != primary, k))
    for key in keys:
        current = sysctl.read(key)
        if current is None:
            continue
        if key == primary or current != saved[key]:
            if current != saved[key]:
                changes.append(f"{_dotted(key)}={saved[key]}")
            sysctl.write(key, saved[key])
    return changes


def restore_leftovers(ledger: Ledger, sysctl: Sysctl | None = None) -> list[str]:
    """Put back the values an earlier run recorded and did not restore (it crashed or was killed).
    Call before anything else at start, before the ledger file is cleared."""
    record = ledger.load().get(SECTION) or {}
    proc = sysctl or ProcSys()
    changes: list[str] = []
    for family in ("ipv6", "ipv4"):
        values = record.get(family)
        if isinstance(values, dict) and values:
            try:
                changes += restore_values(proc, family, {str(k): str(v) for k, v in values.items()})
            except SysctlError as exc:
                log.warning("could not restore %s forwarding left by an earlier run: %s", family, exc)
    ledger.drop(SECTION)
    return changes
