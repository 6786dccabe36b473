"""Domain lists of DNS routes: user input to lower-case punycode, validation, display."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Sequence

import idna

from meshroute.core.errors import InvalidArgument

MAX_DOMAINS = 32
MAX_NAME_CHARS = 253  # the longest name a DNS query carries (without the root's dot)

# A label: optional xn-- prefix, 1..63 chars of [A-Za-z0-9-_], no leading/trailing '-';
# '_' may lead only non-final labels (SRV-style `_jabber._tcp.example.com`); `*.` only first.
_DOMAIN_RE = re.compile(
    r"^(?:\*\.)?"
    r"(?:(?:xn--)?[a-zA-Z0-9_](?:[a-zA-Z0-9\-_]{0,61}[a-zA-Z0-9])?\.)*"
    r"(?:xn--)?[a-zA-Z0-9](?:[a-zA-Z0-9\-_]{0,61}[a-zA-Z0-9])?$"
)


def to_punycode(domain: str) -> str:
    """IDNA ToASCII label by label (ASCII labels pass through untouched), then lower-case."""
    labels = []
    for label in domain.split("."):
        if label.isascii():
            labels.append(label)
        else:
            labels.append(idna.encode(label, uts46=True).decode("ascii"))
    return ".".join(labels).lower()


def to_unicode(domain: str) -> str:
    """Display form; a label that is not valid punycode is shown as it is stored."""
    labels = []
    for label in domain.split("."):
        if label.lower().startswith("xn--"):
            try:
                labels.append(idna.decode(label))
                continue
            except (idna.IDNAError, UnicodeError, ValueError):
                pass
        labels.append(label)
    return ".".join(labels)


def validate_domains(domains: Sequence[str]) -> list[str]:
    """Validate a route's domain list; returns the punycode forms (order kept). Beyond the
    reference's pattern, a name no DNS query can carry is refused (longer than 253 characters,
    an IPv4 address), and so is a name listed twice; one trailing dot is accepted (the
    fully-qualified form) and not stored."""
    if not domains:
        raise InvalidArgument("domains list is empty")
    if len(domains) > MAX_DOMAINS:
        raise InvalidArgument(f"domains list exceeds maximum allowed domains: {MAX_DOMAINS}")
    result: list[str] = []
    for d in domains:
        name = d[:-1] if d.endswith(".") and not d.endswith("..") else d
        try:
            puny = to_punycode(name)
        except (idna.IDNAError, UnicodeError, ValueError) as exc:
            raise InvalidArgument(f"convert domain to punycode: {d}: {exc}") from exc
        if not _DOMAIN_RE.match(puny):
            raise InvalidArgument(f"invalid domain format: {d}")
        if len(puny.removeprefix("*.")) > MAX_NAME_CHARS:
            raise InvalidArgument(f"invalid domain format: {d}: longer than {MAX_NAME_CHARS} characters")
        if _is_ipv4(puny):
            raise InvalidArgument(
                f"invalid domain format: {d}: an IP address, not a name (route it as a network: {puny}/32)"
            )
        if puny in result:
            raise InvalidArgument(f"domains list has {d} more than once")
        result.append(puny)
    return result


def _is_ipv4(name: str) -> bool:
    try:
        ipaddress.IPv4Address(name)
    except ValueError:
        return False
    return True


def safe_string(domains: Iterable[str]) -> str:
    """Unicode rendering joined with ', ' (NetBird's List.SafeString)."""
    return ", ".join(to_unicode(d) for d in domains)


def punycode_string(domains: Iterable[str]) -> str:
    return ", ".join(domains)
