"""Domain lists of DNS routes (reference §1.5): punycode conversion, validation, display."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from meshroute.core.domains import (
    MAX_DOMAINS,
    punycode_string,
    safe_string,
    to_punycode,
    to_unicode,
    validate_domains,
)
from meshroute.core.errors import InvalidArgument
from meshroute.server.api.errors import http_status

LABEL_63 = "a" * 63
LABEL_64 = "a" * 64
# 63 + 1 + 63 + 1 + 63 + 1 + 61 = 253 characters.
NAME_253 = ".".join(["a" * 63, "b" * 63, "c" * 63, "d" * 61])


def test_name_253_fixture_has_the_intended_length() -> None:
    assert len(NAME_253) == 253


# ---------------------------------------------------------------------------------------------
# Accepted examples (§1.5), with their stored (lower-case punycode) form.
# ---------------------------------------------------------------------------------------------

ACCEPTED = [
    ("sub.ex-ample.com", "sub.ex-ample.com"),
    ("EXAMPLE.COM", "example.com"),
    ("Example.Com", "example.com"),
    ("example.x", "example.x"),
    ("a.b", "a.b"),
    ("x", "x"),
    ("*.x", "*.x"),
    ("*.example.com", "*.example.com"),
    ("*.EXAMPLE.com", "*.example.com"),
    ("münchen.de", "xn--mnchen-3ya.de"),
    ("MÜNCHEN.DE", "xn--mnchen-3ya.de"),
    ("中国.中国.中国", "xn--fiqs8s.xn--fiqs8s.xn--fiqs8s"),
    ("*.münchen.de", "*.xn--mnchen-3ya.de"),
    ("_jabber._tcp.gmail.com", "_jabber._tcp.gmail.com"),
    ("123.example.com", "123.example.com"),
    ("example.123", "example.123"),
    ("example.1", "example.1"),
    ("123.456", "123.456"),
    ("123", "123"),
    ("test--example.com", "test--example.com"),
    ("a-_b.com", "a-_b.com"),
    (LABEL_63 + ".com", LABEL_63 + ".com"),
    ("example." + LABEL_63, "example." + LABEL_63),
    (LABEL_63, LABEL_63),
    (NAME_253, NAME_253),
    # Already-punycode input is kept (lower-cased); the 63-char limit excludes the xn-- prefix.
    ("xn--mnchen-3ya.de", "xn--mnchen-3ya.de"),
    ("XN--MNCHEN-3YA.DE", "xn--mnchen-3ya.de"),
    ("xn--" + LABEL_63 + ".com", "xn--" + LABEL_63 + ".com"),
]


@pytest.mark.parametrize(("raw", "stored"), ACCEPTED, ids=[a for a, _ in ACCEPTED])
def test_accepted_domain_is_returned_as_lower_case_punycode(raw: str, stored: str) -> None:
    assert validate_domains([raw]) == [stored]


def test_a_name_longer_than_dns_allows_is_refused() -> None:
    # The reference bounds labels only (§1.5): a 254+ character name is stored and never matches.
    long_name = ".".join([LABEL_63] * 5)
    with pytest.raises(InvalidArgument) as exc:
        validate_domains([long_name])
    assert exc.value.message == f"invalid domain format: {long_name}: longer than 253 characters"
    with pytest.raises(InvalidArgument, match="longer than 253"):
        validate_domains([NAME_253 + "e"])
    assert validate_domains(["*." + NAME_253]) == ["*." + NAME_253]  # the names it matches are longer


@pytest.mark.parametrize("raw", ["10.77.0.10", "10.77.0.10."])
def test_an_ipv4_address_is_not_a_domain(raw: str) -> None:
    with pytest.raises(InvalidArgument) as exc:
        validate_domains([raw])
    assert exc.value.message == (
        f"invalid domain format: {raw}: an IP address, not a name (route it as a network: 10.77.0.10/32)"
    )
    assert validate_domains(["123.456", "1.2.3", "10.77.0.10.example"]) == [
        "123.456",
        "1.2.3",
        "10.77.0.10.example",
    ]


def test_one_trailing_dot_is_the_fully_qualified_form_and_is_not_stored() -> None:
    assert validate_domains(["App.Example.COM.", "*.svc.example."]) == ["app.example.com", "*.svc.example"]
    assert validate_domains([NAME_253 + "."]) == [NAME_253]


# Labels whose middle characters include '_' (allowed in every label's middle by the reference
# pattern `[A-Za-z0-9-_]{0,61}`, including the final one; only the *first* char of the final
# label excludes '_').
UNDERSCORE_INSIDE_FINAL_LABEL = ["a_b", "example.a_b", "sub.example.c_m"]


@pytest.mark.parametrize("raw", UNDERSCORE_INSIDE_FINAL_LABEL)
def test_underscore_inside_final_label_is_accepted(raw: str) -> None:
    # Reference regex (shared/management/domain/validate.go): final label is
    # `(?:xn--)?[a-zA-Z0-9](?:[a-zA-Z0-9-_]{0,61}[a-zA-Z0-9])?` - '_' allowed in the middle.
    assert validate_domains([raw]) == [raw]


# ---------------------------------------------------------------------------------------------
# Rejected examples (§1.5)
# ---------------------------------------------------------------------------------------------

REJECTED = [
    "-example.com",
    "example.com-",
    "example-.com",
    ".com",
    ".",
    "",
    "example..com",
    "example?,.com",
    "invalid,nbdomain.com",
    "space .example.com",
    "example.com ",
    " example.com",
    ".*.example.com",
    "a.*.example.com",
    "*.*.example.com",
    "*",
    "*.",
    "**.example.com",
    "*example.com",
    LABEL_64 + ".com",
    "example." + LABEL_64,
    LABEL_64,
    "example.com..",
    "..",
    "_example",  # final label may not start with '_'
    "example._com",
    "x_.com",  # a label may not end with '_'
    "example.com/path",
    "exa mple.com",
    "example.com:443",
    "user@example.com",
]


@pytest.mark.parametrize("raw", REJECTED, ids=[repr(r) for r in REJECTED])
def test_rejected_domain_has_invalid_format_message(raw: str) -> None:
    with pytest.raises(InvalidArgument) as exc:
        validate_domains([raw])
    assert exc.value.message == f"invalid domain format: {raw}"
    assert http_status(exc.value) == 422


def test_empty_list_message() -> None:
    with pytest.raises(InvalidArgument) as exc:
        validate_domains([])
    assert exc.value.message == "domains list is empty"


def test_empty_tuple_is_also_empty() -> None:
    with pytest.raises(InvalidArgument, match=r"^domains list is empty$"):
        validate_domains(())


def test_max_domains_is_32() -> None:
    assert MAX_DOMAINS == 32


def test_exactly_32_domains_are_accepted_in_order() -> None:
    domains = [f"example{i}.com" for i in range(32)]
    assert validate_domains(domains) == domains


def test_more_than_32_domains_message() -> None:
    domains = [f"example{i}.com" for i in range(33)]
    with pytest.raises(InvalidArgument) as exc:
        validate_domains(domains)
    assert exc.value.message == "domains list exceeds maximum allowed domains: 32"


def test_count_is_checked_before_content() -> None:
    with pytest.raises(InvalidArgument, match="exceeds maximum allowed domains: 32"):
        validate_domains(["-bad-"] * 33)


def test_processing_stops_at_first_bad_entry() -> None:
    with pytest.raises(InvalidArgument) as exc:
        validate_domains(["google.com", "invalid,nbdomain.com", "münchen.de", "-also-bad"])
    assert exc.value.message == "invalid domain format: invalid,nbdomain.com"


def test_order_is_kept() -> None:
    assert validate_domains(["B.com", "a.com", "c.com"]) == ["b.com", "a.com", "c.com"]


def test_a_name_listed_twice_is_refused() -> None:
    # The reference stores both; the second can never do anything.
    with pytest.raises(InvalidArgument) as exc:
        validate_domains(["B.com", "a.com", "b.com."])
    assert exc.value.message == "domains list has b.com. more than once"


def test_input_is_not_mutated() -> None:
    raw = ["EXAMPLE.COM", "münchen.de"]
    validate_domains(raw)
    assert raw == ["EXAMPLE.COM", "münchen.de"]


def test_error_message_names_the_original_input_not_the_punycode() -> None:
    with pytest.raises(InvalidArgument) as exc:
        validate_domains(["ok.com", "-münchen.de"])
    assert "-münchen.de" in exc.value.message
    assert "xn--" not in exc.value.message


def test_unconvertible_unicode_is_rejected_with_a_reference_message() -> None:
    # A label too long once punycoded: either the conversion or the pattern must reject it, and the
    # message is one of the two reference forms, naming the input.
    raw = "ü" * 70 + ".de"
    with pytest.raises(InvalidArgument) as exc:
        validate_domains([raw])
    msg = exc.value.message
    assert msg == f"invalid domain format: {raw}" or msg.startswith(f"convert domain to punycode: {raw}: ")


# ---------------------------------------------------------------------------------------------
# Conversions and display
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "puny"),
    [
        ("münchen.de", "xn--mnchen-3ya.de"),
        ("中国.中国.中国", "xn--fiqs8s.xn--fiqs8s.xn--fiqs8s"),
        ("EXAMPLE.COM", "example.com"),
        ("*.Example.com", "*.example.com"),
    ],
)
def test_to_punycode(raw: str, puny: str) -> None:
    assert to_punycode(raw) == puny


@pytest.mark.parametrize(
    ("puny", "uni"),
    [
        ("xn--mnchen-3ya.de", "münchen.de"),
        ("xn--fiqs8s.xn--fiqs8s.xn--fiqs8s", "中国.中国.中国"),
        ("*.xn--mnchen-3ya.de", "*.münchen.de"),
        ("example.com", "example.com"),
        ("_jabber._tcp.gmail.com", "_jabber._tcp.gmail.com"),
    ],
)
def test_to_unicode(puny: str, uni: str) -> None:
    assert to_unicode(puny) == uni


@pytest.mark.parametrize("bad", ["xn--zz.com", "xn--.com", "xn--abc-.com"])
def test_to_unicode_falls_back_to_stored_form(bad: str) -> None:
    assert to_unicode(bad) == bad


def test_safe_string_joins_unicode_forms_with_comma_space() -> None:
    assert safe_string(["xn--mnchen-3ya.de", "example.com"]) == "münchen.de, example.com"


def test_safe_string_falls_back_per_invalid_entry() -> None:
    assert safe_string(["xn--zz.com", "xn--mnchen-3ya.de"]) == "xn--zz.com, münchen.de"


def test_safe_string_of_empty_list_is_empty() -> None:
    assert safe_string([]) == ""


def test_punycode_string_joins_stored_forms() -> None:
    assert punycode_string(["xn--mnchen-3ya.de", "example.com"]) == "xn--mnchen-3ya.de, example.com"
    assert punycode_string([]) == ""


@pytest.mark.parametrize("raw", ["münchen.de", "中国.中国.中国", "*.münchen.de", "EXAMPLE.COM"])
def test_round_trip_through_display_form(raw: str) -> None:
    stored = validate_domains([raw])
    assert validate_domains([to_unicode(d) for d in stored]) == stored
    assert safe_string(stored) == to_unicode(stored[0])


# ---------------------------------------------------------------------------------------------
# Properties
# ---------------------------------------------------------------------------------------------

_LABEL = st.one_of(
    st.text(alphabet="abcXYZ0189-_üößé中国", min_size=1, max_size=12),
    st.sampled_from(["xn--mnchen-3ya", "XN--FIQS8S", "xn--zz", "_tcp", "a" * 63, "com"]),
)
_DOMAIN = st.builds(
    lambda wildcard, labels: ("*." if wildcard else "") + ".".join(labels),
    st.booleans(),
    st.lists(_LABEL, min_size=1, max_size=4),
)


@settings(max_examples=400, suppress_health_check=[HealthCheck.filter_too_much, HealthCheck.too_slow])
@given(st.lists(_DOMAIN, min_size=1, max_size=5))
def test_validation_is_idempotent(domains: list[str]) -> None:
    try:
        out = validate_domains(domains)
    except InvalidArgument:
        assume(False)
        return
    assert len(out) == len(domains)
    assert all(d == d.lower() and d.isascii() for d in out)
    assert validate_domains(out) == out


@settings(max_examples=400, suppress_health_check=[HealthCheck.filter_too_much, HealthCheck.too_slow])
@given(st.lists(_DOMAIN, min_size=1, max_size=5))
def test_display_form_validates_back_to_the_stored_form(domains: list[str]) -> None:
    try:
        out = validate_domains(domains)
    except InvalidArgument:
        assume(False)
        return
    assert validate_domains([to_unicode(d) for d in out]) == out
