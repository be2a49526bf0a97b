"""What one task costs at the least, for sheppy-sqlite and for the peers it is compared with.

    python benchmarks/floors.py [--n 20000]

The throughput targets of issues 5 and 7 compare whole systems (``bench_*.py``). This script measures,
in one process and without a worker, the parts that bound those numbers from below, so a gap can be
told apart into "work our guarantees need" and "overhead we could still cut":

- **SQLite statements** on a fresh file each (WAL, ``synchronous=off`` for both: huey's best
  setting). *Enqueue*: sheppy-sqlite's single-row insert and its commit, vs huey's ``insert into
  task`` and its commit. *Processing*: our claim (one ``UPDATE … RETURNING`` for 50 tasks) plus
  storing the 50 outcomes (one transaction), vs huey's dequeue (a quick check, then ``select`` +
  ``delete`` of one row in an exclusive transaction; huey stores nothing for a ``None`` result and
  keeps no record of the task). Both sides run from Python's ``sqlite3``, as in the real systems.
- **Python per task** in sheppy-core: building a ``Task`` (what ``noop()`` does), validating a
  claimed record into a ``Task``, dumping the outcome for storage; and building 10,000 tasks in a
  list (the batch enqueue of ``bench_postgres.py``, cyclic GC included).
- **A bare processing loop** over the real sheppy-sqlite backend, without ``Worker``: claim 50,
  validate each record into a ``Task``, await its function, copy it as completed, dump it and
  ``store_result`` it (the 50 concurrently, as a worker's do). What is left between this and
  ``worker_cpu.py`` is the worker's own machinery (slots, leases, retries, logging, bookkeeping).
- **A batch add** on sheppy-sqlite for comparison: one ``Queue.add`` of 10,000 tasks built beforehand.
- **The backend alone**, one call per task and no ``Queue``/``Worker``/task code: ``append`` of one
  record, then ``pop`` of one + ``store_result``, on a fresh file per setting: the defaults (fast path
  on, ``synchronous=normal``), ``fast_path=false`` and ``synchronous=full``. What each backend setting
  costs before anything of sheppy-core runs.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import sqlite3
import tempfile
import time
import timeit
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sys_sheppy_core
from sheppy_sqlite._sql import migrations, queries  # the plugin's own statements, unchanged

from sheppy_core import Queue, get_backend
from sheppy_core._registry import get_definition
from sheppy_core.backend import record_from_json, record_to_json, to_iso, utcnow
from sheppy_core.models import Task

HUEY_DDL = (
    "create table task (id integer not null primary key, queue text not null, data blob not null, "
    "priority real not null default 0.0)",
    "create index task_queue_priority_id on task (queue, priority desc, id)",
)
BATCH = 50


def connect(directory: Path, name: str, ddl: list[str]) -> sqlite3.Connection:
    conn = sqlite3.connect(directory / name, isolation_level=None)
    conn.execute("PRAGMA journal_mode = wal")
    conn.execute("PRAGMA synchronous = off")
    for statement in ddl:
        conn.execute(statement)
    return conn


def our_ddl() -> list[str]:
    return [statement for migration in migrations() for statement in migration.statements]


def record() -> dict[str, Any]:
    return sys_sheppy_core.noop().model_dump(mode="json")


def our_row(queue: str = "bench") -> dict[str, Any]:
    task = record()
    task["status"] = "pending"
    return {
        "queue": queue,
        "id": task["id"],
        "state": "queued",
        "status": "pending",
        "due_at": None,
        "workflow_id": None,
        "data": record_to_json(task),
        "now": time.time(),
    }


def per_call(n: int, prepare: Callable[[], Any], run: Callable[[Any], Any]) -> float:
    """Microseconds per ``run`` call, arguments prepared outside the timing."""
    inputs = [prepare() for _ in range(n)]
    started = time.perf_counter()
    for value in inputs:
        run(value)
    return (time.perf_counter() - started) / n * 1e6


def enqueue_sql(directory: Path, n: int) -> tuple[float, float]:
    ours = connect(directory, "ours-enqueue.db", our_ddl())
    insert = queries()["insert_task_unique"]
    ours_us = per_call(n, our_row, lambda params: ours.execute(insert, params).fetchall())
    huey = connect(directory, "huey-enqueue.db", list(HUEY_DDL))
    data = record_to_json(record()).encode()  # huey pickles its message: a blob of similar size
    huey_us = per_call(
        n,
        lambda: ("bench", data, 0.0),
        lambda params: huey.execute("insert into task (queue, data, priority) values (?, ?, ?)", params),
    )
    return ours_us, huey_us


def processing_sql(directory: Path, n: int) -> tuple[float, float]:
    ours = connect(directory, "ours-process.db", our_ddl())
    insert, claim, store = queries()["insert_task_unique"], queries()["claim"], queries()["store_result"]
    ours.execute("BEGIN")
    for _ in range(n):
        ours.execute(insert, our_row()).fetchall()
    ours.execute("COMMIT")
    outcome = record()
    outcome.update(status="completed", finished_at=outcome["created_at"], deliveries=1)
    data = record_to_json(outcome)
    spent = 0.0  # statements only: parsing the claimed records is Python's share, timed below
    while True:
        now = time.time()
        started = time.perf_counter()
        rows = ours.execute(
            claim,
            {
                "queue": "bench",
                "limit": BATCH,
                "worker": "w",
                "now": now,
                "lease_until": now + 15,
                "lease_iso": "2026-01-01T00:00:15Z",
                "quarantine_expires": None,  # only for corrupt rows, which this benchmark has none of
            },
        ).fetchall()
        spent += time.perf_counter() - started
        if not rows:
            break
        ids = [record_from_json(row[2])["id"] for row in rows]
        started = time.perf_counter()
        ours.execute("BEGIN IMMEDIATE")
        for task_id in ids:
            ours.execute(
                store,
                {
                    "queue": "bench",
                    "id": task_id,
                    "state": "finished",
                    "status": "completed",
                    "due_at": None,
                    "expires_at": None,
                    "workflow_id": None,
                    "data": data,
                    "now": now,
                },
            ).fetchall()
        ours.execute("COMMIT")
        spent += time.perf_counter() - started
    ours_us = spent / n * 1e6

    huey = connect(directory, "huey-process.db", list(HUEY_DDL))
    blob = data.encode()
    huey.execute("BEGIN")
    for _ in range(n):
        huey.execute("insert into task (queue, data, priority) values (?, ?, ?)", ("bench", blob, 0.0))
    huey.execute("COMMIT")
    started = time.perf_counter()
    while huey.execute("select 1 from task where queue = ? limit 1", ("bench",)).fetchall():
        huey.execute("begin exclusive")
        found = huey.execute(
            "select id, data from task where queue = ? order by priority desc, id limit 1", ("bench",)
        ).fetchone()
        huey.execute("delete from task where id = ?", (found[0],))
        huey.execute("commit")
    huey_us = (time.perf_counter() - started) / n * 1e6
    return ours_us, huey_us


def python_costs(n: int) -> dict[str, float]:
    claimed = record()
    claimed.update(status="processing", claimed_by="w", lease_expires_at=claimed["created_at"], deliveries=1)
    task: Task[Any] = Task.model_validate(claimed)
    costs = {
        "build a Task (noop())": timeit.timeit(sys_sheppy_core.noop, number=n) / n * 1e6,
        "validate a claimed record": timeit.timeit(lambda: Task.model_validate(claimed), number=n) / n * 1e6,
        "dump an outcome (model_dump + JSON)": timeit.timeit(
            lambda: record_to_json(task.model_dump(mode="json")), number=n
        )
        / n
        * 1e6,
    }
    gc.collect()
    started = time.perf_counter()
    tasks = [sys_sheppy_core.noop() for _ in range(10_000)]
    costs["build 10,000 Tasks in a list, per task (GC on)"] = (time.perf_counter() - started) / 10_000 * 1e6
    del tasks
    return costs


async def batch_add(directory: Path) -> float:
    """Tasks per second of one ``Queue.add`` of 10,000 tasks built beforehand (best of three)."""
    backend = get_backend(f"sqlite:///{directory / 'batch-add.db'}")
    await backend.connect()
    try:
        queue = Queue(backend, "batch")
        best = 0.0
        for _ in range(3):
            await queue.clear()
            tasks = [sys_sheppy_core.noop() for _ in range(10_000)]
            started = time.perf_counter()
            await queue.add(tasks)
            best = max(best, 10_000 / (time.perf_counter() - started))
        return best
    finally:
        await backend.disconnect()


async def bare_loop(directory: Path, n: int) -> float:
    """Microseconds of CPU per task of the bare loop (see the module docstring)."""
    backend = get_backend(f"sqlite:///{directory / 'bare-loop.db'}")
    await backend.connect()
    try:
        for _ in range(0, n, 1000):
            await backend.append("bare", [record() for _ in range(1000)])

        async def process(claimed: dict[str, Any]) -> None:
            task: Task[Any] = Task.model_validate(claimed)
            await get_definition(task.spec.func).function()
            done = task.model_copy(
                update={
                    "status": "completed",
                    "finished_at": datetime.now(UTC),
                    "claimed_by": None,
                    "lease_expires_at": None,
                }
            )
            await backend.store_result("bare", done.model_dump(mode="json"))

        started = time.process_time()
        while claimed := await backend.pop("bare", BATCH, worker_id="w", lease=60):
            await asyncio.gather(*(process(record) for record in claimed))
        return (time.process_time() - started) / n * 1e6
    finally:
        await backend.disconnect()


BACKEND_SETTINGS: dict[str, str] = {
    "defaults (fast path, synchronous=normal)": "",
    "fast_path=false": "?fast_path=false",
    "synchronous=full": "?synchronous=full",
}


async def backend_alone(path: Path, n: int, options: str) -> tuple[float, float]:
    """Tasks per second of ``append`` one by one, then of ``pop`` one + ``store_result``."""
    backend = get_backend(f"sqlite:///{path}{options}")
    await backend.connect()
    try:
        records = [record() for _ in range(n)]
        started = time.perf_counter()
        for one in records:
            await backend.append("alone", [one])
        appended = n / (time.perf_counter() - started)
        started = time.perf_counter()
        done = 0
        while done < n:
            for claimed in await backend.pop("alone", 1):
                finished = {**claimed, "status": "completed", "finished_at": to_iso(utcnow()), "result": None}
                await backend.store_result("alone", finished)
                done += 1
        processed = n / (time.perf_counter() - started)
        return appended, processed
    finally:
        await backend.disconnect()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--n", type=int, default=20_000)
    parser.add_argument(
        "--alone-n", type=int, default=10_000, help="tasks per setting of the backend-alone part"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="sheppy-floors-") as name:
        directory = Path(name)
        ours, huey = enqueue_sql(directory, args.n)
        print(f"SQLite, one enqueue's SQL incl. commit:   ours {ours:5.1f} µs   huey {huey:5.1f} µs")
        ours, huey = processing_sql(directory, args.n)
        print(
            f"SQLite, one task's processing SQL:        ours {ours:5.1f} µs   huey {huey:5.1f} µs "
            f"(ours: claim + stored outcome, {BATCH} per statement/transaction; huey: dequeue only)"
        )
        bare = asyncio.run(bare_loop(directory, args.n))
        print(f"sheppy-sqlite, a bare processing loop (no Worker): {bare:5.1f} µs of CPU per task")
        added = asyncio.run(batch_add(directory))
        print(f"sheppy-sqlite, one add() of 10,000 tasks built beforehand: {added:,.0f} tasks/s")
        print(f"sheppy-sqlite backend alone, one call per task, {args.alone_n} tasks:")
        for index, (setting, options) in enumerate(BACKEND_SETTINGS.items()):
            path = directory / f"alone-{index}.db"
            appended, processed = asyncio.run(backend_alone(path, args.alone_n, options))
            print(f"  {setting:42} append {appended:8,.0f}/s   pop+store_result {processed:8,.0f}/s")
    for label, micros in python_costs(args.n).items():
        print(f"Python, {label + ':':46s} {micros:5.1f} µs")


if __name__ == "__main__":
    main()
