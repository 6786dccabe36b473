"""Learned addresses per group: families, KeepRoute, TTL expiry, in-use postponement, the cap
(dns/learned.py). Time is whatever the test says it is."""

from __future__ import annotations

import dns.message
import dns.rrset
import pytest

from meshroute.agent.dns.answers import extract
from meshroute.agent.dns.learned import AddressView, Learned, LearnedAddresses

G = "ha-office"


def never(_: str) -> bool:
    return False


def always(_: str) -> bool:
    return True


def test_an_answer_adds_host_prefixes_to_its_group() -> None:
    table = LearnedAddresses()
    out = table.learn(G, "app.test", 4, ["10.0.0.1", "10.0.0.2"], 300, now=0, keep_route=False)
    assert out == Learned(added=frozenset({"10.0.0.1/32", "10.0.0.2/32"}))
    assert table.addresses(G) == {"10.0.0.1/32", "10.0.0.2/32"}
    assert table.count(G) == 2 and table.groups() == [G]
    assert table.addresses("other") == frozenset() and table.count("other") == 0
    again = table.learn(G, "app.test", 4, ["10.0.0.1", "10.0.0.2"], 300, now=1, keep_route=False)
    assert not again.changed


def test_families_are_tracked_apart_an_aaaa_answer_never_removes_a_addresses() -> None:
    table = LearnedAddresses()
    table.learn(G, "app.test", 4, ["10.0.0.1"], 300, now=0, keep_route=False)
    out = table.learn(G, "app.test", 6, ["2001:db8::1"], 300, now=1, keep_route=False)
    assert out.added == {"2001:db8::1/128"} and not out.removed  # the reference's QUIRK removed 10.0.0.1
    assert table.addresses(G) == {"10.0.0.1/32", "2001:db8::1/128"}
    out = table.learn(G, "app.test", 6, ["2001:db8::2"], 300, now=2, keep_route=False)
    assert out.removed == {"2001:db8::1/128"}
    assert table.addresses(G) == {"10.0.0.1/32", "2001:db8::2/128"}


def test_without_keep_route_a_new_answer_replaces_the_names_addresses() -> None:
    table = LearnedAddresses()
    table.learn(G, "app.test", 4, ["10.0.0.1", "10.0.0.2"], 300, now=0, keep_route=False)
    out = table.learn(G, "app.test", 4, ["10.0.0.2", "10.0.0.3"], 300, now=5, keep_route=False)
    assert out.added == {"10.0.0.3/32"} and out.removed == {"10.0.0.1/32"}
    assert table.addresses(G) == {"10.0.0.2/32", "10.0.0.3/32"}


def test_with_keep_route_addresses_that_drop_out_stay() -> None:
    table = LearnedAddresses()
    table.learn(G, "app.test", 4, ["10.0.0.1"], 300, now=0, keep_route=True)
    out = table.learn(G, "app.test", 4, ["10.0.0.2"], 300, now=5, keep_route=True)
    assert out.added == {"10.0.0.2/32"} and not out.removed
    assert table.addresses(G) == {"10.0.0.1/32", "10.0.0.2/32"}
    assert table.expire(10**9, never) == {}  # nothing of a KeepRoute group ever expires
    assert table.next_expiry() is None
    views = {v.prefix: v for v in table.snapshot(G, now=6)["app.test"]}
    assert views["10.0.0.1/32"] == AddressView("10.0.0.1/32", 4, None, current=False)
    assert views["10.0.0.2/32"] == AddressView("10.0.0.2/32", 4, None, current=True)
    assert table.forget(G) == {"10.0.0.1/32", "10.0.0.2/32"}  # the route went away
    assert table.addresses(G) == frozenset() and table.groups() == []


def test_an_address_of_two_names_stays_while_one_of_them_has_it() -> None:
    table = LearnedAddresses()
    table.learn(G, "a.test", 4, ["10.0.0.9"], 300, now=0, keep_route=False)
    out = table.learn(G, "b.test", 4, ["10.0.0.9"], 300, now=0, keep_route=False)
    assert not out.added  # already routed for a.test
    out = table.learn(G, "a.test", 4, ["10.0.0.1"], 300, now=1, keep_route=False)
    assert out.added == {"10.0.0.1/32"} and not out.removed  # b.test still holds 10.0.0.9
    assert table.count(G) == 2
    out = table.learn(G, "b.test", 4, ["10.0.0.1"], 300, now=2, keep_route=False)
    assert out.removed == {"10.0.0.9/32"} and not out.added


