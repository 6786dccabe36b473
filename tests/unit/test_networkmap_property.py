"""Property: for random accounts and random change sequences, the incremental deltas rebuild exactly
the maps the oracle computes from scratch, and peers left out of a step's deltas keep their map.

`World.step` (test_networkmap.py) does the checking after every batch: for every peer,
apply_delta(previous map, delta) == AccountState.network_map(peer) == compute_network_map(...), peers
without a delta have an unchanged map, and the returned peers are within the peers the engine recomputed.
"""

from __future__ import annotations

import dataclasses
import ipaddress

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from meshroute.core.model import DOMAIN_PLACEHOLDER, Group, NetworkType, Peer, Route
from meshroute.core.networkmap import (
    GroupDeleted,
    GroupUpserted,
    MapChange,
    PeerDeleted,
    PeerUpserted,
    RouteDeleted,
    RouteUpserted,
)
from tests.unit.test_networkmap import ACCOUNT, NOW, World

NETWORKS = ["10.0.0.0/24", "10.1.0.0/16", "0.0.0.0/0", "::/0", "fd00:1::/64", "192.168.1.0/24"]
DOMAINS = [["example.com"], ["a.example.com", "b.example.com"], ["xn--mnchen-3ya.de"]]
NET_IDS = ["office", "exit", "dns", "lab"]
GROUP_POOL = [f"g{i}" for i in range(9)]
CHANGE_KINDS = [
    *("route", "route", "route-edit", "route-edit", "route-sibling", "route-sibling", "route-del"),
    *("group", "group", "group-del"),
    *("peer-new", "peer-edit", "peer-edit", "peer-del"),
]


class Ids:
    """Fresh, never reused peer IDs and overlay addresses (the server allocates both uniquely)."""

    def __init__(self) -> None:
        self.next = 0

    def take(self) -> int:
        self.next += 1
        return self.next


def draw_peer(data: st.DataObject, ids: Ids, pid: str | None = None) -> Peer:
    n = ids.take()
    return Peer(
        id=pid if pid is not None else f"p{n}",
        account_id=ACCOUNT,
        key=data.draw(st.sampled_from(["ka", "kb", "kc"])) + str(n),
        ip=ipaddress.IPv4Address(0x64400000 + n),
        ipv6=data.draw(st.sampled_from([ipaddress.IPv6Address(f"fd00::{n:x}"), None])),
        name=f"n{n}",
        hostname=f"h{n}",
        dns_label=f"d{n}",
        created_at=NOW,
        ipv6_capable=data.draw(st.booleans()),
        endpoints=data.draw(st.sampled_from([[], [f"192.0.2.{n % 250}:51820"]])),
    )


def draw_members(data: st.DataObject, peer_ids: list[str]) -> list[str]:
    pool = [*peer_ids, "ghost"]  # a member that is not a peer (yet)
    return data.draw(st.lists(st.sampled_from(pool), max_size=8, unique=True))


def draw_group_ids(data: st.DataObject, group_ids: list[str], max_size: int = 3) -> list[str]:
    return data.draw(st.lists(st.sampled_from([*group_ids, "g-missing"]), max_size=max_size, unique=True))


def draw_route(data: st.DataObject, rid: str, peer_ids: list[str], group_ids: list[str]) -> Route:
    if data.draw(st.integers(0, 3)) == 0:
        domains = data.draw(st.sampled_from(DOMAINS))
        network: ipaddress.IPv4Network | ipaddress.IPv6Network = DOMAIN_PLACEHOLDER
        kind = NetworkType.DOMAIN
    else:
        domains = []
        network = ipaddress.ip_network(data.draw(st.sampled_from(NETWORKS)))
        kind = NetworkType.IPV6 if network.version == 6 else NetworkType.IPV4
    single = data.draw(st.booleans())
    return Route(
        id=rid,
        account_id=ACCOUNT,
        net_id=data.draw(st.sampled_from(NET_IDS)),
        network=network,
        network_type=kind,
        domains=list(domains),
        peer=data.draw(st.sampled_from([*peer_ids, "ghost"])) if single else "",
        peer_groups=[] if single else draw_group_ids(data, group_ids, 2),
        enabled=data.draw(st.integers(0, 4)) > 0,
        masquerade=data.draw(st.booleans()),
        metric=data.draw(st.integers(1, 3)),
        keep_route=data.draw(st.booleans()),
        groups=draw_group_ids(data, group_ids),
        access_control_groups=draw_group_ids(data, group_ids, 2) if data.draw(st.booleans()) else [],
        skip_auto_apply=data.draw(st.booleans()),
    )


