"""Heartbeats have a connection of their own (sheppy_postgres._lane): a pool whose every connection is
busy (e.g. workflow resumes waiting on one row lock) must not make a worker lose its leases, and the
lane must never make a heartbeat slower or less reliable than the pool alone."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

import asyncpg
import pytest
from sheppy_postgres import PostgresBackend
from sheppy_postgres._config import quote_ident
from sheppy_postgres._lane import Lane, LaneUnavailable

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
    await backend.append(queue, [task()])
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


@contextlib.asynccontextmanager
async def row_locked(schema: str, queue: str, task_id: str) -> AsyncIterator[asyncpg.Connection[Any]]:
    """The task's row locked by another session until the block ends (its heartbeat UPDATE waits)."""
    conn = await asyncpg.connect(SERVER_URL)
    try:
        async with conn.transaction():
            locked = await conn.fetchval(
                f"SELECT count(*) FROM (SELECT 1 FROM {quote_ident(schema)}.tasks "
                "WHERE queue = $1 AND id = $2 FOR UPDATE) AS l",
                queue,
                task_id,
            )
            assert locked == 1
            yield conn
    finally:
        await conn.close()


async def test_heartbeat_goes_through_while_the_pool_is_exhausted(
    small_pool: PostgresBackend, queue: str
) -> None:
    task_id, first_lease = await claimed(small_pool, queue)
    async with every_pool_connection_taken(small_pool):
        kept = await asyncio.wait_for(small_pool.heartbeat(queue, [task_id], worker_id="w", lease=60), 3)
        assert kept == [task_id]
    [record] = (await small_pool.get_tasks(queue, [task_id])).values()
    assert datetime.fromisoformat(record["lease_expires_at"]) > first_lease
    # Another worker's id does not extend anything.
    assert await small_pool.heartbeat(queue, [task_id], worker_id="someone-else", lease=60) == []


async def test_a_heartbeat_the_lane_cannot_finish_in_time_goes_through_the_pool(
    small_pool: PostgresBackend, schema: str, queue: str
) -> None:
    task_id, _ = await claimed(small_pool, queue)
    await small_pool.heartbeat(queue, [task_id], worker_id="w", lease=60)  # the lane is open
    lane = small_pool._lane
    assert lane is not None and lane.server_pid is not None
    async with row_locked(schema, queue, task_id):
        started = time.monotonic()
        # lease 1.5 s: the lane gives the statement 0.5 s, then the pool's waits for the lock
        heartbeat = asyncio.create_task(small_pool.heartbeat(queue, [task_id], worker_id="w", lease=1.5))
        await asyncio.sleep(1.2)
        assert not heartbeat.done()
        assert lane.server_pid is None  # the lane timed out and let its connection go
    assert await asyncio.wait_for(heartbeat, 3) == [task_id]
    assert time.monotonic() - started >= 1.2
    # The lane rests after a failure; later heartbeats use the pool meanwhile, then the lane again.
    assert await small_pool.heartbeat(queue, [task_id], worker_id="w", lease=60) == [task_id]


async def test_heartbeats_do_not_queue_behind_one_on_the_lane(
    small_pool: PostgresBackend, schema: str, queue: str
) -> None:
    stuck_id, _ = await claimed(small_pool, queue)
    other_id, _ = await claimed(small_pool, queue)
    async with row_locked(schema, queue, stuck_id):
        stuck = asyncio.create_task(small_pool.heartbeat(queue, [stuck_id], worker_id="w", lease=15))
        await asyncio.sleep(0.3)  # on the lane, waiting for the lock (up to 5 s)
        started = time.monotonic()
        assert await small_pool.heartbeat(queue, [other_id], worker_id="w", lease=15) == [other_id]
        assert time.monotonic() - started < 1.0
    assert await asyncio.wait_for(stuck, 5) == [stuck_id]


async def test_a_terminated_lane_session_is_replaced(small_pool: PostgresBackend, queue: str) -> None:
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
    for _ in range(3):  # whichever way the client learns of it, no heartbeat is lost
        assert await small_pool.heartbeat(queue, [task_id], worker_id="w", lease=60) == [task_id]
        await asyncio.sleep(0.1)
    await asyncio.sleep(5.1)  # past a rest, if the lane took one
    assert await small_pool.heartbeat(queue, [task_id], worker_id="w", lease=60) == [task_id]
    assert lane.server_pid is not None and lane.server_pid != old_pid


async def session_ends(pid: int) -> None:
    """Fail unless the server session ``pid`` is gone within 2.5 s."""
    admin = await asyncpg.connect(SERVER_URL)
    try:
        for _ in range(50):
            if not await admin.fetchval("SELECT count(*) FROM pg_stat_activity WHERE pid = $1", pid):
                return
            await asyncio.sleep(0.05)
    finally:
        await admin.close()
    pytest.fail(f"the lane's session {pid} is still open after disconnect()")


async def test_disconnect_closes_the_lane(schema: str, queue: str) -> None:
    backend = PostgresBackend.from_url(url_for(schema))
    await backend.connect()
    task_id, _ = await claimed(backend, queue)
    await backend.heartbeat(queue, [task_id], worker_id="w", lease=60)
    assert backend._lane is not None
    pid = backend._lane.server_pid
    assert pid is not None
    await backend.disconnect()
    await session_ends(pid)
    with pytest.raises(BackendConnectionError):
        await backend.heartbeat(queue, [task_id], worker_id="w", lease=60)


async def test_disconnect_does_not_wait_for_a_heartbeat_stuck_on_the_lane(schema: str, queue: str) -> None:
    backend = PostgresBackend.from_url(url_for(schema))
    await backend.connect()
    task_id, _ = await claimed(backend, queue)
    async with row_locked(schema, queue, task_id):
        stuck = asyncio.create_task(backend.heartbeat(queue, [task_id], worker_id="w", lease=15))
        await asyncio.sleep(0.3)
        assert backend._lane is not None
        pid = backend._lane.server_pid
        assert pid is not None
        started = time.monotonic()
        await asyncio.wait_for(backend.disconnect(), 8)
        assert time.monotonic() - started < 6
        assert not backend.is_connected
        with pytest.raises(BackendConnectionError):
            await asyncio.wait_for(stuck, 5)  # cut off; the pool it would fall back to is closed
    await session_ends(pid)


async def test_a_lane_that_cannot_connect_rests_instead_of_trying_every_time() -> None:
    attempts = 0

    async def never_connects() -> asyncpg.Connection[Any]:
        nonlocal attempts
        attempts += 1
        await asyncio.sleep(3600)
        raise AssertionError("unreachable")

    lane = Lane(never_connects, connect_timeout=0.2, retry_after=0.5)
    started = time.monotonic()
    with pytest.raises(LaneUnavailable):
        await lane.fetch("SELECT 1", timeout=1)
    assert 0.15 < time.monotonic() - started < 1.0
    with pytest.raises(LaneUnavailable):  # resting: no second attempt, no wait
        await lane.fetch("SELECT 1", timeout=1)
    assert attempts == 1
    await asyncio.sleep(0.6)
    with pytest.raises(LaneUnavailable):
        await lane.fetch("SELECT 1", timeout=1)
    assert attempts == 2
    await lane.close()
