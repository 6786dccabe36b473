"""What the wire carries of a map survives the trip: every field of peers, self, routes and rules,
in full maps (including the pre-encoded peer table) and in deltas. Names differ from DNS labels
here on purpose: a fixture where they are equal cannot tell one from the other."""

from __future__ import annotations

from meshroute.core.networkmap.types import MapDelta, MapPeer, MapRoute, NetworkMap, RouteFirewallRule
from meshroute.protocol import convert
from meshroute.protocol import meshroute_pb2 as pb

ME = MapPeer("me", "a2V5", "100.64.0.1", "fd00::1", "Alice's Laptop", "alices-laptop")
OTHER = MapPeer(
    "p2", "a2V6", "100.64.0.2", None, "Office Router #1", "office-router-1", ("192.0.2.10:51820",)
)
ROUTE = MapRoute("r1", "office", "10.0.0.0/24", (), 1, "a2V6", "p2", 100, True, False, False)
RULE = RouteFirewallRule("r1", "10.0.0.0/24", ("100.64.0.1/32",))


def test_a_full_map_survives_the_wire_with_names() -> None:
    m = NetworkMap(serial=7, self_config=ME, peers=(OTHER,), routes=(ROUTE,), rules=(RULE,))
    decoded = pb.SyncResponse.FromString(convert.full_response_bytes(m, "100.64.0.0/16", "fd00::/64"))
    back = convert.map_from_pb(decoded.full)
    assert back == m
    assert back.self_config.name == "Alice's Laptop" and back.peers[0].name == "Office Router #1"
    assert decoded.full.self.network == "100.64.0.0/16"


def test_a_delta_survives_the_wire_with_names() -> None:
    renamed = MapPeer("p2", "a2V6", "100.64.0.2", None, "Office Router (old)", "office-router-1")
    d = MapDelta(
        serial=8,
        peers_upserted=(renamed,),
        peers_removed=("p3",),
        routes_upserted=(ROUTE,),
        routes_removed=("r0",),
        rules=(RULE,),
        self_changed=ME,
    )
    wire = pb.MapDelta.FromString(convert.delta_to_pb(d, 7).SerializeToString())
    assert wire.prev_serial == 7
    assert convert.delta_from_pb(wire) == d
