"""The server sees which routing peer each client uses (issue 7, item 6): agents report over gRPC
(`ReportStatus`, authenticated as Sync, checked strictly, nothing stored on bad input), the server
keeps each peer's last report, `GET /api/routes/{id}/status` lists the route's clients with their
state (stale while an agent is away) and `GET /api/peers/{id}` shows a peer's requirement checks.
Against a real server, on SQLite and PostgreSQL (and two replicas on PostgreSQL)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import grpc
import pytest
from sqlalchemy import Engine, select

from meshroute.core.status import RequirementCheck, RouteState, RouteUse, StatusReport
from meshroute.protocol import meshroute_pb2 as pb
from meshroute.protocol import meshroute_pb2_grpc as pb_grpc
from meshroute.protocol.client import Identity, Meta, PeerClient, open_channel
from meshroute.server.store import tables as t
from meshroute.server.throttle import ThrottleSettings
from tests.integration.test_sync import Follower, Running, new_key, pg_replicas, start_server

__all__ = ["pg_replicas"]  # the two-replica fixture, used below


@pytest.fixture
def running(engine: Engine, tmp_path: Path) -> Iterator[Running]:
    url = engine.url.render_as_string(hide_password=False)
    yield from start_server(tmp_path, url, throttle=ThrottleSettings(max_failures=3, window=60))


def run(coro: Any) -> Any:
    loop = asyncio.new_event_loop()
    try:
        return loop.run_until_complete(coro)
    finally:
        loop.close()


def group(r: Running, name: str) -> str:
    resp = r.api.post("/api/groups", json={"name": name})
    assert resp.status_code == 200, resp.text
    return str(resp.json()["id"])


def route(r: Running, **body: Any) -> str:
    resp = r.api.post("/api/routes", json={"network_id": "office", "metric": 10, "enabled": True, **body})
    assert resp.status_code == 200, resp.text
    return str(resp.json()["id"])


async def join(channel: grpc.aio.Channel, key: str, *names: str, ipv6: bool = False) -> list[PeerClient]:
    clients = []
    for name in names:
        client = PeerClient(channel, Identity(new_key()))
        await client.login(Meta(hostname=name, ipv6=ipv6), setup_key=key)
        clients.append(client)
    return clients


def status(r: Running, route_id: str) -> list[dict[str, Any]]:
    resp = r.api.get(f"/api/routes/{route_id}/status")
    assert resp.status_code == 200, resp.text
    return list(resp.json())


def by_name(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {row["peer_name"]: row for row in rows}


def stored(engine: Engine) -> list[Any]:
    with engine.connect() as conn:
        return list(conn.execute(select(t.status_reports).order_by(t.status_reports.c.peer_id)))


async def until(predicate: Any, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached"
        await asyncio.sleep(0.05)


@pytest.fixture
def office(running: Running) -> dict[str, str]:
    """Two routing peers in a peer group serve 10.80.0.0/24 to the `clients` group."""
    return {"gws": group(running, "gws"), "clients": group(running, "clients")}


def test_reports_are_stored_shown_replaced_and_stale_when_the_agent_goes(
    running: Running, office: dict[str, str], engine: Engine
) -> None:
    async def scenario() -> None:
        async with open_channel(running.sync) as channel:
            gw1, gw2 = await join(channel, running.setup_key(auto_groups=[office["gws"]]), "gw1", "gw2")
            bob, alice, carol = await join(
                channel, running.setup_key(auto_groups=[office["clients"]]), "bob", "alice", "carol"
            )
            (outsider,) = await join(channel, running.setup_key(), "outsider")
            rid = route(
                running, network="10.80.0.0/24", peer_groups=[office["gws"]], groups=[office["clients"]]
            )
            candidates = (f"{rid}:{gw1.identity.peer_id}", f"{rid}:{gw2.identity.peer_id}")
            # the clients, sorted by name; routing peers and peers outside the groups are not listed
            rows = status(running, rid)
            assert [row["peer_name"] for row in rows] == ["alice", "bob", "carol"]
            assert rows[0] == {
                "peer_id": alice.identity.peer_id,
                "peer_name": "alice",
                "state": "unknown",
                "routing_peer_id": None,
                "routing_peer_name": None,
                "last_routing_peer_id": None,
                "last_routing_peer_name": None,
                "updated_at": None,
                "learned_addresses": None,
            }
            assert outsider.identity.peer_id not in {row["peer_id"] for row in rows}

            following = [Follower(c) for c in (alice, carol)]  # alice and carol are connected now
            for f in following:
                await f.wait_for(lambda m: len(m.routes) == 2)  # one entry per routing peer
            ha = following[0].maps[-1].routes[0].ha_id
            use = RouteUse(ha, candidates, gw1.identity.peer_id, RouteState.ROUTING)
            await alice.report_status(StatusReport((use,)))
            await bob.report_status(StatusReport((use,)))  # bob has no stream: his report is stale
            other = RouteUse("elsewhere|10.9.0.0/16", ("x:y",), "", RouteState.NOT_ROUTED)
            await carol.report_status(StatusReport((other,)))  # not this route: unknown
            shown = by_name(status(running, rid))
            assert shown["alice"]["state"] == "routing"
            assert (shown["alice"]["routing_peer_id"], shown["alice"]["routing_peer_name"]) == (
                gw1.identity.peer_id,
                "gw1",
            )
            assert shown["alice"]["last_routing_peer_id"] == gw1.identity.peer_id
            first = datetime.fromisoformat(shown["alice"]["updated_at"])
            assert shown["bob"]["state"] == "stale" and shown["bob"]["routing_peer_id"] is None
            assert (shown["bob"]["last_routing_peer_id"], shown["bob"]["last_routing_peer_name"]) == (
                gw1.identity.peer_id,
                "gw1",
            )
            assert shown["bob"]["updated_at"] is not None
            assert shown["carol"]["state"] == "unknown" and shown["carol"]["updated_at"] is None

            # the same report again changes nothing; a failover replaces it
            await alice.report_status(StatusReport((use,)))
            assert by_name(status(running, rid))["alice"]["updated_at"] == shown["alice"]["updated_at"]
            moved = RouteUse(ha, candidates, gw2.identity.peer_id, RouteState.ROUTING)
            await alice.report_status(StatusReport((moved,)))
            now = by_name(status(running, rid))["alice"]
            assert (now["state"], now["routing_peer_name"]) == ("routing", "gw2")
            assert datetime.fromisoformat(now["updated_at"]) > first
            assert len(stored(engine)) == 3  # one row per peer that reported

            # alice's agent goes away: her report is stale, what was last known stays visible
            await following[0].stop()
            await until(lambda: by_name(status(running, rid))["alice"]["state"] == "stale")
            gone = by_name(status(running, rid))["alice"]
            assert gone["routing_peer_id"] is None and gone["routing_peer_name"] is None
            assert (gone["last_routing_peer_id"], gone["updated_at"]) == (
                gw2.identity.peer_id,
                now["updated_at"],
            )
            await following[1].stop()

    run(scenario())
    missing = running.api.get("/api/routes/nope/status")
    assert missing.status_code == 404 and missing.json() == {"message": "route: nope not found", "code": 404}


def test_a_domain_routes_clients_show_how_many_addresses_they_learned(
    running: Running, office: dict[str, str]
) -> None:
    async def scenario() -> None:
        async with open_channel(running.sync) as channel:
            (gw1,) = await join(channel, running.setup_key(auto_groups=[office["gws"]]), "gw1")
            (alice,) = await join(channel, running.setup_key(auto_groups=[office["clients"]]), "alice")
            rid = route(
                running, domains=["app.example.com"], peer=gw1.identity.peer_id, groups=[office["clients"]]
            )
            follower = Follower(alice)
            await follower.wait_for(lambda m: len(m.routes) == 1)
            ha = follower.maps[-1].routes[0].ha_id
            use = RouteUse(ha, (rid,), gw1.identity.peer_id, RouteState.ROUTING, learned=3)
            await alice.report_status(StatusReport((use,)))
            (row,) = status(running, rid)
            assert (row["state"], row["learned_addresses"]) == ("routing", 3)
            await follower.stop()

    run(scenario())


def test_a_single_peer_route_and_an_exit_nodes_ipv6_twin_match_their_route(running: Running) -> None:
    async def scenario() -> None:
        async with open_channel(running.sync) as channel:
            (gw,) = await join(channel, running.setup_key(), "gw")
            (client,) = await join(channel, running.setup_key(), "client", ipv6=True)
            everyone = running.all_group()
            lan = route(running, network="10.81.0.0/24", peer=gw.identity.peer_id, groups=[everyone])
            exit_node = route(
                running, network_id="exit", network="0.0.0.0/0", peer=gw.identity.peer_id, groups=[everyone]
            )
            f = Follower(client)
            m = await f.wait_for(lambda m: len(m.routes) == 3)  # the LAN, the exit node and its IPv6 twin
            twin = f"{exit_node}-v6-default"
            assert sorted(e.id for e in m.routes) == sorted([lan, exit_node, twin])
            reported = {  # map route ID -> (routing peer, state)
                lan: (gw.identity.peer_id, RouteState.ROUTING),
                exit_node: ("", RouteState.DESELECTED),
                twin: (gw.identity.peer_id, RouteState.KEPT),
            }
            uses = tuple(RouteUse(e.ha_id, (e.id,), *reported[e.id]) for e in m.routes)
            await client.report_status(StatusReport(uses))
            (row,) = status(running, lan)
            assert (row["state"], row["routing_peer_id"]) == ("routing", gw.identity.peer_id)
            (row,) = status(running, exit_node)  # the IPv4 exit node, not its twin
            assert (row["state"], row["routing_peer_id"], row["last_routing_peer_id"]) == (
                "deselected",
                None,
                None,
            )
            # the routing peer itself is no client of its routes
            assert gw.identity.peer_id not in {r["peer_id"] for r in status(running, lan)}
            await f.stop()

    run(scenario())


def credentials(peer: PeerClient) -> tuple[tuple[str, str], ...]:
    return (
        ("x-meshroute-peer-key", peer.identity.wg_public_key),
        ("x-meshroute-credential", peer.identity.credential),
    )


async def report_error(r: Running, request: Any, metadata: Any) -> grpc.aio.AioRpcError:
    async with open_channel(r.sync) as channel:
        stub = pb_grpc.ManagementStub(channel)  # type: ignore[no-untyped-call]
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stub.ReportStatus(request, metadata=metadata)
    return err.value


def _use(**over: Any) -> Any:
    return pb.RouteUse(**{"ha_id": "office|10.0.0.0/24", "route_ids": ["r1"], "state": "routing", **over})


BAD: list[tuple[Any, str]] = [
    (pb.StatusReport(routes=[_use(state="flying")]), "unknown route state 'flying': expected one of routing"),
    (pb.StatusReport(routes=[_use(state="")]), "unknown route state ''"),
    (pb.StatusReport(routes=[_use()] * 1001), "should not have more than 1000 route uses"),
    (pb.StatusReport(checks=[pb.RequirementCheck(name="c")] * 65), "more than 64 requirement checks"),
    (pb.StatusReport(routes=[_use(route_ids=["r"] * 10_001)]), "should not name more than 10000 route IDs"),
    (pb.StatusReport(routes=[_use(ha_id="a\x00b")]), "HA ID must not contain control characters"),
    (pb.StatusReport(routes=[_use(route_ids=["r" * 141])]), "route ID should not be longer than 140"),
    (pb.StatusReport(routes=[_use(routing_peer_id="p\x00")]), "routing peer ID must not contain control"),
    (pb.StatusReport(checks=[pb.RequirementCheck(name="fw", detail="x" * 1025)]), "detail should not be"),
    (pb.StatusReport(checks=[pb.RequirementCheck(name="fw\n")]), "name must not contain control characters"),
]  # fmt: skip


def test_bad_reports_are_invalid_argument_and_store_nothing(running: Running, engine: Engine) -> None:
    async def scenario() -> None:
        async with open_channel(running.sync) as channel:
            (peer,) = await join(channel, running.setup_key(), "peer")
            good = StatusReport((RouteUse("office|10.0.0.0/24", ("r1",), "", RouteState.KEPT),))
            await peer.report_status(good)
            before = stored(engine)
            metadata = credentials(peer)
            for request, message in BAD:
                err = await report_error(running, request, metadata)
                assert err.code() == grpc.StatusCode.INVALID_ARGUMENT, err.details()
                assert message in (err.details() or ""), (message, err.details())
            assert stored(engine) == before  # the last good report, untouched
            raw = channel.unary_unary("/meshroute.v1.Management/ReportStatus")
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await raw(b"\x0a\x80", metadata=metadata)  # a truncated length
            assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert (err.value.details() or "").startswith("malformed StatusReport: ")
            assert stored(engine) == before

    run(scenario())


def test_wrong_credentials_are_unauthenticated_and_throttled(running: Running, engine: Engine) -> None:
    async def scenario() -> None:
        async with open_channel(running.sync) as channel:
            (peer,) = await join(channel, running.setup_key(), "peer")
            key = peer.identity.wg_public_key
            request = pb.StatusReport(routes=[_use()])
            for metadata in (
                None,
                (("x-meshroute-peer-key", key),),
                (("x-meshroute-peer-key", key), ("x-meshroute-credential", "wrong")),
            ):
                err = await report_error(running, request, metadata)
                assert err.code() == grpc.StatusCode.UNAUTHENTICATED, err.details()
            # three failures from this address: it is refused, whatever it sends, for a while
            err = await report_error(running, request, credentials(peer))
            assert err.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
            assert dict(err.trailing_metadata() or ())["retry-after"].isdigit()

    run(scenario())
    assert stored(engine) == []


def test_a_peers_checks_are_on_its_page_and_deleting_it_deletes_its_report(
    running: Running, engine: Engine
) -> None:
    async def scenario() -> tuple[str, str]:
        async with open_channel(running.sync) as channel:
            gw, quiet = await join(channel, running.setup_key(), "gw", "quiet")
            checks = (
                RequirementCheck("forwarding", True),
                RequirementCheck("firewall", False, "table inet filter drops forwarded traffic"),
            )
            await gw.report_status(StatusReport(checks=checks))
            return gw.identity.peer_id, quiet.identity.peer_id

    gw, quiet = run(scenario())
    page = running.api.get(f"/api/peers/{gw}").json()
    assert page["routing_peer_checks"] == [
        {"name": "forwarding", "ok": True, "detail": ""},
        {"name": "firewall", "ok": False, "detail": "table inet filter drops forwarded traffic"},
    ]
    assert page["routing_peer_checks_updated_at"].endswith("Z")
    # a peer whose agent never reported: no checks shown; the list never shows them
    assert not {"routing_peer_checks", "routing_peer_checks_updated_at"} & set(
        running.api.get(f"/api/peers/{quiet}").json()
    )
    for listed in running.api.get("/api/peers").json():
        assert "routing_peer_checks" not in listed
    # PUT answers the peer as GET does
    renamed = running.api.put(f"/api/peers/{gw}", json={"name": "gateway"}).json()
    assert renamed["routing_peer_checks"] == page["routing_peer_checks"]

    assert [row.peer_id for row in stored(engine)] == [gw]
    assert running.api.delete(f"/api/peers/{gw}").status_code == 200
    assert stored(engine) == []  # ON DELETE CASCADE


def test_a_report_through_one_replica_is_seen_through_the_other(
    pg_replicas: tuple[Running, Running],
) -> None:
    a, b = pg_replicas
    clients = group(a, "clients")

    async def scenario() -> None:
        async with open_channel(b.sync) as channel:
            (gw,) = await join(channel, a.setup_key(), "gw")
            (laptop,) = await join(channel, a.setup_key(auto_groups=[clients]), "laptop")
            rid = route(a, network="10.82.0.0/24", peer=gw.identity.peer_id, groups=[clients])
            f = Follower(laptop)  # connected through replica B
            m = await f.wait_for(lambda m: len(m.routes) == 1)
            use = RouteUse(m.routes[0].ha_id, (rid,), gw.identity.peer_id, RouteState.ROUTING)
            await laptop.report_status(StatusReport((use,)))
            for replica in (a, b):
                (row,) = status(replica, rid)
                assert (row["state"], row["routing_peer_name"]) == ("routing", "gw")
            await f.stop()

    run(scenario())
