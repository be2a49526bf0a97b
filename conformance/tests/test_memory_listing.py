"""The reference backend's listing keys follow its records wherever they go: records that expire, cron
occurrences deleted with their cron, a cleared queue, a reset. (The suite's clauses check the listing on
records a caller deletes; these are the ways the memory backend drops records by itself.)"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest_asyncio
from sheppy_conformance.records import eventually, finished, task_record

from sheppy_core import MemoryBackend

QUEUE = "listing"


@pytest_asyncio.fixture
async def backend() -> AsyncIterator[MemoryBackend]:
    memory = MemoryBackend(instant_processing=False, ttl=0.2)
    await memory.connect()
    yield memory
    await memory.disconnect()


async def listed(backend: MemoryBackend) -> list[str]:
    return [r["id"] for r in (await backend.list_tasks(QUEUE)).records]


async def test_an_expired_record_leaves_the_listing(backend: MemoryBackend) -> None:
    done, waiting = task_record(1), task_record(2)
    await backend.append(QUEUE, [done, waiting])
    (claimed,) = await backend.pop(QUEUE, lease=30)
    await backend.store_result(QUEUE, finished(claimed))

    async def expired() -> bool:
        return await backend.get_tasks(QUEUE, [done["id"]]) == {}

    assert await eventually(expired, 5, interval=0.02), "the finished record did not expire"
    assert await listed(backend) == [waiting["id"]]
    assert (await backend.count_by_status(QUEUE))["completed"] == 0


async def test_occurrences_deleted_with_their_cron_leave_the_listing(backend: MemoryBackend) -> None:
    cron_id = str(uuid.uuid4())
    occurrence, other = task_record(1, cron_id=cron_id), task_record(2)
    await backend.add_cron(QUEUE, cron_id, {"id": cron_id, "expression": "* * * * *"})
    await backend.schedule(QUEUE, occurrence, datetime(2100, 1, 1, tzinfo=UTC))
    await backend.append(QUEUE, [other])
    assert await backend.delete_cron(QUEUE, cron_id)
    assert await listed(backend) == [other["id"]]


async def test_clear_and_reset_drop_listing_keys_and_reset_drops_workers(backend: MemoryBackend) -> None:
    await backend.append(QUEUE, [task_record(1)])
    await backend.register_worker({"id": "w-1"}, ttl=30)
    await backend.clear(QUEUE)
    assert await listed(backend) == []
    assert [w["id"] for w in await backend.list_workers()] == ["w-1"], "clear leaves workers"
    await backend.append(QUEUE, [task_record(2)])
    backend.reset()
    assert await listed(backend) == []
    assert await backend.list_workers() == []
