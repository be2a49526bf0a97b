"""Peer: taskiq + taskiq-redis (PyPI), one worker process running taskiq's ``Receiver``.

Config keys: ``url`` (redis://…/15), ``queue``, ``broker`` (``list`` = ``ListQueueBroker``, LPUSH/BRPOP;
``stream`` = ``RedisStreamBroker``, a stream with a consumer group and acks), ``receiver`` (keyword
arguments of ``taskiq.receiver.Receiver``; the CLI defaults are ``max_async_tasks=100``,
``max_prefetch=0``). No result backend (taskiq's default). taskiq has no batch enqueue: a batch is
``asyncio.gather`` of ``kiq()`` calls over the broker's connection pool.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import _probe
import redis.asyncio as aioredis
from taskiq.receiver import Receiver
from taskiq_redis import ListQueueBroker, RedisStreamBroker


async def noop() -> None:
    _probe.hit()


async def probe(stamp: float) -> None:
    _probe.latency(stamp)


class App:
    def __init__(self, config: dict[str, Any], worker: bool = False) -> None:
        kind = {"list": ListQueueBroker, "stream": RedisStreamBroker}[config.get("broker", "list")]
        self.broker = kind(config["url"], queue_name=config["queue"])
        # As taskiq's CLI does before importing the tasks of a worker.
        self.broker.is_worker_process = worker
        self.noop = self.broker.task(task_name="noop")(noop)
        self.probe = self.broker.task(task_name="probe")(probe)


class Driver:
    def __init__(self, config: dict[str, Any]) -> None:
        self.config = config
        self.app = App(config)

    async def open(self) -> None:
        await self.app.broker.startup()  # the stream broker creates its consumer group here

    async def reset(self) -> None:
        client = aioredis.Redis.from_url(self.config["url"])
        await client.flushdb()
        await client.aclose()
        await self.app.broker.startup()

    async def close(self) -> None:
        await self.app.broker.shutdown()

    async def enqueue_one(self) -> None:
        await self.app.noop.kiq()

    async def enqueue_batch(self, n: int) -> None:
        await asyncio.gather(*(self.app.noop.kiq() for _ in range(n)))

    async def enqueue_probe(self, stamp: float) -> None:
        await self.app.probe.kiq(stamp)

    async def settled(self, n: int) -> bool | None:
        if self.config.get("broker", "list") != "stream":
            return None  # the list broker has no acknowledgement: a popped message is done with
        # The stream broker acks after the task ran: nothing pending and nothing unread means done.
        client = aioredis.Redis.from_url(self.config["url"])
        try:
            groups = await client.xinfo_groups(self.config["queue"])
        finally:
            await client.aclose()
        return all(int(g["pending"]) == 0 and int(g.get("lag") or 0) == 0 for g in groups)


def run_worker(config: dict[str, Any], ready: Callable[[], None]) -> None:
    async def main() -> None:
        app = App(config, worker=True)
        await app.broker.startup()
        with ThreadPoolExecutor() as pool:
            receiver = Receiver(app.broker, executor=pool, run_startup=False, **config.get("receiver", {}))
            ready()
            await receiver.listen(asyncio.Event())

    asyncio.run(main())
