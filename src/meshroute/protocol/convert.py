"""Network maps and deltas between core objects and the wire (protobuf), both directions."""

from __future__ import annotations

import functools
from typing import Any

from meshroute.core.networkmap.types import MapDelta, MapPeer, MapRoute, NetworkMap, RouteFirewallRule
from meshroute.core.status import RequirementCheck, RouteState, RouteUse, StatusReport
from meshroute.protocol import meshroute_pb2 as pb


def peer_to_pb(p: MapPeer) -> Any:
    return pb.RemotePeer(
        id=p.id,
        wg_public_key=p.key,
        ip=p.ip,
        ipv6=p.ipv6 or "",
        dns_label=p.dns_label,
        endpoints=list(p.endpoints),
        name=p.name,
    )


def peer_from_pb(p: Any) -> MapPeer:
    return MapPeer(
        id=p.id,
        key=p.wg_public_key,
        ip=p.ip,
        ipv6=p.ipv6 or None,
        name=p.name,
        dns_label=p.dns_label,
        endpoints=tuple(p.endpoints),
    )


def self_to_pb(p: MapPeer, network: str = "", network_v6: str = "") -> Any:
    return pb.SelfConfig(
        id=p.id,
        wg_public_key=p.key,
        ip=p.ip,
        ipv6=p.ipv6 or "",
        dns_label=p.dns_label,
        network=network,
        network_v6=network_v6,
        name=p.name,
    )


def self_from_pb(p: Any) -> MapPeer:
    return MapPeer(
        id=p.id, key=p.wg_public_key, ip=p.ip, ipv6=p.ipv6 or None, name=p.name, dns_label=p.dns_label
    )


def route_to_pb(r: MapRoute) -> Any:
    return pb.Route(
        id=r.id,
        net_id=r.net_id,
        network=r.network,
        domains=list(r.domains),
        network_type=r.network_type,
        peer_key=r.peer_key,
        peer_id=r.peer_id,
        metric=r.metric,
        masquerade=r.masquerade,
        keep_route=r.keep_route,
        skip_auto_apply=r.skip_auto_apply,
        ha_id=r.ha_id,
    )


def route_from_pb(r: Any) -> MapRoute:
    return MapRoute(
        id=r.id,
        net_id=r.net_id,
        network=r.network,
        domains=tuple(r.domains),
        network_type=r.network_type,
        peer_key=r.peer_key,
        peer_id=r.peer_id,
        metric=r.metric,
        masquerade=r.masquerade,
        keep_route=r.keep_route,
        skip_auto_apply=r.skip_auto_apply,
        ha=r.ha_id,
    )


def rule_to_pb(r: RouteFirewallRule) -> Any:
    return pb.FirewallRule(
        route_id=r.route_id,
        sources=list(r.sources),
        destination=r.destination,
        domains=list(r.domains),
        is_dynamic=r.is_dynamic,
        action=r.action,
        protocol=r.protocol,
    )


def rule_from_pb(r: Any) -> RouteFirewallRule:
    return RouteFirewallRule(
        route_id=r.route_id,
        destination=r.destination,
        sources=tuple(r.sources),
        domains=tuple(r.domains),
        is_dynamic=r.is_dynamic,
        action=r.action,
        protocol=r.protocol,
    )


def map_to_pb(m: NetworkMap, network: str = "", network_v6: str = "") -> Any:
    return pb.NetworkMap(
        serial=m.serial,
        self=self_to_pb(m.self_config, network, network_v6),
        peers=[peer_to_pb(p) for p in m.peers],
        routes=[route_to_pb(r) for r in m.routes],
        rules=[rule_to_pb(r) for r in m.rules],
    )


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        if n:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


_PEERS_FIELD = bytes([(3 << 3) | 2])  # NetworkMap.peers, length-delimited
_FULL_FIELD = bytes([(1 << 3) | 2])  # SyncResponse.full, length-delimited


@functools.lru_cache(maxsize=1 << 17)
def _peer_field(p: MapPeer) -> bytes:
    body: bytes = peer_to_pb(p).SerializeToString()
    return _PEERS_FIELD + _varint(len(body)) + body


