"""Scale-out on PostgreSQL: replicas tell each other what committed through LISTEN/NOTIFY.

The NOTIFY is sent inside the writing transaction, so it is delivered exactly when the change
commits. It names what changed (kind, ID, deleted); each receiver loads the changed objects the
network map depends on from the database, in its listener thread, and feeds its own engine the
typed change set. A payload too large for NOTIFY (8000 bytes) asks receivers to reload that
account instead.
"""

from __future__ import annotations

import json
import logging
import threading
import uuid
from typing import cast

import psycopg
from sqlalchemy import Engine, text

from meshroute.core import changes as ch
from meshroute.core.changes import Change, ChangeSet
from meshroute.server.services.uow import Reader, WriteTx
from meshroute.server.store.ports import Repositories
from meshroute.server.store.sql import SqlRepositories, SqlStore
from meshroute.server.sync.engine import MapEngine

log = logging.getLogger(__name__)
CHANNEL = "meshroute_changes"
MAX_PAYLOAD = 7900


class ReplicaBus:
    def __init__(self, engine: Engine, map_engine: MapEngine) -> None:
        self.engine = engine
        self.reader = Reader(SqlStore(engine))
        self.map_engine = map_engine
        self.replica_id = uuid.uuid4().hex[:12]
        self._stop = threading.Event()
        self._wake_channel = f"{CHANNEL}_wake_{self.replica_id}"  # only this replica listens there
        self._thread: threading.Thread | None = None
        self.ready = threading.Event()

    def before_commit(self, tx: WriteTx) -> None:
        cs = tx.changeset
        body: dict[str, object] = {
            "r": self.replica_id,
            "a": cs.account_id,
            "s": cs.serial,
            "c": [list(_wire(c)) for c in cs.changes],
        }
        payload = json.dumps(body, separators=(",", ":"))
        if len(payload) > MAX_PAYLOAD:
            body["c"] = None
            payload = json.dumps(body, separators=(",", ":"))
        conn = cast(SqlRepositories, tx.repos).conn  # the replica fan-out exists on PostgreSQL only
        conn.execute(text("SELECT pg_notify(:ch, :p)"), {"ch": CHANNEL, "p": payload})

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="replica-bus", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None and self._thread.is_alive():
            try:  # wake the listener now rather than at its next poll
                with self.engine.begin() as conn:
                    conn.execute(text("SELECT pg_notify(:ch, '')"), {"ch": self._wake_channel})
            except Exception:  # it stops at its next poll all the same
                log.debug("could not wake the replica listener", exc_info=True)
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _dsn(self) -> str:
        url = self.engine.url.set(drivername="postgresql")
        return url.render_as_string(hide_password=False)

    def _run(self) -> None:
        """Never dies: a replica that stopped listening would serve stale maps for good."""
        connected_before = False
        while not self._stop.is_set():
            try:
                with psycopg.connect(self._dsn(), autocommit=True) as conn:
                    conn.execute(f"LISTEN {CHANNEL}")
                    conn.execute(f"LISTEN {self._wake_channel}")
                    if connected_before:
                        # Whatever committed while we were not listening is lost to us: start over.
                        log.warning("replica listener reconnected; reloading every account")
                        self.map_engine.reload_all()
                    connected_before = True
                    self.ready.set()
                    while not self._stop.is_set():
                        for note in conn.notifies(timeout=0.5):
                            if note.channel != CHANNEL:
                                break  # woken up to stop
                            self._handle(note.payload)
            except Exception:
                log.exception("replica listener failed; reconnecting")
                self.ready.clear()
                self._stop.wait(1)

    def _handle(self, payload: str) -> None:
        try:
            self._dispatch(payload)
        except Exception:  # one bad notification must not stop the listener
            log.exception("ignoring a change notification that could not be handled: %.200s", payload)

    def _dispatch(self, payload: str) -> None:
        body = json.loads(payload)
        if body.get("r") == self.replica_id:
            return  # our own change: the local unit of work already delivered it
        account_id, serial, changes = str(body["a"]), int(body["s"]), body.get("c")
        if changes is None:
            self.map_engine.reload(account_id)
            return
        with self.reader.read(account_id) as tx:
            loaded = [c for k, i, d in changes if (c := _load(tx, str(k), str(i), bool(d))) is not None]
        self.map_engine.submit(ChangeSet(account_id, serial, loaded))


# Change type -> (kind on the wire, field holding the object or its ID, deleted).
_WIRE: dict[type, tuple[str, str, int]] = {
    ch.RouteUpserted: ("route", "route", 0),
    ch.RouteDeleted: ("route", "route_id", 1),
    ch.GroupUpserted: ("group", "group", 0),
    ch.GroupDeleted: ("group", "group_id", 1),
    ch.PeerUpserted: ("peer", "peer", 0),
    ch.PeerDeleted: ("peer", "peer_id", 1),
    ch.AccountUpdated: ("account", "account", 0),
    ch.UserUpserted: ("user", "user", 0),
    ch.UserDeleted: ("user", "user_id", 1),
    ch.TokenCreated: ("token", "token", 0),
    ch.TokenDeleted: ("token", "token_id", 1),
    ch.SetupKeyUpserted: ("setup_key", "key", 0),
    ch.SetupKeyDeleted: ("setup_key", "key_id", 1),
}


def _wire(c: Change) -> tuple[str, str, int]:
    """(kind, ID, deleted) of a change, as other replicas receive it."""
    kind, field, deleted = _WIRE[type(c)]
    value = getattr(c, field)
    return kind, value if deleted else value.id, deleted


def _load(tx: Repositories, kind: str, obj_id: str, deleted: bool) -> Change | None:
    """The committed state of one object another replica changed, as a typed change (possibly
    newer than the change set: harmless, the next change set carries the same object again).
    Kinds the network map does not depend on need no object: the change set still moves the serial."""
    if kind == "route":
        route = None if deleted else tx.routes.get(obj_id)
        return ch.RouteUpserted(route) if route else ch.RouteDeleted(obj_id)
    if kind == "group":
        group = None if deleted else tx.groups.get(obj_id)
        return ch.GroupUpserted(group) if group else ch.GroupDeleted(obj_id)
    if kind == "peer":
        peer = None if deleted else tx.peers.get(obj_id)
        return ch.PeerUpserted(peer) if peer else ch.PeerDeleted(obj_id)
    if kind == "account":
        account = tx.accounts.get(obj_id)
        return ch.AccountUpdated(account) if account else None
    return None
