"""Tables as an operator reads them (issue 11, item 4): piped output is plain, aligned and never cut;
on a terminal of 80 columns no ID or event code is wrapped or cut; --json is the API's reply."""

from __future__ import annotations

import fcntl
import os
import pty
import re
import struct
import subprocess
import termios

from tests.integration.cli.conftest import Cli, peers_in, route_world, uniq
from tests.integration.server_process import MESHROUTE, clean_env

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def on_terminal(cli: Cli, *args: str, columns: int = 80) -> str:
    """`meshroute ARGS` in a real pseudo-terminal of ``columns`` columns; what it shows, without colours."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 50, columns, 0, 0))
    env = clean_env(MESHROUTE_SERVER=cli.server.url, MESHROUTE_TOKEN=cli.server.token, TERM="xterm")
    env.pop("COLUMNS", None)
    env.pop("LINES", None)
    proc = subprocess.Popen([*MESHROUTE, *args], stdin=slave, stdout=slave, stderr=slave, env=env)
    os.close(slave)
    chunks = []
    while True:
        try:
            chunk = os.read(master, 65536)
        except OSError:  # the terminal closed: the process is done
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(master)
    assert proc.wait(timeout=60) == 0
    return ANSI.sub("", b"".join(chunks).decode()).replace("\r", "")


def _world(cli: Cli) -> tuple[str, str, str]:
    routers, clients, _, _ = route_world(cli)
    gw = uniq("gateway-with-a-long-name")
    peers_in(cli, routers, gw)
    route_id = cli.json(
        "routes", "create", "--net-id", uniq("office"), "--network", "10.80.0.0/24", "--peer", gw,
        "--group", clients, "--description", "a description long enough to need wrapping somewhere",
    )["id"]  # fmt: skip
    return routers, gw, str(route_id)


def test_piped_tables_are_plain_aligned_and_whole(cli: Cli) -> None:
    _, gw, route_id = _world(cli)
    for command in (["routes", "list"], ["peers", "list"], ["groups", "list"], ["events", "--limit", "20"]):
        out = cli.ok(*command)
        assert not set(out) & set("│─╭╮╰╯━┃"), command  # no box drawing
        assert "\x1b" not in out  # no colours
        lines = out.splitlines()
        header = lines[0]
        starts = [m.start(1) for m in re.finditer(r"(?:^|  )(\S)", header)]
        assert len(starts) >= 4
        for line in lines[1:]:  # every cell starts where its header does: columns are aligned
            for start in starts[1:]:
                assert line[start - 2 : start] == "  " and line[start] != " ", (command, line)
    routes = cli.ok("routes", "list")
    assert any(line.endswith(route_id) for line in routes.splitlines())  # the ID whole, on its row
    assert gw in routes
    events = cli.ok("events", "--limit", "20").splitlines()
    assert any("route.add" in line and route_id in line for line in events)


def test_on_an_80_column_terminal_ids_and_codes_are_never_cut(cli: Cli) -> None:
    _, gw, route_id = _world(cli)
    peer_id = next(p["id"] for p in cli.json("peers", "list") if p["name"] == gw)
    screens = {
        "routes": on_terminal(cli, "routes", "list"),
        "peers": on_terminal(cli, "peers", "list"),
        "events": on_terminal(cli, "events", "--limit", "10"),
        "peer": on_terminal(cli, "peers", "show", gw),
    }
    assert "─" in screens["routes"]  # drawn as a rich table, not the plain form
    assert route_id in screens["routes"] and route_id in screens["events"] and route_id in screens["peer"]
    assert peer_id in screens["peers"] and peer_id in screens["peer"]
    event_lines = screens["events"].splitlines()
    assert any("route.add" in line and route_id in line for line in event_lines)
    for code in re.findall(r"\b[a-z]+\.[a-z.]+\b", screens["events"]):
        assert not code.endswith("."), code  # no code broken at the end of a line


def test_json_is_the_api_reply_unchanged(cli: Cli) -> None:
    _, _, route_id = _world(cli)
    assert cli.json("routes", "list") == cli.server.api("GET", "routes").json()
    assert cli.json("routes", "show", route_id) == cli.server.api("GET", f"routes/{route_id}").json()
    assert cli.json("groups", "list") == cli.server.api("GET", "groups").json()
    assert cli.json("events", "--limit", "5") == cli.server.api("GET", "events/audit?limit=5").json()
