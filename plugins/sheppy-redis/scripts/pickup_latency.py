"""Idle-worker pick-up latency: from a producer calling ``append`` until a consumer that was already
blocked in ``pop`` (idle, waiting on the server) has the task.

    python plugins/sheppy-redis/scripts/pickup_latency.py [--url redis://127.0.0.1:6379/0]
                                                          [--samples 200] [--gap-ms 20] [--same-process]

By default producer and consumer are separate processes (as a real producer and worker are): the
producer stamps ``time.time()`` into the record just before ``append`` (so the append's own round trip
is included) and pauses ``--gap-ms`` (±50 % jitter) between tasks so the consumer sits idle in BLPOP;
the consumer stamps when ``pop`` returns. With ``--same-process`` both run on one event loop and use
``perf_counter``. The first 10 samples warm connections and the script cache and are not counted.
Prints p50/p90/p99/max in milliseconds. Uses its own key prefix and deletes it afterwards.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import random
import statistics
import time
import uuid
from multiprocessing.connection import Connection

import redis.asyncio as redis_asyncio
from sheppy_redis import RedisBackend

QUEUE = "latency"
WARM_UP = 10


def _task(i: int) -> dict[str, object]:
    return {"id": f"t-{i}", "spec": {"func": "bench:noop"}, "status": "new", "sent_at": time.time()}


def _consume(url: str, prefix: str, count: int, ready: Connection, out: Connection) -> None:
    async def run() -> list[float]:
        backend = RedisBackend(url, prefix=prefix)
        await backend.connect()
        latencies: list[float] = []
        try:
            await backend.pop(QUEUE)  # loads the scripts
            ready.send(True)
            while len(latencies) < count:
                tasks = await backend.pop(QUEUE, timeout=10)
                claimed_at = time.time()
                if not tasks:
                    break
                latencies.append((claimed_at - float(tasks[0]["sent_at"])) * 1000.0)
        finally:
            await backend.disconnect()
        return latencies

    out.send(asyncio.run(run()))


async def _produce(url: str, prefix: str, count: int, gap: float) -> None:
    backend = RedisBackend(url, prefix=prefix)
    await backend.connect()
    try:
        for i in range(count):
            await asyncio.sleep(gap * random.uniform(0.5, 1.5))
            await backend.append(QUEUE, [_task(i)])
    finally:
        await backend.disconnect()


def cross_process(url: str, prefix: str, samples: int, gap: float) -> list[float]:
    ctx = multiprocessing.get_context("spawn")
    ready_recv, ready_send = ctx.Pipe(duplex=False)
    out_recv, out_send = ctx.Pipe(duplex=False)
    total = samples + WARM_UP
    consumer = ctx.Process(target=_consume, args=(url, prefix, total, ready_send, out_send))
    consumer.start()
    try:
        if not ready_recv.poll(30):
            raise RuntimeError("the consumer process did not start")
        ready_recv.recv()
        asyncio.run(_produce(url, prefix, total, gap))
        latencies: list[float] = out_recv.recv()
    finally:
        consumer.join(30)
    return latencies[WARM_UP:]


async def same_process(url: str, prefix: str, samples: int, gap: float) -> list[float]:
    producer = RedisBackend(url, prefix=prefix)
    consumer = RedisBackend(url, prefix=prefix)
    await producer.connect()
    await consumer.connect()
    latencies: list[float] = []
    try:
        for i in range(samples + WARM_UP):
            popped = asyncio.create_task(consumer.pop(QUEUE, timeout=5))
            await asyncio.sleep(gap * random.uniform(0.5, 1.5))  # the consumer reaches BLPOP, idles
            appended = time.perf_counter()
            await producer.append(QUEUE, [_task(i)])
            tasks = await popped
            picked = time.perf_counter()
            assert tasks and tasks[0]["id"] == f"t-{i}", tasks
            if i >= WARM_UP:
                latencies.append((picked - appended) * 1000.0)
    finally:
        await producer.disconnect()
        await consumer.disconnect()
    return latencies


async def _delete_prefix(url: str, prefix: str) -> None:
    client = redis_asyncio.Redis.from_url(url)
    keys = [k async for k in client.scan_iter(match=f"{prefix}:*")]
    if keys:
        await client.unlink(*keys)
    await client.aclose()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--url", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--samples", type=int, default=200)
    parser.add_argument("--gap-ms", type=float, default=20.0)
    parser.add_argument("--same-process", action="store_true")
    options = parser.parse_args()
    prefix = f"sheppy-latency-{uuid.uuid4().hex[:8]}"
    gap = options.gap_ms / 1000.0
    try:
        if options.same_process:
            latencies = asyncio.run(same_process(options.url, prefix, options.samples, gap))
        else:
            latencies = cross_process(options.url, prefix, options.samples, gap)
    finally:
        asyncio.run(_delete_prefix(options.url, prefix))
    latencies.sort()
    cuts = statistics.quantiles(latencies, n=100)
    mode = "same process" if options.same_process else "producer and consumer in separate processes"
    print(
        f"idle pick-up latency, {mode}, {len(latencies)} samples: p50 {statistics.median(latencies):.3f} ms, "
        f"p90 {cuts[89]:.3f} ms, p99 {cuts[98]:.3f} ms, max {latencies[-1]:.3f} ms"
    )


if __name__ == "__main__":
    main()
