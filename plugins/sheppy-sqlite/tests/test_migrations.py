"""Schema migrations: upgrades apply once, atomically, also when several connections race.

(The several-processes-at-once case for a fresh file is in test_multiprocess.py.)
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
from collections.abc import Callable

import pytest
from sheppy_sqlite import SQLiteBackend, _migrations
from sheppy_sqlite._sql import Migration, migrations

from sheppy_core.exceptions import BackendError


def _with_extra(monkeypatch: pytest.MonkeyPatch, *statements: str) -> None:
    """Pretend this sheppy-sqlite ships one more migration."""
    extra = Migration(len(migrations()) + 1, "9999_test.sql", list(statements))
    monkeypatch.setattr(_migrations, "migrations", lambda: (*migrations(), extra))
    monkeypatch.setattr(_migrations, "LATEST_SCHEMA_VERSION", extra.version)


def _versions(db_path: str) -> list[int]:
    with sqlite3.connect(db_path) as conn:
        return [row[0] for row in conn.execute("SELECT version FROM schema_version ORDER BY version")]


def _tables(db_path: str) -> set[str]:
    with sqlite3.connect(db_path) as conn:
        return {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}


async def test_upgrade_applies_new_migration_once_under_concurrent_connects(
    make_backend: Callable[..., SQLiteBackend], db_path: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = make_backend()
    await first.connect()
    await first.append("q", [{"id": "kept"}])
    await first.disconnect()
    current = len(migrations())

    _with_extra(monkeypatch, "CREATE TABLE extra (x INTEGER);", "INSERT INTO extra VALUES (1);")
    racers = [make_backend() for _ in range(5)]
    await asyncio.gather(*(b.connect() for b in racers))
    assert _versions(db_path) == list(range(1, current + 2))
    with sqlite3.connect(db_path) as conn:
        assert conn.execute("SELECT count(*) FROM extra").fetchone()[0] == 1, "applied exactly once"
    assert [t["id"] for t in await racers[0].get_all_tasks("q")] == ["kept"], "data survives upgrades"
    assert (await racers[0].server_info())["schema_version"] == current + 1


async def test_failing_migration_changes_nothing(
    make_backend: Callable[..., SQLiteBackend], db_path: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = make_backend()
    await first.connect()
    await first.disconnect()
    before = _versions(db_path)

    _with_extra(monkeypatch, "CREATE TABLE half_done (x INTEGER);", "THIS IS NOT SQL;")
    with pytest.raises(BackendError):
        await make_backend().connect()
    assert _versions(db_path) == before
    assert "half_done" not in _tables(db_path), "the migration's first statement was rolled back"


async def test_reconnecting_applies_nothing(make_backend: Callable[..., SQLiteBackend], db_path: str) -> None:
    for _ in range(3):
        backend = make_backend()
        await backend.connect()
        await backend.disconnect()
    assert _versions(db_path) == list(range(1, len(migrations()) + 1))


async def test_version_2_keeps_rows_claims_and_order(
    make_backend: Callable[..., SQLiteBackend], db_path: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A version-1 file (AUTOINCREMENT seq) upgrades to the rowid seq with every row, claim and place."""
    first = migrations()[:1]
    with monkeypatch.context() as patch:
        patch.setattr(_migrations, "migrations", lambda: first)
        patch.setattr(_migrations, "LATEST_SCHEMA_VERSION", 1)
        old = make_backend()
        await old.connect()
        await old.disconnect()
    assert _versions(db_path) == [1]
    # The rows version 1's append and pop wrote (today's statements need the columns of version 4).
    with sqlite3.connect(db_path) as conn:
        conn.executemany(
            "INSERT INTO tasks (queue, id, state, status, data) VALUES ('q', ?, 'queued', 'pending', ?)",
            [(f"t{i}", json.dumps({"id": f"t{i}", "status": "pending", "config": {}})) for i in range(4)],
        )
        conn.execute(
            "UPDATE tasks SET state = 'claimed', status = 'processing', claimed_by = 'w1', lease_until = ?,"
            " data = json_set(data, '$.status', 'processing', '$.claimed_by', 'w1') WHERE id = 't0'",
            (time.time() + 600,),
        )
    with sqlite3.connect(db_path) as conn:
        seqs_before = conn.execute("SELECT id, seq, state FROM tasks ORDER BY seq").fetchall()

    backend = make_backend()
    await backend.connect()
    assert _versions(db_path) == list(range(1, len(migrations()) + 1))
    with sqlite3.connect(db_path) as conn:
        assert conn.execute("SELECT id, seq, state FROM tasks ORDER BY seq").fetchall() == seqs_before
        assert "AUTOINCREMENT" not in conn.execute(
            "SELECT sql FROM sqlite_master WHERE name = 'tasks'").fetchone()[0].upper()
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert await backend.heartbeat("q", ["t0"], worker_id="w1") == ["t0"], "the claim survived"
    await backend.append("q", [{"id": "new", "status": "new", "config": {}}])
    assert [t["id"] for t in await backend.get_pending("q", 10)] == ["t1", "t2", "t3", "new"]
    assert await backend.list_queues() == {"q": 4}, "the queue-registering trigger is back"
