"""Repository over one transaction: queries in, core objects out. Implements `RouteContext`."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, Row, delete, func, insert, select, text, update

from meshroute.core.model import (
    Account,
    Event,
    Group,
    NetworkType,
    Peer,
    PersonalAccessToken,
    Role,
    Route,
    SetupKey,
    User,
)
from meshroute.server.store import tables as t


def utcnow() -> datetime:
    return datetime.now(UTC)


def _account(r: Row[Any]) -> Account:
    return Account(
        id=r.id,
        domain=r.domain,
        network_v4=ipaddress.IPv4Network(r.network_v4),
        network_v6=ipaddress.IPv6Network(r.network_v6),
        network_serial=r.network_serial,
        created_at=r.created_at,
        created_by=r.created_by,
        peer_login_expiration_enabled=r.peer_login_expiration_enabled,
        peer_login_expiration=r.peer_login_expiration,
        peer_inactivity_expiration_enabled=r.peer_inactivity_expiration_enabled,
        peer_inactivity_expiration=r.peer_inactivity_expiration,
        regular_users_view_blocked=r.regular_users_view_blocked,
    )


def _user(r: Row[Any]) -> User:
    return User(
        id=r.id,
        account_id=r.account_id,
        role=Role(r.role),
        name=r.name,
        email=r.email,
        is_service_user=r.is_service_user,
        blocked=r.blocked,
        auto_groups=list(r.auto_groups),
        issued=r.issued,
        created_at=r.created_at,
        last_login=r.last_login,
    )


def _pat(r: Row[Any]) -> PersonalAccessToken:
    return PersonalAccessToken(
        id=r.id,
        user_id=r.user_id,
        name=r.name,
        hashed_token=r.hashed_token,
        expiration_date=r.expiration_date,
        created_by=r.created_by,
        created_at=r.created_at,
        last_used=r.last_used,
    )


_PEER_FIELDS = [
    "id",
    "account_id",
    "key",
    "name",
    "hostname",
    "dns_label",
    "created_at",
    "os",
    "kernel_version",
    "version",
    "connection_ip",
    "connected",
    "last_seen",
    "last_login",
    "user_id",
    "setup_key_id",
    "ssh_enabled",
    "login_expiration_enabled",
    "inactivity_expiration_enabled",
    "ephemeral",
    "ipv6_capable",
]


def _peer(r: Row[Any]) -> Peer:
    m = r._mapping
    return Peer(
        ip=ipaddress.IPv4Address(r.ip),
        ipv6=ipaddress.IPv6Address(r.ipv6) if r.ipv6 else None,
        endpoints=list(r.endpoints),
        **{f: m[f] for f in _PEER_FIELDS},
    )


def _peer_values(p: Peer) -> dict[str, Any]:
    values = {f: getattr(p, f) for f in _PEER_FIELDS}
    values.update(ip=str(p.ip), ipv6=str(p.ipv6) if p.ipv6 else None, endpoints=list(p.endpoints))
    return values


_KEY_FIELDS = [
    "id",
    "account_id",
    "name",
    "key_hash",
    "key_prefix",
    "type",
    "created_at",
    "updated_at",
    "expires_at",
    "revoked",
    "used_times",
    "last_used",
    "usage_limit",
    "ephemeral",
    "allow_extra_dns_labels",
]


def _setup_key(r: Row[Any]) -> SetupKey:
    m = r._mapping
    return SetupKey(auto_groups=list(r.auto_groups), **{f: m[f] for f in _KEY_FIELDS})


def _route(r: Row[Any]) -> Route:
    return Route(
        id=r.id,
        account_id=r.account_id,
        public_id=r.public_id,
        net_id=r.net_id,
        description=r.description,
        network=ipaddress.ip_network(r.network) if r.network else None,
        domains=list(r.domains),
        network_type=NetworkType(r.network_type),
        peer=r.peer,
        peer_groups=list(r.peer_groups),
        enabled=r.enabled,
        masquerade=r.masquerade,
        metric=r.metric,
        keep_route=r.keep_route,
        groups=list(r.groups),
        access_control_groups=list(r.access_control_groups),
        skip_auto_apply=r.skip_auto_apply,
    )


def _route_values(rt: Route) -> dict[str, Any]:
    return {
        "id": rt.id,
        "account_id": rt.account_id,
        "public_id": rt.public_id,
        "net_id": rt.net_id,
        "description": rt.description,
        "network": str(rt.network) if rt.network is not None else None,
        "domains": list(rt.domains),
        "network_type": int(rt.network_type),
        "peer": rt.peer,
        "peer_groups": list(rt.peer_groups),
        "enabled": rt.enabled,
        "masquerade": rt.masquerade,
        "metric": rt.metric,
        "keep_route": rt.keep_route,
        "groups": list(rt.groups),
        "access_control_groups": list(rt.access_control_groups),
        "skip_auto_apply": rt.skip_auto_apply,
    }


class Tx:
    """All reads and writes of one transaction, scoped by the caller to one account."""

    def __init__(self, conn: Connection, account_id: str = "") -> None:
        self.conn = conn
        self.account_id = account_id
        self._groups_cache: dict[str, Group] | None = None

    # -- accounts -------------------------------------------------------------------------------
    def lock_account(self, account_id: str) -> Account | None:
        """Row lock (PostgreSQL) that serializes every write of one account."""
        q = select(t.accounts).where(t.accounts.c.id == account_id)
        if self.conn.dialect.name == "postgresql":
            q = q.with_for_update()
        row = self.conn.execute(q).first()
        return _account(row) if row else None

    def account(self, account_id: str) -> Account | None:
        row = self.conn.execute(select(t.accounts).where(t.accounts.c.id == account_id)).first()
        return _account(row) if row else None

    def lock_bootstrap(self) -> None:
        """Replicas starting together on an empty PostgreSQL database take turns creating the
        account (a transaction-scoped advisory lock; SQLite's BEGIN IMMEDIATE already does)."""
        if self.conn.dialect.name == "postgresql":
            self.conn.execute(text("SELECT pg_advisory_xact_lock(7263546)"))

    def first_account(self) -> Account | None:
        row = self.conn.execute(select(t.accounts).order_by(t.accounts.c.created_at).limit(1)).first()
        return _account(row) if row else None

    def insert_account(self, a: Account) -> None:
        self.conn.execute(
            insert(t.accounts).values(
                id=a.id,
                domain=a.domain,
                network_v4=str(a.network_v4),
                network_v6=str(a.network_v6),
                network_serial=a.network_serial,
                created_at=a.created_at,
                created_by=a.created_by,
                peer_login_expiration_enabled=a.peer_login_expiration_enabled,
                peer_login_expiration=a.peer_login_expiration,
                peer_inactivity_expiration_enabled=a.peer_inactivity_expiration_enabled,
                peer_inactivity_expiration=a.peer_inactivity_expiration,
                regular_users_view_blocked=a.regular_users_view_blocked,
            )
        )

    def update_account_settings(self, a: Account) -> None:
        self.conn.execute(
            update(t.accounts)
            .where(t.accounts.c.id == a.id)
            .values(
                peer_login_expiration_enabled=a.peer_login_expiration_enabled,
                peer_login_expiration=a.peer_login_expiration,
                peer_inactivity_expiration_enabled=a.peer_inactivity_expiration_enabled,
                peer_inactivity_expiration=a.peer_inactivity_expiration,
                regular_users_view_blocked=a.regular_users_view_blocked,
            )
        )

    def serials(self, account_ids: list[str]) -> dict[str, int]:
        rows = self.conn.execute(
            select(t.accounts.c.id, t.accounts.c.network_serial).where(t.accounts.c.id.in_(account_ids))
        )
        return {r.id: int(r.network_serial) for r in rows}

    def bump_serial(self, account_id: str) -> int:
        self.conn.execute(
            update(t.accounts)
            .where(t.accounts.c.id == account_id)
            .values(network_serial=t.accounts.c.network_serial + 1)
        )
        serial = self.conn.execute(
            select(t.accounts.c.network_serial).where(t.accounts.c.id == account_id)
        ).scalar_one()
        return int(serial)

    # -- users and tokens -----------------------------------------------------------------------
    def user(self, user_id: str) -> User | None:
        row = self.conn.execute(select(t.users).where(t.users.c.id == user_id)).first()
        return _user(row) if row else None

    def users(self, account_id: str) -> list[User]:
        rows = self.conn.execute(
            select(t.users)
            .where(t.users.c.account_id == account_id)
            .order_by(t.users.c.created_at, t.users.c.id)
        )
        return [_user(r) for r in rows]

    def insert_user(self, u: User) -> None:
        self.conn.execute(
            insert(t.users).values(
                id=u.id,
                account_id=u.account_id,
                role=u.role.value,
                name=u.name,
                email=u.email,
                is_service_user=u.is_service_user,
                blocked=u.blocked,
                auto_groups=list(u.auto_groups),
                issued=u.issued,
                created_at=u.created_at,
                last_login=u.last_login,
            )
        )

    def update_user(self, u: User) -> None:
        self.conn.execute(
            update(t.users)
            .where(t.users.c.id == u.id)
            .values(role=u.role.value, blocked=u.blocked, auto_groups=list(u.auto_groups), name=u.name)
        )

    def delete_user(self, user_id: str) -> None:
        self.conn.execute(
            delete(t.personal_access_tokens).where(t.personal_access_tokens.c.user_id == user_id)
        )
        self.conn.execute(delete(t.users).where(t.users.c.id == user_id))

    def pat_by_hash(self, hashed: str) -> PersonalAccessToken | None:
        row = self.conn.execute(
            select(t.personal_access_tokens).where(t.personal_access_tokens.c.hashed_token == hashed)
        ).first()
        return _pat(row) if row else None

    def pats(self, user_id: str) -> list[PersonalAccessToken]:
        rows = self.conn.execute(
            select(t.personal_access_tokens)
            .where(t.personal_access_tokens.c.user_id == user_id)
            .order_by(t.personal_access_tokens.c.created_at, t.personal_access_tokens.c.id)
        )
        return [_pat(r) for r in rows]

    def insert_pat(self, p: PersonalAccessToken) -> None:
        self.conn.execute(
            insert(t.personal_access_tokens).values(
                id=p.id,
                user_id=p.user_id,
                name=p.name,
                hashed_token=p.hashed_token,
                expiration_date=p.expiration_date,
                created_by=p.created_by,
                created_at=p.created_at,
                last_used=p.last_used,
            )
        )

    def delete_pat(self, pat_id: str) -> None:
        self.conn.execute(delete(t.personal_access_tokens).where(t.personal_access_tokens.c.id == pat_id))

    def touch_pat(self, pat_id: str, when: datetime) -> None:
        self.conn.execute(
            update(t.personal_access_tokens)
            .where(t.personal_access_tokens.c.id == pat_id)
            .values(last_used=when)
        )

    # -- groups ---------------------------------------------------------------------------------
    def _members(self, group_ids: Sequence[str]) -> dict[str, list[str]]:
        members: dict[str, list[str]] = {g: [] for g in group_ids}
        if not group_ids:
            return members
        rows = self.conn.execute(
            select(t.group_peers.c.group_id, t.group_peers.c.peer_id)
            .where(t.group_peers.c.group_id.in_(list(group_ids)))
            .order_by(t.group_peers.c.group_id, t.group_peers.c.position, t.group_peers.c.peer_id)
        )
        for gid, pid in rows:
            members[gid].append(pid)
        return members

    def groups(self, account_id: str) -> list[Group]:
        rows = list(
            self.conn.execute(
                select(t.groups)
                .where(t.groups.c.account_id == account_id)
                .order_by(t.groups.c.created_at, t.groups.c.id)
            )
        )
        if not rows:
            return []
        all_members: dict[str, list[str]] = {r.id: [] for r in rows}
        for gid, pid in self.conn.execute(
            select(t.group_peers.c.group_id, t.group_peers.c.peer_id)
            .where(t.group_peers.c.account_id == account_id)
            .order_by(t.group_peers.c.group_id, t.group_peers.c.position, t.group_peers.c.peer_id)
        ):
            all_members.setdefault(gid, []).append(pid)
        return [
            Group(id=r.id, account_id=r.account_id, name=r.name, peers=all_members[r.id], issued=r.issued)
            for r in rows
        ]

    def groups_by_id(self, ids: Iterable[str]) -> dict[str, Group]:
        wanted = sorted({i for i in ids if i})
        if not wanted:
            return {}
        rows = list(
            self.conn.execute(
                select(t.groups).where(t.groups.c.account_id == self.account_id, t.groups.c.id.in_(wanted))
            )
        )
        members = self._members([r.id for r in rows])
        return {
            r.id: Group(id=r.id, account_id=r.account_id, name=r.name, peers=members[r.id], issued=r.issued)
            for r in rows
        }

    def group(self, group_id: str) -> Group | None:
        return self.groups_by_id([group_id]).get(group_id)

    def group_by_name(self, account_id: str, name: str) -> Group | None:
        row = self.conn.execute(
            select(t.groups.c.id).where(t.groups.c.account_id == account_id, t.groups.c.name == name)
        ).first()
        return self.group(row.id) if row else None

    def insert_group(self, g: Group) -> None:
        self.conn.execute(
            insert(t.groups).values(
                id=g.id, account_id=g.account_id, name=g.name, issued=g.issued, created_at=utcnow()
            )
        )
        self._set_members(g)

    def update_group(self, g: Group) -> None:
        self.conn.execute(update(t.groups).where(t.groups.c.id == g.id).values(name=g.name))
        self.conn.execute(delete(t.group_peers).where(t.group_peers.c.group_id == g.id))
        self._set_members(g)

    def _set_members(self, g: Group) -> None:
        if g.peers:
            self.conn.execute(
                insert(t.group_peers),
                [
                    {"group_id": g.id, "peer_id": pid, "account_id": g.account_id, "position": i}
                    for i, pid in enumerate(g.peers)
                ],
            )

    def add_group_member(self, g: Group, peer_id: str) -> None:
        pos = self.conn.execute(
            select(func.coalesce(func.max(t.group_peers.c.position), -1)).where(
                t.group_peers.c.group_id == g.id
            )
        ).scalar_one()
        self.conn.execute(
            insert(t.group_peers).values(
                group_id=g.id, peer_id=peer_id, account_id=g.account_id, position=pos + 1
            )
        )

    def delete_group(self, group_id: str) -> None:
        self.conn.execute(delete(t.groups).where(t.groups.c.id == group_id))

    def peer_group_ids(self, peer_id: str) -> list[str]:
        rows = self.conn.execute(select(t.group_peers.c.group_id).where(t.group_peers.c.peer_id == peer_id))
        return [r.group_id for r in rows]

    # -- peers ----------------------------------------------------------------------------------
    def peer(self, peer_id: str) -> Peer | None:
        row = self.conn.execute(
            select(t.peers).where(t.peers.c.id == peer_id, t.peers.c.account_id == self.account_id)
        ).first()
        return _peer(row) if row else None

    def peer_by_key(self, key: str) -> Peer | None:
        row = self.conn.execute(select(t.peers).where(t.peers.c.key == key)).first()
        return _peer(row) if row else None

    def peers(self, account_id: str) -> list[Peer]:
        rows = self.conn.execute(
            select(t.peers)
            .where(t.peers.c.account_id == account_id)
            .order_by(t.peers.c.created_at, t.peers.c.id)
        )
        return [_peer(r) for r in rows]

    def peers_by_id(self, ids: Iterable[str]) -> dict[str, Peer]:
        wanted = sorted(set(ids))
        if not wanted:
            return {}
        rows = self.conn.execute(
            select(t.peers).where(t.peers.c.account_id == self.account_id, t.peers.c.id.in_(wanted))
        )
        return {r.id: _peer(r) for r in rows}

    def used_ips(self, account_id: str) -> set[str]:
        rows = self.conn.execute(select(t.peers.c.ip).where(t.peers.c.account_id == account_id))
        return {r.ip for r in rows}

    def used_dns_labels(self, account_id: str) -> set[str]:
        rows = self.conn.execute(select(t.peers.c.dns_label).where(t.peers.c.account_id == account_id))
        return {r.dns_label for r in rows}

    def insert_peer(self, p: Peer, credential_hash: str | None = None) -> None:
        self.conn.execute(insert(t.peers).values(credential_hash=credential_hash, **_peer_values(p)))

    def update_peer(self, p: Peer) -> None:
        values = _peer_values(p)
        # Connection status has its own writer (set_peer_status, outside the account lock):
        # writing back the copy read at the start of this transaction would undo it.
        for column in ("id", "connected", "last_seen"):
            values.pop(column)
        self.conn.execute(update(t.peers).where(t.peers.c.id == p.id).values(**values))

    def delete_peer(self, peer_id: str) -> None:
        self.conn.execute(delete(t.group_peers).where(t.group_peers.c.peer_id == peer_id))
        self.conn.execute(delete(t.peers).where(t.peers.c.id == peer_id))

    def set_peer_status(
        self, peer_id: str, connected: bool, when: datetime, *, if_last_seen: datetime | None = None
    ) -> None:
        """`if_last_seen`: only if nobody (another stream, another replica) connected it since."""
        q = update(t.peers).where(t.peers.c.id == peer_id)
        if if_last_seen is not None:
            q = q.where(t.peers.c.last_seen == if_last_seen)
        self.conn.execute(q.values(connected=connected, last_seen=when))

    def reset_connections(self) -> None:
        self.conn.execute(update(t.peers).where(t.peers.c.connected.is_(True)).values(connected=False))

    def peer_credential_hash(self, peer_id: str) -> str | None:
        row = self.conn.execute(select(t.peers.c.credential_hash).where(t.peers.c.id == peer_id)).first()
        return row.credential_hash if row else None

    # -- setup keys -----------------------------------------------------------------------------
    def setup_key(self, key_id: str) -> SetupKey | None:
        row = self.conn.execute(
            select(t.setup_keys).where(
                t.setup_keys.c.id == key_id, t.setup_keys.c.account_id == self.account_id
            )
        ).first()
        return _setup_key(row) if row else None

    def setup_key_by_hash(self, key_hash: str) -> SetupKey | None:
        row = self.conn.execute(select(t.setup_keys).where(t.setup_keys.c.key_hash == key_hash)).first()
        return _setup_key(row) if row else None

    def setup_keys(self, account_id: str) -> list[SetupKey]:
        rows = self.conn.execute(
            select(t.setup_keys)
            .where(t.setup_keys.c.account_id == account_id)
            .order_by(t.setup_keys.c.created_at, t.setup_keys.c.id)
        )
        return [_setup_key(r) for r in rows]

    def insert_setup_key(self, k: SetupKey) -> None:
        values = {f: getattr(k, f) for f in _KEY_FIELDS}
        self.conn.execute(insert(t.setup_keys).values(auto_groups=list(k.auto_groups), **values))

    def update_setup_key(self, k: SetupKey) -> None:
        values = {f: getattr(k, f) for f in _KEY_FIELDS if f != "id"}
        self.conn.execute(
            update(t.setup_keys)
            .where(t.setup_keys.c.id == k.id)
            .values(auto_groups=list(k.auto_groups), **values)
        )

    def delete_setup_key(self, key_id: str) -> None:
        self.conn.execute(delete(t.setup_keys).where(t.setup_keys.c.id == key_id))

    # -- routes ---------------------------------------------------------------------------------
    def route(self, route_id: str) -> Route | None:
        row = self.conn.execute(
            select(t.routes).where(t.routes.c.id == route_id, t.routes.c.account_id == self.account_id)
        ).first()
        return _route(row) if row else None

    def routes(self) -> list[Route]:
        rows = self.conn.execute(
            select(t.routes)
            .where(t.routes.c.account_id == self.account_id)
            .order_by(t.routes.c.created_at, t.routes.c.id)
        )
        return [_route(r) for r in rows]

    def insert_route(self, rt: Route) -> None:
        self.conn.execute(insert(t.routes).values(created_at=utcnow(), **_route_values(rt)))

    def update_route(self, rt: Route) -> None:
        values = _route_values(rt)
        values.pop("id")
        self.conn.execute(update(t.routes).where(t.routes.c.id == rt.id).values(**values))

    def delete_route(self, route_id: str) -> int:
        res = self.conn.execute(
            delete(t.routes).where(t.routes.c.id == route_id, t.routes.c.account_id == self.account_id)
        )
        return int(res.rowcount)

    # -- events ---------------------------------------------------------------------------------
    def add_event(
        self, account_id: str, activity: int, initiator_id: str, target_id: str, meta: dict[str, Any]
    ) -> None:
        self.conn.execute(
            insert(t.events).values(
                account_id=account_id,
                timestamp=utcnow(),
                activity=int(activity),
                initiator_id=initiator_id,
                target_id=target_id,
                meta=meta,
            )
        )

    def events(self, account_id: str, limit: int = 10000) -> list[Event]:
        rows = self.conn.execute(
            select(t.events)
            .where(t.events.c.account_id == account_id)
            .order_by(t.events.c.timestamp.desc(), t.events.c.id.desc())
            .limit(limit)
        )
        return [
            Event(
                id=r.id,
                timestamp=r.timestamp,
                activity=r.activity,
                initiator_id=r.initiator_id,
                target_id=r.target_id,
                account_id=r.account_id,
                meta=dict(r.meta),
            )
            for r in rows
        ]
