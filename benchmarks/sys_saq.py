"""Peer: saq (PyPI) on Redis, one ``saq.Worker`` in its own process.

Config keys: ``url`` (redis://…/15), ``queue``, ``worker`` (keyword arguments of ``saq.Worker``; its
default ``concurrency`` is 10). saq has no batch enqueue: a batch is ``asyncio.gather`` of
``Queue.enqueue`` calls (saq bounds them with its own ``max_concurrent_ops`` semaphore).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import _probe
from saq import Queue, Worker


async def noop(ctx: dict[str, Any]) -> None:
    _probe.hit()


async def probe(ctx: dict[str, Any], *, stamp: float) -> None:
    _probe.latency(stamp)


class Driver:
    def __init__(self, config: dict[str, Any]) -> None:
        self.queue = Queue.from_url(config["url"], name=config["queue"])

    async def open(self) -> None:
        await self.queue.connect()

    async def reset(self) -> None:
        await self.queue.redis.flushdb()  # type: ignore[attr-defined]

    async def close(self) -> None:
        await self.queue.disconnect()

    async def enqueue_one(self) -> None:
        await self.queue.enqueue("noop")

    async def enqueue_batch(self, n: int) -> None:
        await asyncio.gather(*(self.queue.enqueue("noop") for _ in range(n)))

    async def enqueue_probe(self, stamp: float) -> None:
        await self.queue.enqueue("probe", stamp=stamp)

    async def settled(self, n: int) -> bool | None:
        return await self.queue.count("incomplete") == 0


def run_worker(config: dict[str, Any], ready: Callable[[], None]) -> None:
    async def main() -> None:
        queue = Queue.from_url(config["url"], name=config["queue"])
        await queue.connect()
        worker = Worker(queue, functions=[noop, probe], **config.get("worker", {}))
        ready()
        await worker.start()

    asyncio.run(main())
