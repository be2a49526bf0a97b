"""store_result calls made in one event-loop turn share a transaction, with per-call outcomes."""

from __future__ import annotations

import asyncio
import sqlite3
from datetime import timedelta
from typing import Any

import pytest
from sheppy_sqlite import SQLiteBackend

from sheppy_core.backend import to_iso, utcnow
from sheppy_core.exceptions import BackendError

Q = "jobs"


def rec(task_id: str) -> dict[str, Any]:
    return {"id": task_id, "status": "new", "config": {}}


def done(record: dict[str, Any]) -> dict[str, Any]:
    return {**record, "status": "completed", "finished_at": to_iso(utcnow()), "result": record["id"]}


async def _mixed_batch(backend: SQLiteBackend) -> None:
    """Finished, re-queued, retrying and unknown records stored concurrently: each gets its own answer."""
    await backend.append(Q, [rec(f"t{i}") for i in range(6)])
    t0, t1, t2, t3 = await backend.pop(Q, 4)
    retry_at = utcnow() + timedelta(hours=1)
    outcomes = await asyncio.gather(
        backend.store_result(Q, done(t0)),
        backend.store_result(Q, {**t1, "status": "processing"}),
        backend.store_result(Q, done(rec("ghost"))),
        backend.store_result(Q, {**t2, "status": "retrying", "next_retry_at": to_iso(retry_at)}),
        backend.store_result(Q, done(t3)),
    )
    assert outcomes == [True, True, False, True, True]
    assert [t["id"] for t in await backend.get_pending(Q, 10)] == ["t4", "t5", "t1"]
    assert [t["id"] for t in await backend.get_scheduled(Q)] == ["t2"]
    results = await backend.get_results(Q, ["t0", "t3"])
    assert {k: v["result"] for k, v in results.items()} == {"t0": "t0", "t3": "t3"}
    stats = await backend.get_stats(Q)
    assert stats["completed"] == 2 and stats["processing"] == 0


async def test_concurrent_store_results_keep_per_record_semantics(backend: SQLiteBackend) -> None:
    await _mixed_batch(backend)


async def test_concurrent_store_results_share_one_commit(backend: SQLiteBackend, db_path: str) -> None:
    await backend.append(Q, [rec(f"t{i}") for i in range(10)])
    claimed = await backend.pop(Q, 10)
    commits: list[int] = []
    probe = sqlite3.connect(db_path)
    try:
        before = probe.execute("PRAGMA data_version").fetchone()[0]
        assert all(await asyncio.gather(*(backend.store_result(Q, done(t)) for t in claimed)))
        commits.append(probe.execute("PRAGMA data_version").fetchone()[0] - before)
    finally:
        probe.close()
    # data_version changes once per commit seen from another connection; one batch = one change.
    assert commits == [1]
    assert (await backend.get_stats(Q))["completed"] == 10


async def test_batch_waits_out_another_writer(backend: SQLiteBackend, db_path: str) -> None:
    """While another connection holds the write lock, the batch goes through the waiting thread."""
    await backend.append(Q, [rec(f"t{i}") for i in range(3)])
    claimed = await backend.pop(Q, 3)
    blocker = sqlite3.connect(db_path, isolation_level=None)
    try:
        blocker.execute("BEGIN IMMEDIATE")
        storing = asyncio.gather(*(backend.store_result(Q, done(t)) for t in claimed))
        await asyncio.sleep(0.2)
        assert not storing.done()
        blocker.execute("COMMIT")
        assert await asyncio.wait_for(storing, 10) == [True, True, True]
    finally:
        blocker.close()
    assert (await backend.get_stats(Q))["completed"] == 3


async def test_failed_batch_falls_back_to_one_by_one(
    backend: SQLiteBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A shared transaction that fails is retried statement by statement, so outcomes stay exact."""
    await backend.connect()
    store = backend._store  # white-box: force the batch path to fail

    def broken(*_: object, **__: object) -> None:
        raise BackendError("batch failed")

    async def broken_async(*_: object, **__: object) -> None:
        raise BackendError("batch failed")

    monkeypatch.setattr(store, "try_fast_many", broken)
    monkeypatch.setattr(store, "rows_many", broken_async)
    await _mixed_batch(backend)


async def test_cancelled_caller_still_stores(backend: SQLiteBackend) -> None:
    await backend.append(Q, [rec("a")])
    (task,) = await backend.pop(Q)
    storing = asyncio.ensure_future(backend.store_result(Q, done(task)))
    await asyncio.sleep(0)
    storing.cancel()
    with pytest.raises(asyncio.CancelledError):
        await storing
    await asyncio.sleep(0.05)
    assert (await backend.get_stats(Q))["completed"] == 1
