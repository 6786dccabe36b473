"""Read models: rows shaped for what the API lists, read without building domain objects.

`GET /api/peers` lists every peer of an account (25,000 in NetBird's largest benchmark). Building
a `Peer` per row (an IPv4Address, an endpoint list decoded from JSON, three datetimes through the
ORM's type processors) cost more than the rest of the request; a summary is a plain tuple of the
columns the answer shows, its times parsed once with `datetime.fromisoformat`.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, NamedTuple

from sqlalchemy import Connection, String, select, type_coerce

from meshroute.server.store import tables as t


class PeerSummary(NamedTuple):
    id: str
    name: str
    created_at: datetime
    ip: str
    ipv6: str | None  # allocated address, used only when `ipv6_capable`
    connection_ip: str
    connected: bool
    last_seen: datetime | None
    os: str
    kernel_version: str
    version: str
    ssh_enabled: bool
    user_id: str
    hostname: str
    dns_label: str
    login_expiration_enabled: bool
    last_login: datetime | None
    inactivity_expiration_enabled: bool
    ephemeral: bool
    ipv6_capable: bool


_TIMES = ("created_at", "last_seen", "last_login")  # positions 2, 7 and 16, as peer_summaries() expects
_c = t.peers.c
# Times come raw (SQLite: ISO text; PostgreSQL: the driver's naive datetime), the rest as stored.
_COLUMNS = [
    type_coerce(getattr(_c, f), String).label(f) if f in _TIMES else getattr(_c, f)
    for f in PeerSummary._fields
]


def peer_summaries(conn: Connection, account_id: str, peer_id: str | None = None) -> list[PeerSummary]:
    """The account's peers (or the one), in creation order."""
    q = select(*_COLUMNS).where(_c.account_id == account_id)
    if peer_id is not None:
        q = q.where(_c.id == peer_id)
    result = conn.execute(q.order_by(_c.created_at, _c.id))
    try:
        # The driver's own tuples: every column is converted below, so the result's per-row
        # processing (half the time of the whole read) would be done for nothing.
        rows = result.cursor.fetchall()
    finally:
        result.close()
    make, utc = PeerSummary._make, _utc
    # Booleans as bool whatever the driver returns (SQLite: 0/1), times as aware UTC datetimes.
    return [
        make(
            (
                *r[:2],
                utc(r[2]),
                *r[3:6],
                bool(r[6]),
                utc(r[7]),
                *r[8:11],
                bool(r[11]),
                *r[12:15],
                bool(r[15]),
                utc(r[16]),
                bool(r[17]),
                bool(r[18]),
                bool(r[19]),
            )
        )
        for r in rows
    ]


def _utc(value: Any) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    assert isinstance(value, datetime)
    return value.replace(tzinfo=UTC)


def group_memberships(
    conn: Connection, account_id: str
) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """The account's groups as (ID, name) in creation order, and every membership as (group ID,
    peer ID) in no order: what a peer list shows of its peers' groups. (Joined and sorted in
    the store, the 50,000 memberships of 25,000 peers took twice as long.)"""
    g, gp = t.groups.c, t.group_peers.c
    groups = conn.execute(select(g.id, g.name).where(g.account_id == account_id).order_by(g.created_at, g.id))
    members = conn.execute(select(gp.group_id, gp.peer_id).where(gp.account_id == account_id))
    return [(r[0], r[1]) for r in groups], [(r[0], r[1]) for r in members]
