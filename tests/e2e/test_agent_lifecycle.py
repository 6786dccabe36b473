"""The agent's life on a host: a crash leaves a working tunnel that the next start replaces
(nothing duplicated); SIGTERM leaves the namespace exactly as it found it; and every way of
being unable to join ends in a clear one-line error with nothing installed."""

from __future__ import annotations

import json
import os
import time

from meshroute.agent.identity import IDENTITY_FILE
from meshroute.agent.ledger import LEDGER_FILE
from meshroute.lab import World
from tests.e2e.conftest import MakeWorld
from tests.e2e.mesh import joined, mesh_pings, wg_device, wg_pid


def _processes(world: World, node: str) -> list[str]:
    names = []
    for pid in world.pids().get(node, []):
        try:
            with open(f"/proc/{pid}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        if stat[stat.rindex(")") + 2] != "Z":  # a zombie is gone (PID 1 reaps late)
            names.append(stat[stat.index("(") + 1 : stat.rindex(")")])
    return names


def test_sigkill_then_restart_duplicates_nothing_and_sigterm_restores_the_namespace(
    make_world: MakeWorld,
) -> None:
    world: World = make_world(peers=["a", "b"])
    before = world.snapshot("a")
    key = world.server.setup_key("mesh")
    for node in ("a", "b"):
        world.start_agent(node, setup_key=key)
    peers = joined(world, "a", "b")
    orphan = wg_pid(world, "a")

    world.agents["a"].kill()
    # The tunnel outlives the agent: its wireguard-go keeps the last configuration.
    assert sorted(_processes(world, "a")) == ["wireguard-go"]
    mesh_pings(world, ["a", "b"], peers)

    world.agents["a"].start()
    joined(world, "a")
    log = world.agents["a"].log.read_text()
    assert f"removed what an earlier run left behind: wireguard-go (pid {orphan})" in log, log
    assert wg_pid(world, "a") != orphan
    assert sorted(_processes(world, "a")) == ["meshroute", "wireguard-go"]
    links = [line for line in world.exec("a", ["ip", "-o", "link"]).stdout.splitlines() if ": mr0:" in line]
    assert len(links) == 1
    device_peers = wg_device(world, "a")[1]
    assert len(device_peers) == 1  # b, once
    addresses = world.exec("a", ["ip", "-o", "addr", "show", "dev", "mr0", "scope", "global"]).stdout
    assert len(addresses.splitlines()) == 2  # one IPv4, one IPv6
    mesh_pings(world, ["a", "b"], peers)
    mesh_pings(world, ["a", "b"], peers, family=6)

    t0 = time.monotonic()
    code = world.agents["a"].stop(timeout=5)
    took = time.monotonic() - t0
    assert code == 0, world.agents["a"].tail()
    print(f"SIGTERM to exit: {took * 1000:.0f} ms")
    assert _processes(world, "a") == []
    diff = before.diff(world.snapshot("a"))
    assert not diff, diff
    state = world.agents["a"].state_dir
    assert not (state / LEDGER_FILE).exists()
    assert sorted(p.name for p in state.iterdir()) == [IDENTITY_FILE, "wireguard-go.log"]
    assert oct((state / IDENTITY_FILE).stat().st_mode & 0o777) == "0o600"
    assert oct(state.stat().st_mode & 0o777) == "0o700"


def test_refusals_and_missing_pieces_end_in_one_clear_error_with_nothing_installed(
    make_world: MakeWorld,
) -> None:
    world: World = make_world(peers=["reg", "revoked", "away", "nowg"])
    befores = {node: world.snapshot(node) for node in world.peers}

    # A revoked setup key: refused, exit 2.
    reply = world.api.post(
        "/api/setup-keys",
        json={"name": "old", "type": "reusable", "expires_in": 86400, "auto_groups": [], "usage_limit": 0},
    )
    revoked = reply.json()
    reply = world.api.put(
        f"/api/setup-keys/{revoked['id']}", json={"revoked": True, "auto_groups": [], "name": "old"}
    )
    assert reply.status_code == 200, reply.text
    world.start_agent("revoked", setup_key=revoked["key"])

    # A server that is not there: the agent waits for it and installs nothing meanwhile.
    world.start_agent("away", extra_args=["--server", "172.31.0.250:33074"])  # the last --server wins

    # No WireGuard at all: no kernel module here, and wireguard-go is not on the PATH.
    world.start_agent("nowg", env={"PATH": "/usr/sbin:/sbin"})

    # Bad credentials: a registered peer whose stored credential is not the one the server knows.
    world.start_agent("reg")
    joined(world, "reg")
    assert world.agents["reg"].stop() == 0
    identity_path = world.agents["reg"].state_dir / IDENTITY_FILE
    identity = json.loads(identity_path.read_text())
    identity["credential"] = "not-the-credential"
    identity_path.write_text(json.dumps(identity))
    world.agents["reg"].start()

    expectations = {
        "revoked": (2, "the management server refused the setup key: invalid setup key: revoked"),
        "nowg": (1, "wireguard-go is not installed (apt install wireguard-go)"),
        "reg": (2, "the management server no longer accepts this peer's credential"),
    }
    for node, (expected, message) in expectations.items():
        code = world.agents[node].proc.wait(15)
        log = world.agents[node].log.read_text()
        assert code == expected, f"{node}: exit {code}\n{log}"
        errors = [line for line in log.splitlines() if " ERROR " in line]
        assert len(errors) == 1 and message in errors[0], f"{node}:\n{log}"
        assert "Traceback" not in log
        diff = befores[node].diff(world.snapshot(node))
        assert not diff, f"{node}:\n{diff}"
        assert not (world.agents[node].state_dir / LEDGER_FILE).exists()
    assert world.server.peer("nowg") is None  # checked before the server was ever asked

    away = world.agents["away"]
    world.wait_for(lambda: "cannot reach management 172.31.0.250:33074" in away.log.read_text(), timeout=10)
    time.sleep(3)  # several retries: still waiting, still nothing installed, said once
    assert away.running
    assert away.log.read_text().count("cannot reach management") == 1, away.tail()
    assert away.status()["management"]["state"] == "reconnecting"
    assert not befores["away"].diff(world.snapshot("away"))
    assert away.stop(timeout=5) == 0
    assert _processes(world, "away") == []
    assert not befores["away"].diff(world.snapshot("away"))
    assert os.listdir(away.state_dir) == [IDENTITY_FILE]  # its key, kept for when the server is back
