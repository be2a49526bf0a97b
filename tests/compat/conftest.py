"""Fixtures of the sheppy compatibility suite: every test runs on each store a sheppy user may pick.

The suite is written from ``../shared/reference/sheppy-api.md`` (the spec of sheppy's public API),
section by section: ``test_s05_queue.py`` holds what §5 says, and so on. It uses only public names, the
way a sheppy user's code and tests do after changing ``sheppy`` to ``sheppy_core`` in the imports, plus
the private worker attributes sheppy's own tests tune (``_blocking_timeout`` ...).

Each store is fresh per test: a new ``MemoryBackend(instant_processing=False)`` (shared by the queue
and the worker, as sheppy's fixtures do), a new SQLite file, a Redis key prefix and a PostgreSQL schema
of their own (deleted afterwards). The queue and the worker talk to the store through two backend
objects, as two processes would. A Redis or PostgreSQL server that is down fails the tests; nothing
skips.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from compat.support import (
    POSTGRES_URL,
    QUEUE_NAME,
    REDIS_URL,
    STORES,
    Store,
    delete_redis_prefix,
    drop_schema,
    fast,
)

from sheppy_core import Queue, Worker
from sheppy_core.backend import Backend


@pytest.fixture(params=STORES)
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    kind: str = request.param
    token = uuid.uuid4().hex[:12]
    if kind == "memory":
        made = Store(kind, None)
    elif kind == "sqlite":
        made = Store(kind, f"sqlite:///{tmp_path}/compat.db")
    elif kind == "redis":
        made = Store(kind, f"{REDIS_URL}?prefix=compat-{token}")
    else:
        made = Store(kind, f"{POSTGRES_URL}?schema=compat_{token}")
    yield made
    for backend in made.made:
        if backend.is_connected:
            await backend.disconnect()
    if made._memory is not None and made._memory.is_connected:
        await made._memory.disconnect()
    if kind == "redis":
        await delete_redis_prefix(f"compat-{token}")
    elif kind == "postgres":
        await drop_schema(f"compat_{token}")


@pytest.fixture
def backend(store: Store) -> Backend:
    """The backend the test's ``Queue`` uses (connected lazily, as sheppy's is)."""
    return store.new_backend()


@pytest.fixture
def worker_backend(store: Store, backend: Backend) -> Backend:
    """Another backend object on the same store, for the worker (memory: the same object)."""
    return store.new_backend()


@pytest.fixture
def queue(backend: Backend) -> Queue:
    return Queue(backend, QUEUE_NAME)


@pytest.fixture
def worker(worker_backend: Backend) -> Worker:
    return fast(Worker(QUEUE_NAME, worker_backend))


@pytest.fixture
def make_worker(worker_backend: Backend) -> Callable[..., Worker]:
    """``make_worker(queue_name=QUEUE_NAME, **Worker options)``, on the worker's backend."""

    def factory(queue_name: str | list[str] = QUEUE_NAME, **options: Any) -> Worker:
        return fast(Worker(queue_name, worker_backend, **options))

    return factory

