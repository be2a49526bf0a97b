"""Idle pick-up latency of sheppy-postgres: how long from "enqueue" to "an idle worker holds the task".

A consumer process sits in ``pop(timeout=...)`` (woken by LISTEN/NOTIFY); this process appends one task
at a time, spaced out so the consumer is idle each time. Each task carries the wall-clock time taken
just before ``append`` was called; the consumer subtracts it from the time ``pop`` returned. The
figure therefore includes the enqueue round trip, the commit, NOTIFY delivery and the claim query.

    python plugins/sheppy-postgres/scripts/measure_latency.py [--samples 300] [--url URL] [--listen false]

Uses a throw-away schema, dropped at the end. Prints p50/p90/p99/max in milliseconds.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
import uuid

import asyncpg
from sheppy_postgres import PostgresBackend
from sheppy_postgres._config import quote_ident

_CONSUMER = """
import asyncio, json, sys, time
from sheppy_postgres import PostgresBackend

async def main(url, queue, samples):
    async with PostgresBackend.from_url(url) as backend:
        print("ready", flush=True)
        for _ in range(samples):
            [record] = await backend.pop(queue, timeout=30)
            latency = time.time() - record["sent_at"]
            print(json.dumps([record["id"], latency, record["deliveries"]]), flush=True)
            # Finish the claim, or it would be redelivered once its lease ran out.
            await backend.acknowledge(queue, record["id"])

asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3])))
"""


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


async def measure(server_url: str, samples: int, listen: str, gap: float) -> list[float]:
    schema = f"sheppy_latency_{uuid.uuid4().hex[:8]}"
    sep = "&" if "?" in server_url else "?"
    url = f"{server_url}{sep}schema={schema}&listen={listen}"
    queue = "latency"
    producer = PostgresBackend.from_url(url)
    await producer.connect()  # creates the schema before the consumer starts
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", _CONSUMER, url, queue, str(samples), stdout=asyncio.subprocess.PIPE
    )
    assert proc.stdout is not None
    latencies: list[float] = []
    try:
        assert (await asyncio.wait_for(proc.stdout.readline(), 30)).strip() == b"ready"
        await asyncio.sleep(0.5)  # let the consumer reach its first pop
        for i in range(samples):
            await producer.append(queue, [{"id": f"t{i}", "sent_at": time.time()}])
            line = await asyncio.wait_for(proc.stdout.readline(), 30)
            task_id, latency, deliveries = json.loads(line)
            if task_id != f"t{i}" or deliveries != 1:
                raise RuntimeError(f"expected t{i} delivered once, got {task_id} delivered {deliveries}x")
            latencies.append(latency)
            await asyncio.sleep(gap)  # the consumer goes idle again
        await proc.wait()
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        await producer.disconnect()
        conn = await asyncpg.connect(server_url)
        try:
            await conn.execute(f"DROP SCHEMA IF EXISTS {quote_ident(schema)} CASCADE")
        finally:
            await conn.close()
    return latencies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="postgresql://postgres@127.0.0.1:5432/test")
    parser.add_argument("--samples", type=int, default=300)
    parser.add_argument("--gap", type=float, default=0.02, help="idle seconds between tasks")
    parser.add_argument("--listen", default="true", choices=["true", "false"])
    args = parser.parse_args()
    latencies = [x * 1000 for x in asyncio.run(measure(args.url, args.samples, args.listen, args.gap))]
    print(
        f"idle pick-up latency, listen={args.listen}, {len(latencies)} samples: "
        f"p50 {statistics.median(latencies):.2f} ms, p90 {percentile(latencies, 90):.2f} ms, "
        f"p99 {percentile(latencies, 99):.2f} ms, max {max(latencies):.2f} ms"
    )


if __name__ == "__main__":
    main()
