"""Scale-out on PostgreSQL: replicas tell each other what committed through LISTEN/NOTIFY.

The NOTIFY is sent inside the writing transaction, so it is delivered exactly when the change
commits. Each receiver loads the changed objects from the database and feeds its own engine; a
payload too large for NOTIFY (8000 bytes) asks receivers to reload that account instead.
"""

from __future__ import annotations

import json
import logging
import threading
import uuid

import psycopg
from sqlalchemy import Engine, text

from meshroute.server.services.uow import Change, ChangeSet, WriteTx
from meshroute.server.sync.engine import MapEngine

log = logging.getLogger(__name__)
CHANNEL = "meshroute_changes"
MAX_PAYLOAD = 7900


class ReplicaBus:
    def __init__(self, engine: Engine, map_engine: MapEngine) -> None:
        self.engine = engine
        self.map_engine = map_engine
        self.replica_id = uuid.uuid4().hex[:12]
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.ready = threading.Event()

    def before_commit(self, tx: WriteTx) -> None:
        cs = tx.changeset
        body: dict[str, object] = {
            "r": self.replica_id,
            "a": cs.account_id,
            "s": cs.serial,
            "c": [[c.kind, c.id, int(c.deleted)] for c in cs.changes],
        }
        payload = json.dumps(body, separators=(",", ":"))
        if len(payload) > MAX_PAYLOAD:
            body["c"] = None
            payload = json.dumps(body, separators=(",", ":"))
        tx.conn.execute(text("SELECT pg_notify(:ch, :p)"), {"ch": CHANNEL, "p": payload})

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="replica-bus", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
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
                    if connected_before:
                        # Whatever committed while we were not listening is lost to us: start over.
                        log.warning("replica listener reconnected; reloading every account")
                        self.map_engine.reload_all()
                    connected_before = True
                    self.ready.set()
                    while not self._stop.is_set():
                        for note in conn.notifies(timeout=0.5):
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
        self.map_engine.submit(
            ChangeSet(account_id, serial, [Change(str(k), str(i), bool(d)) for k, i, d in changes])
        )
