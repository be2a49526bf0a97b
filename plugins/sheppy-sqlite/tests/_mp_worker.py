"""Worker process bodies for the multi-process tests (imported by spawned interpreters)."""

from __future__ import annotations

import asyncio
import json
from multiprocessing.synchronize import Barrier, Event
from pathlib import Path
from typing import Any

from sheppy_sqlite import SQLiteBackend

from sheppy_core.backend import to_iso, utcnow


def drain(path: str, queue: str, worker: str, limit: int, fast_path: bool, start: Barrier, out: str) -> None:
    """Pop and finish tasks until the queue stays empty; write the ids this worker finished to ``out``.

    The worker connects first and then waits at ``start`` with the others, so all of them begin
    claiming at the same moment (a spawned interpreter takes a while to import and connect).
    """
    asyncio.run(_drain(path, queue, worker, limit, fast_path, start, out))


async def _drain(
    path: str, queue: str, worker: str, limit: int, fast_path: bool, start: Barrier, out: str
) -> None:
    _write(out, await _finish_all(path, queue, worker, limit, fast_path, start))


def _write(out: str, value: object) -> None:
    Path(out).write_text(json.dumps(value))


async def _finish_all(
    path: str, queue: str, worker: str, limit: int, fast_path: bool, start: Barrier
) -> list[str]:
    done: list[str] = []
    async with SQLiteBackend(path, busy_timeout=30_000, fast_path=fast_path) as backend:
        await asyncio.to_thread(start.wait, 60)
        while True:
            tasks = await backend.pop(queue, limit, timeout=0.5, worker_id=worker)
            if not tasks:
                stats = await backend.get_stats(queue)
                if stats["pending"] == 0 and stats["processing"] == 0:
                    break
                continue
            for task in tasks:
                finished: dict[str, Any] = {**task, "status": "completed", "finished_at": to_iso(utcnow()),
                                            "result": worker}
                assert await backend.store_result(queue, finished)
                done.append(task["id"])
    return done


def connect_once(path: str, start: Event, out: str) -> None:
    """Connect (creating/migrating the schema) at the same moment as the other processes."""
    start.wait(30)

    async def run() -> int:
        async with SQLiteBackend(path, busy_timeout=30_000) as backend:
            info = await backend.server_info()
            return int(info["schema_version"])

    Path(out).write_text(json.dumps(asyncio.run(run())))


def wait_and_pop(path: str, queue: str, ready: Event, out: str) -> None:
    """Block in pop() until a task appended by another process arrives."""

    async def run() -> list[str]:
        async with SQLiteBackend(path) as backend:
            ready.set()
            tasks = await backend.pop(queue, 1, timeout=10)
            return [t["id"] for t in tasks]

    Path(out).write_text(json.dumps(asyncio.run(run())))
