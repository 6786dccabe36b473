"""Route explain and the overlap report to their response shapes (`models.RouteExplanation`,
`models.RouteOverlap`): meshroute's own endpoints, rendered beside NetBird's in `render.py`."""

from __future__ import annotations

from typing import Any

from meshroute.core.domains import to_unicode
from meshroute.core.explain import CoveringGroup
from meshroute.core.model import Route
from meshroute.server.views import ExplainView, OverlapView

MAX_OVERLAP_PEERS = 20


def explanation_json(found: ExplainView) -> dict[str, Any]:
    e, names = found.explanation, found.peer_names
    return {
        "peer_id": e.peer_id,
        "peer_name": names.get(e.peer_id, ""),
        "destination": e.destination.text,
        "destination_kind": e.destination.kind,
        "verdict": e.verdict,
        "winner": _group(e.winner, names) if e.winner is not None else None,
        "routes": [_group(g, names) for g in e.groups],
        "not_received": [
            {"route_id": n.route_id, "network_id": n.net_id, "network": n.network, "reasons": list(n.reasons)}
            for n in e.not_received
        ],
        "notes": list(e.notes),
    }


def _group(g: CoveringGroup, names: dict[str, str]) -> dict[str, Any]:
    return {
        "network_id": g.net_id,
        "network": g.network,
        "route_ids": list(g.route_ids),
        "match": g.how,
        "use": g.use.value,
        "note": g.note,
        "routing_peer_id": g.routing_peer_id,
        "routing_peer_name": names.get(g.routing_peer_id) if g.routing_peer_id else None,
        "reported": g.reported,
        "keep_route": g.keep_route,
        "exit_node": g.exit_node,
        "candidates": [
            {
                "route_id": c.route_id,
                "routing_peer_id": c.routing_peer_id,
                "routing_peer_name": names.get(c.routing_peer_id, ""),
                "metric": c.metric,
                "connected": c.connected,
                "auto_apply": c.auto_apply,
                "allowed": c.allowed,
            }
            for c in g.candidates
        ],
    }


def overlaps_json(found: OverlapView) -> list[dict[str, Any]]:
    names = found.peer_names
    out = []
    for o in found.overlaps:
        shown = sorted(o.receivers, key=lambda p: (names.get(p, ""), p))[:MAX_OVERLAP_PEERS]
        out.append(
            {
                "kind": o.kind.value,
                "shared": o.shared,
                "routes": [_overlap_route(o.first), _overlap_route(o.second)],
                "peers_receiving_both": len(o.receivers),
                "peers": [{"id": p, "name": names.get(p, "")} for p in shown],
                "effect": o.effect,
            }
        )
    return out


def _overlap_route(r: Route) -> dict[str, Any]:
    return {
        "id": r.id,
        "network_id": r.net_id,
        "network": str(r.network) if r.network is not None else "invalid Prefix",
        "domains": [to_unicode(d) for d in r.domains] if r.domains else None,
        "metric": r.metric,
    }
