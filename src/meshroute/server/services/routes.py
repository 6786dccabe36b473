"""Routes: Get, List, Create, Save, Delete with the reference's permission, validation and events."""

from __future__ import annotations

import copy
from collections.abc import Iterable
from dataclasses import dataclass, field

from meshroute.core import permissions
from meshroute.core.activity import Activity
from meshroute.core.changes import RouteDeleted, RouteUpserted
from meshroute.core.errors import NotFound
from meshroute.core.ids import new_id
from meshroute.core.model import Group, IPNetwork, NetworkType, Peer, Route
from meshroute.core.permissions import Op
from meshroute.core.routes import event_meta, validate_route
from meshroute.server.services.uow import UnitOfWork, WriteTx

MODULE = "routes"


@dataclass(slots=True)
class RouteInput:
    """What a caller asks for: the fields of a route a user may set."""

    net_id: str
    network: IPNetwork | None
    network_type: NetworkType
    domains: list[str] = field(default_factory=list)
    description: str = ""
    peer: str = ""
    peer_groups: list[str] = field(default_factory=list)
    enabled: bool = False
    masquerade: bool = False
    metric: int = 0
    keep_route: bool = False
    groups: list[str] = field(default_factory=list)
    access_control_groups: list[str] = field(default_factory=list)
    skip_auto_apply: bool = False

    def to_route(self, route_id: str, account_id: str) -> Route:
        return Route(
            id=route_id,
            account_id=account_id,
            net_id=self.net_id,
            network=self.network,
            network_type=self.network_type,
            description=self.description,
            domains=list(self.domains),
            peer=self.peer,
            peer_groups=list(self.peer_groups),
            enabled=self.enabled,
            masquerade=self.masquerade,
            metric=self.metric,
            keep_route=self.keep_route,
            groups=list(self.groups),
            access_control_groups=list(self.access_control_groups),
            skip_auto_apply=self.skip_auto_apply,
        )


class _Context:
    """What route validation asks of the account (`core.routes.RouteContext`), from a transaction."""

    def __init__(self, tx: WriteTx) -> None:
        self.tx = tx

    def groups_by_id(self, ids: Iterable[str]) -> dict[str, Group]:
        return self.tx.groups.by_ids(ids)

    def peer(self, peer_id: str) -> Peer | None:
        return self.tx.peers.get(peer_id)

    def routes(self) -> Iterable[Route]:
        return self.tx.routes.all()


class RouteService:
    def __init__(self, uow: UnitOfWork) -> None:
        self.uow = uow

    def create(self, account_id: str, user_id: str, data: RouteInput) -> Route:
        with self.uow.write(account_id) as tx:
            permissions.require(tx.users.get(user_id), account_id, MODULE, Op.CREATE)
            route = validate_route(data.to_route(new_id(), account_id), _Context(tx))
            route.public_id = new_id()
            tx.routes.add(route)
            tx.record(RouteUpserted(route))
            tx.events.add(account_id, Activity.ROUTE_CREATED, user_id, route.id, event_meta(route))
        return route

    def save(self, account_id: str, user_id: str, route_id: str, data: RouteInput) -> Route:
        """Full replacement. Validation runs before the existence check, as in the reference."""
        with self.uow.write(account_id) as tx:
            permissions.require(tx.users.get(user_id), account_id, MODULE, Op.UPDATE)
            route = validate_route(data.to_route(route_id, account_id), _Context(tx))
            old = tx.routes.get(route_id)
            if old is None:
                raise NotFound(f"route: {route_id} not found")
            route.public_id = old.public_id
            tx.routes.update(route)
            tx.record(RouteUpserted(route))
            tx.events.add(account_id, Activity.ROUTE_UPDATED, user_id, route.id, event_meta(route))
        return route

    def delete(self, account_id: str, user_id: str, route_id: str) -> Route:
        with self.uow.write(account_id) as tx:
            permissions.require(tx.users.get(user_id), account_id, MODULE, Op.DELETE)
            route = tx.routes.get(route_id)
            if route is None or tx.routes.delete(route_id) == 0:
                raise NotFound(f"failed to delete route {route_id}: route: {route_id} not found")
            tx.record(RouteDeleted(route_id))
            tx.events.add(account_id, Activity.ROUTE_REMOVED, user_id, route_id, event_meta(copy.copy(route)))
        return route
