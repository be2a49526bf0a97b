"""Claims: SKIP LOCKED exclusivity across backend objects, leases, heartbeats, redelivery."""

from __future__ import annotations

import asyncio
from collections import Counter

from sheppy_postgres import PostgresBackend

from .conftest import task


async def test_concurrent_pops_on_separate_backends_never_share_a_task(url: str, queue: str) -> None:
    total, workers = 400, 8
    backends = [PostgresBackend.from_url(url) for _ in range(workers)]
    await asyncio.gather(*(b.connect() for b in backends))
    try:
        await backends[0].append(queue, [task(f"t{i:04d}") for i in range(total)])
        got: list[str] = []

        async def drain(b: PostgresBackend, limit: int) -> None:
            while True:
                batch = await b.pop(queue, limit, worker_id=f"w{id(b)}")
                if not batch:
                    if await b.size(queue) == 0:
                        return
                    continue
                got.extend(t["id"] for t in batch)

        # Two coroutines per backend object, with different batch sizes, all at once.
        await asyncio.gather(*(drain(b, 1 + (i % 5)) for i, b in enumerate(backends * 2)))
        duplicates = [k for k, n in Counter(got).items() if n > 1]
        assert duplicates == []
        assert sorted(got) == [f"t{i:04d}" for i in range(total)]
        assert (await backends[0].get_stats(queue))["processing"] == total
    finally:
        await asyncio.gather(*(b.disconnect() for b in backends))


async def test_expired_lease_is_redelivered_first(url: str, queue: str) -> None:
    async with PostgresBackend.from_url(url) as first, PostgresBackend.from_url(url) as second:
        await first.append(queue, [task("leased"), task("queued")])
        [claimed] = await first.pop(queue, worker_id="w1", lease=0.2)
        assert claimed["id"] == "leased"
        [other] = await second.pop(queue, 1, worker_id="w2")
        assert other["id"] == "queued"  # the live lease is hidden
        await second.store_result(queue, {**other, "status": "pending"})  # back to the queue
        await asyncio.sleep(0.3)
        [again] = await second.pop(queue, worker_id="w3", lease=30)
        assert again["id"] == "leased"  # expired leases before the queue head
        assert again["deliveries"] == 2
        assert again["claimed_by"] == "w3"
        # The old holder lost it: heartbeat says so and leaves it alone.
        assert await first.heartbeat(queue, ["leased"], worker_id="w1") == []


async def test_heartbeat_extends_the_lease(url: str, queue: str) -> None:
    async with PostgresBackend.from_url(url) as holder, PostgresBackend.from_url(url) as other:
        await holder.append(queue, [task("hb")])
        await holder.pop(queue, worker_id="w1", lease=0.3)
        for _ in range(3):
            await asyncio.sleep(0.15)
            assert await holder.heartbeat(queue, ["hb", "unknown"], worker_id="w1", lease=0.3) == ["hb"]
            assert await other.pop(queue) == []
        stored = (await other.get_tasks(queue, ["hb"]))["hb"]
        assert stored["claimed_by"] == "w1"
        await asyncio.sleep(0.4)
        # Expired but not reclaimed yet: the holder may still extend it.
        assert await holder.heartbeat(queue, ["hb"], worker_id="w1") == ["hb"]
        assert await other.heartbeat(queue, ["hb"], worker_id="w2") == []


async def test_blocking_pop_wakes_for_expired_lease_via_fallback_poll(url: str, queue: str) -> None:
    # No NOTIFY is sent when a lease runs out; the fallback poll (1 s) picks it up.
    async with PostgresBackend.from_url(url) as backend:
        await backend.append(queue, [task("e")])
        await backend.pop(queue, lease=0.2)
        [again] = await backend.pop(queue, timeout=3)
        assert again["id"] == "e" and again["deliveries"] == 2
