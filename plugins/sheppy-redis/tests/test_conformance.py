"""The sheppy-conformance suite against a single Redis node (127.0.0.1:6379), one key prefix per run.

The reconnect clauses get a real dropped connection: every socket of the backend's pool is aborted
behind redis-py's back, as a server restart or a network cut would.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from sheppy_conformance import BackendConformance
from sheppy_redis import RedisBackend
from sheppy_redis_testing import REDIS_URL, delete_prefix, write_stored_text

from sheppy_core.backend import Backend

PREFIX = f"sheppy-conformance-{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="module", autouse=True)
def _clean_prefix() -> Iterator[None]:
    yield
    asyncio.run(delete_prefix(REDIS_URL, PREFIX))


def abort_sockets(backend: RedisBackend) -> int:
    """Abort the TCP connection of every pooled connection of ``backend``; returns how many."""
    client: Any = backend._client
    pool = client.connection_pool
    aborted = 0
    for connection in [*pool._available_connections, *pool._in_use_connections]:
        writer = getattr(connection, "_writer", None)
        if writer is not None:
            writer.transport.abort()
            aborted += 1
    return aborted


class TestRedisConformance(BackendConformance):
    def make_backend(self) -> Backend:
        return RedisBackend.from_url(f"{REDIS_URL}?prefix={PREFIX}")

    async def write_stored_text(self, backend: Backend, queue_name: str, task_id: str, text: str) -> None:
        await write_stored_text(backend, queue_name, task_id, text)

    async def drop_connection(self, backend: Backend) -> None:
        assert isinstance(backend, RedisBackend)
        assert abort_sockets(backend) > 0
        await asyncio.sleep(0)  # let the event loop notice the closed transports
