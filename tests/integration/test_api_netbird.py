"""Parity with NetBird's API beyond the implemented endpoints: every NetBird operation meshroute
does not implement answers 501 (derived from NetBird's OpenAPI document, so the list stays
complete), and a peer's IPv6 is the same in the peer API and in its network map."""

from __future__ import annotations

import ipaddress
import os
import re
from pathlib import Path
from typing import Any

import pytest

from meshroute.server.api.netbird_operations import NETBIRD_OPERATIONS
from meshroute.server.api.not_implemented import operations_from_spec, shape
from tests.integration.conftest import World

REPO = Path(__file__).resolve().parents[2]
# NetBird's document lives in the shared reference beside the repository (CI has it there too).
SPEC = Path(os.environ.get("NETBIRD_OPENAPI", REPO.parent / "shared" / "reference" / "netbird-openapi.yml"))


def test_the_operation_list_is_netbirds_whole_api() -> None:
    if not SPEC.is_file():
        pytest.skip(f"NetBird's OpenAPI document is not at {SPEC} (set NETBIRD_OPENAPI)")
    import yaml

    from_spec = operations_from_spec(yaml.safe_load(SPEC.read_text()))
    assert list(NETBIRD_OPERATIONS) == from_spec, "run scripts/gen-netbird-operations"


def _concrete(path: str) -> str:
    return re.sub(r"\{[^}]*\}", "x1", path)


def test_every_netbird_operation_is_implemented_or_answers_501(world: World) -> None:
    served = world.ok(world.get("/api/openapi.json"))
    implemented = {(shape(path), method.upper()) for path, item in served["paths"].items() for method in item}
    assert ("/api/routes/{}", "GET") in implemented and ("/api/policies", "GET") not in implemented
    unimplemented = 0
    for path, method in NETBIRD_OPERATIONS:
        reply = world.client.request(method, _concrete(path), headers=world.headers(), json={})
        if (shape(path), method) in implemented:
            assert reply.status_code != 501, (method, path, reply.text)
            continue
        unimplemented += 1
        assert reply.status_code == 501, (method, path, reply.status_code, reply.text)
        assert reply.json() == {
            "message": f"{method} {path} is part of NetBird's API but is not implemented by meshroute",
            "code": 501,
        }
    assert unimplemented > 100  # policies, DNS, networks, posture checks, integrations, ...


def test_501_needs_no_token_and_stays_out_of_the_served_document(world: World) -> None:
    reply = world.client.get("/api/policies")
    assert reply.status_code == 501
    assert "not implemented by meshroute" in reply.json()["message"]
    assert reply.headers["content-type"].startswith("application/json")
    served = world.ok(world.get("/api/openapi.json"))["paths"]
    assert "/api/policies" not in served and "/api/accounts/{account_id}" in served
    assert "delete" not in served["/api/accounts/{account_id}"]
    # a DELETE of the account is NetBird's, the PUT is ours: one path, both answers
    account = world.account_id
    assert world.delete(f"/api/accounts/{account}").status_code == 501
    assert world.put(f"/api/accounts/{account}", {"settings": {}}).status_code == 200


def test_paths_netbird_does_not_have_still_answer_404(world: World) -> None:
    for path in ("/api/polices", "/api/routes/x/y", "/api/nothing"):
        reply = world.get(path)
        assert reply.status_code == 404, (path, reply.text)
    # a method NetBird does not have on a path we serve stays 405
    assert world.client.patch("/api/routes", headers=world.headers(), json={}).status_code == 405


def _map_ipv6(world: World, peer_id: str) -> Any:
    return world.ok(world.get(f"/api/peers/{peer_id}/network-map"))["self"]["ipv6"]


def test_a_peers_ipv6_is_the_same_in_the_api_and_in_its_network_map(world: World) -> None:
    v4_only = world.peer("v4-only")
    dual = world.peer("dual", ipv6=True)
    network = ipaddress.IPv6Network(world.ok(world.get("/api/accounts"))[0]["settings"]["network_range_v6"])

    shown = world.ok(world.get(f"/api/peers/{dual}"))
    assert ipaddress.IPv6Address(shown["ipv6"]) in network
    assert _map_ipv6(world, dual) == shown["ipv6"]
    listed = {p["id"]: p for p in world.ok(world.get("/api/peers"))}
    assert listed[dual]["ipv6"] == shown["ipv6"]

    # not IPv6-capable: no address in its map, and none shown (NetBird omits the field)
    assert _map_ipv6(world, v4_only) is None
    assert "ipv6" not in world.ok(world.get(f"/api/peers/{v4_only}"))
    assert "ipv6" not in listed[v4_only]
    # what the other peers see of it agrees
    others = world.ok(world.get(f"/api/peers/{dual}/network-map"))["peers"]
    assert [p["ipv6"] for p in others if p["id"] == v4_only] == [None]
