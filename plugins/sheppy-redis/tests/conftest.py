"""Shared fixtures: a unique key prefix per test on the shared Redis at 127.0.0.1:6379, cleaned up after.

Tests that need Redis FAIL when it is down (``connect`` raises BackendConnectionError); nothing skips.
"""

from __future__ import annotations

import sys
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
import pytest_asyncio
from sheppy_redis import RedisBackend

# The root pyproject puts the repository's tests/ on sys.path; our helpers have a name of their own.
sys.path.insert(0, str(Path(__file__).parent))

from sheppy_redis_testing import REDIS_URL, delete_prefix


@pytest.fixture
def prefix() -> str:
    return f"sheppy-test-{uuid.uuid4().hex[:12]}"


@pytest_asyncio.fixture
async def make_backend(prefix: str) -> AsyncIterator[Callable[..., RedisBackend]]:
    """Build backends on one store (same prefix); all are disconnected and the keys deleted after."""
    made: list[RedisBackend] = []

    def factory(**kwargs: object) -> RedisBackend:
        backend = RedisBackend(REDIS_URL, prefix=prefix, **kwargs)  # type: ignore[arg-type]
        made.append(backend)
        return backend

    yield factory
    for backend in made:
        await backend.disconnect()
    await delete_prefix(REDIS_URL, prefix)


@pytest_asyncio.fixture
async def backend(make_backend: Callable[..., RedisBackend]) -> RedisBackend:
    created = make_backend()
    await created.connect()
    return created
