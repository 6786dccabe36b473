"""Errors in the operator's terms and help that explains itself (issue 11, items 6 and 7)."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from typer.main import get_command
from typer.testing import CliRunner

from meshroute import __version__
from meshroute.cli.main import app
from tests.integration.cli.conftest import Cli, peers_in, route_world, uniq


def _words(text: str) -> str:
    """typer's error panel as one line of words (no box, no wrapping)."""
    return " ".join(re.sub(r"[│╭╮╰╯─]", " ", text).split())


# -- errors --------------------------------------------------------------------------------------


def test_options_that_exclude_each_other_are_named(cli: Cli) -> None:
    routers, clients, _, _ = route_world(cli)
    before = cli.json("routes", "list")
    both = ["--network", "10.90.0.0/24", "--domain", "example.com"]
    assert (
        cli.usage_error(
            "routes", "create", "--net-id", "x", *both, "--peer-group", routers, "--group", clients
        )
        == "error: --network and --domain exclude each other\n"
    )
    assert (
        cli.usage_error(
            "routes", "create", "--net-id", "x", "--network", "10.90.0.0/24", "--peer", "p",
            "--peer-group", routers, "--group", clients,
        )
        == "error: --peer and --peer-group exclude each other\n"
    )  # fmt: skip
    assert (
        cli.usage_error("routes", "create", "--net-id", "x", "--network", "10.90.0.0/24", "--group", clients)
        == "error: give the routing peer: --peer or --peer-group\n"
    )
    assert (
        cli.usage_error("routes", "update", "x", *both)
        == "error: --network and --domain exclude each other\n"
    )
    assert cli.usage_error("routes", "update", "x", "--acg", "a", "--no-acgs") == (
        "error: --acg and --no-acgs exclude each other\n"
    )
    assert cli.json("routes", "list") == before  # nothing was sent


def test_a_missing_group_is_named(cli: Cli) -> None:
    result = cli.run("routes", "create", "--net-id", "x", "--network", "10.91.0.0/24", "--peer-group", "All")
    assert result.exit_code == 2
    assert "Missing option '--group'" in _words(result.stderr)


def test_setup_key_expiry_is_checked_in_days(cli: Cli) -> None:
    name = uniq("k")
    result = cli.run("setup-keys", "create", name, "--expires-in-days", "400")
    assert result.exit_code == 2
    said = _words(result.stderr)
    assert "Invalid value for '--expires-in-days': Input should be less than or equal to 365" in said
    assert "second" not in said
    assert name not in {k["name"] for k in cli.json("setup-keys", "list")}


def test_a_duplicate_route_names_the_peer(cli: Cli) -> None:
    routers, _, _, _ = route_world(cli)
    gw = uniq("gw")
    [gw_id] = peers_in(cli, routers, gw)
    first = cli.json("routes", "create", "--net-id", uniq("n"), "--network", "10.92.0.0/24", "--peer", gw,
                     "--group", "All")  # fmt: skip
    server_says = cli.server.api(
        "POST", "routes",
        {"network_id": "dup", "network": "10.92.0.0/24", "peer": gw_id, "groups": [first["groups"][0]],
         "metric": 10, "enabled": True, "masquerade": True, "keep_route": False, "description": ""},
    ).json()["message"]  # fmt: skip
    assert gw_id in server_says and gw not in server_says  # the API speaks NetBird's message
    dup = cli.fails("routes", "create", "--net-id", uniq("dup"), "--network", "10.92.0.0/24", "--peer", gw,
                    "--group", "All")  # fmt: skip
    assert dup.stderr == "error: " + server_says.replace(gw_id, f"{gw} ({gw_id})") + "\n"
    cli.ok("routes", "delete", first["id"])


# -- help ----------------------------------------------------------------------------------------


def _commands() -> Iterator[tuple[list[str], object]]:
    root = get_command(app)

    def walk(path: list[str], command: object) -> Iterator[tuple[list[str], object]]:
        yield path, command
        for name, sub in sorted(getattr(command, "commands", {}).items()):
            yield from walk([*path, name], sub)

    yield from walk([], root)


HELPED = [path for path, _ in _commands()]


@pytest.mark.parametrize("path", HELPED, ids=lambda p: " ".join(p) or "meshroute")
def test_help_has_no_type_placeholders_and_every_option_says_what_it_is(path: list[str]) -> None:
    result = CliRunner().invoke(app, [*path, "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert not re.search(r"<(bool|str|int|float|list\[[a-z]+\]|path)>", result.stdout), result.stdout
    command = next(c for p, c in _commands() if p == path)
    for param in getattr(command, "params", []):
        if getattr(param, "param_type_name", "") == "option":
            assert getattr(param, "help", None), (path, param.name)


def test_options_are_described_in_the_operators_terms() -> None:
    def help_of(*path: str) -> str:
        result = CliRunner().invoke(app, [*path, "--help"], env={"COLUMNS": "200"})
        return " ".join(result.stdout.split())

    create = help_of("routes", "create")
    assert "who of the receiving peers may use the route" in create  # --acg
    assert "[required]" in create and "--group" in create and "--net-id" in create
    assert "Days until the key expires; 0 = never." in help_of("setup-keys", "create")
    assert "Days until the token expires." in help_of("tokens", "create")
    assert "Show the newest N events" in help_of("events")
    assert "Days the new token is valid." in help_of("admin-token")


def test_version() -> None:
    result = CliRunner().invoke(app, ["--version"])
    assert result.exit_code == 0
    assert result.stdout == f"meshroute {__version__}\n"
