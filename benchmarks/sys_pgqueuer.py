"""Peer: pgqueuer (PyPI) on asyncpg, one ``PgQueuer`` worker in its own process.

Config keys: ``dsn``, ``schema`` (pgqueuer's own ``PGQUEUER_SCHEMA`` setting: every pgqueuer object
lives there), ``batch_size`` (``PgQueuer.run``; its default is 10; its performance guide says to raise
it for short jobs). Durability stays at pgqueuer's default (``durable``: logged tables), like ours.
Batch enqueue is pgqueuer's own: ``Queries.enqueue`` with lists (one statement).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from typing import Any

import _probe
import asyncpg
from pgqueuer import AsyncpgDriver, PgQueuer, Queries
from pgqueuer.models import Job


def _settings(config: dict[str, Any]) -> None:
    # pgqueuer reads its object names from the environment (pydantic-settings) when first used.
    os.environ["PGQUEUER_SCHEMA"] = config["schema"]
    os.environ["PGQUEUER_PREFIX"] = "bench_"


class Driver:
    def __init__(self, config: dict[str, Any]) -> None:
        _settings(config)
        self.config = config
        self.connection: asyncpg.Connection | None = None
        self.queries: Queries | None = None

    async def open(self) -> None:
        self.connection = await asyncpg.connect(self.config["dsn"])
        await self.connection.execute(f'DROP SCHEMA IF EXISTS "{self.config["schema"]}" CASCADE')
        self.queries = Queries(AsyncpgDriver(self.connection))
        await self.queries.install()

    async def reset(self) -> None:
        assert self.queries is not None
        await self.queries.clear_queue()
        await self.queries.clear_queue_log()
        await self.queries.clear_statistics_log()

    async def close(self) -> None:
        if self.connection is not None:
            await self.connection.execute(f'DROP SCHEMA IF EXISTS "{self.config["schema"]}" CASCADE')
            await self.connection.close()

    async def enqueue_one(self) -> None:
        assert self.queries is not None
        await self.queries.enqueue("noop", None, 0)

    async def enqueue_batch(self, n: int) -> None:
        assert self.queries is not None
        await self.queries.enqueue(["noop"] * n, [None] * n, [0] * n)

    async def enqueue_probe(self, stamp: float) -> None:
        assert self.queries is not None
        await self.queries.enqueue("probe", repr(stamp).encode(), 0)

    async def settled(self, n: int) -> bool | None:
        assert self.queries is not None
        # pgqueuer deletes a job from its queue table when its outcome is logged.
        return sum(row.count for row in await self.queries.queue_size()) == 0


def run_worker(config: dict[str, Any], ready: Callable[[], None]) -> None:
    _settings(config)

    async def main() -> None:
        connection = await asyncpg.connect(config["dsn"])
        pgq = PgQueuer(AsyncpgDriver(connection))

        @pgq.entrypoint("noop")
        async def noop(job: Job) -> None:
            _probe.hit()

        @pgq.entrypoint("probe")
        async def probe(job: Job) -> None:
            _probe.latency(float(job.payload or b"0"))

        ready()
        await pgq.run(batch_size=config.get("batch_size", 10))

    asyncio.run(main())