def test_addresses_expire_after_ttl_plus_grace() -> None:
    table = LearnedAddresses(grace=60)
    table.learn(G, "app.test", 4, ["10.0.0.1"], 30, now=100, keep_route=False)
    assert table.next_expiry() == 190
    assert table.due(189.9) == [] and table.expire(189.9, never) == {}
    assert table.due(190) == ["10.0.0.1"]
    assert table.expire(190, never) == {G: frozenset({"10.0.0.1/32"})}
    assert table.addresses(G) == frozenset() and table.groups() == []


def test_a_new_answer_renews_the_lifetime() -> None:
    table = LearnedAddresses(grace=10)
    table.learn(G, "app.test", 4, ["10.0.0.1"], 30, now=0, keep_route=False)
    table.learn(G, "app.test", 4, ["10.0.0.1"], 30, now=35, keep_route=False)
    assert table.expire(41, never) == {}
    assert table.snapshot(G, now=41)["app.test"][0].remaining == 34
    assert table.expire(75, never) == {G: frozenset({"10.0.0.1/32"})}


def test_a_ttl_of_zero_still_gets_the_grace_period_and_long_ttls_are_clamped() -> None:
    table = LearnedAddresses(grace=60, max_ttl=3600)
    table.learn(G, "zero.test", 4, ["10.0.0.1"], 0, now=0, keep_route=False)
    table.learn(G, "week.test", 4, ["10.0.0.2"], 7 * 86400, now=0, keep_route=False)
    remaining = {name: views[0].remaining for name, views in table.snapshot(G, now=0).items()}
    assert remaining == {"week.test": 3660, "zero.test": 60}


def test_an_address_in_use_is_never_expired_only_postponed() -> None:
    table = LearnedAddresses(grace=0, recheck=30)
    table.learn(G, "app.test", 4, ["10.0.0.1", "10.0.0.2"], 10, now=0, keep_route=False)
    asked: list[str] = []

    def in_use(address: str) -> bool:
        asked.append(address)
        return address == "10.0.0.1"

    assert table.expire(10, in_use) == {G: frozenset({"10.0.0.2/32"})}
    assert sorted(asked) == ["10.0.0.1", "10.0.0.2"]
    assert table.addresses(G) == {"10.0.0.1/32"}
    assert table.next_expiry() == 40  # looked at again `recheck` later
    assert table.expire(39, never) == {}
    assert table.expire(40, in_use) == {}  # still in use
    assert table.expire(70, never) == {G: frozenset({"10.0.0.1/32"})}


def test_in_use_is_asked_once_per_address_per_pass() -> None:
    table = LearnedAddresses(grace=0)
    for group in ("g1", "g2"):
        table.learn(group, "a.test", 4, ["10.0.0.1"], 1, now=0, keep_route=False)
        table.learn(group, "b.test", 4, ["10.0.0.1"], 1, now=0, keep_route=False)
    asked: list[str] = []

    def in_use(address: str) -> bool:
        asked.append(address)
        return True

    table.expire(5, in_use)
    assert asked == ["10.0.0.1"]


def test_an_address_that_drops_out_while_in_use_waits_for_its_connections() -> None:
    table = LearnedAddresses(recheck=30)
    table.learn(G, "app.test", 4, ["10.0.0.1"], 300, now=0, keep_route=False)
    out = table.learn(G, "app.test", 4, ["10.0.0.2"], 300, now=5, keep_route=False, in_use=always)
    assert out.added == {"10.0.0.2/32"} and not out.removed
    view = {v.prefix: v for v in table.snapshot(G, now=5)["app.test"]}["10.0.0.1/32"]
    assert not view.current and view.remaining == 30
    assert table.expire(35, never) == {G: frozenset({"10.0.0.1/32"})}
    assert table.addresses(G) == {"10.0.0.2/32"}


def test_the_cap_evicts_the_soonest_expiring_addresses_first() -> None:
    table = LearnedAddresses(cap=3, grace=0)
    table.learn(G, "a.test", 4, ["10.0.0.1"], 100, now=0, keep_route=False)
    table.learn(G, "b.test", 4, ["10.0.0.2"], 10, now=0, keep_route=False)
    table.learn(G, "c.test", 4, ["10.0.0.3"], 50, now=0, keep_route=False)
    out = table.learn(G, "d.test", 4, ["10.0.0.4", "10.0.0.5"], 60, now=1, keep_route=False)
    assert out.added == {"10.0.0.4/32", "10.0.0.5/32"}
    assert out.removed == {"10.0.0.2/32", "10.0.0.3/32"}  # TTL 10, then TTL 50
    assert table.addresses(G) == {"10.0.0.1/32", "10.0.0.4/32", "10.0.0.5/32"}
    assert not out.refused


