"""Fan-out to connected agents. Runs on the server's event loop; one bounded queue per agent, so a
slow agent never delays the others: when its queue overflows it is resynced with a full map."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from datetime import datetime

from meshroute.core.networkmap.types import MapDelta

log = logging.getLogger(__name__)
QUEUE_LIMIT = 64
FULL = None  # queue marker: send a full map


@dataclass(eq=False)
class Session:
    account_id: str
    peer_id: str
    connected_at: datetime | None = None
    queue: asyncio.Queue[MapDelta | None] = field(default_factory=lambda: asyncio.Queue(QUEUE_LIMIT))
    overflows: int = 0

    def offer(self, item: MapDelta | None) -> None:
        try:
            self.queue.put_nowait(item)
        except asyncio.QueueFull:
            self.overflows += 1
            while not self.queue.empty():
                self.queue.get_nowait()
            self.queue.put_nowait(FULL)


class SyncHub:
    def __init__(self) -> None:
        self.loop: asyncio.AbstractEventLoop | None = None
        self._sessions: dict[str, dict[str, set[Session]]] = {}  # account -> peer -> sessions

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop

    def register(self, s: Session) -> None:
        self._sessions.setdefault(s.account_id, {}).setdefault(s.peer_id, set()).add(s)

    def unregister(self, s: Session) -> None:
        peers = self._sessions.get(s.account_id, {})
        sessions = peers.get(s.peer_id)
        if sessions is not None:
            sessions.discard(s)
            if not sessions:
                del peers[s.peer_id]

    def sessions(self) -> list[Session]:
        return [s for peers in self._sessions.values() for group in peers.values() for s in group]

    def connected(self, account_id: str) -> set[str]:
        return set(self._sessions.get(account_id, {}))

    def publish_threadsafe(self, account_id: str, deltas: dict[str, MapDelta | None] | None) -> None:
        """Called from the engine's thread."""
        if self.loop is not None and not self.loop.is_closed():
            self.loop.call_soon_threadsafe(self.publish, account_id, deltas)

    def publish(self, account_id: str, deltas: dict[str, MapDelta | None] | None) -> None:
        peers = self._sessions.get(account_id)
        if not peers:
            return
        if deltas is None:  # the account was reloaded: everyone starts over
            for sessions in peers.values():
                for s in sessions:
                    s.offer(FULL)
            return
        for peer_id, delta in deltas.items():
            for s in peers.get(peer_id, ()):
                s.offer(delta)
