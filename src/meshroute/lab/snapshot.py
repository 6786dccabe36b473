"""A namespace's network state as comparable text, for "exactly as before" checks.

Kept: what configuration decides (links with kind, state, MTU, master and MAC; addresses; routes of
all tables; rules; the nftables ruleset; net.ipv4/net.ipv6 sysctls). Dropped: what changes by itself
(counters, address lifetimes, ifindexes, tentative flags, random keys).
"""

from __future__ import annotations

import difflib
import json
import re
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass, fields
from typing import Any

from meshroute.lab.netns import CommandError, exec_argv

# values that change with no configuration change (or cannot be read back)
_VOLATILE_SYSCTLS = re.compile(
    r"^net\.ipv6\.conf\.[^.]+\.stable_secret|^net\.ipv4\.tcp_fastopen_key|^net\.ipv[46]\.fib_multipath_hash_seed"
    r"|^net\.ipv[46]\.route\.flush"
)
_ADDR_FLAGS_IGNORED = {"tentative", "optimistic", "deprecated"}  # DAD and lifetimes progress on their own


@dataclass(frozen=True, slots=True)
class NetSnapshot:
    links: tuple[str, ...]
    addresses: tuple[str, ...]
    routes4: tuple[str, ...]
    routes6: tuple[str, ...]
    rules4: tuple[str, ...]
    rules6: tuple[str, ...]
    nftables: tuple[str, ...]
    sysctls: tuple[str, ...]

    def diff(self, after: NetSnapshot, *, skip: Sequence[str] = ()) -> str:
        """A unified diff per part that differs ("" when equal), e.g. for an assertion message."""
        out: list[str] = []
        for f in fields(self):
            if f.name in skip:
                continue
            a, b = getattr(self, f.name), getattr(after, f.name)
            if a != b:
                out.append(f"== {f.name}")
                out.extend(difflib.unified_diff(a, b, "before", "after", lineterm="", n=1))
        return "\n".join(out)


def _links(data: list[dict[str, Any]]) -> tuple[str, ...]:
    out = []
    for link in data:
        kind = link.get("linkinfo", {}).get("info_kind", link.get("link_type", "?"))
        flags = ",".join(sorted(link.get("flags", [])))
        out.append(
            f"{link['ifname']} kind={kind} state={link.get('operstate')} mtu={link.get('mtu')} "
            f"master={link.get('master', '-')} mac={link.get('address', '-')} qdisc={link.get('qdisc')} "
            f"flags={flags}"
        )
    return tuple(sorted(out))


def _addresses(data: list[dict[str, Any]]) -> tuple[str, ...]:
    out = []
    for link in data:
        for a in link.get("addr_info", []):
            flags = sorted(
                k for k, v in a.items() if v is True and k not in _ADDR_FLAGS_IGNORED
            )  # e.g. nodad, noprefixroute, secondary
            peer = f" peer {a['address']}" if "address" in a and a["address"] != a.get("local") else ""
            out.append(
                f"{link['ifname']} {a.get('local')}/{a.get('prefixlen')}{peer} scope={a.get('scope')} "
                f"label={a.get('label', '-')} {' '.join(flags)}".rstrip()
            )
    return tuple(sorted(out))


_EXPIRES = re.compile(r" expires -?\d+sec")


def _lines(text: str, *, sort: bool = True) -> tuple[str, ...]:
    lines = [_EXPIRES.sub("", line.rstrip()) for line in text.splitlines() if line.strip()]
    return tuple(sorted(lines) if sort else lines)


def snapshot(netns: str | None = None) -> NetSnapshot:
    """The network state of a namespace (None: the root namespace), read with `ip`, `nft` and `sysctl`.

    The eight reads run at once: a snapshot costs about as much as its slowest part (`sysctl -a`).
    """
    ip = ["ip"] + (["-n", netns] if netns else [])

    def inside(argv: list[str]) -> list[str]:
        return exec_argv(netns, argv) if netns else argv

    commands = {
        "links": [*ip, "-j", "-d", "link", "show"],
        "addresses": [*ip, "-j", "addr", "show"],
        "routes4": [*ip, "-4", "route", "show", "table", "all"],
        "routes6": [*ip, "-6", "route", "show", "table", "all"],
        "rules4": [*ip, "-4", "rule", "show"],
        "rules6": [*ip, "-6", "rule", "show"],
        "nftables": inside(["nft", "-s", "list", "ruleset"]),  # -s: no counter values
        "sysctls": inside(["sysctl", "-a"]),
    }
    procs = {
        key: subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for key, argv in commands.items()
    }
    text: dict[str, str] = {}
    for key, proc in procs.items():
        out, err = proc.communicate(timeout=30)
        # sysctl -a reports unreadable keys (stable_secret, flush) on stderr and exits non-zero for them
        if proc.returncode != 0 and key != "sysctls":
            raise CommandError(commands[key], proc.returncode, out, err)
        text[key] = out
    sysctls = tuple(
        sorted(
            line
            for line in text["sysctls"].splitlines()
            if line.startswith(("net.ipv4.", "net.ipv6.")) and not _VOLATILE_SYSCTLS.match(line)
        )
    )
    return NetSnapshot(
        links=_links(json.loads(text["links"] or "[]")),
        addresses=_addresses(json.loads(text["addresses"] or "[]")),
        routes4=_lines(text["routes4"]),
        routes6=_lines(text["routes6"]),
        rules4=_lines(text["rules4"], sort=False),
        rules6=_lines(text["rules6"], sort=False),
        nftables=_lines(text["nftables"], sort=False),
        sysctls=sysctls,
    )
