"""Underlay endpoints: what the agent reports, how a peer's candidates are ordered, and the search
for one that works (pure: time and handshakes are given)."""

from __future__ import annotations

import ipaddress
import itertools

import pytest

from meshroute.agent.endpoints import (
    HANDSHAKE_WAIT_S,
    RETRY_CAP_S,
    RETRY_FIRST_S,
    EndpointSelector,
    format_endpoint,
    order_candidates,
    own_candidates,
    parse_endpoint,
)
from meshroute.agent.netlink import LocalAddress
from meshroute.agent.wireguard.model import PeerStats

K, L = "peer-k", "peer-l"
E1, E2, E3 = "192.0.2.10:51820", "198.51.100.10:51820", "[2001:db8::10]:51820"


def hs(at: float, endpoint: str | None = None, key: str = K) -> dict[str, PeerStats]:
    return {key: PeerStats(key, endpoint=endpoint, last_handshake=at)}


# -- endpoints as text -----------------------------------------------------------------------------


def test_format_and_parse_endpoints() -> None:
    assert format_endpoint(ipaddress.ip_address("192.0.2.1"), 51820) == "192.0.2.1:51820"
    assert format_endpoint(ipaddress.ip_address("2001:db8::1"), 51820) == "[2001:db8::1]:51820"
    assert parse_endpoint("[2001:db8::1]:51820") == (ipaddress.ip_address("2001:db8::1"), 51820)
    assert parse_endpoint("192.0.2.1:1") == (ipaddress.ip_address("192.0.2.1"), 1)


@pytest.mark.parametrize(
    "bad",
    ["192.0.2.1", "192.0.2.1:0", "192.0.2.1:65536", "2001:db8::1:51820", "host.test:51820", ":51820", ""],
)
def test_parse_endpoint_rejects_what_is_not_ip_port(bad: str) -> None:
    with pytest.raises(ValueError):
        parse_endpoint(bad)


# -- own_candidates --------------------------------------------------------------------------------


def test_own_candidates_extra_first_then_ipv4_then_ipv6_without_loopback_link_local_or_overlay() -> None:
    local = [
        LocalAddress("eth0", "2001:db8::1", 64),
        LocalAddress("eth0", "192.0.2.1", 24),
        LocalAddress("eth0", "fe80::1", 64),
        LocalAddress("eth1", "198.51.100.1", 24),
        LocalAddress("eth2", "169.254.7.7", 16),
        LocalAddress("lo", "127.0.0.1", 8),
        LocalAddress("lo", "::1", 128),
        LocalAddress("mr0", "100.64.0.1", 16),
        LocalAddress("mr0", "fd00::1", 64),
        LocalAddress("eth3", "2001:db8:1::1", 64),
    ]
    got = own_candidates(local, 51820, ["203.0.113.9:4000", "[2001:db8:ff::9]:4000"], "mr0")
    assert got == [
        "203.0.113.9:4000",
        "[2001:db8:ff::9]:4000",
        "192.0.2.1:51820",
        "198.51.100.1:51820",
        "[2001:db8::1]:51820",
        "[2001:db8:1::1]:51820",
    ]


def test_own_candidates_removes_duplicates_keeping_the_first() -> None:
    local = [LocalAddress("eth0", "192.0.2.1", 24), LocalAddress("br0", "192.0.2.1", 24)]
    got = own_candidates(local, 51820, ["192.0.2.1:51820", "203.0.113.9:4000", "203.0.113.9:4000"], "mr0")
    assert got == ["192.0.2.1:51820", "203.0.113.9:4000"]


def test_own_candidates_excludes_the_overlay_interface_by_name() -> None:
    local = [LocalAddress("wg-test", "192.0.2.1", 24), LocalAddress("mr0", "198.51.100.1", 24)]
    assert own_candidates(local, 7, [], "wg-test") == ["198.51.100.1:7"]


# -- order_candidates ------------------------------------------------------------------------------


def test_order_same_subnet_first_then_same_family_then_the_rest() -> None:
    local = [LocalAddress("eth0", "192.0.2.1", 24), LocalAddress("lo", "127.0.0.1", 8)]
    got = order_candidates(
        ["[2001:db8::5]:51820", "203.0.113.5:51820", "192.0.2.5:51820", "198.51.100.5:51820"], local
    )
    assert got == ("192.0.2.5:51820", "203.0.113.5:51820", "198.51.100.5:51820", "[2001:db8::5]:51820")


def test_order_with_both_families_puts_every_same_subnet_candidate_first_in_given_order() -> None:
    local = [LocalAddress("eth0", "192.0.2.1", 24), LocalAddress("eth0", "2001:db8::1", 64)]
    got = order_candidates(["203.0.113.5:1", "[2001:db8::5]:1", "[2001:db8:9::5]:1", "192.0.2.5:1"], local)
    assert got == ("[2001:db8::5]:1", "192.0.2.5:1", "203.0.113.5:1", "[2001:db8:9::5]:1")


