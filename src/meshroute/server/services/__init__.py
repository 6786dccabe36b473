"""One service per resource: permission, validation, transaction, event. No HTTP here."""

from __future__ import annotations

from dataclasses import dataclass

from meshroute.server.services.accounts import AccountService
from meshroute.server.services.groups import GroupService
from meshroute.server.services.peers import PeerService
from meshroute.server.services.routes import RouteService
from meshroute.server.services.sessions import SessionService
from meshroute.server.services.setup_keys import SetupKeyService
from meshroute.server.services.uow import UnitOfWork
from meshroute.server.services.users import UserService


@dataclass(slots=True)
class Services:
    uow: UnitOfWork
    accounts: AccountService
    users: UserService
    groups: GroupService
    peers: PeerService
    setup_keys: SetupKeyService
    routes: RouteService
    sessions: SessionService

    @classmethod
    def create(cls, uow: UnitOfWork) -> Services:
        users = UserService(uow)
        return cls(
            uow=uow,
            accounts=AccountService(uow),
            users=users,
            groups=GroupService(uow),
            peers=PeerService(uow),
            setup_keys=SetupKeyService(uow),
            routes=RouteService(uow),
            sessions=SessionService(uow, users),
        )
