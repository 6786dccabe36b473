"""The read side: what the API shows, read straight from the store (and, for network maps, from
the map engine), with the same permission rules as the services. Services change things; views
read things; neither knows HTTP.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeVar

from meshroute.core import permissions
from meshroute.core.errors import InvalidArgument, NotFound
from meshroute.core.explain import Explanation, explain
from meshroute.core.explain_match import PeerFacts, parse_destination
from meshroute.core.model import (
    Account,
    Event,
    Group,
    IPNetwork,
    NetworkType,
    PersonalAccessToken,
    Route,
    SetupKey,
    User,
)
from meshroute.core.networkmap.types import NetworkMap
from meshroute.core.overlaps import Overlap, overlaps
from meshroute.core.permissions import Op
from meshroute.core.route_status import ClientStatus, PeerStatus, client_status, route_receivers
from meshroute.server.services.uow import Reader
from meshroute.server.store.ports import Repositories
from meshroute.server.store.summaries import PeerSummary
from meshroute.server.sync.engine import MapEngine

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class GroupRef:
    """A group as a peer lists it."""

    id: str
    name: str
    peers_count: int


@dataclass(frozen=True, slots=True)
class PeerList:
    """Peers, the groups each is in, and what their rendering needs from the account."""

    peers: list[PeerSummary]
    groups_of: dict[str, tuple[GroupRef, ...]]  # peers in the same groups share one tuple
    domain: str
    accessible_peers_count: int  # allow-all: every peer reaches every other
    status: PeerStatus | None = None  # the one peer's last status report (never read for a list)


@dataclass(frozen=True, slots=True)
class GroupList:
    groups: list[Group]
    peer_names: dict[str, str]


@dataclass(frozen=True, slots=True)
class RouteStatus:
    """The client peers of a route, sorted by name, and the account's peer names (clients and
    routing peers are shown by name)."""

    clients: list[ClientStatus]
    peer_names: dict[str, str]


@dataclass(frozen=True, slots=True)
class ExplainView:
    explanation: Explanation
    peer_names: dict[str, str]


@dataclass(frozen=True, slots=True)
class OverlapView:
    overlaps: list[Overlap]
    peer_names: dict[str, str]


@dataclass(frozen=True, slots=True)
class MapView:
    map: NetworkMap
    account: Account


class Views:
    def __init__(self, reader: Reader, engine: MapEngine) -> None:
        self.reader = reader
        self.engine = engine

    # -- peers --------------------------------------------------------------------------------------
    def peers(self, account_id: str, user_id: str, name: str = "", ip: str = "") -> PeerList:
        """A user without peers:read sees only their own peers (NetBird); peers here join with
        setup keys, so that is none. Blocked users and other accounts are refused as usual.
        `name` and `ip` filter as NetBird's `LIKE %x%`, and only when not empty."""
        with self.reader.read(account_id) as tx:
            user = tx.users.get(user_id)
            if _sees_own_peers_only(user, account_id):
                assert user is not None
                peers = [p for p in tx.peers.summaries(account_id) if p.user_id == user.id]
            else:
                permissions.require(user, account_id, "peers", Op.READ)
                peers = tx.peers.summaries(account_id)
            listed = [p for p in peers if (not name or name in p.name) and (not ip or ip in p.ip)]
            groups_of = _groups_of(tx, account_id)
            domain = _domain(tx, account_id)
        return PeerList(listed, groups_of, domain, len(peers) - 1)

    def peer(self, account_id: str, user_id: str, peer_id: str) -> PeerList:
        """One peer, as a list of one (its rendering needs the same context as the list's)."""
        with self.reader.read(account_id) as tx:
            permissions.require(tx.users.get(user_id), account_id, "peers", Op.READ)
            found = tx.peers.summaries(account_id, peer_id)
            if not found:
                raise NotFound(f"peer: {peer_id} not found")
            groups_of = _groups_of(tx, account_id)
            domain = _domain(tx, account_id)
            status = tx.status_reports.get(peer_id)
        return PeerList(found, {peer_id: groups_of.get(peer_id, ())}, domain, 0, status)

    def network_map(self, account_id: str, user_id: str, peer_id: str, fresh: bool = False) -> MapView:
        """The map the peer receives: from the engine's live state, as of at least the serial
        committed when the request came (a caller sees its own changes), or, `fresh`, computed
        from the store (a check that the live state has not drifted)."""
        with self.reader.read(account_id) as tx:
            permissions.require(tx.users.get(user_id), account_id, "peers", Op.READ)
            account = tx.accounts.get(account_id)
            if tx.peers.get(peer_id) is None or account is None:
                raise NotFound(f"peer: {peer_id} not found")
        if fresh:
            snapshot = self.engine.fresh_map(account_id, peer_id)
        else:
            snapshot = self.engine.full_map(account_id, peer_id, at_least=account.network_serial)
        if snapshot is None:
            raise NotFound(f"peer: {peer_id} not found")
        return MapView(*snapshot)

    # -- for agents, authenticated as a peer of the account -----------------------------------------
    def agent_account(self, account_id: str) -> Account:
        with self.reader.read(account_id) as tx:
            return _found(tx.accounts.get(account_id), "account", account_id)

    def peer_exists(self, account_id: str, peer_id: str) -> bool:
        with self.reader.read(account_id) as tx:
            return tx.peers.get(peer_id) is not None

    # -- groups -------------------------------------------------------------------------------------
    def groups(self, account_id: str, user_id: str, name: str = "") -> GroupList:
        """Every group, or the one called `name` (an empty name is no filter, as in NetBird)."""
        with self.reader.read(account_id) as tx:
            permissions.require(tx.users.get(user_id), account_id, "groups", Op.READ)
            if name:
                group = tx.groups.by_name(account_id, name)
                if group is None:
                    raise NotFound(f"group: {name} not found")
                groups = [group]
            else:
                groups = tx.groups.all(account_id)
            return GroupList(groups, _peer_names(tx, groups))

    def group(self, account_id: str, user_id: str, group_id: str) -> GroupList:
        with self.reader.read(account_id) as tx:
            permissions.require(tx.users.get(user_id), account_id, "groups", Op.READ)
            group = _found(tx.groups.get(group_id), "group", group_id)
            return GroupList([group], _peer_names(tx, [group]))

    def peer_names(self, account_id: str, groups: list[Group]) -> GroupList:
        """Groups a service just wrote, with their members' names for the answer."""
        with self.reader.read(account_id) as tx:
            return GroupList(groups, _peer_names(tx, groups))

    # -- routes -------------------------------------------------------------------------------------
    def routes(self, account_id: str, user_id: str) -> list[Route]:
        with self.reader.read(account_id) as tx:
            permissions.require(tx.users.get(user_id), account_id, "routes", Op.READ)
            return tx.routes.all()

    def route(self, account_id: str, user_id: str, route_id: str) -> Route:
        with self.reader.read(account_id) as tx:
            permissions.require(tx.users.get(user_id), account_id, "routes", Op.READ)
            return _found(tx.routes.get(route_id), "route", route_id)

    def route_status(self, account_id: str, user_id: str, route_id: str) -> RouteStatus:
        """Each client peer of the route with the routing peer it uses now, from its last report
        (`core.route_status`)."""
        with self.reader.read(account_id) as tx:
            permissions.require(tx.users.get(user_id), account_id, "routes", Op.READ)
            route = _found(tx.routes.get(route_id), "route", route_id)
            routes = tx.routes.all()
            peers = {p.id: p for p in tx.peers.summaries(account_id)}
            _, members = _members(tx, account_id)
            uses_ipv6 = {p.id: bool(p.ipv6_capable and p.ipv6) for p in peers.values()}
            receivers = route_receivers(route, routes, members, uses_ipv6)
            reports = tx.status_reports.for_peers(receivers)
        domain = route.network_type == NetworkType.DOMAIN
        clients = [
            client_status(pid, peers[pid].connected, reports.get(pid), route.id, domain)
            for pid in sorted(receivers, key=lambda pid: (peers[pid].name, pid))
        ]
        return RouteStatus(clients, {p.id: p.name for p in peers.values()})

    def explain(self, account_id: str, user_id: str, peer_id: str, destination: str) -> ExplainView:
        """Why `peer_id` reaches `destination` through which route (`core.explain`)."""
        with self.reader.read(account_id) as tx:
            permissions.require(tx.users.get(user_id), account_id, "routes", Op.READ)
            if not peer_id:
                raise InvalidArgument("peer should be given: the ID of a peer")
            dest = parse_destination(destination)
            account = _found(tx.accounts.get(account_id), "account", account_id)
            peers = {p.id: p for p in tx.peers.summaries(account_id)}
            if peer_id not in peers:
                raise NotFound(f"peer: {peer_id} not found")
            routes = tx.routes.all()
            groups, members = _members(tx, account_id)
            status = tx.status_reports.get(peer_id)
        facts = {
            p.id: PeerFacts(p.id, p.name, p.connected, bool(p.ipv6_capable and p.ipv6))
            for p in peers.values()
        }
        overlay: list[IPNetwork] = [account.network_v4]
        if facts[peer_id].uses_ipv6:
            overlay.append(account.network_v6)
        found = explain(
            peer_id,
            dest,
            routes,
            members,
            facts,
            report=status.report if status is not None else None,
            overlay=overlay,
            group_names=dict(groups),
        )
        return ExplainView(found, {p.id: p.name for p in peers.values()})

    def overlaps(self, account_id: str, user_id: str) -> OverlapView:
        """Enabled routes whose destinations overlap (`core.overlaps`)."""
        with self.reader.read(account_id) as tx:
            permissions.require(tx.users.get(user_id), account_id, "routes", Op.READ)
            peers = tx.peers.summaries(account_id)
            routes = tx.routes.all()
            _, members = _members(tx, account_id)
        uses_ipv6 = {p.id: bool(p.ipv6_capable and p.ipv6) for p in peers}
        return OverlapView(overlaps(routes, members, uses_ipv6), {p.id: p.name for p in peers})

    # -- setup keys ---------------------------------------------------------------------------------
    def setup_keys(self, account_id: str, user_id: str) -> list[SetupKey]:
        with self.reader.read(account_id) as tx:
            permissions.require(tx.users.get(user_id), account_id, "setup_keys", Op.READ)
            return tx.setup_keys.all(account_id)

    def setup_key(self, account_id: str, user_id: str, key_id: str) -> SetupKey:
        with self.reader.read(account_id) as tx:
            permissions.require(tx.users.get(user_id), account_id, "setup_keys", Op.READ)
            return _found(tx.setup_keys.get(key_id), "setup key", key_id)

    # -- users and tokens ---------------------------------------------------------------------------
    def users(self, account_id: str, user_id: str, service_user: bool | None = None) -> list[User]:
        with self.reader.read(account_id) as tx:
            permissions.require(tx.users.get(user_id), account_id, "users", Op.READ)
            users = tx.users.all(account_id)
        return [u for u in users if service_user is None or u.is_service_user == service_user]

    def tokens(self, account_id: str, user_id: str, target_id: str) -> list[PersonalAccessToken]:
        """A user's tokens: their own, or a service user's for an admin (`token_owner`)."""
        with self.reader.read(account_id) as tx:
            initiator = tx.users.get(user_id)
            permissions.require(initiator, account_id, "pats", Op.READ)
            permissions.token_owner(initiator, tx.users.get(target_id), account_id, Op.READ)
            return tx.tokens.all(target_id)

    def token(self, account_id: str, user_id: str, target_id: str, token_id: str) -> PersonalAccessToken:
        for pat in self.tokens(account_id, user_id, target_id):
            if pat.id == token_id:
                return pat
        raise NotFound(f"token: {token_id} not found")

    # -- account and audit log ----------------------------------------------------------------------
    def account(self, account_id: str, user_id: str) -> Account:
        with self.reader.read(account_id) as tx:
            permissions.require(tx.users.get(user_id), account_id, "accounts", Op.READ)
            return _found(tx.accounts.get(account_id), "account", account_id)

    def events(
        self, account_id: str, user_id: str, limit: int = 10000
    ) -> tuple[list[Event], dict[str, User]]:
        """The newest `limit` events, and the account's users by ID (events name their initiator)."""
        with self.reader.read(account_id) as tx:
            permissions.require(tx.users.get(user_id), account_id, "events", Op.READ)
            events = tx.events.all(account_id, limit)
            users = {u.id: u for u in tx.users.all(account_id)}
        return events, users


