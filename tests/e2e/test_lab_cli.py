"""`meshroute lab up|status|down` as a user runs it: the lab comes up with its routes, the client
reaches the office LAN, the internet and a name on the office LAN through it, status shows it,
down removes every namespace and process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from meshroute.lab import netns
from meshroute.lab.demo import APP, APP_ADDRESS

MESHROUTE = str(Path(sys.executable).with_name("meshroute"))


def test_lab_up_status_down(lab_ready: None, tmp_path: Path) -> None:
    env = {**os.environ, "MESHROUTE_LAB_STATE": str(tmp_path / "lab.json")}
    env = {k: v for k, v in env.items() if k not in ("MESHROUTE_SERVER", "MESHROUTE_TOKEN")}
    log = (tmp_path / "up.log").open("w")
    up = subprocess.Popen([MESHROUTE, "lab", "up"], stdout=log, stderr=subprocess.STDOUT, env=env)
    tag = ""
    try:
        deadline = time.monotonic() + 60
        while "try:" not in (tmp_path / "up.log").read_text():
            assert up.poll() is None, (tmp_path / "up.log").read_text()
            assert time.monotonic() < deadline, (tmp_path / "up.log").read_text()
            time.sleep(0.2)
        state = json.loads((tmp_path / "lab.json").read_text())
        tag = state["tag"]
        nodes = state["nodes"]
        client = nodes["client"]["netns"]
        lan = nodes[state["lan_host"]]["addresses"][0]
        internet = nodes[state["internet_host"]]["addresses"][0]
        text = (tmp_path / "up.log").read_text()
        assert f"ip netns exec {client} ping {lan}" in text and "meshroute lab down" in text

        def ping(address: str) -> bool:
            done = subprocess.run(["ip", "netns", "exec", client, "ping", "-c1", "-W1", address], check=False)
            return done.returncode == 0

        deadline = time.monotonic() + 20
        while not (ping(lan) and ping(internet)):  # the routes settle after the agents' first probes
            assert time.monotonic() < deadline, "the client cannot reach the LAN and the internet"
        # the domain route: the name resolves (through the routing peer, from the LAN's name
        # server) and the ping to it is routed by the time the answer arrives
        assert f"ping {APP}" in text
        deadline = time.monotonic() + 20
        while not ping(APP):
            assert time.monotonic() < deadline, f"the client cannot reach {APP}"
        table = subprocess.run(
            ["ip", "netns", "exec", client, "ip", "route", "show", "table", "7120"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        assert f"{APP_ADDRESS} dev " in table, table  # the learned /32, outside the office /24
        status = subprocess.run([MESHROUTE, "lab", "status"], capture_output=True, text=True, env=env)
        assert status.returncode == 0, status.stderr
        assert "office" in status.stdout and "internet" in status.stdout and tag in status.stdout

        down = subprocess.run([MESHROUTE, "lab", "down"], capture_output=True, text=True, env=env, timeout=60)
        assert down.returncode == 0, down.stderr
        assert up.wait(30) == 0
        assert not (tmp_path / "lab.json").exists()
        assert not [n for n in netns.list_netns() if n.startswith(tag + "-")]
    finally:
        if up.poll() is None:
            up.kill()
            up.wait()
        log.close()
        if tag:
            netns.destroy_run(tag)


def test_lab_status_and_down_without_a_lab_say_so(lab_ready: None, tmp_path: Path) -> None:
    env = {**os.environ, "MESHROUTE_LAB_STATE": str(tmp_path / "none.json")}
    for command in ("status", "down"):
        done = subprocess.run([MESHROUTE, "lab", command], capture_output=True, text=True, env=env)
        assert done.returncode == 1 and "no lab is up" in done.stderr, done.stderr
