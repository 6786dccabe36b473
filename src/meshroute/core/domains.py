"""Domain lists of DNS routes: user input to lower-case punycode, validation, display."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

import idna

from meshroute.core.errors import InvalidArgument

MAX_DOMAINS = 32

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
    """Validate a route's domain list; returns the punycode forms (order kept)."""
    if not domains:
        raise InvalidArgument("domains list is empty")
    if len(domains) > MAX_DOMAINS:
        raise InvalidArgument(f"domains list exceeds maximum allowed domains: {MAX_DOMAINS}")
    result = []
    for d in domains:
        try:
            puny = to_punycode(d)
        except (idna.IDNAError, UnicodeError, ValueError) as exc:
            raise InvalidArgument(f"convert domain to punycode: {d}: {exc}") from exc
        if not _DOMAIN_RE.match(puny):
            raise InvalidArgument(f"invalid domain format: {d}")
        result.append(puny)
    return result


def safe_string(domains: Iterable[str]) -> str:
    """Unicode rendering joined with ', ' (NetBird's List.SafeString)."""
    return ", ".join(to_unicode(d) for d in domains)


def punycode_string(domains: Iterable[str]) -> str:
    return ", ".join(domains)
