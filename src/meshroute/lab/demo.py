"""The routed world `meshroute lab up` builds (and end-to-end tests reuse): a client, two routing
peers in one peer group, an office LAN behind both, the internet behind both, a real server and
real agents; an HA route to the LAN, an exit node and a domain route (`app.office.test`, answered
by the LAN's own name server, a dnsmasq on the LAN host, when dnsmasq is installed), created
through the REST API as a user would.

    client ──┐                 ┌── r1 ──┐
             ├── underlay ─────┤        ├── office LAN (office-h1)
    (mgmt) ──┘                 └── r2 ──┤
                                        └── internet (inet-h1)
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from meshroute.lab.dnsmasq import start_dnsmasq
from meshroute.lab.topology import Internet, Lan
from meshroute.lab.world import World

ROUTERS = ("r1", "r2")
ZONE = "office.test"
APP = f"app.{ZONE}"  # the domain route's name
# ... a service of the LAN host outside the office prefix: only the domain route reaches it (the
# office route covers the LAN's /24, and the exit node's internet does not know this address)
APP_ADDRESS = "10.78.0.10"
NODES = ("client", *ROUTERS)


@dataclass
class Demo:
    world: World
    routes: dict[str, str] = field(default_factory=dict)  # NetID -> route ID
    group: str = ""  # the routing peers' group ID

    @property
    def lan_host(self) -> str:
        return self.world.lan("office").hosts[0]

    @property
    def internet_host(self) -> str:
        return self.world.internet.hosts[0]

    def peer(self, node: str) -> dict[str, Any]:
        found = self.world.server.peer(node)
        assert found is not None, f"{node} has not joined"
        return found


def build(
    *,
    workdir: Path | None = None,
    prefix: str = "mrlab",
    exit_node: bool = True,
    domain_route: bool = True,
    masquerade: bool = True,
    timeout: float = 30.0,
) -> Demo:
    """The world, its agents joined, and the routes created; everything is removed again if any
    step fails."""
    world = World.build(
        list(NODES),
        lans={"office": Lan(routers=list(ROUTERS))},
        internet=Internet(exits=list(ROUTERS)),
        workdir=workdir,
        prefix=prefix,
    )
    try:
        demo = Demo(world)
        domain_route = domain_route and shutil.which("dnsmasq") is not None
        if domain_route:
            _office_dns(demo)  # before the agents start: they read resolv.conf as it is then
        key = world.server.setup_key("lab")
        for node in NODES:
            world.start_agent(node, setup_key=key)
        world.wait_for(
            lambda: all((world.server.peer(n) or {}).get("connected") for n in NODES),
            timeout=timeout,
            message="the agents did not join",
        )
        create_routes(demo, exit_node=exit_node, masquerade=masquerade, domain_route=domain_route)
        return demo
    except BaseException:
        world.close()
        raise


def _office_dns(demo: Demo) -> None:
    """The office LAN's name server on its host, the routing peers' resolver (`app.office.test`),
    and the service that name stands for (`APP_ADDRESS` on the LAN host, routed there by the
    routing peers)."""
    world, host = demo.world, demo.lan_host
    address = world.node(host).ipv4
    world.exec(host, ["ip", "addr", "add", f"{APP_ADDRESS}/32", "dev", "eth0"])
    start_dnsmasq(world, host, address, ZONE, f"--host-record={APP},{APP_ADDRESS}", name="dnsmasq")
    for router in ROUTERS:
        world.exec(router, ["ip", "route", "add", f"{APP_ADDRESS}/32", "via", address])
        world.set_resolv_conf(router, f"nameserver {address}\n")


def create_routes(
    demo: Demo, *, exit_node: bool = True, masquerade: bool = True, domain_route: bool = False
) -> None:
    api = demo.world.api
    everyone = api.get("/api/groups", params={"name": "All"}).json()[0]["id"]
    routers = [demo.peer(n)["id"] for n in ROUTERS]
    reply = api.post("/api/groups", json={"name": "lab-routers", "peers": routers})
    reply.raise_for_status()
    demo.group = reply.json()["id"]
    wanted = [("office", str(demo.world.lan("office").ipv4))]
    if exit_node:
        wanted.append(("internet", "0.0.0.0/0"))
    for net_id, network in wanted:
        body = {
            "network_id": net_id,
            "network": network,
            "description": f"meshroute lab: {net_id}",
            "peer_groups": [demo.group],
            "groups": [everyone],
            "metric": 100 if net_id == "office" else 1000,
            "masquerade": masquerade,
            "enabled": True,
            "skip_auto_apply": False,
        }
        reply = api.post("/api/routes", json=body)
        reply.raise_for_status()
        demo.routes[net_id] = reply.json()["id"]
    if domain_route:
        body = {
            "network_id": "office-apps",
            "domains": [APP],
            "description": "meshroute lab: a name on the office LAN",
            "peer_groups": [demo.group],
            "groups": [everyone],
            "metric": 100,
            "masquerade": masquerade,
            "enabled": True,
        }
        reply = api.post("/api/routes", json=body)
        reply.raise_for_status()
        demo.routes["office-apps"] = reply.json()["id"]
