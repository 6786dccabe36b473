"""Routes: Get, List, Create, Save, Delete with the reference's permission, validation and events."""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

from meshroute.core import permissions
from meshroute.core.activity import Activity
from meshroute.core.errors import NotFound
from meshroute.core.ids import new_id
from meshroute.core.model import IPNetwork, NetworkType, Route
from meshroute.core.permissions import Op
from meshroute.core.routes import event_meta, validate_route
from meshroute.server.services.uow import UnitOfWork

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


class RouteService:
    def __init__(self, uow: UnitOfWork) -> None:
        self.uow = uow

    def get(self, account_id: str, user_id: str, route_id: str) -> Route:
        with self.uow.read(account_id) as tx:
            permissions.require(tx.user(user_id), account_id, MODULE, Op.READ)
            route = tx.route(route_id)
            if route is None:
                raise NotFound(f"route: {route_id} not found")
            return route

    def list_all(self, account_id: str, user_id: str) -> list[Route]:
        with self.uow.read(account_id) as tx:
            permissions.require(tx.user(user_id), account_id, MODULE, Op.READ)
            return tx.routes()

    def create(self, account_id: str, user_id: str, data: RouteInput) -> Route:
        with self.uow.write(account_id) as tx:
            permissions.require(tx.user(user_id), account_id, MODULE, Op.CREATE)
            route = validate_route(data.to_route(new_id(), account_id), tx)
            route.public_id = new_id()
            tx.insert_route(route)
            tx.changed("route", route.id)
            tx.add_event(account_id, Activity.ROUTE_CREATED, user_id, route.id, event_meta(route))
        return route

    def save(self, account_id: str, user_id: str, route_id: str, data: RouteInput) -> Route:
        """Full replacement. Validation runs before the existence check, as in the reference."""
        with self.uow.write(account_id) as tx:
            permissions.require(tx.user(user_id), account_id, MODULE, Op.UPDATE)
            route = validate_route(data.to_route(route_id, account_id), tx)
            old = tx.route(route_id)
            if old is None:
                raise NotFound(f"route: {route_id} not found")
            route.public_id = old.public_id
            tx.update_route(route)
            tx.changed("route", route.id)
            tx.add_event(account_id, Activity.ROUTE_UPDATED, user_id, route.id, event_meta(route))
        return route

    def delete(self, account_id: str, user_id: str, route_id: str) -> Route:
        with self.uow.write(account_id) as tx:
            permissions.require(tx.user(user_id), account_id, MODULE, Op.DELETE)
            route = tx.route(route_id)
            if route is None or tx.delete_route(route_id) == 0:
                raise NotFound(f"failed to delete route {route_id}: route: {route_id} not found")
            tx.changed("route", route_id, deleted=True)
            tx.add_event(account_id, Activity.ROUTE_REMOVED, user_id, route_id, event_meta(copy.copy(route)))
        return route
