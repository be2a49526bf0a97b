"""Ours: sheppy-core with whichever backend the case's URL names (sqlite://, redis://, postgresql://).

Config keys: ``url``, ``queue``, ``max_concurrent_tasks`` (Worker; default 10, its default), ``prefetch``
(Worker; default 0, its default).
The worker is a plain ``Worker`` at its defaults otherwise (scheduler and cron manager on).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import _probe

from sheppy_core import Queue, Worker, get_backend, task


@task
async def noop() -> None:
    _probe.hit()


@task
async def probe(stamp: float) -> None:
    _probe.latency(stamp)


class Driver:
    def __init__(self, config: dict[str, Any]) -> None:
        self.backend = get_backend(config["url"])
        self.queue = Queue(self.backend, config["queue"])

    async def open(self) -> None:
        await self.backend.connect()

    async def reset(self) -> None:
        await self.queue.clear()

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
        return (await self.queue.stats())["completed"] >= n


def run_worker(config: dict[str, Any], ready: Callable[[], None]) -> None:
    async def main() -> None:
        backend = get_backend(config["url"])
        await backend.connect()
        worker = Worker(
            config["queue"],
            backend,
            max_concurrent_tasks=config.get("max_concurrent_tasks", 10),
            prefetch=config.get("prefetch", 0),
            task_modules=[__name__],
        )
        ready()
        await worker.work()
        await backend.disconnect()

    asyncio.run(main())
