"""Which domain route a DNS name belongs to (pure).

A route's domains are stored by the server in lower-case punycode (`core.domains`). A pattern is
either an exact name (`app.example.com`: that name only) or a wildcard (`*.example.com`: every
proper subdomain, `a.example.com` and `a.b.example.com`, but not `example.com` itself; the same on
clients and routing peers, where the reference's forwarder also matched the base). Names and
patterns compare case-insensitively, with a trailing dot or without, in their punycode form
(a Unicode pattern is converted the way the server converts it).

`DomainTable` maps patterns to values (HA IDs on a client, route IDs on a routing peer). The most
specific match wins: an exact pattern beats any wildcard, a longer wildcard base beats a shorter
one. Several values under one pattern (two HA groups with the same domains, different network
IDs) are kept in the order given: the caller puts its preferred one first.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import idna

from meshroute.core.domains import to_punycode

WILDCARD = "*."


def normalize_name(name: str) -> str:
    """Lower-case punycode without the trailing dot: the form names are compared in.

    Raises ValueError for a name that cannot be converted (invalid IDNA, empty label)."""
    text = name.strip()
    if text.endswith("."):
        text = text[:-1]
    if not text or ".." in text or text.startswith("."):
        raise ValueError(f"not a domain name: {name!r}")
    if text.isascii():
        return text.lower()
    try:
        return to_punycode(text)
    except (idna.IDNAError, UnicodeError) as exc:
        raise ValueError(f"not a domain name: {name!r}: {exc}") from None


@dataclass(frozen=True, slots=True, order=True)
class Pattern:
    """One domain of a route: `base` is the name (exact) or what follows `*.` (wildcard)."""

    base: str
    wildcard: bool = False

    @classmethod
    def parse(cls, text: str) -> Pattern:
        """`app.example.com`, `*.example.com`, `APP.Example.com.`, `*.münchen.de`."""
        raw = text.strip()
        if raw.startswith(WILDCARD):
            return cls(normalize_name(raw[len(WILDCARD) :]), wildcard=True)
        if "*" in raw:
            raise ValueError(f"a wildcard may only be a leading '*.': {text!r}")
        return cls(normalize_name(raw))

    def matches(self, name: str) -> bool:
        """`name` must already be normalized (`normalize_name`)."""
        if self.wildcard:
            return name.endswith("." + self.base)
        return name == self.base

    @property
    def zone(self) -> str:
        """The DNS zone to send to the interceptor (a wildcard's base; resolved's `~zone`)."""
        return self.base

    def __str__(self) -> str:
        return WILDCARD + self.base if self.wildcard else self.base


@dataclass(frozen=True, slots=True)
class Match:
    """The most specific pattern that matched, and its values in preference order."""

    pattern: Pattern
    values: tuple[str, ...]


class DomainTable:
    """Patterns to values with most-specific-match lookup in O(labels of the name).

    >>> t = DomainTable([("*.example.com", "a"), ("app.example.com", "b")])
    >>> t.lookup("APP.example.com.").values, t.lookup("x.example.com").values, t.lookup("example.com")
    (('b',), ('a',), None)
    """

    def __init__(self, entries: Iterable[tuple[str | Pattern, str]] = ()) -> None:
        self._exact: dict[str, list[str]] = {}
        self._wild: dict[str, list[str]] = {}
        for pattern, value in entries:
            self.add(pattern, value)

    def add(self, pattern: str | Pattern, value: str) -> None:
        p = pattern if isinstance(pattern, Pattern) else Pattern.parse(pattern)
        values = (self._wild if p.wildcard else self._exact).setdefault(p.base, [])
        if value not in values:
            values.append(value)

    def __len__(self) -> int:
        return len(self._exact) + len(self._wild)

    def __bool__(self) -> bool:
        return bool(self._exact or self._wild)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, DomainTable) and self.entries() == other.entries()

    __hash__ = None  # type: ignore[assignment]

    def entries(self) -> list[tuple[Pattern, tuple[str, ...]]]:
        """Every pattern with its values, sorted by pattern."""
        out = [(Pattern(b), tuple(v)) for b, v in self._exact.items()]
        out += [(Pattern(b, wildcard=True), tuple(v)) for b, v in self._wild.items()]
        return sorted(out)

    def patterns(self) -> list[Pattern]:
        return [p for p, _ in self.entries()]

    def zones(self) -> list[str]:
        """The zones the host must send here (exact names and wildcard bases), without repeats:
        what becomes resolved's routing domains (`~zone`)."""
        return sorted({*self._exact, *self._wild})

    def lookup(self, name: str) -> Match | None:
        """The most specific match for a query name (any case, trailing dot or not), or None.
        A name that is not a valid domain name matches nothing."""
        try:
            norm = normalize_name(name)
        except ValueError:
            return None
        exact = self._exact.get(norm)
        if exact:
            return Match(Pattern(norm), tuple(exact))
        if not self._wild:
            return None
        # Proper suffixes, longest first: for a.b.example.com, b.example.com then example.com, com.
        rest = norm
        while True:
            dot = rest.find(".")
            if dot < 0:
                return None
            rest = rest[dot + 1 :]
            values = self._wild.get(rest)
            if values:
                return Match(Pattern(rest, wildcard=True), tuple(values))

    def lookup_all(self, name: str) -> list[Match]:
        """Every matching pattern, most specific first (a routing peer adds an address to the set
        of every route whose domains cover the name)."""
        try:
            norm = normalize_name(name)
        except ValueError:
            return []
        found: list[Match] = []
        if norm in self._exact:
            found.append(Match(Pattern(norm), tuple(self._exact[norm])))
        rest = norm
        while (dot := rest.find(".")) >= 0:
            rest = rest[dot + 1 :]
            if rest in self._wild:
                found.append(Match(Pattern(rest, wildcard=True), tuple(self._wild[rest])))
        return found
