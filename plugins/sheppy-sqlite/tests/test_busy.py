"""SQLITE_BUSY: waited out within the busy timeout, then a clear BackendError — never a raw sqlite3
error, never a lost or half-stored task."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Callable, Iterator

import pytest
from sheppy_sqlite import SQLiteBackend

from sheppy_core.exceptions import BackendError

Q = "busy"


@pytest.fixture
def blocker(db_path: str) -> Iterator[sqlite3.Connection]:
    """A plain sqlite3 connection another process would hold; the test decides when it locks."""
    conn = sqlite3.connect(db_path, isolation_level=None, check_same_thread=False)
    yield conn
    conn.close()  # also rolls back; closing twice is harmless


async def test_write_lock_held_too_long_raises_backend_error(
    make_backend: Callable[..., SQLiteBackend], blocker: sqlite3.Connection
) -> None:
    backend = make_backend(busy_timeout=200)
    await backend.connect()
    await backend.append(Q, [{"id": "a"}])
    blocker.execute("BEGIN IMMEDIATE")
    started = time.monotonic()
    with pytest.raises(BackendError, match="stayed locked") as caught:
        await backend.append(Q, [{"id": "b"}, {"id": "c"}])
    assert not isinstance(caught.value, sqlite3.Error)
    assert time.monotonic() - started < 2
    with pytest.raises(BackendError, match="stayed locked"):
        await backend.pop(Q)
    blocker.rollback()
    assert await backend.size(Q) == 1, "the refused batch stored nothing; the queued task is still there"
    assert [t["id"] for t in await backend.pop(Q)] == ["a"], "the failed pop claimed nothing"
    assert await backend.append(Q, [{"id": "b"}]) == [True]


async def test_lock_released_within_the_timeout_is_waited_for(
    make_backend: Callable[..., SQLiteBackend], blocker: sqlite3.Connection
) -> None:
    backend = make_backend(busy_timeout=3000)
    await backend.connect()
    blocker.execute("BEGIN IMMEDIATE")
    asyncio.get_running_loop().call_later(0.3, blocker.rollback)
    started = time.monotonic()
    assert await backend.append(Q, [{"id": "a"}]) == [True]
    assert time.monotonic() - started >= 0.25
    assert await backend.size(Q) == 1


async def test_busy_without_busy_handler_is_retried_then_reported(
    make_backend: Callable[..., SQLiteBackend], db_path: str, blocker: sqlite3.Connection
) -> None:
    # Leaving WAL needs exclusive access; an open read transaction elsewhere makes SQLite answer
    # "database is locked" at once. The backend retries until its busy timeout, then says so.
    first = make_backend()
    await first.connect()
    await first.disconnect()
    blocker.execute("BEGIN")
    blocker.execute("SELECT count(*) FROM tasks").fetchall()
    backend = make_backend(busy_timeout=300, journal_mode="delete")
    started = time.monotonic()
    with pytest.raises(BackendError, match="locked"):
        await backend.connect()
    assert 0.25 <= time.monotonic() - started < 3
    assert not backend.is_connected
    blocker.close()  # in WAL mode even an idle connection prevents leaving WAL
    await backend.connect()
    assert (await backend.server_info())["journal_mode"] == "delete"
