"""Peers in SQL."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import delete, insert, select, update

from meshroute.core.model import Peer
from meshroute.server.store import tables as t
from meshroute.server.store.mapping import PEERS
from meshroute.server.store.sql.common import SqlRepository, one_of
from meshroute.server.store.summaries import PeerSummary, peer_summaries

# Connection status has its own writer (set_status, outside the account lock): writing back the
# copy read at the start of a transaction would undo it.
_NOT_UPDATED = ("id", "connected", "last_seen")


class SqlPeers(SqlRepository):
    def get(self, peer_id: str) -> Peer | None:
        row = self.conn.execute(
            select(t.peers).where(t.peers.c.id == peer_id, t.peers.c.account_id == self.account_id)
        ).first()
        return PEERS.load(row) if row else None

    def by_key(self, key: str) -> Peer | None:
        row = self.conn.execute(select(t.peers).where(t.peers.c.key == key)).first()
        return PEERS.load(row) if row else None

    def all(self, account_id: str) -> list[Peer]:
        rows = self.conn.execute(
            select(t.peers)
            .where(t.peers.c.account_id == account_id)
            .order_by(t.peers.c.created_at, t.peers.c.id)
        )
        return [PEERS.load(r) for r in rows]

    def by_ids(self, ids: Iterable[str]) -> dict[str, Peer]:
        wanted = sorted(set(ids))
        if not wanted:
            return {}
        rows = self.conn.execute(
            select(t.peers).where(
                t.peers.c.account_id == self.account_id, one_of(self.conn, t.peers.c.id, wanted)
            )
        )
        return {r.id: PEERS.load(r) for r in rows}

    def summaries(self, account_id: str, peer_id: str | None = None) -> list[PeerSummary]:
        return peer_summaries(self.conn, account_id, peer_id)

    def used_ips(self, account_id: str) -> set[str]:
        rows = self.conn.execute(select(t.peers.c.ip).where(t.peers.c.account_id == account_id))
        return {r.ip for r in rows}

    def used_dns_labels(self, account_id: str) -> set[str]:
        rows = self.conn.execute(select(t.peers.c.dns_label).where(t.peers.c.account_id == account_id))
        return {r.dns_label for r in rows}

    def add(self, peer: Peer, credential_hash: str | None = None) -> None:
        self.conn.execute(insert(t.peers).values(credential_hash=credential_hash, **PEERS.dump(peer)))

    def update(self, peer: Peer) -> None:
        values = PEERS.dump(peer, exclude=_NOT_UPDATED)
        self.conn.execute(update(t.peers).where(t.peers.c.id == peer.id).values(**values))

    def delete(self, peer_id: str) -> None:
        self.conn.execute(delete(t.group_peers).where(t.group_peers.c.peer_id == peer_id))
        self.conn.execute(delete(t.peers).where(t.peers.c.id == peer_id))

    def set_status(
        self, peer_id: str, connected: bool, when: datetime, *, if_last_seen: datetime | None = None
    ) -> None:
        q = update(t.peers).where(t.peers.c.id == peer_id)
        if if_last_seen is not None:
            q = q.where(t.peers.c.last_seen == if_last_seen)
        self.conn.execute(q.values(connected=connected, last_seen=when))

    def reset_connections(self) -> None:
        self.conn.execute(update(t.peers).where(t.peers.c.connected.is_(True)).values(connected=False))

    def credential_hash(self, peer_id: str) -> str | None:
        row = self.conn.execute(select(t.peers.c.credential_hash).where(t.peers.c.id == peer_id)).first()
        return row.credential_hash if row else None