def test_order_drops_invalid_candidates_and_duplicates() -> None:
    local = [LocalAddress("eth0", "192.0.2.1", 24)]
    got = order_candidates(
        ["garbage", "192.0.2.5", "192.0.2.5:51820", "2001:db8::5:51820", "host.test:1", "192.0.2.5:51820"],
        local,
    )
    assert got == ("192.0.2.5:51820",)


def test_order_is_the_peers_own_when_nothing_tells_them_apart() -> None:
    # only loopback and link-local here: no subnet and no family counts
    local = [LocalAddress("lo", "127.0.0.1", 8), LocalAddress("eth0", "fe80::1", 64)]
    cands = ["203.0.113.5:1", "[2001:db8::5]:1", "198.51.100.5:1"]
    assert order_candidates(cands, local) == tuple(cands)
    assert order_candidates([], local) == ()


# -- EndpointSelector ------------------------------------------------------------------------------


def test_candidates_are_tried_one_at_a_time_recreating_the_peer_for_each_new_one() -> None:
    sel = EndpointSelector()
    sel.set_peers({K: (E1, E2, E3)}, 0.0)
    assert sel.endpoint(K) == E1
    assert not sel.pending()

    step = sel.step(100.0, {})
    assert (step.recreate, step.kick) == ([], [K])  # a fresh peer needs no recreate: just a packet
    assert sel.pending()

    step = sel.step(100.0 + HANDSHAKE_WAIT_S * 0.9, {})
    assert (step.recreate, step.kick) == ([], [])
    assert sel.endpoint(K) == E1

    step = sel.step(100.0 + HANDSHAKE_WAIT_S, {})
    assert (step.recreate, step.kick) == ([K], [K])
    assert sel.endpoint(K) == E2

    step = sel.step(100.0 + 2 * HANDSHAKE_WAIT_S, {})
    assert (step.recreate, step.kick) == ([K], [K])
    assert sel.endpoint(K) == E3


def test_after_a_failed_round_it_waits_5_s_doubling_up_to_60_s() -> None:
    sel = EndpointSelector()
    sel.set_peers({K: (E1, E2)}, 0.0)
    now = 100.0
    round_starts = []
    for _ in range(7):
        # wait until the selector starts a round (it kicks the first candidate)
        while not sel.step(now, {}).kick:
            now += 0.25
        round_starts.append(now)
        assert sel.endpoint(K) == E1
        now += HANDSHAKE_WAIT_S
        assert sel.step(now, {}).kick == [K]  # second candidate
        assert sel.endpoint(K) == E2
        now += HANDSHAKE_WAIT_S
        end = sel.step(now, {})  # the round failed: back to the first one, no packet yet, and
        assert (end.recreate, end.kick) == ([], [])  # a session the peer made meanwhile is kept
        assert sel.endpoint(K) == E1 and not sel.pending()
    pauses = [b - a - 2 * HANDSHAKE_WAIT_S for a, b in itertools.pairwise(round_starts)]
    assert pauses == [RETRY_FIRST_S, 10.0, 20.0, 40.0, RETRY_CAP_S, RETRY_CAP_S]
    assert (RETRY_FIRST_S, RETRY_CAP_S) == (5.0, 60.0)


def test_a_single_candidate_round_needs_no_recreate() -> None:
    sel = EndpointSelector()
    sel.set_peers({K: (E1,)}, 0.0)
    sel.step(0.0, {})
    end = sel.step(HANDSHAKE_WAIT_S, {})
    assert (end.recreate, end.kick) == ([], [])
    assert sel.step(HANDSHAKE_WAIT_S + RETRY_FIRST_S, {}).kick == [K]


def test_a_handshake_confirms_the_endpoint_being_tried() -> None:
    sel = EndpointSelector()
    sel.set_peers({K: (E1, E2, E3)}, 0.0)
    sel.step(100.0, {})
    sel.step(101.0, {})  # now on E2
    step = sel.step(101.5, hs(101.4, E2))
    assert (step.recreate, step.kick) == ([], [])
    assert sel.endpoint(K) == E2
    assert sel.paths[K].confirmed and not sel.pending()
    # confirmed stays: no more attempts, even long after the handshake
    later = sel.step(500.0, {})
    assert (later.recreate, later.kick) == ([], [])
    assert sel.endpoint(K) == E2


def test_a_roamed_endpoint_is_adopted() -> None:
    sel = EndpointSelector()
    sel.set_peers({K: (E1, E2)}, 0.0)
    sel.step(100.0, {})
    # the peer reached us first, from an address it did not report (WireGuard moved to it)
    sel.step(100.2, hs(100.1, "203.0.113.77:40000"))
    assert sel.endpoint(K) == "203.0.113.77:40000"
    assert sel.paths[K].confirmed
    # and follows it when it roams again
    sel.step(300.0, hs(299.0, "203.0.113.78:40001"))
    assert sel.endpoint(K) == "203.0.113.78:40001"