def test_an_answer_larger_than_the_cap_keeps_what_fits() -> None:
    table = LearnedAddresses(cap=4)
    out = table.learn(G, "big.test", 4, [f"10.0.1.{i}" for i in range(1, 11)], 60, now=0, keep_route=False)
    assert len(out.added) == 4 and len(out.refused) == 6
    assert table.count(G) == 4
    assert out.refused[0] == "10.0.1.5"  # in address order: the first ones are learned


def test_a_full_keep_route_group_refuses_new_addresses() -> None:
    table = LearnedAddresses(cap=2)
    table.learn(G, "a.test", 4, ["10.0.0.1", "10.0.0.2"], 60, now=0, keep_route=True)
    out = table.learn(G, "b.test", 4, ["10.0.0.3"], 60, now=1, keep_route=True)
    assert out == Learned(refused=("10.0.0.3",))
    assert table.addresses(G) == {"10.0.0.1/32", "10.0.0.2/32"}


def test_a_flood_never_grows_a_group_past_the_cap() -> None:
    table = LearnedAddresses(cap=100)
    for i in range(1000):
        table.learn(G, f"n{i}.test", 4, [f"10.{i // 250}.{i % 250}.1"], 60 + i, now=i, keep_route=False)
    assert table.count(G) == 100
    assert table.addresses(G) == {f"10.{i // 250}.{i % 250}.1/32" for i in range(900, 1000)}
    assert len(table.addresses("other")) == 0  # caps are per group


def test_the_cap_is_per_group() -> None:
    table = LearnedAddresses(cap=1)
    table.learn("g1", "a.test", 4, ["10.0.0.1"], 60, now=0, keep_route=True)
    assert table.learn("g2", "a.test", 4, ["10.0.0.1"], 60, now=0, keep_route=True).added == {"10.0.0.1/32"}


def test_turning_keep_route_off_lets_kept_addresses_expire() -> None:
    table = LearnedAddresses(grace=60)
    table.learn(G, "app.test", 4, ["10.0.0.1"], 300, now=0, keep_route=True)
    table.learn(G, "app.test", 4, ["10.0.0.2"], 300, now=1, keep_route=True)  # 10.0.0.1 dropped out
    table.set_keep_route(G, False, now=10)
    assert table.expire(10, never) == {G: frozenset({"10.0.0.1/32"})}  # dropped out: due at once
    assert table.expire(69, never) == {}
    assert table.expire(70, never) == {G: frozenset({"10.0.0.2/32"})}
    table.learn(G, "app.test", 4, ["10.0.0.3"], 300, now=80, keep_route=False)
    table.set_keep_route(G, True, now=90)
    assert table.expire(10**6, never) == {}
    table.set_keep_route("unknown", True, now=0)  # nothing to do


def test_an_empty_answer_changes_nothing() -> None:
    table = LearnedAddresses()
    table.learn(G, "app.test", 4, ["10.0.0.1"], 60, now=0, keep_route=False)
    assert table.learn(G, "app.test", 4, [], 60, now=1, keep_route=False) == Learned()
    assert table.addresses(G) == {"10.0.0.1/32"}


def test_an_address_of_the_wrong_family_is_a_caller_error() -> None:
    with pytest.raises(ValueError):
        LearnedAddresses().learn(G, "app.test", 6, ["10.0.0.1"], 60, now=0, keep_route=False)
    with pytest.raises(ValueError):
        LearnedAddresses(cap=0)


def test_the_caller_attributes_a_cname_chain_to_the_question_name() -> None:
    query = dns.message.make_query("app.corp.test", "A")
    msg = dns.message.make_response(query)
    msg.answer.append(dns.rrset.from_text("app.corp.test.", 300, "IN", "CNAME", "lb.cloud.test."))
    msg.answer.append(dns.rrset.from_text("lb.cloud.test.", 40, "IN", "A", "10.5.0.1", "10.5.0.2"))
    table = LearnedAddresses(grace=60)
    out = table.learn_answer(G, extract(msg), now=0, keep_route=False)
    assert out.added == {"10.5.0.1/32", "10.5.0.2/32"}
    snapshot = table.snapshot(G, now=10)
    assert list(snapshot) == ["app.corp.test"]  # not lb.cloud.test
    assert [v.remaining for v in snapshot["app.corp.test"]] == [90, 90]  # min TTL 40 + grace 60 - 10
    assert (
        table.learn_answer(G, extract(dns.message.make_response(query)), now=1, keep_route=False) == Learned()
    )


