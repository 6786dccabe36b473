"""What the API offers, the CLI offers (issue 11, item 8): users, tokens, a peer's network map, and
the audit log cut by the server."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.integration.cli.conftest import Cli, peers_in, route_world, uniq


def test_users_create_show_update_and_delete(cli: Cli) -> None:
    _, clients, _, clients_id = route_world(cli)
    me = cli.json("users", "current")
    assert me["role"] == "owner" and me["is_current"] is True

    name = uniq("ci-bot")
    created = cli.json("users", "create", name, "--role", "auditor", "--auto-group", clients)
    assert created["is_service_user"] is True and created["role"] == "auditor"
    assert created["auto_groups"] == [clients_id]
    listed = {u["id"]: u for u in cli.server.api("GET", "users").json()}
    assert listed[created["id"]]["name"] == name

    assert cli.json("users", "show", name) == listed[created["id"]]
    table = cli.ok("users", "list")
    assert name in table and created["id"] in table and "service" in table

    updated = cli.json("users", "update", name, "--role", "network_admin", "--block")
    assert updated["role"] == "network_admin" and updated["is_blocked"] is True
    assert updated["auto_groups"] == [clients_id]  # kept
    updated = cli.json("users", "update", created["id"], "--unblock", "--no-auto-groups")
    assert updated["is_blocked"] is False and updated["auto_groups"] == []

    # the server's own rules come through as its messages; bad input changes nothing
    bad_role = cli.fails("users", "update", name, "--role", "emperor")
    assert bad_role.stderr.startswith("error: ") and "emperor" in bad_role.stderr
    assert cli.server.api("GET", "users").json() != []
    assert cli.usage_error("users", "update", name) == (
        "error: nothing to change: give --role, --auto-group, --no-auto-groups, --block or --unblock\n"
    )

    assert cli.ok("users", "delete", name) == f"Deleted user {created['id']}.\n"
    assert created["id"] not in {u["id"] for u in cli.server.api("GET", "users").json()}
    assert cli.fails("users", "show", name).stderr == f"error: no user '{name}'\n"


def test_tokens_of_the_current_user_and_of_a_service_user(cli: Cli) -> None:
    bot = cli.json("users", "create", uniq("bot"), "--role", "admin")
    name = uniq("deploy")
    created = cli.json("tokens", "create", name, "--user", bot["name"], "--expires-in-days", "7")
    plain = created["plain_token"]
    token_id = created["personal_access_token"]["id"]
    # the new token works as the service user, and the CLI can use it
    whoami = httpx.get(f"{cli.server.url}/api/users/current", headers={"Authorization": f"Token {plain}"})
    assert whoami.json()["id"] == bot["id"]
    assert cli.run("users", "current", "--json", env={"MESHROUTE_TOKEN": plain}).exit_code == 0

    listed = cli.json("tokens", "list", "--user", bot["id"])
    assert [t["id"] for t in listed] == [token_id]
    assert cli.json("tokens", "show", name, "--user", bot["name"])["id"] == token_id
    assert name in cli.ok("tokens", "list", "--user", bot["name"])
    assert plain not in cli.ok("tokens", "list", "--user", bot["name"])  # never shown again

    out = cli.ok("tokens", "create", uniq("once"), "--user", bot["name"])
    assert "This is the only time the token is shown" in out
    assert any(word.startswith("nbp_") and len(word) == 40 for word in out.split())

    mine = cli.json("tokens", "list")  # the owner's own, by default
    assert cli.server.token not in str(mine) and len(mine) >= 1

    assert cli.ok("tokens", "delete", name, "--user", bot["name"]) == f"Deleted token {token_id}.\n"
    gone = httpx.get(f"{cli.server.url}/api/users/current", headers={"Authorization": f"Token {plain}"})
    assert gone.status_code == 401
    assert cli.fails("tokens", "delete", name, "--user", bot["name"]).stderr == f"error: no token '{name}'\n"
    cli.ok("users", "delete", bot["id"])


def test_peers_map_is_the_network_map_view(cli: Cli) -> None:
    routers, clients, _, _ = route_world(cli)
    gw, laptop = uniq("gw"), uniq("laptop")
    [gw_id] = peers_in(cli, routers, gw)
    [laptop_id] = peers_in(cli, clients, laptop)
    route = cli.json("routes", "create", "--net-id", uniq("lan"), "--network", "10.93.0.0/24", "--peer", gw,
                     "--group", clients)  # fmt: skip
    view = cli.json("peers", "map", laptop)
    assert view == cli.server.api("GET", f"peers/{laptop_id}/network-map").json()
    assert view["routes_received"] == [route["id"]]

    shown = cli.ok("peers", "map", gw)
    assert "Routes served:" in shown and route["id"] in shown and "10.93.0.0/24" in shown
    assert "Firewall rules:" in shown
    rules = shown[shown.index("Firewall rules:") :]
    laptop_ip = next(p["ip"] for p in cli.json("peers", "list") if p["id"] == laptop_id)
    assert f"{laptop_ip}/32" in rules  # the laptop may use the route through the gateway
    assert gw_id in cli.json("peers", "map", laptop)["routes"][0]["peer_id"]
    cli.ok("routes", "delete", route["id"])


def test_events_limit_is_applied_by_the_server(cli: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    for _ in range(3):
        cli.ok("groups", "create", uniq("evt"))
    sent: list[httpx.URL] = []
    real = httpx.HTTPTransport.handle_request

    def recording(self: httpx.HTTPTransport, request: httpx.Request) -> Any:  # a spy on the real transport
        sent.append(request.url)
        return real(self, request)

    monkeypatch.setattr(httpx.HTTPTransport, "handle_request", recording)
    shown = cli.json("events", "--limit", "2")
    assert [(u.path, u.params.get("limit")) for u in sent] == [("/api/events/audit", "2")]
    assert shown == cli.server.api("GET", "events/audit?limit=2").json() and len(shown) == 2
    sent.clear()
    everything = cli.json("events", "--limit", "0")
    assert [u.params.get("limit") for u in sent] == [None]  # 0: all the server keeps
    assert len(everything) > 2