def test_a_working_endpoint_is_kept_when_the_candidates_change_but_still_contain_it() -> None:
    sel = EndpointSelector()
    sel.set_peers({K: (E1, E2)}, 0.0)
    sel.step(100.0, {})
    sel.step(101.0, {})
    sel.step(101.2, hs(101.1, E2))
    sel.set_peers({K: (E3, E2, E1)}, 0.0)
    assert sel.endpoint(K) == E2 and sel.paths[K].confirmed
    step = sel.step(102.0, {})
    assert (step.recreate, step.kick) == ([], [])


def test_a_roamed_endpoint_is_kept_when_the_candidates_change() -> None:
    sel = EndpointSelector()
    sel.set_peers({K: (E1,)}, 0.0)
    sel.step(100.0, hs(99.0, "203.0.113.77:40000"))
    sel.set_peers({K: (E2, E3)}, 0.0)
    assert sel.endpoint(K) == "203.0.113.77:40000"


def test_the_search_starts_over_when_the_new_candidates_lack_the_current_endpoint() -> None:
    sel = EndpointSelector()
    sel.set_peers({K: (E1, E2)}, 0.0)
    sel.step(100.0, hs(99.0, E1))
    assert sel.paths[K].confirmed
    sel.set_peers({K: (E3, "203.0.113.5:51820")}, 0.0)
    assert sel.endpoint(K) == E3
    assert not sel.paths[K].confirmed
    assert sel.step(200.0, {}).kick == [K]


def test_after_starting_over_an_old_handshake_proves_nothing() -> None:
    sel = EndpointSelector()
    sel.set_peers({K: (E1,)}, 0.0)
    sel.step(100.0, hs(99.0, E1))
    new_first, new_second = E3, "203.0.113.5:51820"
    sel.set_peers({K: (new_first, new_second)}, 150.0)
    # The device still reports the old handshake; after the agent set the new endpoint, it also
    # reports that endpoint (what WireGuard does): nothing proves the new candidate works.
    stale = hs(99.0, new_first)
    sel.step(200.0, stale)
    assert not sel.paths[K].confirmed
    sel.step(200.0 + HANDSHAKE_WAIT_S, stale)
    assert sel.endpoint(K) == new_second


def test_suspect_searches_again_from_the_first_candidate_ignoring_older_handshakes() -> None:
    sel = EndpointSelector()
    sel.set_peers({K: (E1, E2)}, 0.0)
    sel.step(100.0, {})
    sel.step(101.0, {})
    sel.step(101.5, hs(101.4, E2))
    assert sel.endpoint(K) == E2

    sel.suspect(K, 200.0)
    assert sel.endpoint(K) == E1 and not sel.paths[K].confirmed
    step = sel.step(200.0, hs(150.0, E2))  # a handshake from before the suspicion
    assert (step.recreate, step.kick) == ([K], [K])  # fresh handshake state on the first candidate
    assert not sel.paths[K].confirmed and sel.pending()

    sel.step(200.5, hs(200.4, E1))
    assert sel.paths[K].confirmed and sel.endpoint(K) == E1


def test_suspect_forgets_a_roamed_endpoint() -> None:
    sel = EndpointSelector()
    sel.set_peers({K: (E1, E2)}, 0.0)
    sel.step(100.0, hs(99.0, "203.0.113.77:40000"))
    sel.suspect(K, 200.0)
    assert sel.endpoint(K) == E1


def test_suspect_leaves_a_search_in_progress_and_unknown_peers_alone() -> None:
    sel = EndpointSelector()
    sel.set_peers({K: (E1, E2)}, 0.0)
    sel.step(100.0, {})
    sel.step(101.0, {})
    sel.suspect(K, 101.5)
    sel.suspect("nobody", 101.5)
    assert sel.endpoint(K) == E2 and sel.pending()
    assert set(sel.paths) == {K}


def test_pending_is_true_only_while_a_handshake_is_awaited() -> None:
    sel = EndpointSelector()
    sel.set_peers({K: (E1,), L: (E2,)}, 0.0)
    assert not sel.pending()
    sel.step(100.0, hs(99.0, E1, key=K))  # K confirmed at once, L tried
    assert sel.pending()
    sel.step(100.5, {**hs(99.0, E1, key=K), **hs(100.4, E2, key=L)})
    assert not sel.pending()


def test_peers_leave_and_peers_without_candidates_are_left_alone() -> None:
    sel = EndpointSelector()
    sel.set_peers({K: (E1,), L: ()}, 0.0)
    assert sel.endpoint(L) is None
    step = sel.step(100.0, {})
    assert step.kick == [K]
    sel.set_peers({L: ()}, 0.0)
    assert sel.endpoint(K) is None and set(sel.paths) == {L}
    assert not sel.pending()


def test_own_candidates_stop_at_what_the_server_accepts() -> None:
    from meshroute.core.agent_input import MAX_ENDPOINTS

    many = [LocalAddress(f"br{i}", f"10.{i}.0.1", 24) for i in range(MAX_ENDPOINTS + 8)]
    got = own_candidates(many, 51820, ["203.0.113.9:51820"], "mr0")
    assert len(got) == MAX_ENDPOINTS and got[0] == "203.0.113.9:51820"
