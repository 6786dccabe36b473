"""Typed change events: what one committed write changed, recorded by the services.

A service records one event per object it creates, changes or deletes, inside the write
transaction; the unit of work collects them into a `ChangeSet` (with the account's new network
serial) and hands it on after the commit. Upserts carry the object as committed, deletions its
ID, so whoever consumes them (the network-map engine) never reads the store again for them.
Writes to one account are serialized, so the objects of a change set are exactly the state at
its serial. Nothing mutates an object once it is recorded.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from meshroute.core.model import Account, Group, Peer, PersonalAccessToken, Route, SetupKey, User


@dataclass(frozen=True, slots=True)
class RouteUpserted:
    route: Route


@dataclass(frozen=True, slots=True)
class RouteDeleted:
    route_id: str


@dataclass(frozen=True, slots=True)
class GroupUpserted:
    group: Group  # full new membership


@dataclass(frozen=True, slots=True)
class GroupDeleted:
    group_id: str


@dataclass(frozen=True, slots=True)
class PeerUpserted:
    peer: Peer  # join, rename, key/IP/endpoint/capability change


@dataclass(frozen=True, slots=True)
class PeerDeleted:
    peer_id: str


@dataclass(frozen=True, slots=True)
class AccountUpdated:
    account: Account  # its settings changed


@dataclass(frozen=True, slots=True)
class UserUpserted:
    user: User


@dataclass(frozen=True, slots=True)
class UserDeleted:
    user_id: str


@dataclass(frozen=True, slots=True)
class TokenCreated:
    token: PersonalAccessToken


@dataclass(frozen=True, slots=True)
class TokenDeleted:
    token_id: str


@dataclass(frozen=True, slots=True)
class SetupKeyUpserted:
    key: SetupKey


@dataclass(frozen=True, slots=True)
class SetupKeyDeleted:
    key_id: str


# What a peer's network map depends on: the network-map engine applies these and only these.
MapChange = RouteUpserted | RouteDeleted | GroupUpserted | GroupDeleted | PeerUpserted | PeerDeleted
MAP_CHANGES = (RouteUpserted, RouteDeleted, GroupUpserted, GroupDeleted, PeerUpserted, PeerDeleted)

Change = (
    MapChange
    | AccountUpdated
    | UserUpserted
    | UserDeleted
    | TokenCreated
    | TokenDeleted
    | SetupKeyUpserted
    | SetupKeyDeleted
)


@dataclass(slots=True)
class ChangeSet:
    """The changes one committed transaction made to one account, and the serial it moved it to."""

    account_id: str
    serial: int
    changes: list[Change] = field(default_factory=list)

    def map_changes(self) -> list[MapChange]:
        return [c for c in self.changes if isinstance(c, MAP_CHANGES)]
