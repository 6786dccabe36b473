"""`meshroute agent routes list`'s table (cli/agent.py): domains and learned names as people write
them (Unicode), and each route's learned names under a label that tells routes apart."""

from __future__ import annotations

from typing import Any

from meshroute.cli.agent import _routes_table


def domain_route(network_id: str, domains: list[str], learned: dict[str, Any]) -> dict[str, Any]:
    return {
        "network_id": network_id,
        "network": None,
        "domains": domains,
        "exit_node": False,
        "selected": True,
        "installed": True,
        "routing_peer": "r1",
        "note": "",
        "candidates": [
            {"chosen": True, "peer": "r1", "metric": 100, "state": "connected", "latency_ms": 0.5}
        ],
        "learned": learned,
    }


def test_domains_and_learned_names_are_shown_in_unicode_under_their_route() -> None:
    text = _routes_table(
        [
            domain_route(
                "t1",
                ["xn--bcher-kva.test"],
                {"xn--bcher-kva.test": [{"prefix": "10.0.0.1/32", "remaining": 42.0, "current": True}]},
            ),
            domain_route("t1", ["other.test"], {}),
        ]
    )
    assert "bücher.test" in text and "xn--" not in text
    assert "t1 (bücher.test): 1 name(s) resolved through the route" in text
    assert "  bücher.test: 10.0.0.1/32 (42s)" in text
    assert "t1 (other.test): 0 name(s) resolved through the route" in text
