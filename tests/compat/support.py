"""Helpers of the sheppy compatibility suite (fixtures are in conftest.py)."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Callable
from typing import Any

import asyncpg
import pytest
import redis.asyncio as redis_asyncio

from sheppy_core import MemoryBackend, Worker
from sheppy_core._plugins import backend_from_url
from sheppy_core.backend import Backend

QUEUE_NAME = "pytest"
REDIS_URL = "redis://127.0.0.1:6379/0"
POSTGRES_URL = "postgresql://postgres@127.0.0.1:5432/test"
WORK_BOUND = 60.0
"""Seconds a test lets ``work()`` run before it fails (a bound, never a sleep)."""
STATE_BOUND = 20.0
"""Seconds ``until()`` waits for a state before the test fails."""

STORES = ["memory", "sqlite", "redis", "postgres"]


class Store:
    """One fresh store: ``new_backend()`` makes another backend object on it (the same object for
    memory, which has no shared storage)."""

    def __init__(self, kind: str, url: str | None) -> None:
        self.kind = kind
        self.url = url
        self._memory: MemoryBackend | None = None
        self.made: list[Backend] = []

    def new_backend(self, **options: Any) -> Backend:
        if self.url is None:
            if options:
                return MemoryBackend(**options)
            if self._memory is None:
                self._memory = MemoryBackend(instant_processing=False)
            return self._memory
        backend = backend_from_url(self.url)
        self.made.append(backend)
        return backend


async def delete_redis_prefix(prefix: str) -> None:
    """Remove every key under ``prefix`` on the shared Redis (a test's clean-up)."""
    client = redis_asyncio.Redis.from_url(REDIS_URL)
    try:
        keys = [key async for key in client.scan_iter(match=f"{prefix}:*", count=1000)]
        if keys:
            await client.unlink(*keys)
    finally:
        await client.aclose()


async def drop_schema(schema: str) -> None:
    """Drop a test's PostgreSQL schema and everything in it."""
    conn = await asyncpg.connect(POSTGRES_URL)
    try:
        await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    finally:
        await conn.close()


def fast(worker: Worker) -> Worker:
    """Shorten the polling a test would otherwise wait for, as sheppy's own fixtures do."""
    worker._blocking_timeout = 0.01
    worker._scheduler_polling_interval = 0.01
    worker._cron_polling_interval = 0.01
    return worker


async def work(worker: Worker, bound: float = WORK_BOUND, **options: Any) -> None:
    """``await worker.work(**options)`` without signal handlers, failing the test after ``bound`` s."""
    options.setdefault("register_signal_handlers", False)
    await asyncio.wait_for(worker.work(**options), bound)


async def until(condition: Callable[[], Any], bound: float = STATE_BOUND) -> None:
    """Wait (polling) until ``condition()`` is true; fail the test after ``bound`` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + bound
    while True:
        value = condition()
        if inspect.isawaitable(value):
            value = await value
        if value:
            return
        if loop.time() > deadline:
            pytest.fail(f"condition not met within {bound} s")
        await asyncio.sleep(0.01)
