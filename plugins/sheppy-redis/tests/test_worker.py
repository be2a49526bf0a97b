"""sheppy-core's Queue and Worker on RedisBackend: results, retries through the schedule, waits."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import timedelta

from sheppy_redis import RedisBackend
from sheppy_redis_testing import double, fail_once

from sheppy_core import Queue, Worker


async def test_worker_processes_retries_and_schedules(make_backend: Callable[..., RedisBackend]) -> None:
    producer_backend = make_backend()
    worker_backend = make_backend()
    queue = Queue(producer_backend, "jobs")
    jobs = [double(i) for i in range(20)]
    flaky = fail_once("k1")
    later = double(100)
    assert all(await queue.add([*jobs, flaky]))
    assert await queue.schedule(later, timedelta(milliseconds=300))

    worker = Worker("jobs", worker_backend, max_concurrent_tasks=4)
    running = asyncio.create_task(worker.work(register_signal_handlers=False))
    try:
        results = await queue.wait_for([*jobs, flaky, later], timeout=20)
    finally:
        worker.stop()
        await asyncio.wait_for(running, 20)
    assert [results[j.id].result for j in jobs] == [2 * i for i in range(20)]
    assert results[flaky.id].status == "completed"
    assert results[flaky.id].retry_count == 1
    assert results[later.id].result == 200
    stats = await producer_backend.get_stats("jobs")
    assert stats["completed"] == 22
    assert stats["pending"] == stats["processing"] == stats["scheduled"] == 0
