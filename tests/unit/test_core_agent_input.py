"""The rules for what an agent may report (core.agent_input): its Login meta and its status reports."""

from __future__ import annotations

import pytest

from meshroute.core.agent_input import (
    MAX_CHECK_DETAIL,
    MAX_CHECK_NAME,
    MAX_CHECKS,
    MAX_ENDPOINT_CHARS,
    MAX_ENDPOINTS,
    MAX_HA_ID,
    MAX_MAP_ROUTE_ID,
    MAX_ROUTE_IDS,
    MAX_ROUTE_USES,
    check_agent_meta,
    check_endpoint,
    check_status_report,
    check_text,
    route_state,
)
from meshroute.core.errors import InvalidArgument
from meshroute.core.status import RequirementCheck, RouteState, RouteUse, StatusReport

VALID = [
    "172.31.0.3:51820",
    "1.2.3.4:1",
    "1.2.3.4:65535",
    "[fd00::1]:51820",
    "[::ffff:1.2.3.4]:51820",
    "[fe80::1%eth0]:51820",
    "vpn.example.com:51820",
    "vpn.example.com.:51820",
    "localhost:1",
    "a" * 63 + ".example:1",
    ".".join(["a" * 63] * 3) + "." + "a" * 61 + ":65535",  # 253-character name: the longest form
]
INVALID = [
    "",
    ":",
    "1.2.3.4",
    "1.2.3.4:",
    "1.2.3.4:0",
    "1.2.3.4:65536",
    "1.2.3.4:051820x",
    "1.2.3.4:+1",
    "1.2.3.4:٣",  # a non-ASCII digit
    "300.1.1.1:1",
    "1.2.3:1",
    "fd00::1:51820",
    "[1.2.3.4]:1",
    "[fd00::1]",
    "[fd00::zz]:1",
    "[fe80::1%]:1",
    "[fe80::1%a b]:1",
    "-bad.example:1",
    "bad-.example:1",
    "a..b:1",
    "a_b.example:1",
    "a" * 64 + ".example:1",
    "exa mple.com:1",
    "x" * 100,
]


def test_the_longest_valid_form_fits_the_length_limit() -> None:
    longest = VALID[-1]
    assert len(longest) == MAX_ENDPOINT_CHARS
    check_endpoint(longest)


@pytest.mark.parametrize("value", VALID)
def test_valid_endpoints(value: str) -> None:
    check_endpoint(value)


@pytest.mark.parametrize("value", INVALID)
def test_invalid_endpoints(value: str) -> None:
    with pytest.raises(InvalidArgument, match="is not HOST:PORT"):
        check_endpoint(value)


@pytest.mark.parametrize("bad", ["\x00", "\x1f", "\x7f", "\x85", "a\nb", "\t"])
def test_control_characters_are_refused(bad: str) -> None:
    with pytest.raises(InvalidArgument, match="must not contain control characters"):
        check_text(bad, "hostname", 255)


@pytest.mark.parametrize("bad", ["\ud800", "a\udfffb"])
def test_lone_surrogates_are_refused(bad: str) -> None:
    with pytest.raises(InvalidArgument, match="no lone surrogates"):
        check_text(bad, "os", 255)


def test_text_that_is_unusual_but_valid_passes() -> None:
    check_text("Jörg's MacBook Pro 😀", "hostname", 255)
    check_text("", "hostname", 255)


def test_meta_limits() -> None:
    base = {"hostname": "h", "os": "linux", "kernel_version": "6.1", "agent_version": "0.1", "endpoints": []}
    check_agent_meta(**{**base, "endpoints": ["1.2.3.4:5"] * MAX_ENDPOINTS})  # type: ignore[arg-type]
    with pytest.raises(InvalidArgument, match="endpoints should not have more than 32 entries"):
        check_agent_meta(**{**base, "endpoints": ["1.2.3.4:5"] * (MAX_ENDPOINTS + 1)})  # type: ignore[arg-type]
    for field, limit in (("hostname", 255), ("os", 255), ("kernel_version", 255), ("agent_version", 64)):
        check_agent_meta(**{**base, field: "x" * limit})  # type: ignore[arg-type]
        with pytest.raises(InvalidArgument, match=f"should not be longer than {limit} characters"):
            check_agent_meta(**{**base, field: "x" * (limit + 1)})  # type: ignore[arg-type]


