"""Which routing peer carries an HA group: the reference's scoring and stickiness, pure.

Every candidate (one route = one routing peer) of an HA group gets a score from its metric and
the health of its routing peer; the best one carries the group's prefix, unless the current one
is within `STICKINESS` of it. The numbers are the reference's (agent-behaviour.md §1.4):

    (9999 - metric) * 10        only when metric < 9999
    + (1 - latency_s)           latency 0/unknown or above 1 s counts as 0.999 s
    + 100000                    when the peer is connected
    + 1                         when the path is direct (not relayed)

so a connected peer always beats an idle one, then the lower metric wins (steps of 10), then a
direct path, then the lower latency. Connecting peers are not eligible: there is nowhere to put
the AllowedIPs.

How our health maps onto the reference's peer states (`candidate_health`):
the agent probes every candidate routing peer over the overlay (`agent.health`) instead of
reading ICE states, and it has no relays.

- CONNECTED: the probe answers (the tracker says up); latency = the last probe RTT.
- CONNECTING (not eligible): the peer missed `down_after` probes in a row (the tracker says down).
- not judged yet (no answer and no verdict, e.g. just after start or a new candidate):
  IDLE when the peer's WireGuard endpoint is known to work (a handshake succeeded on it before),
  CONNECTING otherwise. Like the reference's lazy peers, an idle one is usable but always loses
  to a connected one.
- relayed: always False.

When to call `best_route` (every probe verdict, every route update, or also on RTT changes) is
the watcher's business; the reference recomputes on status changes and route updates only.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum

from meshroute.core.model import MAX_METRIC
from meshroute.core.networkmap.types import MapRoute

STICKINESS = 0.01  # score; = 10 ms of latency: a challenger must be at least this much better
CONNECTED_BONUS = 100_000
DIRECT_BONUS = 1
METRIC_WEIGHT = 10
_NS_PER_S = 1_000_000_000
_UNKNOWN_LATENCY_NS = 999_000_000  # stands for a latency of 0 (unknown) or above 1 s


class PeerStatus(StrEnum):
    """The reference's peer states, as far as route choice cares. Values match `agent.status`."""

    CONNECTED = "connected"
    IDLE = "idle"
    CONNECTING = "connecting"


@dataclass(frozen=True, slots=True)
class CandidateHealth:
    status: PeerStatus
    latency_ms: float | None = None
    relayed: bool = False


def candidate_health(
    probe_up: bool | None, rtt_ms: float | None, endpoint_confirmed: bool
) -> CandidateHealth:
    """A candidate routing peer's health from its probe track (`up`, `rtt_ms`) and whether its
    WireGuard endpoint is known to work; see the module docstring."""
    if probe_up is True:
        status = PeerStatus.CONNECTED
    elif probe_up is False:
        status = PeerStatus.CONNECTING
    else:
        status = PeerStatus.IDLE if endpoint_confirmed else PeerStatus.CONNECTING
    return CandidateHealth(status, rtt_ms)


def _latency_seconds(latency_ms: float | None) -> float:
    # The reference holds latency as integer nanoseconds and converts as whole seconds plus
    # nanoseconds / 1e9; doing the same keeps every sum (and so every 0.01 boundary) identical.
    ns = round(latency_ms * 1_000_000) if latency_ms is not None else 0
    if ns <= 0 or ns > _NS_PER_S:
        ns = _UNKNOWN_LATENCY_NS
    seconds, rest = divmod(ns, _NS_PER_S)
    return float(seconds) + rest / 1e9


def score(route: MapRoute, health: CandidateHealth) -> float | None:
    """The candidate's score, or None when it is not eligible (its peer is connecting)."""
    if health.status is PeerStatus.CONNECTING:
        return None
    total = 0.0
    if route.metric < MAX_METRIC:
        total = float(MAX_METRIC - route.metric) * METRIC_WEIGHT
    total += 1 - _latency_seconds(health.latency_ms)
    if health.status is PeerStatus.CONNECTED:
        total += CONNECTED_BONUS
    if not health.relayed:
        total += DIRECT_BONUS
    return total


def best_route(
    candidates: Sequence[MapRoute], health: Mapping[str, CandidateHealth], current: str | None
) -> str | None:
    """The ID of the route that should carry the group, or None when no candidate is eligible.

    `health` is keyed by route ID; candidates without an entry are skipped. `current` is the
    route chosen now: it is kept unless the best beats it by at least `STICKINESS`. There is no
    stickiness when `current` is None, not a candidate, or not eligible.
    """
    chosen: str | None = None
    chosen_score = 0.0
    current_score = 0.0
    # The reference walks a Go map (random order), so equal scores without a current route go
    # to whichever comes first. Walking by route ID and replacing only on a strictly better
    # score makes the smallest route ID win instead, every time.
    for route in sorted(candidates, key=lambda r: r.id):
        entry = health.get(route.id)
        value = score(route, entry) if entry is not None else None
        if value is None:
            continue
        # Scores are never negative, so the first eligible candidate is always taken.
        if value > chosen_score or chosen is None:
            chosen, chosen_score = route.id, value
        if route.id == current:
            current_score = value
    if chosen is None:
        return None
    # A current score of exactly 0 gets no stickiness: the reference uses 0 for "no current".
    if chosen != current and current_score != 0 and current_score + STICKINESS > chosen_score:
        return current
    return chosen
