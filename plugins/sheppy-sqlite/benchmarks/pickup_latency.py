"""Cross-process pick-up latency: a producer process appends, a consumer process blocked in pop() claims.

Usage::

    python plugins/sheppy-sqlite/benchmarks/pickup_latency.py [--tasks 300] [--gap-ms 50]

The producer appends one task at a time, pausing ``--gap-ms`` (±50 % jitter) between them so the
consumer is idle and its change watcher has backed off to its longest poll interval — the worst case
for pick-up. Latency = claim time in the consumer - append commit time in the producer (same machine
clock). Prints p50, p90, p99 and max in milliseconds.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import random
import statistics
import tempfile
import time
from multiprocessing.synchronize import Event
from pathlib import Path

from sheppy_sqlite import SQLiteBackend

QUEUE = "latency"


def consume(path: str, count: int, ready: Event, out: str) -> None:
    async def run() -> list[float]:
        latencies: list[float] = []
        async with SQLiteBackend(path) as backend:
            ready.set()
            while len(latencies) < count:
                tasks = await backend.pop(QUEUE, 1, timeout=10)
                claimed_at = time.time()
                if not tasks:
                    break
                latencies.append(claimed_at - float(tasks[0]["sent_at"]))
                # Release the claim: a task left claimed would be redelivered once its lease expires
                # and counted again with a huge "latency".
                await backend.acknowledge(QUEUE, tasks[0]["id"])
        return latencies

    Path(out).write_text(json.dumps(asyncio.run(run())))


async def produce(path: str, count: int, gap: float) -> None:
    async with SQLiteBackend(path) as backend:
        for i in range(count):
            await asyncio.sleep(gap * random.uniform(0.5, 1.5))
            # sent_at is taken just before the append; the commit itself is part of the measured delay.
            await backend.append(QUEUE, [{"id": f"t{i}", "sent_at": time.time()}])


async def create_schema(path: str) -> None:
    async with SQLiteBackend(path):
        pass


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--tasks", type=int, default=300)
    parser.add_argument("--gap-ms", type=float, default=50.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        path = str(Path(folder) / "latency.db")
        asyncio.run(create_schema(path))  # before timing anything
        ctx = multiprocessing.get_context("spawn")
        ready = ctx.Event()
        out = str(Path(folder) / "latencies.json")
        consumer = ctx.Process(target=consume, args=(path, args.tasks, ready, out))
        consumer.start()
        ready.wait(30)
        time.sleep(0.5)
        asyncio.run(produce(path, args.tasks, args.gap_ms / 1000))
        consumer.join(60)
        latencies = [v * 1000 for v in json.loads(Path(out).read_text())]
    print(f"cross-process pick-up over {len(latencies)} tasks, gap {args.gap_ms:.0f} ms ±50 %:")
    print(f"  p50 {percentile(latencies, 0.5):.2f} ms   p90 {percentile(latencies, 0.9):.2f} ms   "
          f"p99 {percentile(latencies, 0.99):.2f} ms   max {max(latencies):.2f} ms   "
          f"mean {statistics.fmean(latencies):.2f} ms")


if __name__ == "__main__":
    main()
