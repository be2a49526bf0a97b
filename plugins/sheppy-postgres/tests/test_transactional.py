"""Transactional enqueue: tasks written on the caller's connection, inside the caller's transaction."""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta

import asyncpg
import pytest
from sheppy_postgres import PostgresBackend

from sheppy_core.backend import utcnow

from .conftest import SERVER_URL, task


async def test_commit_makes_tasks_visible_and_wakes_a_blocked_pop(
    backend: PostgresBackend, queue: str
) -> None:
    conn = await asyncpg.connect(SERVER_URL)
    try:
        waiter = asyncio.create_task(backend.pop(queue, timeout=5))
        await asyncio.sleep(0.1)
        async with conn.transaction():
            await conn.execute("CREATE TEMP TABLE orders (id int)")
            await conn.execute("INSERT INTO orders VALUES (1)")
            assert await backend.append(queue, [task("tx-1")], connection=conn) == [True]
            assert await backend.schedule(queue, task("tx-2"), utcnow() + timedelta(hours=1), connection=conn)
            # Not visible to anyone else before the commit, and nobody was woken.
            assert await backend.get_tasks(queue, ["tx-1", "tx-2"]) == {}
            await asyncio.sleep(0.2)
            assert not waiter.done()
            committed_at = time.monotonic()
        [record] = await waiter
        assert record["id"] == "tx-1"
        assert time.monotonic() - committed_at < 0.5  # the NOTIFY fired on commit
        assert [t["id"] for t in await backend.get_scheduled(queue)] == ["tx-2"]
    finally:
        await conn.close()


async def test_rollback_leaves_no_task(backend: PostgresBackend, queue: str) -> None:
    pool = await asyncpg.create_pool(SERVER_URL, min_size=1, max_size=1)
    try:

        async def place_order() -> None:
            async with pool.acquire() as conn, conn.transaction():
                await backend.append(queue, [task("gone-1"), task("gone-2")], connection=conn)
                await backend.schedule(queue, task("gone-3"), utcnow(), connection=conn)
                raise RuntimeError("order failed")  # the caller's transaction rolls back

        with pytest.raises(RuntimeError, match="order failed"):
            await place_order()
        assert await backend.get_all_tasks(queue) == []
        assert await backend.size(queue) == 0
        assert await backend.pop(queue, 5, timeout=0.3) == []
    finally:
        await pool.close()


async def test_append_on_connection_respects_unique(backend: PostgresBackend, queue: str) -> None:
    await backend.append(queue, [task("dup")])
    conn = await asyncpg.connect(SERVER_URL)
    try:
        async with conn.transaction():
            assert await backend.append(queue, [task("dup"), task("new")], connection=conn) == [False, True]
    finally:
        await conn.close()
    assert [t["id"] for t in await backend.pop(queue, 5)] == ["dup", "new"]