def _found(obj: T | None, what: str, obj_id: str) -> T:
    if obj is None:
        raise NotFound(f"{what}: {obj_id} not found")
    return obj


def _sees_own_peers_only(user: User | None, account_id: str) -> bool:
    """A user of the account, not blocked, without peers:read."""
    return (
        user is not None
        and not user.blocked
        and user.account_id == account_id
        and not permissions.allowed(user, "peers", Op.READ)
    )


def _groups_of(tx: Repositories, account_id: str) -> dict[str, tuple[GroupRef, ...]]:
    """Each peer's groups, in the order the groups were created."""
    groups, memberships = tx.groups.memberships(account_id)
    members: dict[str, list[str]] = {gid: [] for gid, _ in groups}
    for gid, pid in memberships:
        members[gid].append(pid)
    lists: dict[str, list[GroupRef]] = {}
    for gid, name in groups:
        ref = GroupRef(gid, name, len(members[gid]))
        for pid in members[gid]:
            lists.setdefault(pid, []).append(ref)
    # One tuple per distinct list: most peers share theirs, and the list is rendered once per tuple.
    # (Keyed by the refs' identities: one object per group, and ints hash faster than dataclasses.)
    interned: dict[tuple[int, ...], tuple[GroupRef, ...]] = {}
    return {pid: interned.setdefault(tuple(map(id, refs)), tuple(refs)) for pid, refs in lists.items()}


def _members(tx: Repositories, account_id: str) -> tuple[list[tuple[str, str]], dict[str, list[str]]]:
    """The account's groups as (ID, name), and group ID -> member peer IDs."""
    groups, memberships = tx.groups.memberships(account_id)
    members: dict[str, list[str]] = {}
    for gid, pid in memberships:
        members.setdefault(gid, []).append(pid)
    return groups, members


def _domain(tx: Repositories, account_id: str) -> str:
    account = tx.accounts.get(account_id)
    return account.domain if account else ""


def _peer_names(tx: Repositories, groups: list[Group]) -> dict[str, str]:
    return {p.id: p.name for p in tx.peers.by_ids(pid for g in groups for pid in g.peers).values()}
