"""Route explain: for a peer and a destination, every route the peer receives that covers it, in the
order the peer's agent uses them, the one that wins, and why the other covering routes do not
reach the peer. Pure: the server's view reads the account and calls `explain`.

The agent's rules (docs/routes.md, `agent/routes/plan.py`, `scoring.py`, `selection.py`):

1. the HA groups (`NetID|network`) the peer receives that cover the destination are ordered by
   specificity: the longest prefix (the kernel's rule); for a name, a domain route naming it
   exactly, then wildcards with the longest base; exit nodes last;
2. groups with the same prefix share one kernel route, held by the group with a routing peer and
   the lowest metric (then the smallest HA ID); the others are its standby;
3. inside a group the candidates (one per routing peer) are ranked by the reference's score: a
   connected routing peer first, then the lower metric, then latency (which only the agent knows;
   here the smaller route ID stands in for it);
4. groups the agent does not use: deselected by the user on the peer (as its agent reported), an
   exit node other than the one in use (at most one: the user's choice, else the one with
   SkipAutoApply off and the smallest NetID; an exit node with SkipAutoApply on is used only once
   selected), a prefix the agent refuses (`core.prefixes`), a kind it reported it does not route;
5. the winner's traffic is dropped at its routing peer when the peer is outside the route's
   access-control groups.

What the peer's agent reported (its last status report, while it is connected) beats what is
predicted from the server's view (whether the routing peers' agents are connected).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, replace
from enum import StrEnum

from meshroute.core.explain_match import (
    Destination,
    Match,
    PeerFacts,
    Receiving,
    is_exit,
    match,
)
from meshroute.core.model import IPNetwork, NetworkType, Route
from meshroute.core.networkmap.types import V6_DEFAULT_ID_SUFFIX
from meshroute.core.prefixes import route_refusal
from meshroute.core.status import RouteState, RouteUse, StatusReport, base_route_id


class Use(StrEnum):
    USED = "used"  # carries the destination
    STANDBY = "standby"  # same prefix as the one used, not chosen (metric, or no routing peer)
    SHADOWED = "shadowed"  # a more specific route wins
    DESELECTED = "deselected"  # the user turned it off on the peer
    NOT_SELECTED = "not_selected"  # an exit node that is not the one in use
    REFUSED = "refused"  # a prefix the agent never routes
    NOT_ROUTED = "not_routed"  # the agent reported that it does not route it


@dataclass(frozen=True, slots=True)
class Candidate:
    route_id: str
    routing_peer_id: str
    metric: int
    connected: bool  # the routing peer's agent is connected to the management server
    auto_apply: bool  # SkipAutoApply off (what counts for exit nodes)
    allowed: bool  # the routing peer accepts the peer's traffic (access-control groups)


@dataclass(frozen=True, slots=True)
class CoveringGroup:
    """One HA group the peer receives that covers the destination."""

    ha_id: str
    net_id: str
    network: str
    how: str
    specificity: int
    route_ids: tuple[str, ...]
    candidates: tuple[Candidate, ...]  # best first
    keep_route: bool
    use: Use = Use.SHADOWED
    note: str = ""
    routing_peer_id: str | None = None  # carrying it now (reported) or predicted to
    reported: str | None = None  # the state the peer's agent reported; "stale" when it is away
    exit_node: bool = False

    @property
    def metric(self) -> int:
        """The metric of the candidate carrying it, else the best one (the agent's claim)."""
        chosen = [c.metric for c in self.candidates if c.routing_peer_id == self.routing_peer_id]
        return min(chosen or [c.metric for c in self.candidates] or [0])

    @property
    def allowed(self) -> bool:
        chosen = next((c for c in self.candidates if c.routing_peer_id == self.routing_peer_id), None)
        return chosen.allowed if chosen is not None else all(c.allowed for c in self.candidates)


@dataclass(frozen=True, slots=True)
class NotReceived:
    route_id: str
    net_id: str
    network: str
    reasons: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Explanation:
    peer_id: str
    destination: Destination
    groups: tuple[CoveringGroup, ...]  # in the order the agent uses them
    winner: CoveringGroup | None
    verdict: str
    not_received: tuple[NotReceived, ...]
    notes: tuple[str, ...]


def explain(
    peer_id: str,
    destination: Destination,
    routes: Sequence[Route],
    members: Mapping[str, Collection[str]],
    peers: Mapping[str, PeerFacts],
    *,
    report: StatusReport | None = None,
    overlay: Sequence[IPNetwork] = (),
    group_names: Mapping[str, str] | None = None,
) -> Explanation:
    """`routes`: every route of the account; `members`: group ID -> peer IDs; `peers`: every
    peer of the account (KeyError for an unknown `peer_id`); `report`: the peer's last status
    report; `overlay`: the mesh's own networks the peer has."""
    peer = peers[peer_id]
    rx = Receiving(routes, members, peers, group_names or {})
    covering: dict[str, list[tuple[Route, Match]]] = {}
    missing: list[NotReceived] = []
    for r in sorted(routes, key=lambda r: (r.net_id, r.id)):
        m = match(r, destination, peer.uses_ipv6)
        if m is None:
            continue
        reasons = rx.why_not(r, peer, m.twin)
        if reasons:
            missing.append(NotReceived(r.id, r.net_id, m.network, reasons))
        else:
            covering.setdefault(m.ha_id, []).append((r, m))
    fresh = report if peer.connected else None
    groups = [_group(ha, found, rx, peer_id, report, peer.connected) for ha, found in covering.items()]
    groups = _exit_nodes(groups, _exit_net_ids(routes, rx, peer), fresh)
    groups = [_refused(g, overlay) for g in groups]
    ordered = sorted(groups, key=lambda g: (-g.specificity, _holding(g), g.metric, g.ha_id))
    ordered, winner = _decide(ordered)
    return Explanation(
        peer_id,
        destination,
        tuple(ordered),
        winner,
        _verdict(destination, winner, ordered, missing, peers),
        tuple(missing),
        _notes(destination, peer, routes, rx),
    )


def _group(
    ha: str,
    found: list[tuple[Route, Match]],
    rx: Receiving,
    peer_id: str,
    report: StatusReport | None,
    fresh: bool,
) -> CoveringGroup:
    candidates = [
        Candidate(
            r.id,
            pid,
            r.metric,
            rx.peers[pid].connected,
            not r.skip_auto_apply,
            rx.allowed(r, peer_id),
        )
        for r, _ in found
        for pid in sorted(rx.routing[r.id])
    ]
    candidates.sort(key=lambda c: (not c.connected, c.metric, c.route_id, c.routing_peer_id))
    first, m = found[0]
    group = CoveringGroup(
        ha_id=ha,
        net_id=first.net_id + ("-v6" if m.twin else ""),
        network=m.network,
        how=m.how,
        specificity=m.specificity,
        route_ids=tuple(sorted({r.id for r, _ in found})),
        candidates=tuple(candidates),
        keep_route=any(r.keep_route for r, _ in found),
        exit_node=is_exit(first),
    )
    use = _reported_use(report, group, m.twin) if report is not None else None
    if use is None:
        return replace(group, routing_peer_id=_predicted_peer(group.candidates))
    if not fresh:
        return replace(group, reported="stale", routing_peer_id=_predicted_peer(group.candidates))
    now = use.routing_peer_id or None
    return replace(group, reported=use.state.value, routing_peer_id=now)


def _reported_use(report: StatusReport, group: CoveringGroup, twin: bool) -> RouteUse | None:
    for use in report.routes:
        if use.ha_id == group.ha_id:
            return use
    for use in report.routes:  # an agent that names groups otherwise: by the routes in it
        for map_id in use.route_ids:
            if map_id.endswith(V6_DEFAULT_ID_SUFFIX) == twin and base_route_id(map_id) in group.route_ids:
                return use
    return None


def _predicted_peer(candidates: Sequence[Candidate]) -> str | None:
    return next((c.routing_peer_id for c in candidates if c.connected), None)


def _exit_net_ids(routes: Sequence[Route], rx: Receiving, peer: PeerFacts) -> tuple[str, ...]:
    """The exit-node NetIDs the peer receives that management would apply by itself (a candidate
    with SkipAutoApply off), sorted: the agent uses the first unless the user chose another."""
    auto = {r.net_id for r in routes if is_exit(r) and not r.skip_auto_apply and not rx.why_not(r, peer)}
    return tuple(sorted(auto))


def _exit_nodes(
    groups: list[CoveringGroup], auto: tuple[str, ...], report: StatusReport | None
) -> list[CoveringGroup]:
    """At most one exit node in use; predicted where the agent did not report its choice."""
    out = []
    for g in groups:
        if not g.exit_node or (g.reported is not None and g.reported != "stale"):
            out.append(g)
            continue
        base = g.net_id.removesuffix("-v6") if g.network == "::/0" and g.net_id.endswith("-v6") else g.net_id
        if not any(c.auto_apply for c in g.candidates):
            note = (
                f"SkipAutoApply: used only once selected on the peer (meshroute agent routes select {base})"
            )
            out.append(replace(g, use=Use.NOT_SELECTED, note=note, routing_peer_id=None))
        elif auto and auto[0] != base:
            note = f"the exit node in use is {auto[0]} (applied automatically: the smallest network ID)"
            out.append(replace(g, use=Use.NOT_SELECTED, note=note, routing_peer_id=None))
        else:
            kept = tuple(c for c in g.candidates if c.auto_apply)
            out.append(replace(g, candidates=kept, routing_peer_id=_predicted_peer(kept)))
    return out


def _refused(g: CoveringGroup, overlay: Sequence[IPNetwork]) -> CoveringGroup:
    if g.use == Use.NOT_SELECTED:
        return g
    if g.reported == RouteState.DESELECTED:
        return replace(
            g, use=Use.DESELECTED, note="turned off on the peer (deselected)", routing_peer_id=None
        )
    if g.reported == RouteState.NOT_ROUTED:
        note = "the peer's agent reported that it does not route it (a prefix or kind it does not route)"
        return replace(g, use=Use.NOT_ROUTED, note=note, routing_peer_id=None)
    if "/" in g.network and (why := route_refusal(g.network, overlay)) is not None:
        return replace(
            g, use=Use.REFUSED, note=f"the agent never routes this prefix: {why}", routing_peer_id=None
        )
    return g


_EXCLUDED = (Use.DESELECTED, Use.NOT_SELECTED, Use.REFUSED, Use.NOT_ROUTED)


def _holding(g: CoveringGroup) -> int:
    """Among groups of one prefix: one with a routing peer holds it, then one that only keeps its
    last routing peer (KeepRoute); with neither the prefix is unreachable."""
    if g.reported == RouteState.KEPT:
        return 1
    return 0 if g.routing_peer_id is not None else 2


def _decide(ordered: list[CoveringGroup]) -> tuple[list[CoveringGroup], CoveringGroup | None]:
    usable = [g for g in ordered if g.use not in _EXCLUDED]
    if not usable:
        return ordered, None
    top = usable[0].specificity
    tied = [g for g in usable if g.specificity == top]
    winner = tied[0]  # `ordered` puts the one that holds the prefix first (`_holding`)
    out: list[CoveringGroup] = []
    for g in ordered:
        if g.use in _EXCLUDED:
            out.append(g)
        elif g is winner:
            out.append(replace(g, use=Use.USED, note=_used_note(g)))
        elif g.specificity == top:
            note = (
                f"same destination as {winner.net_id}, which holds it (a routing peer, then the lower metric)"
            )
            out.append(replace(g, use=Use.STANDBY, note=note))
        else:
            out.append(replace(g, use=Use.SHADOWED, note=f"{winner.network} is more specific"))
    return out, next(g for g in out if g.use == Use.USED)


def _used_note(g: CoveringGroup) -> str:
    if g.reported == RouteState.KEPT:
        return "no usable routing peer: KeepRoute holds it on the last one"
    if g.routing_peer_id is None:
        return "no usable routing peer: the traffic is dropped in the tunnel until one is back"
    if not g.allowed:
        return "the routing peer drops this peer's traffic: it is not in the access-control groups"
    return ""


def _verdict(
    dest: Destination,
    winner: CoveringGroup | None,
    ordered: Sequence[CoveringGroup],
    missing: Sequence[NotReceived],
    peers: Mapping[str, PeerFacts],
) -> str:
    if winner is None:
        where = "leaves through the peer's own network, not the mesh"
        if ordered:
            return f"{dest.text} {where}: the routes that cover it are not used on this peer."
        if missing:
            return f"{dest.text} {where}: {len(missing)} route(s) cover it, none of them reaches this peer."
        return f"{dest.text} {where}: no route covers it."
    route = f"route {winner.net_id} ({winner.network})"
    if winner.routing_peer_id is None:
        return f"{dest.text} matches {route}, but no routing peer is usable: the traffic is dropped."
    name = peers[winner.routing_peer_id].name if winner.routing_peer_id in peers else winner.routing_peer_id
    source = {
        None: "predicted: the peer's agent has not reported this route",
        "stale": "predicted: the peer's agent is not connected",
        RouteState.KEPT: "kept by KeepRoute, as the peer's agent reported",
    }.get(winner.reported, "as the peer's agent reported")
    if not winner.allowed:
        return (
            f"{dest.text} goes to {route} through {name} ({source}), which drops it: "
            "this peer is not in the route's access-control groups."
        )
    return f"{dest.text} goes through {route} via routing peer {name} ({source})."


def _notes(dest: Destination, peer: PeerFacts, routes: Sequence[Route], rx: Receiving) -> tuple[str, ...]:
    notes = []
    if dest.name is not None:
        notes.append(
            "A name is matched against domain routes and exit nodes; network routes are matched by "
            "address: explain the address the name resolves to for those."
        )
    elif (
        dest.address is not None
        and dest.address.version == 6
        and not peer.uses_ipv6
        and _v4_exit(routes, rx, peer)
    ):
        notes.append(
            "This peer does not use IPv6 in the mesh: while it uses an IPv4 exit node, IPv6 "
            "destinations are unreachable (unreachable ::/0), so they do not go around it."
        )
    if dest.address is not None:
        domain = sorted(
            {r.net_id for r in routes if r.network_type == NetworkType.DOMAIN and not rx.why_not(r, peer)}
        )
        if domain:
            notes.append(
                f"This peer also receives domain routes ({', '.join(domain)}): if a DNS answer through "
                "one of them gave this address, the peer routes it as a /32 (/128) through that "
                "route's routing peer, ahead of any prefix here (`meshroute agent routes list` on the "
                "peer shows what it learned)."
            )
    return tuple(notes)


def _v4_exit(routes: Sequence[Route], rx: Receiving, peer: PeerFacts) -> bool:
    return any(is_exit(r) and str(r.network) == "0.0.0.0/0" and not rx.why_not(r, peer) for r in routes)
