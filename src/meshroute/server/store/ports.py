"""What the services and views need of a store, one repository per aggregate, as Protocols.

`sql/` implements them over SQLAlchemy (SQLite and PostgreSQL); the unit tests' fake unit of work
(`tests/unit/server/fakes.py`) implements them in memory. A repository works inside one
transaction; the ones scoped to an account (`get` of a peer, a group, a route, a setup key) see
only that account's objects.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from contextlib import AbstractContextManager
from datetime import datetime
from typing import Any, Protocol

from meshroute.core.model import (
    Account,
    Event,
    Group,
    Peer,
    PersonalAccessToken,
    Route,
    SetupKey,
    User,
    WebSession,
)
from meshroute.core.route_status import PeerStatus
from meshroute.core.status import StatusReport
from meshroute.server.store.summaries import PeerSummary


class AccountRepository(Protocol):
    def get(self, account_id: str) -> Account | None: ...

    def lock(self, account_id: str) -> Account | None:
        """The account, locked until the transaction ends: every write of one account takes turns."""
        ...

    def first(self) -> Account | None: ...

    def lock_bootstrap(self) -> None:
        """Servers starting together on an empty store take turns creating the first account."""
        ...

    def add(self, account: Account) -> None: ...

    def update_settings(self, account: Account) -> None: ...

    def serials(self, account_ids: list[str]) -> dict[str, int]: ...

    def bump_serial(self, account_id: str) -> int: ...


class UserRepository(Protocol):
    def get(self, user_id: str) -> User | None: ...

    def all(self, account_id: str) -> list[User]: ...

    def add(self, user: User) -> None: ...

    def update(self, user: User) -> None:
        """Role, blocked state, auto groups and name."""
        ...

    def delete(self, user_id: str) -> None:
        """The user and their tokens."""
        ...


class TokenRepository(Protocol):
    def by_hash(self, hashed: str) -> PersonalAccessToken | None: ...

    def all(self, user_id: str) -> list[PersonalAccessToken]: ...

    def add(self, token: PersonalAccessToken) -> None: ...

    def delete(self, token_id: str) -> None: ...

    def touch(self, token_id: str, when: datetime) -> None: ...


class PeerRepository(Protocol):
    def get(self, peer_id: str) -> Peer | None: ...

    def by_key(self, key: str) -> Peer | None:
        """Of any account: WireGuard keys are unique in the whole store."""
        ...

    def all(self, account_id: str) -> list[Peer]: ...

    def by_ids(self, ids: Iterable[str]) -> dict[str, Peer]: ...

    def summaries(self, account_id: str, peer_id: str | None = None) -> list[PeerSummary]: ...

    def used_ips(self, account_id: str) -> set[str]: ...

    def used_dns_labels(self, account_id: str) -> set[str]: ...

    def add(self, peer: Peer, credential_hash: str | None = None) -> None: ...

    def update(self, peer: Peer) -> None:
        """Everything but the connection status, which has its own writer (`set_status`)."""
        ...

    def delete(self, peer_id: str) -> None:
        """The peer and its group memberships."""
        ...

    def set_status(
        self, peer_id: str, connected: bool, when: datetime, *, if_last_seen: datetime | None = None
    ) -> None:
        """`if_last_seen`: only if nobody (another stream, another replica) connected it since."""
        ...

    def reset_connections(self) -> None: ...

    def credential_hash(self, peer_id: str) -> str | None: ...


class GroupRepository(Protocol):
    def get(self, group_id: str) -> Group | None: ...

    def by_name(self, account_id: str, name: str) -> Group | None: ...

    def all(self, account_id: str) -> list[Group]: ...

    def by_ids(self, ids: Iterable[str]) -> dict[str, Group]: ...

    def memberships(self, account_id: str) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
        """(ID, name) of the groups in creation order, and (group ID, peer ID) of every member."""
        ...

    def add(self, group: Group) -> None: ...

    def update(self, group: Group) -> None:
        """Name and members (in their order)."""
        ...

    def add_member(self, group: Group, peer_id: str) -> None:
        """After the group's last member."""
        ...

    def delete(self, group_id: str) -> None: ...


class SetupKeyRepository(Protocol):
    def get(self, key_id: str) -> SetupKey | None: ...

    def by_hash(self, key_hash: str) -> SetupKey | None:
        """Of any account: a key names its account."""
        ...

    def all(self, account_id: str) -> list[SetupKey]: ...

    def add(self, key: SetupKey) -> None: ...

    def update(self, key: SetupKey) -> None: ...

    def delete(self, key_id: str) -> None: ...


class RouteRepository(Protocol):
    def get(self, route_id: str) -> Route | None: ...

    def all(self) -> list[Route]: ...

    def served_by(self, group_ids: Sequence[str]) -> list[Route]:
        """Routes one of whose peer groups is in `group_ids`."""
        ...

    def served_twice(self, group_ids: Sequence[str]) -> bool:
        """Whether two routes served by `group_ids` have one destination."""
        ...

    def add(self, route: Route) -> None: ...

    def update(self, route: Route) -> None: ...

    def delete(self, route_id: str) -> int:
        """How many routes were deleted (0 or 1)."""
        ...


class StatusReportRepository(Protocol):
    """The last status report of each peer: written by its agent outside the account lock (no
    serial, no event), deleted with the peer."""

    def get(self, peer_id: str) -> PeerStatus | None: ...

    def for_peers(self, peer_ids: Iterable[str]) -> dict[str, PeerStatus]:
        """By peer ID, for those of `peer_ids` that reported."""
        ...

    def save(self, peer_id: str, report: StatusReport, when: datetime) -> None:
        """Replaces the peer's report (of any account: the peer's own is stored with it). An
        unchanged report changes nothing, its time included; a peer that no longer exists stores
        nothing."""
        ...


class WebSessionRepository(Protocol):
    """Dashboard sign-ins, by the hash of the cookie's value (of any account: a session names its
    own). Deleting its token (or the token's user) deletes the session."""

    def get(self, id_hash: str) -> WebSession | None: ...

    def add(self, session: WebSession) -> None: ...

    def touch(self, id_hash: str, when: datetime) -> None: ...

    def delete(self, id_hash: str) -> None: ...

    def delete_expired(self, now: datetime, idle_since: datetime) -> int:
        """Sessions past their end, or not used since `idle_since`; how many."""
        ...


class EventRepository(Protocol):
    def add(
        self, account_id: str, activity: int, initiator_id: str, target_id: str, meta: dict[str, Any]
    ) -> None: ...

    def all(self, account_id: str, limit: int = 10000) -> list[Event]:
        """Newest first."""
        ...


class Repositories(Protocol):
    """The repositories of one transaction, scoped to `account_id` ("" for none)."""

    @property
    def account_id(self) -> str: ...

    @property
    def accounts(self) -> AccountRepository: ...

    @property
    def users(self) -> UserRepository: ...

    @property
    def tokens(self) -> TokenRepository: ...

    @property
    def peers(self) -> PeerRepository: ...

    @property
    def groups(self) -> GroupRepository: ...

    @property
    def setup_keys(self) -> SetupKeyRepository: ...

    @property
    def routes(self) -> RouteRepository: ...

    @property
    def status_reports(self) -> StatusReportRepository: ...

    @property
    def web_sessions(self) -> WebSessionRepository: ...

    @property
    def events(self) -> EventRepository: ...


class Store(Protocol):
    def transaction(self, *, write: bool, account_id: str = "") -> AbstractContextManager[Repositories]:
        """Repositories over one transaction: committed when the block ends, rolled back when it
        raises. A write transaction is serialized against other writers where the store can."""
        ...
