"""Domain patterns and the most specific match (dns/match.py)."""

from __future__ import annotations

import pytest

from meshroute.agent.dns.match import DomainTable, Pattern, normalize_name


@pytest.mark.parametrize(
    ("name", "normal"),
    [
        ("App.Example.COM", "app.example.com"),
        ("app.example.com.", "app.example.com"),
        ("  app.example.com ", "app.example.com"),
        ("münchen.de", "xn--mnchen-3ya.de"),
        ("XN--MNCHEN-3YA.de.", "xn--mnchen-3ya.de"),
        ("_sip._tcp.example.com", "_sip._tcp.example.com"),
    ],
)
def test_names_are_compared_in_lower_case_punycode_without_the_final_dot(name: str, normal: str) -> None:
    assert normalize_name(name) == normal


@pytest.mark.parametrize("bad", ["", ".", "a..b", ".a.b"])
def test_a_name_that_is_not_one_is_refused(bad: str) -> None:
    with pytest.raises(ValueError):
        normalize_name(bad)


def test_patterns_parse_exact_and_wildcard_forms() -> None:
    assert Pattern.parse("app.example.com") == Pattern("app.example.com")
    assert Pattern.parse("*.Example.com.") == Pattern("example.com", wildcard=True)
    assert Pattern.parse("*.münchen.de") == Pattern("xn--mnchen-3ya.de", wildcard=True)
    assert str(Pattern.parse("*.example.com")) == "*.example.com"
    for bad in ("a.*.example.com", "*example.com", "*"):
        with pytest.raises(ValueError):
            Pattern.parse(bad)


def test_an_exact_pattern_matches_that_name_only() -> None:
    table = DomainTable([("app.example.com", "ha1")])
    assert table.lookup("app.example.com") is not None
    assert table.lookup("APP.EXAMPLE.COM.") is not None
    assert table.lookup("x.app.example.com") is None
    assert table.lookup("example.com") is None
    assert table.lookup("app.example.com.evil.test") is None


def test_a_wildcard_matches_proper_subdomains_only() -> None:
    table = DomainTable([("*.svc.internal.test", "ha1")])
    assert table.lookup("a.svc.internal.test") is not None
    assert table.lookup("a.b.svc.internal.test") is not None
    assert table.lookup("A.SVC.Internal.Test.") is not None
    assert table.lookup("svc.internal.test") is None  # the base itself is not a subdomain
    assert table.lookup("xsvc.internal.test") is None  # a label boundary, not a string suffix
    assert table.lookup("internal.test") is None


def test_exact_beats_wildcard_and_a_longer_base_beats_a_shorter_one() -> None:
    table = DomainTable(
        [
            ("*.example.com", "wide"),
            ("*.app.example.com", "narrow"),
            ("x.app.example.com", "exact"),
        ]
    )

    def winner(name: str) -> tuple[str, ...] | None:
        found = table.lookup(name)
        return None if found is None else found.values

    assert winner("x.app.example.com") == ("exact",)
    assert winner("y.app.example.com") == ("narrow",)
    assert winner("a.b.app.example.com") == ("narrow",)
    assert winner("app.example.com") == ("wide",)
    assert winner("other.example.com") == ("wide",)
    found = table.lookup("y.app.example.com")
    assert found is not None and found.pattern == Pattern("app.example.com", wildcard=True)


def test_several_groups_under_one_pattern_keep_the_callers_order() -> None:
    table = DomainTable([("app.example.com", "b"), ("APP.example.com.", "a"), ("app.example.com", "b")])
    found = table.lookup("app.example.com")
    assert found is not None and found.values == ("b", "a")


def test_unicode_patterns_match_punycode_questions() -> None:
    table = DomainTable([("*.münchen.de", "ha")])
    assert table.lookup("rathaus.xn--mnchen-3ya.de.") is not None
    assert table.lookup("rathaus.münchen.de") is not None


def test_lookup_all_lists_every_matching_pattern_most_specific_first() -> None:
    table = DomainTable(
        [("*.example.com", "r-wide"), ("app.example.com", "r-exact"), ("*.app.example.com", "r-sub")]
    )
    assert [m.values for m in table.lookup_all("app.example.com")] == [("r-exact",), ("r-wide",)]
    assert [m.values for m in table.lookup_all("a.app.example.com")] == [("r-sub",), ("r-wide",)]
    assert table.lookup_all("example.com") == []
    assert table.lookup_all("..") == []


def test_zones_are_what_the_host_must_send_to_the_interceptor() -> None:
    table = DomainTable([("*.example.com", "a"), ("example.com", "b"), ("app.internal.test", "c")])
    assert table.zones() == ["app.internal.test", "example.com"]
    assert [str(p) for p in table.patterns()] == ["app.internal.test", "example.com", "*.example.com"]
    assert len(table) == 3 and table and not DomainTable()


def test_tables_compare_by_content() -> None:
    assert DomainTable([("a.test", "x"), ("*.b.test", "y")]) == DomainTable(
        [("*.b.test", "y"), ("A.test.", "x")]
    )
    assert DomainTable([("a.test", "x")]) != DomainTable([("a.test", "y")])


def test_garbage_names_match_nothing() -> None:
    table = DomainTable([("*.example.com", "a")])
    assert table.lookup("") is None
    assert table.lookup("a..example.com") is None