def full_response_bytes(m: NetworkMap, network: str = "", network_v6: str = "") -> bytes:
    """`SyncResponse{full: map}` encoded. Every peer sees (almost) the same peer table, so each
    peer's encoding is made once and reused across maps: building the message objects anew for
    every agent cost 3.6 ms per 1,000 peers and made reconnect storms slow. Protobuf allows the
    fields of a message in any order, so the peers are appended after the other fields."""
    head: bytes = pb.NetworkMap(
        serial=m.serial,
        self=self_to_pb(m.self_config, network, network_v6),
        routes=[route_to_pb(r) for r in m.routes],
        rules=[rule_to_pb(r) for r in m.rules],
    ).SerializeToString()
    inner = head + b"".join(_peer_field(p) for p in m.peers)
    return _FULL_FIELD + _varint(len(inner)) + inner


def map_from_pb(m: Any) -> NetworkMap:
    return NetworkMap(
        serial=m.serial,
        self_config=self_from_pb(m.self),
        peers=tuple(peer_from_pb(p) for p in m.peers),
        routes=tuple(route_from_pb(r) for r in m.routes),
        rules=tuple(rule_from_pb(r) for r in m.rules),
    )


def delta_to_pb(d: MapDelta, prev_serial: int) -> Any:
    msg = pb.MapDelta(
        serial=d.serial,
        prev_serial=prev_serial,
        peers_upserted=[peer_to_pb(p) for p in d.peers_upserted],
        peers_removed=list(d.peers_removed),
        routes_upserted=[route_to_pb(r) for r in d.routes_upserted],
        routes_removed=list(d.routes_removed),
        rules_changed=d.rules is not None,
        rules=[rule_to_pb(r) for r in d.rules or ()],
    )
    if d.self_changed is not None:
        msg.self.CopyFrom(self_to_pb(d.self_changed))
    return msg


def delta_from_pb(d: Any) -> MapDelta:
    return MapDelta(
        serial=d.serial,
        peers_upserted=tuple(peer_from_pb(p) for p in d.peers_upserted),
        peers_removed=tuple(d.peers_removed),
        routes_upserted=tuple(route_from_pb(r) for r in d.routes_upserted),
        routes_removed=tuple(d.routes_removed),
        rules=tuple(rule_from_pb(r) for r in d.rules) if d.rules_changed else None,
        self_changed=self_from_pb(d.self) if d.HasField("self") else None,
    )


def map_json(m: NetworkMap) -> dict[str, Any]:
    """The comparable JSON form of a map: the REST view and `meshroute sim` both use it."""
    return {
        "serial": m.serial,
        "self": _peer_json(m.self_config),
        "peers": [_peer_json(p) for p in m.peers],
        "routes": [
            {
                "id": r.id,
                "network_id": r.net_id,
                "network": r.network,
                "domains": list(r.domains),
                "network_type": r.network_type,
                "peer_id": r.peer_id,
                "peer_key": r.peer_key,
                "metric": r.metric,
                "masquerade": r.masquerade,
                "keep_route": r.keep_route,
                "skip_auto_apply": r.skip_auto_apply,
            }
            for r in m.routes
        ],
        "firewall_rules": [
            {
                "route_id": r.route_id,
                "sources": list(r.sources),
                "destination": r.destination,
                "domains": list(r.domains),
                "is_dynamic": r.is_dynamic,
                "action": r.action,
                "protocol": r.protocol,
            }
            for r in m.rules
        ],
    }


def _peer_json(p: MapPeer) -> dict[str, Any]:
    return {
        "id": p.id,
        "wg_public_key": p.key,
        "ip": p.ip,
        "ipv6": p.ipv6,
        "dns_label": p.dns_label,
        "endpoints": list(p.endpoints),
    }


def status_to_pb(report: StatusReport) -> Any:
    return pb.StatusReport(
        routes=[
            pb.RouteUse(
                ha_id=u.ha_id,
                route_ids=list(u.route_ids),
                routing_peer_id=u.routing_peer_id,
                state=u.state.value,
                learned=u.learned,
            )
            for u in report.routes
        ],
        checks=[pb.RequirementCheck(name=c.name, ok=c.ok, detail=c.detail) for c in report.checks],
    )


def status_from_pb(msg: Any) -> StatusReport:
    """ValueError for a state this version does not know."""
    return StatusReport(
        routes=tuple(
            RouteUse(u.ha_id, tuple(u.route_ids), u.routing_peer_id, RouteState(u.state), u.learned)
            for u in msg.routes
        ),
        checks=tuple(RequirementCheck(c.name, c.ok, c.detail) for c in msg.checks),
    )
