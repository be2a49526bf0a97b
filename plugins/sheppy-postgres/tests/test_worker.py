"""sheppy-core's Queue and Worker on PostgreSQL, end to end (including ``Queue.add(connection=)``)."""

from __future__ import annotations

import asyncio

import asyncpg
from sheppy_postgres import PostgresBackend

from sheppy_core import Queue, Worker, task

from .conftest import SERVER_URL


@task
async def add_numbers(a: int, b: int) -> int:
    return a + b


ATTEMPTS: dict[str, int] = {}


@task(retry=1, retry_delay=0.05)
async def fails_once(key: str) -> str:
    ATTEMPTS[key] = ATTEMPTS.get(key, 0) + 1
    if ATTEMPTS[key] == 1:
        raise RuntimeError("first attempt fails")
    return "ok"


async def test_worker_processes_tasks_added_in_a_transaction(url: str, queue: str) -> None:
    backend = PostgresBackend.from_url(url)
    q = Queue(backend, queue)
    conn = await asyncpg.connect(SERVER_URL)
    try:
        async with conn.transaction():
            assert await q.add(add_numbers(1, 2), connection=conn)
        try:
            async with conn.transaction():
                await q.add(add_numbers(100, 100), connection=conn)
                raise LookupError("rolled back")
        except LookupError:
            pass
        plain = [add_numbers(i, i) for i in range(5)]
        assert await q.add(plain) == [True] * 5
        worker = Worker(queue, PostgresBackend.from_url(url), enable_cron_manager=False)
        await asyncio.wait_for(worker.work(oneshot=True, register_signal_handlers=False), 30)
        results = await q.wait_for(plain, timeout=5)
        assert sorted(t.result for t in results.values()) == [0, 2, 4, 6, 8]
        assert await q.size() == 0
        stats = await q.stats()
        assert stats["completed"] == 6  # 1 + 2 from the transaction, and the 5 plain ones; not 200
        assert len(await q.get_all_tasks()) == 6
    finally:
        await conn.close()
        await backend.disconnect()


async def test_worker_retries_through_the_schedule(url: str, queue: str) -> None:
    backend = PostgresBackend.from_url(url)
    q = Queue(backend, queue)
    try:
        flaky = fails_once(queue)
        await q.add(flaky)
        worker = Worker(queue, PostgresBackend.from_url(url), enable_cron_manager=False)
        await asyncio.wait_for(worker.work(oneshot=True, register_signal_handlers=False), 30)
        done = await q.wait_for(flaky, timeout=5)
        assert done is not None and done.status == "completed" and done.result == "ok"
        assert done.retry_count == 1
        assert ATTEMPTS[queue] == 2
    finally:
        await backend.disconnect()
