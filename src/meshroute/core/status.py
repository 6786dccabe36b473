"""What an agent reports about its routes: per HA group the routing peer it uses now, and on a
routing peer its requirement checks. Pure data, shared by the agent (which builds it) and the
server (which keeps the last report of every peer and shows it)."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from meshroute.core.networkmap.types import V6_DEFAULT_ID_SUFFIX


class RouteState(StrEnum):
    ROUTING = "routing"  # a routing peer carries it
    KEPT = "kept"  # no usable routing peer; KeepRoute holds the last one
    NO_ROUTING_PEER = "no_routing_peer"  # no usable routing peer: unreachable until one is back
    DESELECTED = "deselected"  # the user turned it off on the peer
    NOT_ROUTED = "not_routed"  # a prefix the agent refuses, or a kind it does not route yet


@dataclass(frozen=True, slots=True)
class RouteUse:
    ha_id: str
    route_ids: tuple[str, ...]  # the candidates, as map route IDs (`<route>:<peer>` for groups)
    routing_peer_id: str  # "" when none
    state: RouteState
    learned: int = 0  # domain routes: the addresses learned from DNS answers


@dataclass(frozen=True, slots=True)
class RequirementCheck:
    name: str
    ok: bool
    detail: str = ""


@dataclass(frozen=True, slots=True)
class StatusReport:
    routes: tuple[RouteUse, ...] = ()
    checks: tuple[RequirementCheck, ...] = ()


def base_route_id(map_route_id: str) -> str:
    """The route a map entry comes from: `<route>:<peer>` and the IPv6 twin `...-v6-default` name
    the same route as the API knows it."""
    return map_route_id.removesuffix(V6_DEFAULT_ID_SUFFIX).split(":", 1)[0]
