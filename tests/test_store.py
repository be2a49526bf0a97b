"""``QueueStore``, the storage layer under ``Queue``, ``Worker`` and the engine: Task ⇄ record, one
lazy connect, and reads that skip what is not a task."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
import tasks_for_tests as t

from sheppy_core import MemoryBackend, Queue, QueueStore
from sheppy_core.backend import quarantine_record
from sheppy_core.exceptions import NotSupportedError


class CountingBackend(MemoryBackend):
    """Counts connects, and makes each one take a moment so concurrent callers overlap."""

    connects = 0

    async def connect(self) -> None:
        type(self).connects += 1
        await asyncio.sleep(0.01)
        await super().connect()


async def test_concurrent_callers_connect_the_backend_once() -> None:
    CountingBackend.connects = 0
    store = QueueStore(CountingBackend(instant_processing=False), "q")
    await asyncio.gather(*(store.size() for _ in range(20)))
    assert CountingBackend.connects == 1 and store.backend.is_connected


async def test_a_task_round_trips_through_its_record() -> None:
    store = QueueStore(MemoryBackend(instant_processing=False), "q")
    job = t.add(1, 2)
    assert await store.add([job]) == [True]
    assert await store.add([job]) == [False]  # unique by id
    [record] = await store.claim(1)
    assert record["id"] == str(job.id) and record["status"] == "processing"
    found = await store.tasks([str(job.id)])
    assert found[job.id].spec == job.spec and found[job.id].status == "processing"


async def test_reads_skip_records_that_are_not_tasks() -> None:
    store = QueueStore(MemoryBackend(instant_processing=False), "q")
    kept, bad = t.add(1, 2), t.add(3, 4)
    await store.add([kept, bad])
    # What the processor stores for a claimed record that does not validate as a task.
    await store.store_record(quarantine_record(str(bad.id), '{"not": "a task"}', "test"))
    assert set(await store.tasks([str(kept.id), str(bad.id)])) == {kept.id}
    assert [task.id for task in await store.all_tasks()] == [kept.id]
    assert str(bad.id) in await store.records([str(bad.id)])  # the raw record is kept to inspect


async def test_schedule_and_release_due() -> None:
    store = QueueStore(MemoryBackend(instant_processing=False), "q")
    job = t.add(2, 3)
    when = datetime.now(UTC) + timedelta(hours=1)
    assert await store.schedule(job, when)
    assert [s.id for s in await store.scheduled()] == [job.id]
    assert await store.release_due() == []
    [moved] = await store.release_due(when)
    assert moved["id"] == str(job.id) and await store.size() == 1


async def test_a_connection_needs_the_transactional_enqueue_capability() -> None:
    store = QueueStore(MemoryBackend(instant_processing=False), "q")
    with pytest.raises(NotSupportedError, match="transactional_enqueue"):
        await store.add([t.add(1, 1)], connection=object())


def test_a_queue_and_its_store_share_one_connection() -> None:
    queue = Queue(MemoryBackend(), "q")
    assert queue.store.backend is queue.backend and queue.store.name == "q"
    assert queue.store.as_queue().store is queue.store


def test_an_invalid_queue_name_is_refused_before_any_call() -> None:
    with pytest.raises(ValueError):
        QueueStore(MemoryBackend(), "")
