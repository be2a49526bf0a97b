"""Peer: sheppy 0.0.7 from PyPI (the seed system; import name ``sheppy``) with its RedisBackend.

Config keys: ``url`` (redis://…/15), ``queue``, ``max_concurrent_tasks`` (Worker; default 10).
Resetting flushes the benchmark's Redis database (db 15; the bench script checks the number).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import _probe
import redis.asyncio as aioredis
from sheppy import Queue, RedisBackend, Worker, task


@task
async def noop() -> None:
    _probe.hit()


@task
async def probe(stamp: float) -> None:
    _probe.latency(stamp)


class Driver:
    def __init__(self, config: dict[str, Any]) -> None:
        self.config = config
        self.backend = RedisBackend(config["url"])
        self.queue = Queue(self.backend, config["queue"])

    async def open(self) -> None:
        await self.backend.connect()

    async def reset(self) -> None:
        client = aioredis.Redis.from_url(self.config["url"])
        await client.flushdb()
        await client.aclose()

    async def close(self) -> None:
        await self.backend.disconnect()

    async def enqueue_one(self) -> None:
        await self.queue.add(noop())

    async def enqueue_batch(self, n: int) -> None:
        await self.queue.add([noop() for _ in range(n)])

    def build_batch(self, n: int) -> list[Any]:
        return [noop() for _ in range(n)]

    async def enqueue_built(self, tasks: list[Any]) -> None:
        await self.queue.add(tasks)

    async def enqueue_probe(self, stamp: float) -> None:
        await self.queue.add(probe(stamp))

    async def settled(self, n: int) -> bool | None:
        # sheppy 0.0.7 counts completed tasks per queue in this key, in the pipeline that acks them.
        client = aioredis.Redis.from_url(self.config["url"])
        try:
            return int(await client.get(f"sheppy:completed:{self.config['queue']}") or 0) >= n
        finally:
            await client.aclose()


def run_worker(config: dict[str, Any], ready: Callable[[], None]) -> None:
    async def main() -> None:
        backend = RedisBackend(config["url"])
        await backend.connect()
        worker = Worker(config["queue"], backend, max_concurrent_tasks=config.get("max_concurrent_tasks", 10))
        ready()
        await worker.work()

    asyncio.run(main())
