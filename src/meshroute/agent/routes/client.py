"""The client side of routes at run time: the user's selection (persisted in the state dir), the
route plan of every map and health change, and table 7120 with its rules kept in line with it.

The engine calls `update` with each map and `replan` when a candidate's health changes; both
return the plan, whose AllowedIPs the engine folds into the WireGuard peer set (one
transaction) before `apply_kernel` puts the kernel routes in place.
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

from meshroute.agent.routes import selection
from meshroute.agent.routes.plan import RouteManager, RoutePlan, client_groups
from meshroute.agent.routes.scoring import CandidateHealth, score
from meshroute.agent.routing.rtnl import TableRoute
from meshroute.core.networkmap.types import MapRoute, NetworkMap

log = logging.getLogger(__name__)
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class KernelRouting(Protocol):
    """Table 7120 and its rules (`routing.policy.PolicyRouting`, or a fake in unit tests)."""

    active: bool

    async def setup(self) -> None: ...

    async def set_bypass(self, addresses: Iterable[str]) -> None: ...

    async def apply(self, wanted: set[TableRoute]) -> tuple[int, int]: ...

    async def teardown(self) -> None: ...


class ClientRoutes:
    def __init__(self, state_dir: Path, policy: KernelRouting) -> None:
        self.path = state_dir / selection.SELECTION_FILE
        try:
            self.selector = selection.load_selector(self.path)
        except (OSError, ValueError) as exc:
            log.warning("ignoring the saved route selection (%s): every route is selected", exc)
            self.selector = selection.RouteSelector()
        self.manager = RouteManager()
        self.policy = policy
        self.map: NetworkMap | None = None
        self.plan = RoutePlan(frozenset(), {}, ())
        self._health: Callable[[MapRoute], CandidateHealth] | None = None
        self._overlay: Sequence[Network] = ()
        # a domain group's learned host prefixes (set by the engine when it has domain routes)
        self.learned: Callable[[str], Iterable[str]] = lambda _: ()

    @property
    def groups(self) -> dict[str, tuple[MapRoute, ...]]:
        return client_groups(self.map) if self.map is not None else {}

    def update(
        self, m: NetworkMap, health: Callable[[MapRoute], CandidateHealth], overlay: Sequence[Network]
    ) -> RoutePlan:
        """A new map: reconcile the exit-node choice (persisted when it changed), then plan."""
        self.map, self._health, self._overlay = m, health, overlay
        before = self.selector.to_json()
        selection.reconcile_exit_nodes(self.selector, self.groups)
        if self.selector.to_json() != before:
            self._save()
        return self.replan()

    def replan(self) -> RoutePlan:
        if self.map is None or self._health is None:
            return self.plan
        groups = self.groups
        selected = self.selector.filter_selected_exit_nodes(groups)
        health = {r.id: self._health(r) for routes in selected.values() for r in routes}
        before = {g.ha_id: g.chosen for g in self.plan.groups}
        self.plan = self.manager.plan(self.map, selected, health, self._overlay, self.learned)
        for g in self.plan.groups:
            if g.installed and before.get(g.ha_id, g.chosen) != g.chosen:
                peer = next((r.peer_id for r in g.candidates if r.id == g.chosen), None)
                log.info("route %s now via %s", g.ha_id, peer or "nobody")
        return self.plan

    async def apply_kernel(self, bypass: Sequence[str]) -> None:
        """Table 7120 and its rules (set up with the first route, kept until stop)."""
        if self.plan.table and not self.policy.active:
            await self.policy.setup()
        if self.policy.active:
            await self.policy.set_bypass(bypass)
            await self.policy.apply(set(self.plan.table))

    async def teardown(self) -> None:
        await self.policy.teardown()

    # -- the user's selection (control socket) ---------------------------------------------------
    def select(self, ids: Sequence[str], append: bool) -> list[str]:
        errors = selection.select_routes(self.selector, ids, append, self.groups)
        self._save()
        self.replan()
        return errors

    def select_all(self) -> None:
        selection.select_all_routes(self.selector, self.groups)
        self._save()
        self.replan()

    def deselect(self, ids: Sequence[str]) -> list[str]:
        errors = selection.deselect_routes(self.selector, ids, self.groups)
        self._save()
        self.replan()
        return errors

    def deselect_all(self) -> None:
        selection.deselect_all_routes(self.selector)
        self._save()
        self.replan()

    def _save(self) -> None:
        try:
            selection.save_selector(self.path, self.selector)
        except OSError as exc:
            log.warning("could not save the route selection to %s: %s", self.path, exc)

    # -- what `meshroute agent routes list` shows -----------------------------------------------
    def describe(self, peer_names: Mapping[str, str]) -> list[dict[str, Any]]:
        out = []
        for g in self.plan.groups:
            candidates = []
            for r in g.candidates:
                health = self._health(r) if self._health is not None else None
                candidates.append(
                    {
                        "route_id": r.id,
                        "peer_id": r.peer_id,
                        "peer": peer_names.get(r.peer_key, r.peer_id),
                        "metric": r.metric,
                        "state": health.status.value if health else None,
                        "latency_ms": round(health.latency_ms, 3)
                        if health and health.latency_ms is not None
                        else None,
                        "score": score(r, health) if health else None,
                        "skip_auto_apply": r.skip_auto_apply,
                        "chosen": r.id == g.chosen,
                    }
                )
            first = g.candidates[0]
            out.append(
                {
                    "network_id": g.net_id,
                    "ha_id": g.ha_id,
                    "network": None if first.domains else g.network,
                    "domains": list(g.domains),
                    "exit_node": first.is_exit_node,
                    "keep_route": first.keep_route,
                    "selected": g.selected,
                    "installed": g.installed,
                    "routing_peer": peer_names.get(
                        next((r.peer_key for r in g.candidates if r.id == g.chosen), ""), None
                    ),
                    "note": g.note,
                    "candidates": candidates,
                }
            )
        return out
