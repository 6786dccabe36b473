"""The fan-out hub: bounded per-agent queues, overflow turns into a full-map resync."""

from __future__ import annotations

import asyncio

from meshroute.core.networkmap.types import MapDelta
from meshroute.server.sync import hub as hub_mod
from meshroute.server.sync.hub import FULL, Session, SyncHub


def test_slow_agent_overflow_becomes_one_full_map_and_others_are_untouched() -> None:
    async def scenario() -> None:
        hub = SyncHub()
        slow, fast = Session("acc", "slow"), Session("acc", "fast")
        hub.register(slow)
        hub.register(fast)
        for serial in range(1, hub_mod.QUEUE_LIMIT + 5):
            hub.publish("acc", {"slow": MapDelta(serial=serial)})
            hub.publish("acc", {"fast": MapDelta(serial=serial)})
            while not fast.queue.empty():  # the fast agent keeps up
                fast.queue.get_nowait()
        assert slow.overflows == 1
        items = [slow.queue.get_nowait() for _ in range(slow.queue.qsize())]
        assert items[0] is FULL
        # the delta that overflowed is covered by the full map; later ones follow it
        limit = hub_mod.QUEUE_LIMIT
        assert [d.serial for d in items[1:] if d is not None] == list(range(limit + 2, limit + 5))
        assert fast.overflows == 0

    asyncio.run(scenario())


def test_reload_resyncs_every_session_of_the_account_only() -> None:
    async def scenario() -> None:
        hub = SyncHub()
        a, b, other = Session("acc", "a"), Session("acc", "b"), Session("acc2", "c")
        for s in (a, b, other):
            hub.register(s)
        hub.publish("acc", None)
        assert a.queue.get_nowait() is FULL and b.queue.get_nowait() is FULL
        assert other.queue.empty()
        hub.unregister(a)
        assert hub.connected("acc") == {"b"}

    asyncio.run(scenario())
