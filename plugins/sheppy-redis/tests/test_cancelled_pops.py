"""A ``pop`` cancelled while its claim is in flight (a worker's graceful stop, SIGTERM during a blocking
pop) hands back whatever the claim script took on the server: nothing stays claimed by a caller that
never saw it, and the cancelled claim is not counted in ``deliveries``."""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest
from sheppy_redis import RedisBackend
from sheppy_redis._scripts import Script

Factory = Callable[..., RedisBackend]


def record(task_id: str) -> dict[str, Any]:
    return {"id": task_id, "status": "new", "deliveries": 0, "spec": {"func": "m:f", "args": [task_id]}}


async def drain(backend: RedisBackend, queue: str) -> list[dict[str, Any]]:
    claimed: list[dict[str, Any]] = []
    while batch := await backend.pop(queue, limit=100, worker_id="checker", lease=60):
        claimed.extend(batch)
    return claimed


async def test_pops_cancelled_at_random_points_hand_every_claim_back(make_backend: Factory) -> None:
    producer, consumer, checker = (make_backend() for _ in range(3))
    for backend in (producer, consumer, checker):
        await backend.connect()
    rng = random.Random(20240604)
    appended: list[str] = []
    delivered: list[dict[str, Any]] = []
    cancelled = 0
    for round_no in range(300):
        batch = [record(f"t{round_no}-{i}") for i in range(rng.randint(0, 3))]
        appended.extend(r["id"] for r in batch)
        timeout = rng.choice([None, 2.0])
        pop = asyncio.create_task(
            consumer.pop("cq", limit=rng.randint(1, 4), timeout=timeout, worker_id="stopping", lease=60)
        )
        adding = asyncio.create_task(producer.append("cq", batch))
        # Cancel at a varying point: after a few event-loop turns, or after up to 2 ms of real time
        # (the script's round trip on a local server), so some cancels land with the reply in flight.
        if rng.random() < 0.5:
            for _ in range(rng.randint(0, 6)):
                await asyncio.sleep(0)
        else:
            await asyncio.sleep(rng.uniform(0, 0.002))
        pop.cancel()
        try:
            delivered.extend(await asyncio.wait_for(pop, 10))
        except asyncio.CancelledError:
            cancelled += 1
        await asyncio.wait_for(adding, 10)
    assert cancelled > 100  # the test really cancelled claims
    claimable = await drain(checker, "cq")
    counts = Counter(r["id"] for r in [*delivered, *claimable])
    missing = sorted(set(appended) - set(counts))
    assert not missing, f"{len(missing)} task(s) claimed by cancelled pops and not handed back: {missing[:5]}"
    assert [t for t, n in counts.items() if n > 1] == []
    assert sorted(counts) == sorted(appended)
    recounted = sorted(r["id"] for r in [*delivered, *claimable] if r["deliveries"] != 1)
    assert not recounted, f"deliveries counted by cancelled claims: {recounted[:5]}"
    stats = await checker.get_stats("cq")
    assert (stats["pending"], stats["processing"]) == (0, len(appended))


@pytest.fixture
def slow_pop_reply(monkeypatch: pytest.MonkeyPatch) -> asyncio.Event:
    """Makes every ``pop`` script reply reach its caller 0.2 s after the script ran on the server (a
    slow network); the event is set when a claim script has run."""
    ran = asyncio.Event()
    original = Script.run

    async def run(self: Script, client: Any, keys: list[str], args: list[Any]) -> Any:
        reply = await original(self, client, keys, args)
        if self.name == "pop" and b"\n[]" not in reply:
            ran.set()
            await asyncio.sleep(0.2)
        return reply

    monkeypatch.setattr(Script, "run", run)
    return ran


async def test_claim_whose_reply_was_in_flight_is_handed_back_exactly(
    make_backend: Factory, slow_pop_reply: asyncio.Event
) -> None:
    producer, consumer = make_backend(), make_backend()
    await producer.connect()
    await consumer.connect()
    await producer.append("flight", [record("expired"), record("queued-1"), record("queued-2")])
    # "expired": claimed by a worker whose lease ran out (claimable again, nobody took it yet).
    [old] = await producer.pop("flight", worker_id="old-worker", lease=0.05)
    await asyncio.sleep(0.1)
    slow_pop_reply.clear()
    before = await producer.get_tasks("flight", ["expired", "queued-1", "queued-2"])

    pop = asyncio.create_task(consumer.pop("flight", limit=3, worker_id="stopping", lease=60))
    await asyncio.wait_for(slow_pop_reply.wait(), 5)  # claimed on the server, reply not yet read
    pop.cancel()
    with pytest.raises(asyncio.CancelledError):
        await pop

    # Every record is as it was before the cancelled claim, field for field.
    assert await producer.get_tasks("flight", ["expired", "queued-1", "queued-2"]) == before
    stats = await producer.get_stats("flight")
    assert (stats["pending"], stats["processing"]) == (2, 1)
    # The expired claim is still the old worker's to renew, as if nobody had touched it.
    assert await producer.heartbeat("flight", ["expired"], worker_id="old-worker", lease=0.05) == ["expired"]
    await asyncio.sleep(0.1)
    again = await producer.pop("flight", limit=3, worker_id="next", lease=60)
    assert [r["id"] for r in again] == ["expired", "queued-1", "queued-2"]
    assert [r["deliveries"] for r in again] == [old["deliveries"] + 1, 1, 1]


async def test_idle_pop_cancelled_while_woken_leaves_the_task_for_the_next_worker(
    make_backend: Factory, slow_pop_reply: asyncio.Event
) -> None:
    producer, stopping, other = make_backend(), make_backend(), make_backend()
    for backend in (producer, stopping, other):
        await backend.connect()
    blocked = asyncio.create_task(stopping.pop("idle", timeout=10, worker_id="stopping", lease=60))
    await asyncio.sleep(0.1)  # let it block (a pop that has not blocked yet claims the same way)
    await producer.append("idle", [record("woken")])
    await asyncio.wait_for(slow_pop_reply.wait(), 5)
    blocked.cancel()
    with pytest.raises(asyncio.CancelledError):
        await blocked
    got = await asyncio.wait_for(other.pop("idle", timeout=3, worker_id="other", lease=60), 6)
    assert [(r["id"], r["deliveries"]) for r in got] == [("woken", 1)]