# -- status reports (ReportStatus) ---------------------------------------------------------------
def _use(**over: object) -> RouteUse:
    fields: dict[str, object] = {
        "ha_id": "office|10.0.0.0/24",
        "route_ids": ("r1:gw1", "r1:gw2"),
        "routing_peer_id": "gw1",
        "state": RouteState.ROUTING,
        **over,
    }
    return RouteUse(**fields)  # type: ignore[arg-type]


def test_a_report_at_its_limits_passes() -> None:
    longest_ha = "n" * 43 + "|" + ", ".join(["d" * 253] * 32)
    assert len(longest_ha) == MAX_HA_ID
    uses = tuple(_use(ha_id=longest_ha if i == 0 else f"h{i}", route_ids=("r" * MAX_MAP_ROUTE_ID,) * 10)
                 for i in range(MAX_ROUTE_USES))  # fmt: skip
    checks = tuple(
        RequirementCheck("c" * MAX_CHECK_NAME, False, "d" * MAX_CHECK_DETAIL) for _ in range(MAX_CHECKS)
    )
    check_status_report(StatusReport(uses, checks))
    check_status_report(StatusReport())
    check_status_report(StatusReport((_use(routing_peer_id="", state=RouteState.DESELECTED),)))


BAD_REPORTS = [
    (StatusReport((_use(),) * (MAX_ROUTE_USES + 1)), "not have more than 1000 route uses"),
    (StatusReport(checks=(RequirementCheck("c", True),) * 65), "more than 64 requirement checks"),
    (StatusReport((_use(route_ids=("r",) * (MAX_ROUTE_IDS + 1)),)), "not name more than 10000 route IDs"),
    (StatusReport((_use(ha_id="h" * (MAX_HA_ID + 1)),)), f"HA ID should not be longer than {MAX_HA_ID}"),
    (StatusReport((_use(ha_id="a\x00b"),)), "HA ID must not contain control characters"),
    (StatusReport((_use(route_ids=("r" * 141,)),)), "route ID should not be longer than 140 characters"),
    (StatusReport((_use(route_ids=("r1\n",)),)), "route ID must not contain control characters"),
    (StatusReport((_use(routing_peer_id="p" * 65),)), "routing peer ID should not be longer than 64"),
    (StatusReport((_use(routing_peer_id="\x7f"),)), "routing peer ID must not contain control"),
    (StatusReport(checks=(RequirementCheck("n" * 65, True),)), "check name should not be longer than 64"),
    (StatusReport(checks=(RequirementCheck("fw", False, "x" * 1025),)), "detail should not be longer"),
    (StatusReport(checks=(RequirementCheck("fw", False, "line\nbreak"),)), "detail must not contain control"),
    (StatusReport(checks=(RequirementCheck("\ud800", True),)), "name must be valid Unicode"),
]  # fmt: skip


@pytest.mark.parametrize(("report", "message"), BAD_REPORTS, ids=[m for _, m in BAD_REPORTS])
def test_a_report_that_breaks_a_rule_is_refused_naming_it(report: StatusReport, message: str) -> None:
    with pytest.raises(InvalidArgument, match=message):
        check_status_report(report)


def test_an_unknown_route_state_is_named_with_the_known_ones() -> None:
    assert route_state("kept") == RouteState.KEPT
    with pytest.raises(InvalidArgument) as err:
        route_state("flying" + "x" * 100)
    assert err.value.message == (
        "unknown route state 'flyingxxxxxxxxxxxxxxxxxxxxxxxxxx': expected one of routing, kept, "
        "no_routing_peer, deselected, not_routed"
    )
