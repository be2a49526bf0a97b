"""Several processes, each with its own SQLiteBackend, on one file."""

from __future__ import annotations

import asyncio
import json
import multiprocessing
import sys
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import pytest
from sheppy_sqlite import LATEST_SCHEMA_VERSION, SQLiteBackend

sys.path.insert(0, str(Path(__file__).parent))
import _mp_worker

CTX = multiprocessing.get_context("spawn")


def _join(processes: Sequence[multiprocessing.process.BaseProcess], seconds: float) -> None:
    deadline = time.monotonic() + seconds
    for process in processes:
        process.join(max(0.1, deadline - time.monotonic()))
    alive = [p for p in processes if p.is_alive()]
    for process in alive:
        process.kill()
    assert not alive, f"{len(alive)} worker process(es) did not finish in {seconds} s"
    assert all(p.exitcode == 0 for p in processes), [p.exitcode for p in processes]


@pytest.mark.timeout(180)
@pytest.mark.parametrize("fast_path", [True, False], ids=["fast-path", "thread-only"])
async def test_four_processes_complete_8000_tasks_exactly_once(tmp_path: Path, fast_path: bool) -> None:
    path = str(tmp_path / "mp.db")
    queue = "mp"
    total = 8000
    async with SQLiteBackend(path) as backend:
        stored = await backend.append(queue, [{"id": f"t{i:05d}", "n": i} for i in range(total)])
        assert all(stored)

    start = CTX.Barrier(5)  # four workers, connected, and this test
    outputs = [tmp_path / f"worker{i}.json" for i in range(4)]
    processes = [
        # Two workers claim one task at a time, two claim ten.
        CTX.Process(
            target=_mp_worker.drain,
            args=(path, queue, f"w{i}", 1 + (i % 2) * 9, fast_path, start, str(out)),
        )
        for i, out in enumerate(outputs)
    ]
    for process in processes:
        process.start()
    await asyncio.to_thread(start.wait, 60)
    await asyncio.to_thread(_join, processes, 150)

    finished_by = [json.loads(out.read_text()) for out in outputs]
    counts = Counter(task_id for ids in finished_by for task_id in ids)
    assert len(counts) == total, f"{total - len(counts)} task(s) never finished"
    assert max(counts.values()) == 1, [t for t, c in counts.items() if c > 1][:10]
    assert all(ids for ids in finished_by), "every process should have taken part"

    async with SQLiteBackend(path) as backend:
        stats = await backend.get_stats(queue)
        assert stats["completed"] == total
        assert stats["pending"] == stats["processing"] == stats["scheduled"] == 0
        records = await backend.get_all_tasks(queue)
        assert len(records) == total
        assert {r["deliveries"] for r in records} == {1}
        assert all(r["status"] == "completed" and r["claimed_by"] is None for r in records)


@pytest.mark.timeout(120)
async def test_concurrent_first_connects_migrate_once(tmp_path: Path) -> None:
    path = str(tmp_path / "fresh.db")
    start = CTX.Event()
    outputs = [tmp_path / f"connect{i}.json" for i in range(6)]
    processes = [CTX.Process(target=_mp_worker.connect_once, args=(path, start, str(out))) for out in outputs]
    for process in processes:
        process.start()
    start.set()
    await asyncio.to_thread(_join, processes, 90)
    assert [json.loads(out.read_text()) for out in outputs] == [LATEST_SCHEMA_VERSION] * 6

    import sqlite3

    with sqlite3.connect(path) as conn:
        versions = [row[0] for row in conn.execute("SELECT version FROM schema_version ORDER BY version")]
    assert versions == list(range(1, LATEST_SCHEMA_VERSION + 1)), "each migration recorded exactly once"


@pytest.mark.timeout(60)
async def test_pop_in_another_process_wakes_for_an_append(tmp_path: Path) -> None:
    path = str(tmp_path / "wake.db")
    async with SQLiteBackend(path) as backend:
        ready = CTX.Event()
        out = tmp_path / "popped.json"
        process = CTX.Process(target=_mp_worker.wait_and_pop, args=(path, "w", ready, str(out)))
        process.start()
        assert await asyncio.to_thread(ready.wait, 30)
        await asyncio.sleep(0.3)  # the other process is now blocked in pop()
        await backend.append("w", [{"id": "hello"}])
        began = time.monotonic()
        await asyncio.to_thread(_join, [process], 30)
        assert json.loads(out.read_text()) == ["hello"]
        assert time.monotonic() - began < 5
