"""Addresses and TTL of a DNS response for its question (dns/answers.py)."""

from __future__ import annotations

import ipaddress

import dns.message
import dns.name
import dns.rrset
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from meshroute.agent.dns.answers import extract, extract_wire, host_prefix, refusal

OVERLAY = [ipaddress.ip_network("100.64.0.0/10"), ipaddress.ip_network("fd00:1234::/64")]


def response(question: str, *records: str, rdtype: str = "A") -> dns.message.Message:
    """A response to `question` with answer records given as zone lines."""
    query = dns.message.make_query(question, rdtype)
    msg = dns.message.make_response(query)
    for line in records:
        name, ttl, _cls, kind, *data = line.split()
        msg.answer.append(dns.rrset.from_text(name, int(ttl), "IN", kind, " ".join(data)))
    return msg


def ips(*values: str) -> frozenset[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    return frozenset(ipaddress.ip_address(v) for v in values)


def test_plain_a_records() -> None:
    a = extract(
        response(
            "app.example.com", "app.example.com. 300 IN A 10.0.0.1", "app.example.com. 300 IN A 10.0.0.2"
        )
    )
    assert a.name == "app.example.com"
    assert a.addresses == {4: ips("10.0.0.1", "10.0.0.2")}
    assert a.ttl == 300 and not a.empty and not a.rejected


def test_a_cname_chain_is_attributed_to_the_question_with_the_smallest_ttl() -> None:
    a = extract(
        response(
            "App.Example.com",
            "app.example.com. 600 IN CNAME edge.cdn.test.",
            "edge.cdn.test. 120 IN CNAME pop7.cdn.test.",
            "pop7.cdn.test. 30 IN A 10.1.0.7",
        )
    )
    assert a.name == "app.example.com"
    assert a.addresses == {4: ips("10.1.0.7")}
    assert a.ttl == 30
    b = extract(
        response(
            "app.example.com",
            "app.example.com. 20 IN CNAME edge.cdn.test.",
            "edge.cdn.test. 300 IN A 10.1.0.8",
        )
    )
    assert b.ttl == 20  # the CNAME's TTL bounds how long the address belongs to the name


def test_records_off_the_chain_are_ignored() -> None:
    a = extract(
        response(
            "app.example.com",
            "app.example.com. 300 IN CNAME edge.cdn.test.",
            "edge.cdn.test. 300 IN A 10.1.0.7",
            "bank.example.net. 300 IN A 10.9.9.9",  # an upstream slipping in another name
            "other.cdn.test. 300 IN A 10.1.0.8",
        )
    )
    assert a.all_addresses() == ips("10.1.0.7")


def test_case_differences_along_the_chain_do_not_break_it() -> None:
    a = extract(
        response(
            "app.example.com",
            "APP.example.com. 60 IN CNAME Edge.CDN.test.",
            "edge.cdn.TEST. 60 IN A 10.1.0.9",
        )
    )
    assert a.all_addresses() == ips("10.1.0.9")


def test_a_cname_loop_ends_the_walk() -> None:
    a = extract(
        response(
            "a.test", "a.test. 60 IN CNAME b.test.", "b.test. 60 IN CNAME a.test.", "b.test. 60 IN A 10.0.0.3"
        )
    )
    assert a.all_addresses() == ips("10.0.0.3")


def test_aaaa_answers_are_family_6() -> None:
    a = extract(response("app.example.com", "app.example.com. 90 IN AAAA 2001:db8::7", rdtype="AAAA"))
    assert a.addresses == {6: ips("2001:db8::7")}
    assert host_prefix(ipaddress.ip_address("2001:db8::7")) == "2001:db8::7/128"
    assert host_prefix(ipaddress.ip_address("10.0.0.1")) == "10.0.0.1/32"


def test_both_families_in_one_response_are_kept_apart() -> None:
    a = extract(
        response(
            "app.example.com",
            "app.example.com. 90 IN A 10.0.0.1",
            "app.example.com. 60 IN AAAA 2001:db8::1",
            rdtype="ANY",
        )
    )
    assert a.addresses == {4: ips("10.0.0.1"), 6: ips("2001:db8::1")}
    assert a.ttl == 60


def test_an_answer_without_addresses_is_empty() -> None:
    for msg in (
        response("app.example.com"),  # NODATA
        response("app.example.com", "app.example.com. 60 IN CNAME gone.example.com."),
        response("app.example.com", "app.example.com. 60 IN TXT hello", rdtype="TXT"),
    ):
        a = extract(msg)
        assert a.empty and a.ttl is None and a.addresses == {}


def test_addresses_that_must_never_be_routed_are_rejected() -> None:
    bad = ["127.0.0.1", "169.254.1.1", "224.0.0.1", "0.0.0.0", "0.1.2.3", "255.255.255.255", "100.64.3.4"]
    a = extract(
        response("x.test", *(f"x.test. 60 IN A {b}" for b in bad), "x.test. 60 IN A 10.0.0.5"),
        overlay=OVERLAY,
    )
    assert a.all_addresses() == ips("10.0.0.5")
    reasons = dict(a.rejected)
    assert set(reasons) == set(bad)
    assert reasons["100.64.3.4"].startswith("inside the mesh's own network")
    assert reasons["127.0.0.1"] == "loopback"
    bad6 = ["::1", "fe80::1", "ff02::1", "::", "::ffff:10.0.0.1", "fd00:1234::9"]
    b = extract(
        response("x.test", *(f"x.test. 60 IN AAAA {v}" for v in bad6), rdtype="AAAA"), overlay=OVERLAY
    )
    assert b.empty and len(b.rejected) == len(bad6)


def test_an_answer_with_only_rejected_addresses_has_no_ttl() -> None:
    a = extract(response("x.test", "x.test. 5 IN A 127.0.0.1", "x.test. 60 IN A 10.0.0.1"))
    assert a.ttl == 60  # the rejected record's TTL does not count


def test_private_and_public_addresses_are_routable() -> None:
    for value in ("10.1.2.3", "192.168.1.1", "172.16.0.1", "8.8.8.8", "2001:db8::1", "fd12::1"):
        assert refusal(ipaddress.ip_address(value), OVERLAY) is None


def test_the_question_may_be_given_explicitly() -> None:
    msg = response("app.example.com", "app.example.com. 60 IN A 10.0.0.1")
    assert extract(msg, dns.name.from_text("other.example.com")).empty
    msg.question = []
    assert extract(msg).empty


# -- the raw-wire reader gives what dnspython's reading gives ----------------------------------------
NAMES = [
    "app.example.com.",
    "App.Example.Com.",
    "edge.cdn.test.",
    "pop.cdn.test.",
    "other.test.",
    "x.app.example.com.",
]
ADDRS4 = ["10.0.0.1", "10.0.0.2", "127.0.0.1", "100.64.1.1", "192.0.2.9"]
ADDRS6 = ["2001:db8::1", "fe80::1", "fd00:1234::5", "::ffff:10.0.0.1"]

record = st.one_of(
    st.tuples(st.sampled_from(NAMES), st.just("A"), st.sampled_from(ADDRS4)),
    st.tuples(st.sampled_from(NAMES), st.just("AAAA"), st.sampled_from(ADDRS6)),
    st.tuples(st.sampled_from(NAMES), st.just("CNAME"), st.sampled_from(NAMES)),
    st.tuples(st.sampled_from(NAMES), st.just("TXT"), st.just('"hello"')),
)


@settings(max_examples=300, deadline=None)
@given(
    qname=st.sampled_from(NAMES),
    records=st.lists(
        st.tuples(record, st.integers(0, 100000), st.sampled_from(["IN", "IN", "IN", "CH"])), max_size=12
    ),
)
def test_extract_wire_agrees_with_extract(
    qname: str, records: list[tuple[tuple[str, str, str], int, str]]
) -> None:
    msg = dns.message.make_response(dns.message.make_query(qname, "A"))
    for (owner, kind, data), ttl, rdclass in records:
        if rdclass == "CH" and kind != "TXT":
            continue
        msg.answer.append(dns.rrset.from_text(owner, ttl, rdclass, kind, data))
    wire = msg.to_wire()
    labels = dns.name.from_text(qname).labels[:-1]
    slow = extract(dns.message.from_wire(wire), overlay=OVERLAY)
    fast = extract_wire(wire, labels, OVERLAY)
    assert (fast.name, fast.addresses, fast.ttl) == (slow.name, slow.addresses, slow.ttl)
    assert sorted(fast.rejected) == sorted(slow.rejected)


def test_extract_wire_refuses_what_it_cannot_read() -> None:
    msg = response("app.example.com", "app.example.com. 60 IN A 10.0.0.1")
    wire = msg.to_wire()
    labels = (b"app", b"example", b"com")
    assert extract_wire(wire, labels).all_addresses() == ips("10.0.0.1")
    for broken in (wire[:-2], wire[:20], wire[:12] + b"\xc0\x0c" + wire[14:]):
        with pytest.raises(ValueError):
            extract_wire(broken, labels)
    looped = bytearray(wire)
    looped[12:14] = b"\xc0\x0c"  # the question's name points at itself
    with pytest.raises(ValueError):
        extract_wire(bytes(looped), labels)