def draw_change(data: st.DataObject, w: World, ids: Ids) -> MapChange:
    peer_ids = sorted(w.peers)
    group_ids = sorted(w.groups)
    route_ids = sorted(w.routes)
    kind = data.draw(st.sampled_from(CHANGE_KINDS))
    if kind == "route-edit" and route_ids:
        r = w.routes[data.draw(st.sampled_from(route_ids))]
        field = data.draw(
            st.sampled_from(["enabled", "metric", "groups", "peer_groups", "acgs", "net_id", "masquerade"])
        )
        if field == "enabled":
            return RouteUpserted(dataclasses.replace(r, enabled=not r.enabled))
        if field == "metric":
            return RouteUpserted(dataclasses.replace(r, metric=r.metric % 9 + 1))
        if field == "groups":
            return RouteUpserted(dataclasses.replace(r, groups=draw_group_ids(data, group_ids)))
        if field == "peer_groups" and not r.peer:
            return RouteUpserted(dataclasses.replace(r, peer_groups=draw_group_ids(data, group_ids, 2)))
        if field == "acgs":
            return RouteUpserted(
                dataclasses.replace(r, access_control_groups=draw_group_ids(data, group_ids, 2))
            )
        if field == "net_id":
            others = sorted({o.net_id for o in w.routes.values()})
            return RouteUpserted(
                dataclasses.replace(r, net_id=data.draw(st.sampled_from([*others, *NET_IDS])))
            )
        return RouteUpserted(dataclasses.replace(r, masquerade=not r.masquerade))
    if kind == "route-sibling" and route_ids:
        # same NetID and destination as an existing route: one more member of its HA group
        base = w.routes[data.draw(st.sampled_from(route_ids))]
        r = draw_route(data, f"r{ids.take()}", peer_ids, group_ids)
        return RouteUpserted(
            dataclasses.replace(
                r,
                net_id=base.net_id,
                network=base.network,
                network_type=base.network_type,
                domains=list(base.domains),
            )
        )
    if kind in ("route", "route-edit", "route-sibling"):
        rid = data.draw(st.sampled_from([*route_ids, f"r{ids.take()}"]))
        return RouteUpserted(draw_route(data, rid, peer_ids, group_ids))
    if kind == "route-del":
        return RouteDeleted(data.draw(st.sampled_from([*route_ids, "r-none"])))
    if kind == "group":
        gid = data.draw(st.sampled_from(GROUP_POOL))
        return GroupUpserted(Group(id=gid, account_id=ACCOUNT, name=gid, peers=draw_members(data, peer_ids)))
    if kind == "group-del":
        return GroupDeleted(data.draw(st.sampled_from([*group_ids, "g-none"])))
    if kind == "peer-new" or not peer_ids:
        pid = "ghost" if "ghost" not in w.peers and data.draw(st.booleans()) else None
        return PeerUpserted(draw_peer(data, ids, pid))
    pid = data.draw(st.sampled_from(peer_ids))
    if kind == "peer-del":
        return PeerDeleted(pid)
    p = w.peers[pid]
    field = data.draw(st.sampled_from(["key", "ip", "v6", "capable", "name", "endpoints", "invisible"]))
    if field == "key":
        return PeerUpserted(dataclasses.replace(p, key=f"k{ids.take()}"))
    if field == "ip":
        return PeerUpserted(dataclasses.replace(p, ip=ipaddress.IPv4Address(0x64400000 + ids.take())))
    if field == "v6":
        v6 = None if p.ipv6 is not None else ipaddress.IPv6Address(f"fd00::{ids.take():x}")
        return PeerUpserted(dataclasses.replace(p, ipv6=v6))
    if field == "capable":
        return PeerUpserted(dataclasses.replace(p, ipv6_capable=not p.ipv6_capable))
    if field == "name":
        return PeerUpserted(dataclasses.replace(p, name=p.name + "x", dns_label=p.dns_label + "x"))
    if field == "endpoints":
        return PeerUpserted(dataclasses.replace(p, endpoints=[*p.endpoints, "198.51.100.1:1"]))
    return PeerUpserted(dataclasses.replace(p, connected=not p.connected))


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_deltas_rebuild_the_oracle_maps(data: st.DataObject) -> None:
    ids = Ids()
    peers = [draw_peer(data, ids) for _ in range(data.draw(st.integers(1, 30)))]
    peer_ids = [p.id for p in peers]
    n_groups = data.draw(st.integers(1, 8))
    groups = [
        Group(id=gid, account_id=ACCOUNT, name=gid, peers=draw_members(data, peer_ids))
        for gid in GROUP_POOL[:n_groups]
    ]
    group_ids = [g.id for g in groups]
    routes = [
        draw_route(data, f"r{ids.take()}", peer_ids, group_ids) for _ in range(data.draw(st.integers(0, 10)))
    ]
    w = World(peers, groups, routes)
    for _ in range(data.draw(st.integers(1, 12))):
        batch = [draw_change(data, w, ids) for _ in range(data.draw(st.integers(1, 3)))]
        w.step(*batch)
