"""`meshroute routes status NAME` shows, per client peer, the routing peer it uses now and its state,
from the clients' agents' reports (issue 7, item 6), through a real server and real agent calls."""

from __future__ import annotations

import base64
import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import grpc

from meshroute.core.status import RouteState, RouteUse, StatusReport
from meshroute.protocol import convert
from meshroute.protocol import meshroute_pb2 as pb
from meshroute.protocol import meshroute_pb2_grpc as pb_grpc
from tests.integration.cli.conftest import Cli, route_world, uniq


class Agent:
    """An agent's calls, made by hand: Login with a setup key, a Sync stream, ReportStatus."""

    def __init__(self, stub: Any, setup_key: str, hostname: str) -> None:
        self.stub = stub
        self.key = base64.b64encode(os.urandom(32)).decode()
        joined = stub.Login(
            pb.LoginRequest(wg_public_key=self.key, setup_key=setup_key, meta=pb.PeerMeta(hostname=hostname)),
            timeout=30,
        )
        self.id, self.credential = joined.peer_id, joined.credential
        self.metadata = (("x-meshroute-peer-key", self.key), ("x-meshroute-credential", self.credential))

    def connect(self) -> Any:
        """An open Sync stream (the server has the peer connected once the full map arrived)."""
        stream = self.stub.Sync(pb.SyncRequest(), metadata=self.metadata)
        first = next(stream)
        assert first.WhichOneof("update") == "full"
        return stream

    def report(self, report: StatusReport) -> None:
        self.stub.ReportStatus(convert.status_to_pb(report), metadata=self.metadata, timeout=30)


@contextmanager
def agents(cli: Cli) -> Iterator[Any]:
    channel = grpc.insecure_channel(cli.server.sync)
    try:
        yield pb_grpc.ManagementStub(channel)  # type: ignore[no-untyped-call]
    finally:
        channel.close()


def _key(cli: Cli, group: str) -> str:
    return str(cli.json("setup-keys", "create", uniq("k"), "--reusable", "--auto-group", group)["key"])


def test_routes_status_shows_the_routing_peer_each_client_uses(cli: Cli) -> None:
    routers, clients, _, _ = route_world(cli)
    gw_name, names = uniq("gw"), [uniq("alice"), uniq("bob"), uniq("carol")]
    net_id = uniq("office")
    with agents(cli) as stub:
        gw = Agent(stub, _key(cli, routers), gw_name)
        clients_key = _key(cli, clients)
        alice, bob, carol = (Agent(stub, clients_key, name) for name in names)
        created = cli.json(
            "routes", "create", "--net-id", net_id, "--network", "10.90.0.0/24", "--peer-group", routers,
            "--group", clients,
        )  # fmt: skip
        route_id = created["id"]
        use = RouteUse(f"{net_id}|10.90.0.0/24", (f"{route_id}:{gw.id}",), gw.id, RouteState.ROUTING)
        stream = alice.connect()  # alice is connected; bob's agent reported, then went away
        try:
            alice.report(StatusReport((use,)))
            bob.report(StatusReport((use,)))
            assert carol.id  # carol's agent never reported

            (entry,) = cli.json("routes", "status", net_id)
            api = cli.server.api("GET", f"routes/{route_id}/status").json()
            assert entry["clients"] == api  # --json passes the API's answer
            assert [(c["peer_name"], c["state"]) for c in api] == [
                (names[0], "routing"),
                (names[1], "stale"),
                (names[2], "unknown"),
            ]

            lines = cli.ok("routes", "status", net_id).splitlines()
        finally:
            stream.cancel()
    start = lines.index("Clients:")
    header, rows = lines[start + 1], lines[start + 2 : start + 5]
    assert header.split() == ["Route", "ID", "Client", "State", "Routing", "peer", "Last", "known", "Updated"]
    cells = {row.split()[1]: row.split() for row in rows}  # plain: one line per client, no box
    assert cells[names[0]][2:5] == ["routing", gw_name, gw_name]
    assert cells[names[1]][2:5] == ["stale", "-", gw_name]  # never shown as current
    assert cells[names[2]][2:] == ["unknown", "-", "-", "-"]
    for column in ("State", "Routing peer", "Last known", "Updated"):  # aligned under the header
        at = header.index(column)
        assert all(row[at - 1] == " " and row[at] != " " for row in rows), column
    assert lines[start + 5] == "1 of 3 clients with a routing peer now; 1 stale (agent not connected)."
    cli.ok("routes", "delete", route_id)