def test_learn_answer_reports_both_families() -> None:
    query = dns.message.make_query("app.test", "ANY")
    msg = dns.message.make_response(query)
    msg.answer.append(dns.rrset.from_text("app.test.", 60, "IN", "A", "10.0.0.1"))
    msg.answer.append(dns.rrset.from_text("app.test.", 60, "IN", "AAAA", "2001:db8::1"))
    out = LearnedAddresses().learn_answer(G, extract(msg), now=0, keep_route=False)
    assert out.added == {"10.0.0.1/32", "2001:db8::1/128"}


def test_snapshot_lists_names_with_their_remaining_time() -> None:
    table = LearnedAddresses(grace=5)
    table.learn(G, "b.test", 4, ["10.0.0.2"], 10, now=0, keep_route=False)
    table.learn(G, "a.test", 6, ["2001:db8::1"], 20, now=0, keep_route=False)
    table.learn(G, "a.test", 4, ["10.0.0.1"], 30, now=0, keep_route=False)
    snap = table.snapshot(G, now=3)
    assert list(snap) == ["a.test", "b.test"]
    assert snap["a.test"] == [
        AddressView("10.0.0.1/32", 4, 32, True),
        AddressView("2001:db8::1/128", 6, 22, True),
    ]
    assert snap["b.test"] == [AddressView("10.0.0.2/32", 4, 12, True)]
    assert table.snapshot("nobody", now=0) == {}


def test_a_dump_restored_after_a_restart_keeps_the_remaining_lifetimes() -> None:
    before = LearnedAddresses(grace=60)
    before.learn("ha", "app.test", 4, ["10.0.0.1", "10.0.0.2"], ttl=40, now=100.0, keep_route=False)
    before.learn("ha", "app.test", 6, ["fd00::1"], ttl=400, now=100.0, keep_route=False)
    before.learn("kept", "k.test", 4, ["10.0.0.9"], ttl=40, now=100.0, keep_route=True)
    rows = before.dump("ha", now=110.0, wall=5000.0)  # 10 s later, at wall clock 5000
    assert rows[0] == ["app.test", 4, "10.0.0.1", 5090.0, True]

    # the agent comes back 60 s later, with a monotonic clock that started again
    after = LearnedAddresses(grace=60)
    assert after.restore("ha", rows, now=3.0, wall=5060.0) == 3
    assert after.restore("kept", before.dump("kept", 110.0, 5000.0), now=3.0, wall=5060.0) == 1
    assert after.addresses("ha") == before.addresses("ha")
    views = after.snapshot("ha", now=3.0)["app.test"]
    assert [(v.prefix, v.remaining) for v in views] == [
        ("10.0.0.1/32", 30.0),
        ("10.0.0.2/32", 30.0),
        ("fd00::1/128", 390.0),
    ]
    assert after.snapshot("kept", now=3.0)["k.test"][0].remaining is None
    # what expired while the agent was down is not restored
    late = LearnedAddresses(grace=60)
    assert late.restore("ha", rows, now=3.0, wall=5100.0) == 1
    assert late.addresses("ha") == frozenset({"fd00::1/128"})


def test_restore_skips_malformed_rows_and_stops_at_the_cap() -> None:
    learned = LearnedAddresses(cap=2)
    rows = [
        ["n.test", 4, "10.0.0.7", float("nan"), True],  # JSON takes NaN; a lifetime cannot be one
        ["n.test", 4, "10.0.0.8", float("-inf"), True],
        ["a.test", 4, "10.0.0.1", None, True],
        ["a.test", 6, "10.0.0.2", None, True],  # the wrong family
        ["a.test", 4, "not an address", None, True],
        ["a.test", 4],
        "garbage",
        ["a.test", 4, "10.0.0.1", None, True],  # twice
        ["b.test", 4, "10.0.0.3", 9e9, False],
        ["c.test", 4, "10.0.0.4", None, True],  # past the cap
    ]
    assert learned.restore("ha", rows, now=0.0, wall=1000.0) == 2
    assert learned.addresses("ha") == frozenset({"10.0.0.1/32", "10.0.0.3/32"})
    # a lifetime far in the future is cut to what one answer can give
    (view,) = learned.snapshot("ha", now=0.0)["b.test"]
    assert view.remaining == learned.max_ttl + learned.grace and view.current is False
    assert learned.restore("empty", [], now=0.0, wall=1000.0) == 0 and learned.groups() == ["ha"]
