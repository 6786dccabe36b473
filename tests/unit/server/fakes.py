"""A store in memory implementing `store.ports`, and the fake unit of work over it: service rules
are unit-tested with it, without a database (the same services run on SQL in tests/integration).

Objects go in and come out as copies, as they would through rows: a service that changes an
object it read changes nothing until it writes it back. A write transaction that raises leaves
the store as it was.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar

from meshroute.core.changes import ChangeSet
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
from meshroute.core.routes import destination
from meshroute.core.status import StatusReport
from meshroute.server.clock import utcnow
from meshroute.server.services import Services
from meshroute.server.services.uow import UnitOfWork
from meshroute.server.store.summaries import PeerSummary

T = TypeVar("T")


def _copy(obj: T) -> T:
    return copy.deepcopy(obj)


@dataclass
class State:
    accounts: dict[str, Account] = field(default_factory=dict)
    users: dict[str, User] = field(default_factory=dict)
    tokens: dict[str, PersonalAccessToken] = field(default_factory=dict)
    peers: dict[str, Peer] = field(default_factory=dict)
    credentials: dict[str, str | None] = field(default_factory=dict)
    groups: dict[str, Group] = field(default_factory=dict)  # in creation order
    setup_keys: dict[str, SetupKey] = field(default_factory=dict)
    routes: dict[str, Route] = field(default_factory=dict)  # in creation order
    status_reports: dict[str, PeerStatus] = field(default_factory=dict)
    web_sessions: dict[str, WebSession] = field(default_factory=dict)
    events: list[Event] = field(default_factory=list)


class _Repo:
    def __init__(self, state: State, account_id: str) -> None:
        self.s = state
        self.account_id = account_id


class Accounts(_Repo):
    def get(self, account_id: str) -> Account | None:
        return _copy(self.s.accounts.get(account_id))

    def lock(self, account_id: str) -> Account | None:
        return self.get(account_id)  # one thread at a time in unit tests

    def first(self) -> Account | None:
        return _copy(min(self.s.accounts.values(), key=lambda a: a.created_at, default=None))

    def lock_bootstrap(self) -> None:
        """Nothing to lock: one fake store, one thread (the real one locks against other replicas)."""

    def add(self, account: Account) -> None:
        self.s.accounts[account.id] = _copy(account)

    def update_settings(self, account: Account) -> None:
        serial = self.s.accounts[account.id].network_serial
        self.s.accounts[account.id] = _copy(account)
        self.s.accounts[account.id].network_serial = serial

    def serials(self, account_ids: list[str]) -> dict[str, int]:
        return {a: self.s.accounts[a].network_serial for a in account_ids if a in self.s.accounts}

    def bump_serial(self, account_id: str) -> int:
        self.s.accounts[account_id].network_serial += 1
        return self.s.accounts[account_id].network_serial


class Users(_Repo):
    def get(self, user_id: str) -> User | None:
        return _copy(self.s.users.get(user_id))

    def all(self, account_id: str) -> list[User]:
        return [_copy(u) for u in self.s.users.values() if u.account_id == account_id]

    def add(self, user: User) -> None:
        self.s.users[user.id] = _copy(user)

    def update(self, user: User) -> None:
        self.s.users[user.id] = _copy(user)

    def delete(self, user_id: str) -> None:
        self.s.users.pop(user_id, None)
        self.s.tokens = {k: v for k, v in self.s.tokens.items() if v.user_id != user_id}


class Tokens(_Repo):
    def by_hash(self, hashed: str) -> PersonalAccessToken | None:
        return _copy(next((p for p in self.s.tokens.values() if p.hashed_token == hashed), None))

    def all(self, user_id: str) -> list[PersonalAccessToken]:
        return [_copy(p) for p in self.s.tokens.values() if p.user_id == user_id]

    def add(self, token: PersonalAccessToken) -> None:
        self.s.tokens[token.id] = _copy(token)

    def delete(self, token_id: str) -> None:
        self.s.tokens.pop(token_id, None)

    def touch(self, token_id: str, when: datetime) -> None:
        self.s.tokens[token_id].last_used = when


class Peers(_Repo):
    def get(self, peer_id: str) -> Peer | None:
        p = self.s.peers.get(peer_id)
        return _copy(p) if p is not None and p.account_id == self.account_id else None

    def by_key(self, key: str) -> Peer | None:
        return _copy(next((p for p in self.s.peers.values() if p.key == key), None))

    def all(self, account_id: str) -> list[Peer]:
        return [_copy(p) for p in self.s.peers.values() if p.account_id == account_id]

    def by_ids(self, ids: Iterable[str]) -> dict[str, Peer]:
        return {i: p for i in set(ids) if (p := self.get(i)) is not None}

    def summaries(self, account_id: str, peer_id: str | None = None) -> list[PeerSummary]:
        fields = PeerSummary._fields
        return [
            PeerSummary._make(
                str(getattr(p, f)) if f in ("ip", "ipv6") and getattr(p, f) else getattr(p, f) for f in fields
            )
            for p in self.all(account_id)
            if peer_id in (None, p.id)
        ]

    def used_ips(self, account_id: str) -> set[str]:
        return {str(p.ip) for p in self.all(account_id)}

    def used_dns_labels(self, account_id: str) -> set[str]:
        return {p.dns_label for p in self.all(account_id)}

    def add(self, peer: Peer, credential_hash: str | None = None) -> None:
        self.s.peers[peer.id] = _copy(peer)
        self.s.credentials[peer.id] = credential_hash

    def update(self, peer: Peer) -> None:
        stored = self.s.peers[peer.id]
        updated = _copy(peer)
        updated.connected, updated.last_seen = stored.connected, stored.last_seen
        self.s.peers[peer.id] = updated

    def delete(self, peer_id: str) -> None:
        self.s.peers.pop(peer_id, None)
        self.s.status_reports.pop(peer_id, None)  # ON DELETE CASCADE
        for g in self.s.groups.values():
            g.peers = [p for p in g.peers if p != peer_id]

    def set_status(
        self, peer_id: str, connected: bool, when: datetime, *, if_last_seen: datetime | None = None
    ) -> None:
        p = self.s.peers.get(peer_id)
        if p is not None and (if_last_seen is None or p.last_seen == if_last_seen):
            p.connected, p.last_seen = connected, when

    def reset_connections(self) -> None:
        for p in self.s.peers.values():
            p.connected = False

    def credential_hash(self, peer_id: str) -> str | None:
        return self.s.credentials.get(peer_id)


class Groups(_Repo):
    def get(self, group_id: str) -> Group | None:
        g = self.s.groups.get(group_id)
        return _copy(g) if g is not None and g.account_id == self.account_id else None

    def by_name(self, account_id: str, name: str) -> Group | None:
        found = next(
            (g for g in self.s.groups.values() if g.account_id == account_id and g.name == name), None
        )
        return _copy(found)

    def all(self, account_id: str) -> list[Group]:
        return [_copy(g) for g in self.s.groups.values() if g.account_id == account_id]

    def by_ids(self, ids: Iterable[str]) -> dict[str, Group]:
        return {i: g for i in set(ids) if i and (g := self.get(i)) is not None}

    def memberships(self, account_id: str) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
        groups = self.all(account_id)
        return [(g.id, g.name) for g in groups], [(g.id, p) for g in groups for p in g.peers]

    def add(self, group: Group) -> None:
        self.s.groups[group.id] = _copy(group)

    def update(self, group: Group) -> None:
        self.s.groups[group.id] = _copy(group)

    def add_member(self, group: Group, peer_id: str) -> None:
        self.s.groups[group.id].peers.append(peer_id)

    def delete(self, group_id: str) -> None:
        self.s.groups.pop(group_id, None)


class SetupKeys(_Repo):
    def get(self, key_id: str) -> SetupKey | None:
        k = self.s.setup_keys.get(key_id)
        return _copy(k) if k is not None and k.account_id == self.account_id else None

    def by_hash(self, key_hash: str) -> SetupKey | None:
        return _copy(next((k for k in self.s.setup_keys.values() if k.key_hash == key_hash), None))

    def all(self, account_id: str) -> list[SetupKey]:
        return [_copy(k) for k in self.s.setup_keys.values() if k.account_id == account_id]

    def add(self, key: SetupKey) -> None:
        self.s.setup_keys[key.id] = _copy(key)

    def update(self, key: SetupKey) -> None:
        self.s.setup_keys[key.id] = _copy(key)

    def delete(self, key_id: str) -> None:
        self.s.setup_keys.pop(key_id, None)


class Routes(_Repo):
    def get(self, route_id: str) -> Route | None:
        r = self.s.routes.get(route_id)
        return _copy(r) if r is not None and r.account_id == self.account_id else None

    def all(self) -> list[Route]:
        return [_copy(r) for r in self.s.routes.values() if r.account_id == self.account_id]

    def served_by(self, group_ids: Sequence[str]) -> list[Route]:
        return [r for r in self.all() if set(r.peer_groups) & set(group_ids)]

    def served_twice(self, group_ids: Sequence[str]) -> bool:
        served = [destination(r) for r in self.served_by(group_ids)]
        return len(served) != len(set(served))

    def add(self, route: Route) -> None:
        self.s.routes[route.id] = _copy(route)

    def update(self, route: Route) -> None:
        self.s.routes[route.id] = _copy(route)

    def delete(self, route_id: str) -> int:
        return 1 if self.get(route_id) is not None and self.s.routes.pop(route_id) else 0


class StatusReports(_Repo):
    def get(self, peer_id: str) -> PeerStatus | None:
        found = self.s.status_reports.get(peer_id)
        return found if found is not None and found.account_id == self.account_id else None

    def for_peers(self, peer_ids: Iterable[str]) -> dict[str, PeerStatus]:
        return {p: found for p in set(peer_ids) if (found := self.get(p)) is not None}

    def save(self, peer_id: str, report: StatusReport, when: datetime) -> None:
        peer = self.s.peers.get(peer_id)
        stored = self.s.status_reports.get(peer_id)
        if peer is not None and (stored is None or stored.report != report):
            self.s.status_reports[peer_id] = PeerStatus(peer_id, peer.account_id, report, when)


class WebSessions(_Repo):
    def get(self, id_hash: str) -> WebSession | None:
        found = self.s.web_sessions.get(id_hash)
        return _copy(found) if found is not None and found.token_id in self.s.tokens else None

    def add(self, session: WebSession) -> None:
        self.s.web_sessions[session.id_hash] = _copy(session)

    def touch(self, id_hash: str, when: datetime) -> None:
        if id_hash in self.s.web_sessions:
            self.s.web_sessions[id_hash].last_seen = when

    def delete(self, id_hash: str) -> None:
        self.s.web_sessions.pop(id_hash, None)

    def delete_expired(self, now: datetime, idle_since: datetime) -> int:
        gone = [k for k, w in self.s.web_sessions.items() if w.expires_at <= now or w.last_seen <= idle_since]
        for k in gone:
            del self.s.web_sessions[k]
        return len(gone)


class Events(_Repo):
    def add(
        self, account_id: str, activity: int, initiator_id: str, target_id: str, meta: dict[str, Any]
    ) -> None:
        event = Event(len(self.s.events) + 1, utcnow(), activity, initiator_id, target_id, account_id, meta)
        self.s.events.append(_copy(event))

    def all(self, account_id: str, limit: int = 10000) -> list[Event]:
        return [_copy(e) for e in reversed(self.s.events) if e.account_id == account_id][:limit]


class MemoryRepositories:
    def __init__(self, state: State, account_id: str) -> None:
        self.account_id = account_id
        self.accounts = Accounts(state, account_id)
        self.users = Users(state, account_id)
        self.tokens = Tokens(state, account_id)
        self.peers = Peers(state, account_id)
        self.groups = Groups(state, account_id)
        self.setup_keys = SetupKeys(state, account_id)
        self.routes = Routes(state, account_id)
        self.status_reports = StatusReports(state, account_id)
        self.web_sessions = WebSessions(state, account_id)
        self.events = Events(state, account_id)


class MemoryStore:
    def __init__(self) -> None:
        self.state = State()

    @contextmanager
    def transaction(self, *, write: bool, account_id: str = "") -> Iterator[MemoryRepositories]:
        before = copy.deepcopy(self.state) if write else None
        try:
            yield MemoryRepositories(self.state, account_id)
        except BaseException:
            if before is not None:
                self.state.__dict__.update(before.__dict__)  # rolled back
            raise


class FakeUnitOfWork(UnitOfWork):
    """The unit of work over a memory store; `committed` holds the change sets, in commit order."""

    def __init__(self) -> None:
        self.memory = MemoryStore()
        self.committed: list[ChangeSet] = []
        super().__init__(self.memory, after_commit=self.committed.append)


def fake_services() -> tuple[Services, FakeUnitOfWork]:
    uow = FakeUnitOfWork()
    return Services.create(uow), uow
