"""The sheppy-conformance suite against a real SQLite file (one fresh file per test)."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from pathlib import Path

import pytest
from sheppy_conformance import BackendConformance
from sheppy_sqlite import SQLiteBackend

from sheppy_core.backend import Backend


def write_raw_task(path: str, queue_name: str, task_id: str, text: str) -> None:
    """Store ``text`` as the data of a task queued at the tail of ``queue_name``, with plain SQL behind
    the backend's back: exactly what a bug or a manual ``UPDATE`` would leave. (A new row's ``seq`` is
    ``max(seq) + 1``, the tail, and the insert trigger registers the queue.)"""
    with contextlib.closing(sqlite3.connect(path, timeout=5, isolation_level=None)) as conn:
        conn.execute(
            "INSERT INTO tasks (queue, id, state, status, data) VALUES (?, ?, 'queued', 'pending', ?)",
            (queue_name, task_id, text),
        )


class _SQLiteSuite(BackendConformance):
    async def write_stored_text(self, backend: Backend, queue_name: str, task_id: str, text: str) -> None:
        """Insert a queued row whose data is ``text`` (robust.corrupt_record)."""
        assert isinstance(backend, SQLiteBackend)
        await asyncio.to_thread(write_raw_task, backend.path, queue_name, task_id, text)


class TestSQLiteConformance(_SQLiteSuite):
    @pytest.fixture
    def backend_factory(self, tmp_path: Path) -> object:
        url = f"sqlite:///{tmp_path / 'conformance.db'}"
        return lambda: SQLiteBackend.from_url(url)


class TestSQLiteConformanceThreadOnly(_SQLiteSuite):
    """The same with every statement sent through aiosqlite's thread (``fast_path=false``): the path
    taken when the file is busy, and always with ``synchronous=full``."""

    @pytest.fixture
    def backend_factory(self, tmp_path: Path) -> object:
        url = f"sqlite:///{tmp_path / 'conformance.db'}?fast_path=false"
        return lambda: SQLiteBackend.from_url(url)
