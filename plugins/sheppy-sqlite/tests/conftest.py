from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
import pytest_asyncio
from sheppy_sqlite import SQLiteBackend


@pytest.fixture
def db_path(tmp_path: Path) -> str:
    return str(tmp_path / "queue.db")


@pytest.fixture(params=[True, False], ids=["fast-path", "thread-only"])
def fast_path(request: pytest.FixtureRequest) -> bool:
    """Every backend test runs twice: with statements on the loop where possible, and all through
    aiosqlite's thread (the path taken when the database is busy or synchronous=full)."""
    return bool(request.param)


@pytest_asyncio.fixture
async def make_backend(db_path: str, fast_path: bool) -> AsyncIterator[Callable[..., SQLiteBackend]]:
    """Connected-on-demand backends on the test's file, all disconnected at the end."""
    made: list[SQLiteBackend] = []

    def make(**kwargs: object) -> SQLiteBackend:
        kwargs.setdefault("fast_path", fast_path)
        backend = SQLiteBackend(db_path, **kwargs)  # type: ignore[arg-type]
        made.append(backend)
        return backend

    yield make
    for backend in made:
        await backend.disconnect()


@pytest_asyncio.fixture
async def backend(make_backend: Callable[..., SQLiteBackend]) -> SQLiteBackend:
    b = make_backend()
    await b.connect()
    return b


@pytest_asyncio.fixture
async def other(make_backend: Callable[..., SQLiteBackend]) -> SQLiteBackend:
    """A second backend object (own connection) on the same file: what another worker sees."""
    b = make_backend()
    await b.connect()
    return b
