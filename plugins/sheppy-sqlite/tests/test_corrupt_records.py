"""Rows whose data is not a task record (robust.corrupt_record), beyond what the conformance clause checks:
a claim fills ``limit`` with good tasks past them in one call, the stand-in is stored in the row, and
scheduled, claimed and cancelled rows edited by hand never fail a call."""

from __future__ import annotations

import contextlib
import json
import logging
import sqlite3
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sheppy_sqlite import SQLiteBackend

Q = "corrupt"


def _execute(db_path: str, sql: str, *params: Any) -> list[Any]:
    """Plain SQL on the file, behind the backend's back (a bug or a manual edit)."""
    with contextlib.closing(sqlite3.connect(db_path, timeout=5, isolation_level=None)) as conn:
        return conn.execute(sql, params).fetchall()


def _insert(
    db_path: str, task_id: str, text: str, state: str = "queued", due_at: float | None = None
) -> None:
    status = "scheduled" if state == "scheduled" else "pending"
    _execute(db_path, "INSERT INTO tasks (queue, id, state, status, due_at, data) VALUES (?, ?, ?, ?, ?, ?)",
             Q, task_id, state, status, due_at, text)


def _task(i: int) -> dict[str, Any]:
    return {"id": str(uuid.uuid4()), "status": "new", "spec": {"func": "m:f", "args": [i]}, "config": {}}


def _stored(db_path: str, task_id: str) -> tuple[str, str, Any]:
    state, status, data = _execute(db_path, "SELECT state, status, data FROM tasks WHERE id = ?", task_id)[0]
    return state, status, json.loads(data)


async def test_one_pop_fills_its_limit_past_corrupt_rows(
    backend: SQLiteBackend, db_path: str, caplog: pytest.LogCaptureFixture
) -> None:
    _insert(db_path, "bad-a", "not json{")
    _insert(db_path, "bad-b", "[1, 2, 3]")
    good = [_task(i) for i in range(3)]
    await backend.append(Q, good)
    with caplog.at_level(logging.WARNING, logger="sheppy.backend"):
        claimed = await backend.pop(Q, limit=3, lease=30)
    assert [r["id"] for r in claimed] == [g["id"] for g in good]
    assert sum("bad-a" in m and Q in m for m in caplog.messages) == 1, caplog.messages
    # The row holds the quarantine record now (finished, out of the queue), the stored text kept.
    state, status, data = _stored(db_path, "bad-b")
    assert (state, status, data["status"], data["quarantine"]["raw"]) == (
        "finished", "quarantined", "quarantined", "[1, 2, 3]")
    assert (await backend.get_stats(Q))["quarantined"] == 2


async def test_a_due_corrupt_scheduled_row_is_moved_then_set_aside(
    backend: SQLiteBackend, db_path: str
) -> None:
    past = (datetime.now(UTC) - timedelta(seconds=5)).timestamp()
    _insert(db_path, "bad-s", '{"id": "someone-else"}', state="scheduled", due_at=past)
    (listed,) = await backend.get_scheduled(Q)
    assert listed["status"] == "quarantined"
    moved = await backend.pop_scheduled(Q)
    assert [(r["id"], r["status"]) for r in moved] == [("bad-s", "quarantined")]
    assert _stored(db_path, "bad-s")[2] == {"id": "someone-else"}, "moved untouched"
    assert await backend.pop(Q, limit=5, lease=30) == []
    assert _stored(db_path, "bad-s")[:2] == ("finished", "quarantined")


async def test_a_claimed_row_edited_by_hand_fails_no_call(backend: SQLiteBackend, db_path: str) -> None:
    record = _task(1)
    await backend.append(Q, [record])
    assert [r["id"] for r in await backend.pop(Q, lease=30, worker_id="w1")] == [record["id"]]
    _execute(db_path, "UPDATE tasks SET data = 'not json{' WHERE id = ?", record["id"])
    assert await backend.heartbeat(Q, [record["id"]], worker_id="w1") == [record["id"]]
    assert (await backend.get_tasks(Q, [record["id"]]))[record["id"]]["quarantine"]["raw"] == "not json{"
    assert await backend.acknowledge(Q, record["id"]) is True
    assert _execute(db_path, "SELECT data FROM tasks WHERE id = ?", record["id"]) == [("not json{",)]


async def test_reads_and_cancel_of_a_queued_corrupt_row(backend: SQLiteBackend, db_path: str) -> None:
    _insert(db_path, "bad-q", "not json{")
    (pending,) = await backend.get_pending(Q, 5)
    assert (pending["id"], pending["status"]) == ("bad-q", "quarantined")
    cancelled = await backend.cancel(Q, "bad-q")
    assert cancelled is not None and cancelled["status"] == "cancelled"
    assert cancelled["quarantine"]["raw"] == "not json{"
    assert (await backend.get_stats(Q))["cancelled"] == 1


async def test_rows_sqlite_and_python_read_differently_are_set_aside(
    backend: SQLiteBackend, db_path: str
) -> None:
    # SQLite refuses NaN, which Python reads; `true` passes SQLite's id check for id "1", not Python's.
    _insert(db_path, "nan", '{"id": "nan", "x": NaN}')
    _insert(db_path, "1", '{"id": true, "status": "pending"}')
    good = _task(2)
    await backend.append(Q, [good])
    assert [r["id"] for r in await backend.pop(Q, limit=5, lease=30, worker_id="w1")] == [good["id"]]
    for task_id in ("nan", "1"):
        state, status, data = _stored(db_path, task_id)
        assert (state, status, data["status"]) == ("finished", "quarantined", "quarantined"), task_id
    assert _stored(db_path, "nan")[2]["quarantine"]["raw"] == '{"id": "nan", "x": NaN}'
    assert await backend.pop(Q, limit=5, lease=30) == []


async def test_a_corrupt_scheduled_row_is_due_when_its_row_says_not_now(
    backend: SQLiteBackend, db_path: str
) -> None:
    # A stand-in has no time field: read as "due now", every worker's scheduler would loop without
    # a pause until the row's real due time (found in review).
    later = datetime.now(UTC) + timedelta(days=3)
    _insert(db_path, "bad-later", "{truncated", state="scheduled", due_at=later.timestamp())
    upcoming = await backend.next_scheduled_at(Q)
    assert upcoming is not None and abs((upcoming - later).total_seconds()) < 1
    assert await backend.pop_scheduled(Q) == []
    # Due, it is moved like any task and then set aside by the claim.
    moved = await backend.pop_scheduled(Q, now=later + timedelta(seconds=1))
    assert [r["id"] for r in moved] == ["bad-later"]
    assert await backend.pop(Q, limit=5) == []
    assert (await backend.get_stats(Q))["quarantined"] == 1
