"""The admin CLI's commands against a real server: what they send, print and exit with."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from typing import Any

from tests.integration.cli.conftest import Cli, Server, register_peer, route_world, uniq
from tests.integration.server_process import clean_env, free_port

# -- groups -------------------------------------------------------------------------------------


def test_groups_create_list_show_update_delete(cli: Cli) -> None:
    routers, renamed = uniq("routers"), uniq("edge")

    out = cli.ok("groups", "create", routers)
    assert f"Created group {routers}" in out

    listed = cli.json("groups", "list")
    by_name = {g["name"]: g for g in listed}
    assert {"All", routers} <= set(by_name)
    group_id = by_name[routers]["id"]

    table = cli.ok("groups", "list")
    assert routers in table and group_id in table and "All" in table

    assert cli.json("groups", "show", group_id) == by_name[routers]
    assert cli.json("groups", "show", routers)["id"] == group_id  # by name as well
    assert routers in cli.ok("groups", "show", routers)

    updated = cli.json("groups", "update", routers, "--name", renamed)
    assert updated["id"] == group_id and updated["name"] == renamed
    assert cli.server.api("GET", f"groups/{group_id}").json()["name"] == renamed

    assert cli.json("groups", "delete", renamed) == {}
    assert group_id not in {g["id"] for g in cli.json("groups", "list")}


def test_group_update_without_changes_is_a_usage_error(cli: Cli) -> None:
    result = cli.run("groups", "update", "All")
    assert result.exit_code == 2
    assert "nothing to change" in result.stderr


def test_group_errors_print_the_server_message(cli: Cli) -> None:
    expected = cli.server.api("POST", "groups", {"name": ""}).json()["message"]
    result = cli.fails("groups", "create", "")
    assert result.stderr.strip() == f"error: {expected}"

    missing = cli.fails("groups", "show", "no-such-group")
    assert missing.stderr.startswith("error: ")
    assert "no-such-group" in missing.stderr


# -- routes -------------------------------------------------------------------------------------


def test_route_lifecycle(cli: Cli) -> None:
    routers, clients, routers_id, clients_id = route_world(cli)
    net_id = uniq("office")

    # create, naming the groups by name
    route = cli.json(
        "routes",
        "create",
        "--net-id",
        net_id,
        "--network",
        "10.61.0.1/24",
        "--peer-group",
        routers,
        "--group",
        clients,
        "--description",
        "office LAN",
        "--metric",
        "100",
    )
    route_id = route["id"]
    assert route["network"] == "10.61.0.0/24"
    assert route["network_type"] == "IPv4"
    assert route["peer_groups"] == [routers_id]
    assert route["groups"] == [clients_id]
    assert route["metric"] == 100
    assert route["masquerade"] is True and route["enabled"] is True
    assert route["peer"] == ""

    # list and show, as JSON and as tables
    assert route_id in {r["id"] for r in cli.json("routes", "list")}
    assert cli.json("routes", "show", route_id) == route
    table = cli.ok("routes", "list")
    assert route_id in table and net_id in table and "10.61.0.0/24" in table
    assert routers in table and clients in table  # group IDs shown as names
    shown = cli.ok("routes", "show", route_id)
    assert "office LAN" in shown and routers in shown

    # update: only what is given changes, the rest is kept (the PUT is a full replace)
    updated = cli.json("routes", "update", route_id, "--metric", "50", "--no-masquerade", "--acg", clients)
    assert updated["metric"] == 50 and updated["masquerade"] is False
    assert updated["access_control_groups"] == [clients_id]
    for field in ("network_id", "network", "description", "peer_groups", "groups", "enabled", "keep_route"):
        assert updated[field] == route[field], field
    assert cli.server.api("GET", f"routes/{route_id}").json() == updated

    # switch to a DNS route, then disable it and drop the ACGs
    dns = cli.json(
        "routes", "update", route_id, "--domain", "example.com", "--domain", "münchen.de", "--keep-route"
    )
    assert dns["network_type"] == "Domain"
    assert dns["domains"] == ["example.com", "münchen.de"]
    assert dns["keep_route"] is True and dns["metric"] == 50
    assert "Updated route" in cli.ok("routes", "update", route_id, "--disabled", "--no-acgs")
    final = cli.json("routes", "show", route_id)
    assert final["enabled"] is False
    assert not final.get("access_control_groups")
    assert final["domains"] == ["example.com", "münchen.de"]
    assert final["peer_groups"] == [routers_id]

    # delete
    assert f"Deleted route {route_id}" in cli.ok("routes", "delete", route_id)
    assert route_id not in {r["id"] for r in cli.json("routes", "list")}
    gone = cli.fails("routes", "show", route_id)
    assert gone.stderr == f"error: no route '{route_id}'\n"
    assert cli.fails("routes", "delete", route_id).stderr == f"error: no route '{route_id}'\n"


def test_invalid_route_prints_the_server_message(cli: Cli) -> None:
    routers, clients, routers_id, clients_id = route_world(cli)
    body = {
        "network_id": "bad",
        "network": "10.62.0.0/24",
        "peer_groups": [routers_id],
        "groups": [clients_id],
        "metric": 0,
        "description": "",
        "enabled": True,
        "masquerade": True,
        "keep_route": False,
    }
    reply = cli.server.api("POST", "routes", body)
    assert reply.status_code == 422
    expected = reply.json()["message"]
    assert "metric" in expected

    result = cli.fails(
        "routes", "create", "--net-id", "bad", "--network", "10.62.0.0/24",
        "--peer-group", routers, "--group", clients, "--metric", "0",
    )  # fmt: skip
    assert result.stderr.strip() == f"error: {expected}"
    assert result.stdout == ""
    assert "bad" not in {r["network_id"] for r in cli.json("routes", "list")}

    # what the command line lacks is said in its own terms, before anything is sent
    neither = cli.usage_error(
        "routes", "create", "--net-id", "x", "--peer-group", routers, "--group", clients
    )
    assert neither == "error: give the destination: --network or --domain\n"


def test_route_with_unknown_group_name_fails_before_sending(cli: Cli) -> None:
    result = cli.fails(
        "routes", "create", "--net-id", "x", "--network", "10.63.0.0/24",
        "--peer-group", "no-such-group", "--group", "All",
    )  # fmt: skip
    assert result.stderr == "error: no group 'no-such-group'\n"


def test_deleting_a_group_used_by_a_route_prints_the_server_message(cli: Cli) -> None:
    routers, clients, _, clients_id = route_world(cli)
    net_id = uniq("linked")
    route_id = cli.json(
        "routes", "create", "--net-id", net_id, "--network", "10.64.0.0/24",
        "--peer-group", routers, "--group", clients,
    )["id"]  # fmt: skip
    result = cli.fails("groups", "delete", clients)
    assert result.stderr.startswith("error: ")
    assert net_id.lower() in result.stderr  # "group has been linked to route: <net id>"
    assert clients_id in {g["id"] for g in cli.json("groups", "list")}
    cli.ok("routes", "delete", route_id)
    cli.ok("groups", "delete", clients)


def test_route_update_without_changes_is_a_usage_error(cli: Cli) -> None:
    result = cli.run("routes", "update", "whatever")
    assert result.exit_code == 2
    assert "nothing to change" in result.stderr


# -- events -------------------------------------------------------------------------------------


def test_events_list_route_add(cli: Cli) -> None:
    routers, clients, routers_id, _ = route_world(cli)
    net_id = uniq("evt")
    route_id = cli.json(
        "routes", "create", "--net-id", net_id, "--network", "10.65.0.0/24",
        "--peer-group", routers, "--group", clients,
    )["id"]  # fmt: skip

    deadline = time.monotonic() + 10  # events are written asynchronously
    found: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        found = [
            e
            for e in cli.json("events", "--limit", "0")
            if e["activity_code"] == "route.add" and e["target_id"] == route_id
        ]
        if found:
            break
        time.sleep(0.2)
    assert found, "no route.add event for the new route"
    assert found[0]["meta"]["name"] == net_id
    assert routers_id in found[0]["meta"]["peer_groups"]

    limited = cli.json("events", "--limit", "2")
    assert len(limited) <= 2

    table = cli.ok("events", "--limit", "0")
    assert "route.add" in table and route_id in table
    assert f"[{routers_id}]" in table  # event details are printed as text, not as rich markup
    cli.ok("routes", "delete", route_id)


# -- setup keys ---------------------------------------------------------------------------------


def test_setup_keys_create_show_revoke_delete(cli: Cli) -> None:
    _, clients, _, clients_id = route_world(cli)
    name = uniq("laptops")

    created = cli.json(
        "setup-keys", "create", name, "--reusable", "--usage-limit", "5",
        "--expires-in-days", "7", "--auto-group", clients,
    )  # fmt: skip
    key_id, plain = created["id"], created["key"]
    assert created["type"] == "reusable" and created["usage_limit"] == 5
    assert created["auto_groups"] == [clients_id]
    assert created["state"] == "valid" and created["revoked"] is False

    listed = {k["id"]: k for k in cli.json("setup-keys", "list")}
    assert key_id in listed and listed[key_id]["key"] != plain  # masked after creation
    table = cli.ok("setup-keys", "list")
    assert name in table and clients in table

    assert cli.json("setup-keys", "show", name)["id"] == key_id

    revoked = cli.json("setup-keys", "revoke", key_id)
    assert revoked["revoked"] is True and revoked["state"] == "revoked"
    assert revoked["auto_groups"] == [clients_id]

    assert "Deleted setup key" in cli.ok("setup-keys", "delete", key_id)
    assert key_id not in {k["id"] for k in cli.json("setup-keys", "list")}


def test_setup_key_create_prints_the_plain_key_once(cli: Cli) -> None:
    name = uniq("one-off")
    out = cli.ok("setup-keys", "create", name, "--expires-in-days", "0")
    key = next(k for k in cli.json("setup-keys", "list") if k["name"] == name)
    assert key["type"] == "one-off"
    assert "only time the key is shown" in out
    masked_prefix = key["key"].rstrip("*")
    plain = [word for word in out.split() if len(word) == 36 and word.startswith(masked_prefix)]
    assert plain, out  # the full UUID-style key is on screen
    assert "never" in cli.ok("setup-keys", "show", key["id"])  # expires-in-days 0 = never
    cli.ok("setup-keys", "delete", key["id"])


# -- peers --------------------------------------------------------------------------------------


def test_peers_with_names_everywhere(cli: Cli) -> None:
    routers, clients, routers_id, _ = route_world(cli)
    key = cli.json("setup-keys", "create", uniq("agents"), "--reusable", "--auto-group", routers)["key"]
    gw1, gw2 = uniq("gw1"), uniq("gw2")
    gw1_id = register_peer(cli.server, key, gw1)
    gw2_id = register_peer(cli.server, key, gw2)

    listed = {p["id"]: p for p in cli.json("peers", "list")}
    assert {gw1_id, gw2_id} <= set(listed)
    assert routers in {g["name"] for g in listed[gw1_id]["groups"]}
    table = cli.ok("peers", "list")
    assert gw1 in table and gw2 in table and listed[gw1_id]["ip"] in table

    # show by ID, by name and by overlay IP
    assert cli.json("peers", "show", gw1_id)["name"] == gw1
    assert cli.json("peers", "show", gw1)["id"] == gw1_id
    assert cli.json("peers", "show", listed[gw1_id]["ip"])["id"] == gw1_id

    # rename keeps the other settings (the PUT needs them)
    before = cli.json("peers", "show", gw2_id)
    renamed = uniq("edge")
    after = cli.json("peers", "rename", gw2, renamed)
    assert after["id"] == gw2_id and after["name"] == renamed
    for field in ("ssh_enabled", "login_expiration_enabled", "inactivity_expiration_enabled", "ip"):
        assert after[field] == before[field], field
    assert "Renamed peer" in cli.ok("peers", "rename", renamed, gw2)

    # group members by peer name: replace, add, remove
    members = cli.json("groups", "update", clients, "--peer", gw1)
    assert [p["id"] for p in members["peers"]] == [gw1_id]
    members = cli.json("groups", "update", clients, "--add-peer", gw2)
    assert sorted(p["id"] for p in members["peers"]) == sorted([gw1_id, gw2_id])
    members = cli.json("groups", "update", clients, "--remove-peer", gw1_id)
    assert [p["id"] for p in members["peers"]] == [gw2_id]
    assert gw2 in cli.ok("groups", "show", clients)

    # a single-peer route by peer name, then switched to a peer group
    route = cli.json(
        "routes", "create", "--net-id", uniq("lan"), "--network", "10.66.0.0/24",
        "--peer", gw1, "--group", clients,
    )  # fmt: skip
    assert route["peer"] == gw1_id and not route.get("peer_groups")
    assert gw1 in cli.ok("routes", "show", route["id"])  # routing peer shown by name
    switched = cli.json("routes", "update", route["id"], "--peer-group", routers)
    assert switched["peer"] == "" and switched["peer_groups"] == [routers_id]
    cli.ok("routes", "delete", route["id"])

    # delete by name and by ID
    assert "Deleted peer" in cli.ok("peers", "delete", gw2)
    assert gw2_id not in {p["id"] for p in cli.json("peers", "list")}
    assert cli.json("peers", "delete", gw1_id) == {}


def test_peers_list_and_unknown_peer(cli: Cli) -> None:
    peers = cli.json("peers", "list")
    assert isinstance(peers, list)
    if not peers:
        assert "No peers." in cli.ok("peers", "list")
    result = cli.fails("peers", "show", "no-such-peer")
    assert result.stderr == "error: no peer 'no-such-peer'\n"
    rename = cli.fails("peers", "rename", "no-such-peer", "x")
    assert rename.stderr == "error: no peer 'no-such-peer'\n"


# -- connection and authentication --------------------------------------------------------------


def test_missing_token_is_a_clear_error(cli: Cli) -> None:
    result = cli.fails("routes", "list", env={"MESHROUTE_TOKEN": None})
    assert "error: no API token" in result.stderr
    assert "--token" in result.stderr and "MESHROUTE_TOKEN" in result.stderr


def test_bad_token_prints_the_server_message(cli: Cli) -> None:
    bad = "nbp_" + "A" * 36
    expected = cli.server.api("GET", "routes", token=bad).json()["message"]
    result = cli.fails("routes", "list", env={"MESHROUTE_TOKEN": bad})
    assert result.stderr.strip() == f"error: {expected}"


def test_server_and_token_options_override_the_environment(cli: Cli) -> None:
    host_port = cli.server.url.removeprefix("http://")
    result = cli.run(
        "groups", "list", "--json", "--server", f"{host_port}/api/", "--token", cli.server.token,
        env={"MESHROUTE_SERVER": "http://127.0.0.1:1", "MESHROUTE_TOKEN": "nbp_wrong"},
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "All" in {g["name"] for g in json.loads(result.stdout)}


def test_connection_error_is_a_clear_error(cli: Cli) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    result = cli.fails("groups", "list", env={"MESHROUTE_SERVER": url})
    assert result.stderr.startswith(f"error: cannot connect to {url}")


def test_installed_entry_point_runs_as_a_process(server: Server) -> None:
    env = clean_env(MESHROUTE_SERVER=server.url, MESHROUTE_TOKEN=server.token)
    done = subprocess.run(
        [sys.executable, "-m", "meshroute.cli.main", "groups", "list", "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "All" in {g["name"] for g in json.loads(done.stdout)}

    failed = subprocess.run(
        [sys.executable, "-m", "meshroute.cli.main", "routes", "show", "no-such-route"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert failed.returncode == 1
    assert failed.stderr.startswith("error: ") and "Traceback" not in failed.stderr
