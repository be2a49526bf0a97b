"""Heartbeats have a connection of their own (sheppy_postgres._lane): a pool whose every connection is
busy (e.g. workflow resumes waiting on one row lock) must not make a worker lose its leases."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from datetime import datetime

import asyncpg
import pytest
from sheppy_postgres import PostgresBackend

from sheppy_core.exceptions import BackendConnectionError

from .conftest import SERVER_URL, task, url_for


@pytest.fixture
async def small_pool(schema: str) -> AsyncIterator[PostgresBackend]:
    backend = PostgresBackend.from_url(url_for(schema, pool_min=1, pool_max=2))
    await backend.connect()
    try:
        yield backend
    finally:
        await backend.disconnect()


async def claimed(backend: PostgresBackend, queue: str) -> tuple[str, datetime]:
    record = task()
    await backend.append(queue, [record])
    [popped] = await backend.pop(queue, 1, worker_id="w", lease=5)
    return popped["id"], datetime.fromisoformat(popped["lease_expires_at"])


@contextlib.asynccontextmanager
async def every_pool_connection_taken(backend: PostgresBackend) -> AsyncIterator[None]:
    pool = backend._pool
    assert pool is not None
    async with contextlib.AsyncExitStack() as stack:
        for _ in range(pool.get_max_size()):
            await stack.enter_async_context(pool.acquire())
        yield


async def test_heartbeat_goes_through_while_the_pool_is_exhausted(
    small_pool: PostgresBackend, queue: str
) -> None:
    task_id, first_lease = await claimed(small_pool, queue)
    async with every_pool_connection_taken(small_pool):
        kept = await asyncio.wait_for(small_pool.heartbeat(queue, [task_id], worker_id="w", lease=60), 3)
        assert kept == [task_id]
    [record] = (await small_pool.get_tasks(queue, [task_id])).values()
    assert datetime.fromisoformat(record["lease_expires_at"]) > first_lease
    # Another worker's id does not extend anything, on the lane as through the pool.
    assert await small_pool.heartbeat(queue, [task_id], worker_id="someone-else", lease=60) == []


async def test_a_terminated_lane_falls_back_to_the_pool_then_reconnects(
    small_pool: PostgresBackend, queue: str
) -> None:
    task_id, _ = await claimed(small_pool, queue)
    assert await small_pool.heartbeat(queue, [task_id], worker_id="w", lease=60) == [task_id]
    lane = small_pool._lane
    assert lane is not None and lane.server_pid is not None
    old_pid = lane.server_pid
    admin = await asyncpg.connect(SERVER_URL)
    try:
        assert await admin.fetchval("SELECT pg_terminate_backend($1)", old_pid)
    finally:
        await admin.close()
    await asyncio.sleep(0.2)  # the session is gone; the client has not noticed yet
    assert await small_pool.heartbeat(queue, [task_id], worker_id="w", lease=60) == [task_id]
    assert await small_pool.heartbeat(queue, [task_id], worker_id="w", lease=60) == [task_id]
    assert lane.server_pid is not None and lane.server_pid != old_pid


async def test_disconnect_closes_the_lane(schema: str, queue: str) -> None:
    backend = PostgresBackend.from_url(url_for(schema))
    await backend.connect()
    task_id, _ = await claimed(backend, queue)
    await backend.heartbeat(queue, [task_id], worker_id="w", lease=60)
    assert backend._lane is not None
    pid = backend._lane.server_pid
    assert pid is not None
    await backend.disconnect()
    admin = await asyncpg.connect(SERVER_URL)
    try:
        for _ in range(50):
            if not await admin.fetchval("SELECT count(*) FROM pg_stat_activity WHERE pid = $1", pid):
                break
            await asyncio.sleep(0.05)
        else:
            pytest.fail(f"the lane's session {pid} is still open after disconnect()")
    finally:
        await admin.close()
    with pytest.raises(BackendConnectionError):
        await backend.heartbeat(queue, [task_id], worker_id="w", lease=60)
