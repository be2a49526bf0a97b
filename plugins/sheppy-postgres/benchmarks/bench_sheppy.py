"""Throughput of sheppy-core on sheppy-postgres: batch-enqueue N no-op tasks, then process them with
one Worker in this process. Prints tasks/s for both phases.

    python plugins/sheppy-postgres/benchmarks/bench_sheppy.py [--tasks 10000] [--concurrency 50]
"""

from __future__ import annotations

import argparse
import asyncio
import time
import uuid

import asyncpg
from sheppy_postgres import PostgresBackend
from sheppy_postgres._config import quote_ident

from sheppy_core import Queue, Worker, task


@task
async def noop() -> None:
    return None


async def run(server_url: str, count: int, concurrency: int, batch: int) -> dict[str, float]:
    schema = f"sheppy_bench_{uuid.uuid4().hex[:8]}"
    sep = "&" if "?" in server_url else "?"
    url = f"{server_url}{sep}schema={schema}&pool_max=20"
    backend = PostgresBackend.from_url(url)
    queue = Queue(backend, "bench")
    try:
        await backend.connect()
        tasks = [noop() for _ in range(count)]
        started = time.perf_counter()
        for i in range(0, count, batch):
            await queue.add(tasks[i : i + batch])
        enqueue_s = time.perf_counter() - started

        worker = Worker("bench", backend, max_concurrent_tasks=concurrency, enable_cron_manager=False,
                        enable_scheduler=False)
        started = time.perf_counter()
        await worker.work(oneshot=True, register_signal_handlers=False)
        process_s = time.perf_counter() - started
        stats = await queue.stats()
        assert stats["completed"] == count, stats
    finally:
        await backend.disconnect()
        conn = await asyncpg.connect(server_url)
        try:
            await conn.execute(f"DROP SCHEMA IF EXISTS {quote_ident(schema)} CASCADE")
        finally:
            await conn.close()
    return {"enqueued_per_s": count / enqueue_s, "processed_per_s": count / process_s}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="postgresql://postgres@127.0.0.1:5432/test")
    parser.add_argument("--tasks", type=int, default=10_000)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--batch", type=int, default=1000, help="tasks per add() call")
    args = parser.parse_args()
    result = asyncio.run(run(args.url, args.tasks, args.concurrency, args.batch))
    print(
        f"sheppy-postgres, {args.tasks} no-op tasks: batch enqueue {result['enqueued_per_s']:,.0f}/s, "
        f"processing {result['processed_per_s']:,.0f}/s (one worker, {args.concurrency} concurrent)"
    )


if __name__ == "__main__":
    main()
