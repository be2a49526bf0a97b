"""sheppy-core + sheppy-redis throughput: batch-enqueue N no-op tasks, then drain them with one worker
process (sheppy-core's ``Worker``).

    python plugins/sheppy-redis/benchmarks/throughput.py [--url redis://127.0.0.1:6379/0] [--tasks 10000]
                                                         [--batch 1000] [--concurrency 50]

Enqueue: ``Queue.add`` of ``--batch`` tasks at a time (one script call, one round trip per batch),
timed in this process. Processing: a separate worker process runs ``Worker.work(oneshot=True)`` with
``--concurrency`` slots; it is timed from the worker's first claim to the last stored result (start-up
and import time excluded) and checked: every task completed, none left. Uses its own key prefix and
deletes it afterwards.
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
import time
import uuid
from pathlib import Path

import redis.asyncio as redis_asyncio
from sheppy_redis import RedisBackend

from sheppy_core import Queue

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))

from bench_tasks import noop  # noqa: E402

QUEUE = "bench"

WORKER = """
import asyncio, sys, time
sys.path.insert(0, sys.argv[4])
from sheppy_core import Worker
from sheppy_redis import RedisBackend

async def main():
    backend = RedisBackend(sys.argv[1], prefix=sys.argv[2])
    worker = Worker("bench", backend, max_concurrent_tasks=int(sys.argv[3]), task_modules=["bench_tasks"],
                    enable_cron_manager=False, enable_scheduler=False)
    await backend.connect()
    started = time.perf_counter()
    await worker.work(oneshot=True, register_signal_handlers=False)
    print(time.perf_counter() - started, worker.stats.processed, flush=True)
    await backend.disconnect()

asyncio.run(main())
"""


async def enqueue(url: str, prefix: str, total: int, batch: int) -> float:
    backend = RedisBackend(url, prefix=prefix)
    await backend.connect()
    try:
        queue = Queue(backend, QUEUE)
        tasks = [noop(i) for i in range(total)]
        await queue.add(tasks[:1])  # warm the connection and the script cache
        started = time.perf_counter()
        for start in range(1, total, batch):
            await queue.add(tasks[start : start + batch])
        return time.perf_counter() - started
    finally:
        await backend.disconnect()


async def check_and_clean(url: str, prefix: str) -> dict[str, int]:
    backend = RedisBackend(url, prefix=prefix)
    await backend.connect()
    try:
        return await backend.get_stats(QUEUE)
    finally:
        await backend.disconnect()
        client = redis_asyncio.Redis.from_url(url)
        keys = [k async for k in client.scan_iter(match=f"{prefix}:*", count=1000)]
        for start in range(0, len(keys), 1000):
            await client.unlink(*keys[start : start + 1000])
        await client.aclose()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--url", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--tasks", type=int, default=10_000)
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=50)
    options = parser.parse_args()
    prefix = f"sheppy-bench-{uuid.uuid4().hex[:8]}"
    try:
        enqueue_seconds = asyncio.run(enqueue(options.url, prefix, options.tasks, options.batch))
        worker = subprocess.run(
            [sys.executable, "-c", WORKER, options.url, prefix, str(options.concurrency), str(HERE)],
            capture_output=True, text=True, check=True, timeout=600,
        )
        process_seconds, processed = worker.stdout.split()
    finally:
        stats = asyncio.run(check_and_clean(options.url, prefix))
    enqueued = options.tasks - 1
    print(f"enqueue: {enqueued} tasks in batches of {options.batch}: {enqueue_seconds:.3f} s "
          f"= {enqueued / enqueue_seconds:,.0f} tasks/s")
    print(f"process: {processed} no-op tasks, one worker process, {options.concurrency} slots: "
          f"{float(process_seconds):.3f} s = {int(processed) / float(process_seconds):,.0f} tasks/s")
    print(f"final stats: {stats}")
    assert stats["completed"] == options.tasks and stats["pending"] == stats["processing"] == 0, stats


if __name__ == "__main__":
    main()
