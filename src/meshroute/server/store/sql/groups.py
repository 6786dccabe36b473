"""Groups and their members (in order) in SQL."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Row, delete, func, insert, select, update

from meshroute.core.model import Group
from meshroute.server.store import tables as t
from meshroute.server.store.mapping import GROUPS
from meshroute.server.store.sql.common import SqlRepository, one_of
from meshroute.server.store.summaries import group_memberships

_gp = t.group_peers


class SqlGroups(SqlRepository):
    def get(self, group_id: str) -> Group | None:
        return self.by_ids([group_id]).get(group_id)

    def by_name(self, account_id: str, name: str) -> Group | None:
        row = self.conn.execute(
            select(t.groups.c.id).where(t.groups.c.account_id == account_id, t.groups.c.name == name)
        ).first()
        return self.get(row.id) if row else None

    def all(self, account_id: str) -> list[Group]:
        rows = list(
            self.conn.execute(
                select(t.groups)
                .where(t.groups.c.account_id == account_id)
                .order_by(t.groups.c.created_at, t.groups.c.id)
            )
        )
        if not rows:
            return []
        members: dict[str, list[str]] = {r.id: [] for r in rows}
        for gid, pid in self.conn.execute(
            select(_gp.c.group_id, _gp.c.peer_id)
            .where(_gp.c.account_id == account_id)
            .order_by(_gp.c.group_id, _gp.c.position, _gp.c.peer_id)
        ):
            members.setdefault(gid, []).append(pid)
        return [_group(r, members[r.id]) for r in rows]

    def by_ids(self, ids: Iterable[str]) -> dict[str, Group]:
        wanted = sorted({i for i in ids if i})
        if not wanted:
            return {}
        rows = list(
            self.conn.execute(
                select(t.groups).where(
                    t.groups.c.account_id == self.account_id, one_of(self.conn, t.groups.c.id, wanted)
                )
            )
        )
        members = self._members([r.id for r in rows])
        return {r.id: _group(r, members[r.id]) for r in rows}

    def memberships(self, account_id: str) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
        return group_memberships(self.conn, account_id)

    def add(self, group: Group) -> None:
        self.conn.execute(insert(t.groups).values(created_at=datetime.now(UTC), **GROUPS.dump(group)))
        self._set_members(group)

    def update(self, group: Group) -> None:
        self.conn.execute(update(t.groups).where(t.groups.c.id == group.id).values(name=group.name))
        self.conn.execute(delete(_gp).where(_gp.c.group_id == group.id))
        self._set_members(group)

    def add_member(self, group: Group, peer_id: str) -> None:
        pos = self.conn.execute(
            select(func.coalesce(func.max(_gp.c.position), -1)).where(_gp.c.group_id == group.id)
        ).scalar_one()
        self.conn.execute(
            insert(_gp).values(
                group_id=group.id, peer_id=peer_id, account_id=group.account_id, position=pos + 1
            )
        )

    def delete(self, group_id: str) -> None:
        self.conn.execute(delete(t.groups).where(t.groups.c.id == group_id))

    def _members(self, group_ids: Sequence[str]) -> dict[str, list[str]]:
        members: dict[str, list[str]] = {g: [] for g in group_ids}
        if not group_ids:
            return members
        rows = self.conn.execute(
            select(_gp.c.group_id, _gp.c.peer_id)
            .where(one_of(self.conn, _gp.c.group_id, group_ids))
            .order_by(_gp.c.group_id, _gp.c.position, _gp.c.peer_id)
        )
        for gid, pid in rows:
            members[gid].append(pid)
        return members

    def _set_members(self, group: Group) -> None:
        if group.peers:
            self.conn.execute(
                insert(_gp),
                [
                    {"group_id": group.id, "peer_id": pid, "account_id": group.account_id, "position": i}
                    for i, pid in enumerate(group.peers)
                ],
            )


def _group(row: Row[Any], members: list[str]) -> Group:
    group = GROUPS.load(row)
    group.peers = members
    return group
