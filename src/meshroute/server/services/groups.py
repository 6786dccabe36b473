"""Groups: named sets of peers that routes are distributed to, served by or restricted to."""

from __future__ import annotations

from collections.abc import Sequence

from meshroute.core import permissions
from meshroute.core.activity import Activity
from meshroute.core.changes import GroupDeleted, GroupUpserted
from meshroute.core.errors import AlreadyExists, BadRequest, InvalidArgument, NotFound
from meshroute.core.ids import new_id
from meshroute.core.limits import MAX_GROUP_IDS, MAX_PEER_IDS, check_count, check_length
from meshroute.core.model import ALL_GROUP_NAME, Group
from meshroute.core.permissions import Op
from meshroute.core.routes import check_served_once, destination
from meshroute.server.services.uow import UnitOfWork, WriteTx

MODULE = "groups"


def _group_meta(g: Group) -> dict[str, object]:
    return {"name": g.name, "peers_count": len(g.peers)}


class GroupService:
    def __init__(self, uow: UnitOfWork) -> None:
        self.uow = uow

    def create(self, account_id: str, user_id: str, name: str, peers: Sequence[str]) -> Group:
        with self.uow.write(account_id) as tx:
            permissions.require(tx.users.get(user_id), account_id, MODULE, Op.CREATE)
            check_count(peers, "peers", MAX_PEER_IDS)
            group = Group(id=new_id(), account_id=account_id, name=name, peers=_unique(peers))
            self._validate(tx, group)
            tx.groups.add(group)
            tx.record(GroupUpserted(group))
            tx.events.add(account_id, Activity.GROUP_CREATED, user_id, group.id, _group_meta(group))
            self._membership_events(tx, user_id, group, [], group.peers)
        return group

    def update(self, account_id: str, user_id: str, group_id: str, name: str, peers: Sequence[str]) -> Group:
        with self.uow.write(account_id) as tx:
            permissions.require(tx.users.get(user_id), account_id, MODULE, Op.UPDATE)
            old = tx.groups.get(group_id)
            if old is None:
                raise NotFound(f"group: {group_id} not found")
            if old.is_all:
                raise InvalidArgument("updating group ALL is not allowed")
            check_count(peers, "peers", MAX_PEER_IDS)
            group = Group(
                id=group_id, account_id=account_id, name=name, peers=_unique(peers), issued=old.issued
            )
            self._validate(tx, group)
            self._check_served_once(tx, group, old.peers)
            tx.groups.update(group)
            tx.record(GroupUpserted(group))
            tx.events.add(account_id, Activity.GROUP_UPDATED, user_id, group.id, _group_meta(group))
            self._membership_events(tx, user_id, group, old.peers, group.peers)
        return group

    def delete(self, account_id: str, user_id: str, group_id: str) -> None:
        with self.uow.write(account_id) as tx:
            permissions.require(tx.users.get(user_id), account_id, MODULE, Op.DELETE)
            group = tx.groups.get(group_id)
            if group is None:
                raise NotFound(f"group: {group_id} not found")
            if group.is_all:
                raise BadRequest("deleting group ALL is not allowed")
            self._check_unlinked(tx, group)
            tx.groups.delete(group_id)
            tx.record(GroupDeleted(group_id))
            tx.events.add(account_id, Activity.GROUP_DELETED, user_id, group_id, _group_meta(group))

    @staticmethod
    def _validate(tx: WriteTx, group: Group) -> None:
        if not group.name:
            raise InvalidArgument("group name shouldn't be empty")
        check_length(group.name, "group name")
        other = tx.groups.by_name(group.account_id, group.name)
        if other is not None and other.id != group.id:
            raise AlreadyExists(f"group with name {group.name} already exists")
        known = tx.peers.by_ids(group.peers)
        for pid in group.peers:
            if pid not in known:
                raise InvalidArgument(f"peer with ID {pid} not found")

    @staticmethod
    def _check_served_once(tx: WriteTx, group: Group, before: Sequence[str]) -> None:
        """New members of a routing-peer group must not serve a destination twice (NetBird checks
        only when a route is saved, so a group update could break its rule)."""
        added = set(group.peers) - set(before)
        if not added or not tx.routes.served_by([group.id]):
            return
        routes = tx.routes.all()
        destinations = {destination(r) for r in routes if group.id in r.peer_groups}
        relevant = [r for r in routes if destination(r) in destinations]
        others = tx.groups.by_ids({g for r in relevant for g in r.peer_groups} - {group.id})
        groups_of = {
            pid: {group.id, *(g.id for g in others.values() if pid in g.peers)}
            for pid in group.peers
            if pid in added
        }
        peers = tx.peers.by_ids(added)
        check_served_once(
            relevant,
            groups_of,
            f"failed to update group {group.name}",
            lambda pid: peers[pid].name if pid in peers else pid,
        )

    @staticmethod
    def _check_unlinked(tx: WriteTx, group: Group) -> None:
        """A group something still uses cannot go: deleting it would silently change that thing."""
        for route in tx.routes.all():
            if group.id in (*route.groups, *route.peer_groups, *route.access_control_groups):
                raise BadRequest(f"group has been linked to route: {route.net_id}")
        for key in tx.setup_keys.all(group.account_id):
            if group.id in key.auto_groups:
                raise BadRequest(f"group has been linked to setup key: {key.name}")
        for user in tx.users.all(group.account_id):
            if group.id in user.auto_groups:
                raise BadRequest(f"group has been linked to user: {user.name or user.id}")

    @staticmethod
    def _membership_events(
        tx: WriteTx, user_id: str, group: Group, before: Sequence[str], after: Sequence[str]
    ) -> None:
        added = [p for p in after if p not in set(before)]
        removed = [p for p in before if p not in set(after)]
        peers = tx.peers.by_ids([*added, *removed])
        for pid, activity in [(p, Activity.GROUP_ADDED_TO_PEER) for p in added] + [
            (p, Activity.GROUP_REMOVED_FROM_PEER) for p in removed
        ]:
            peer = peers.get(pid)
            meta = {"group": group.name, "group_id": group.id, "peer_name": peer.name if peer else pid}
            tx.events.add(group.account_id, activity, user_id, pid, meta)


def _unique(ids: Sequence[str]) -> list[str]:
    return list(dict.fromkeys(ids))


def ensure_all_group(tx: WriteTx, account_id: str) -> Group:
    group = tx.groups.by_name(account_id, ALL_GROUP_NAME)
    if group is None:
        group = Group(id=new_id(), account_id=account_id, name=ALL_GROUP_NAME, issued="api")
        tx.groups.add(group)
    return group


def check_group_ids(tx: WriteTx, ids: Sequence[str]) -> None:
    """Auto-group lists (setup keys, users): a bounded list of groups of the account."""
    check_count(ids, "auto_groups", MAX_GROUP_IDS)
    known = tx.groups.by_ids(ids)
    for gid in ids:
        if gid == "":
            raise InvalidArgument("group ID should not be empty string")
        if gid not in known:
            raise InvalidArgument(f"group id {gid} not found")
