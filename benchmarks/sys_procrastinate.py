"""Peer: procrastinate (PyPI) on psycopg 3, one worker (``App.run_worker_async``) in its own process.

Config keys: ``dsn``, ``schema`` (set as the connections' ``search_path``; the schema is created
fresh and procrastinate's schema applied into it), ``concurrency`` (worker; default 1, the documented
knob for async tasks). Batch enqueue is procrastinate's own ``batch_defer_async``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import _probe
import psycopg
from procrastinate import App, PsycopgConnector

QUEUE = "bench"


class Bench:
    def __init__(self, config: dict[str, Any]) -> None:
        self.app = App(
            connector=PsycopgConnector(
                conninfo=config["dsn"], kwargs={"options": f"-c search_path={config['schema']}"}
            )
        )

        @self.app.task(name="noop", queue=QUEUE)
        async def noop() -> None:
            _probe.hit()

        @self.app.task(name="probe", queue=QUEUE)
        async def probe(stamp: float) -> None:
            _probe.latency(stamp)

        self.noop = noop
        self.probe = probe


class Driver:
    def __init__(self, config: dict[str, Any]) -> None:
        self.config = config
        self.bench = Bench(config)
        self.opened = False

    async def _admin(self, sql: str) -> None:
        async with await psycopg.AsyncConnection.connect(self.config["dsn"], autocommit=True) as conn:
            await conn.execute(sql)

    async def open(self) -> None:
        schema = self.config["schema"]
        await self._admin(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE; CREATE SCHEMA "{schema}"')
        await self.bench.app.open_async()
        self.opened = True
        await self.bench.app.schema_manager.apply_schema_async()

    async def reset(self) -> None:
        await self.bench.app.connector.execute_query_async(
            "TRUNCATE procrastinate_jobs, procrastinate_events RESTART IDENTITY CASCADE"
        )

    async def close(self) -> None:
        if self.opened:
            await self.bench.app.close_async()
        await self._admin(f'DROP SCHEMA IF EXISTS "{self.config["schema"]}" CASCADE')

    async def enqueue_one(self) -> None:
        await self.bench.noop.defer_async()

    async def enqueue_batch(self, n: int) -> None:
        await self.bench.noop.batch_defer_async(*({} for _ in range(n)))

    async def enqueue_probe(self, stamp: float) -> None:
        await self.bench.probe.defer_async(stamp=stamp)

    async def settled(self, n: int) -> bool | None:
        row = await self.bench.app.connector.execute_query_one_async(
            "SELECT count(*) AS open FROM procrastinate_jobs WHERE status IN ('todo', 'doing')"
        )
        return int(row["open"]) == 0


def run_worker(config: dict[str, Any], ready: Callable[[], None]) -> None:
    async def main() -> None:
        bench = Bench(config)
        async with bench.app.open_async():
            ready()
            await bench.app.run_worker_async(queues=[QUEUE], concurrency=config.get("concurrency", 1))

    asyncio.run(main())
