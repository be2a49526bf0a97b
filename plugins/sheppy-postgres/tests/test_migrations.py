"""Migrations: applied on connect under an advisory lock, concurrently and idempotently."""

from __future__ import annotations

import asyncio

import asyncpg
from sheppy_postgres import PostgresBackend, migrate
from sheppy_postgres._migrations import latest_version

from .conftest import SERVER_URL, drop_schema, new_schema_name, task, url_for


async def _versions(schema: str) -> list[int]:
    conn = await asyncpg.connect(SERVER_URL)
    try:
        rows = await conn.fetch(f'SELECT version FROM "{schema}".schema_version ORDER BY version')
    finally:
        await conn.close()
    return [r["version"] for r in rows]


async def test_many_backends_connecting_at_once_migrate_once() -> None:
    schema = new_schema_name()
    backends = [PostgresBackend.from_url(url_for(schema, pool_min=1, pool_max=2)) for _ in range(8)]
    try:
        await asyncio.gather(*(b.connect() for b in backends))
        assert await _versions(schema) == list(range(1, latest_version() + 1))
        await backends[3].append("q", [task("t")])
        assert [t["id"] for t in await backends[5].pop("q")] == ["t"]
        assert (await backends[0].server_info())["schema_version"] == latest_version()
    finally:
        await asyncio.gather(*(b.disconnect() for b in backends))
        await drop_schema(schema)


async def test_migrations_are_idempotent_and_keep_data() -> None:
    schema = new_schema_name()
    url = url_for(schema)
    try:
        assert await migrate(url) == latest_version()
        async with PostgresBackend.from_url(url) as backend:
            await backend.append("q", [task("kept")])
            assert await backend.migrate() == latest_version()
        async with PostgresBackend.from_url(url) as backend:
            assert [t["id"] for t in await backend.get_pending("q")] == ["kept"]
        assert await migrate(url) == latest_version()
        assert await _versions(schema) == list(range(1, latest_version() + 1))
    finally:
        await drop_schema(schema)


async def test_schemas_are_independent() -> None:
    one, two = new_schema_name(), new_schema_name()
    try:
        async with PostgresBackend.from_url(url_for(one)) as a, PostgresBackend.from_url(url_for(two)) as b:
            await a.append("shared-name", [task("x")])
            assert await b.size("shared-name") == 0
            assert a.channel != b.channel
    finally:
        await drop_schema(one)
        await drop_schema(two)
