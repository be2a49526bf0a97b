"""Raw backend throughput, one call per task: append, then pop + store_result, in one process.

Usage::

    python plugins/sheppy-sqlite/benchmarks/throughput.py [--tasks 10000]

Measures the backend alone (no Queue/Worker, no task execution) on a fresh file per setting, with the
fast path on and off and with ``synchronous=full``. Prints tasks per second.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from sheppy_sqlite import SQLiteBackend

from sheppy_core.backend import to_iso, utcnow


async def measure(path: str, count: int, **options: Any) -> tuple[float, float]:
    records = [
        {"id": str(uuid.uuid4()), "spec": {"func": "bench:noop", "args": [i], "kwargs": {}}, "config": {}}
        for i in range(count)
    ]
    async with SQLiteBackend(path, **options) as backend:
        started = time.perf_counter()
        for record in records:
            await backend.append("bench", [record])
        enqueue = count / (time.perf_counter() - started)
        started = time.perf_counter()
        done = 0
        while done < count:
            for task in await backend.pop("bench", 1):
                finished = {**task, "status": "completed", "finished_at": to_iso(utcnow()), "result": None}
                await backend.store_result("bench", finished)
                done += 1
        process = count / (time.perf_counter() - started)
    return enqueue, process


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--tasks", type=int, default=10_000)
    args = parser.parse_args()
    settings: dict[str, dict[str, Any]] = {
        "defaults (fast path, synchronous=normal)": {},
        "fast_path=false": {"fast_path": False},
        "synchronous=full": {"synchronous": "full"},
    }
    with tempfile.TemporaryDirectory() as folder:
        print(f"{args.tasks} tasks, one call per task, one process")
        for index, (name, options) in enumerate(settings.items()):
            path = str(Path(folder) / f"bench{index}.db")
            enqueue, process = asyncio.run(measure(path, args.tasks, **options))
            print(f"  {name:42} append {enqueue:8,.0f}/s   pop+store_result {process:8,.0f}/s")


if __name__ == "__main__":
    main()
