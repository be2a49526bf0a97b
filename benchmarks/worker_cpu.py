"""Where one worker's time goes, per task: CPU of the worker, CPU of the database, claim sizes.

    python benchmarks/worker_cpu.py URL [--n 10000] [-c 50] [--prefetch 50] [--runs 2]

Enqueues ``n`` no-op tasks in one batch, then runs one ``Worker`` in this process (scheduler and cron
manager off) until it has claimed them all and the store reports them completed. Prints throughput,
the worker's CPU per task and how busy it was (CPU / wall time), the CPU that PostgreSQL's processes
used meanwhile (read from ``/proc``, so only for a server on this machine), and how many claims the
worker made and how long they took. Not a peer comparison (that is ``bench_*.py``): a tool to see
whether a change made a task cheaper, the worker idler or the server busier.

Use a dedicated queue store: the queue ``worker-cpu`` is cleared before and after. For PostgreSQL, a
schema of its own (``?schema=…``) keeps other runs' dead rows out of the measurement.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import time
from typing import Any

import sys_sheppy_core

from sheppy_core import Queue, Worker, get_backend

QUEUE = "worker-cpu"


def postgres_cpu_seconds() -> float:
    """CPU seconds used so far by the processes of user ``postgres`` (and their reaped children)."""
    found = subprocess.run(["pgrep", "-u", "postgres"], capture_output=True, text=True, check=False)
    ticks = 0
    for pid in found.stdout.split():
        try:
            with open(f"/proc/{pid}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
        except OSError:
            continue  # exited meanwhile
        ticks += sum(int(value) for value in fields[11:15])  # utime, stime, cutime, cstime
    return ticks / os.sysconf("SC_CLK_TCK")


async def run_once(url: str, n: int, concurrency: int, prefetch: int) -> None:
    backend = get_backend(url)
    await backend.connect()
    queue = Queue(backend, QUEUE)
    await queue.clear()
    await queue.add([sys_sheppy_core.noop() for _ in range(n)])

    claims: list[tuple[float, int]] = []
    pop = backend.pop

    async def timed_pop(*args: Any, **kwargs: Any) -> list[dict[str, Any]]:
        started = time.perf_counter()
        records = await pop(*args, **kwargs)
        claims.append((time.perf_counter() - started, len(records)))
        return records

    backend.pop = timed_pop  # type: ignore[method-assign]
    worker = Worker(
        QUEUE,
        backend,
        max_concurrent_tasks=concurrency,
        prefetch=prefetch,
        enable_scheduler=False,
        enable_cron_manager=False,
    )
    server_before = postgres_cpu_seconds()
    started, cpu_before = time.perf_counter(), time.process_time()
    await worker.work(max_tasks=n, register_signal_handlers=False)
    while (await queue.stats())["completed"] < n:  # noqa: ASYNC110 - polling the store is the point
        await asyncio.sleep(0.002)
    wall = time.perf_counter() - started
    cpu = time.process_time() - cpu_before
    server = postgres_cpu_seconds() - server_before

    line = (
        f"{n / wall:8,.0f} tasks/s  worker {cpu / n * 1e6:5.1f} µs/task, busy {cpu / wall:4.0%}"
    )
    if url.startswith(("postgresql:", "postgres:")):
        line += f"  postgres {server / n * 1e6:5.1f} µs/task"
    durations = [d for d, _ in claims]
    line += (
        f"  claims {len(claims)} (median {statistics.median(durations) * 1e3:.2f} ms, "
        f"{statistics.mean(size for _, size in claims):.0f} tasks)"
    )
    print(line)
    await queue.clear()
    await backend.disconnect()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("url")
    parser.add_argument("--n", type=int, default=10_000)
    parser.add_argument("-c", "--concurrency", type=int, default=50, help="max_concurrent_tasks")
    parser.add_argument("--prefetch", type=int, default=0)
    parser.add_argument("--runs", type=int, default=2)
    args = parser.parse_args()
    print(f"{args.url}: n={args.n}, max_concurrent_tasks={args.concurrency}, prefetch={args.prefetch}")
    for _ in range(args.runs):
        asyncio.run(run_once(args.url, args.n, args.concurrency, args.prefetch))


if __name__ == "__main__":
    main()
