"""Hostile names: queue names, task ids and cron ids travel only as bind parameters."""

from __future__ import annotations

import secrets

import asyncpg
import pytest
from sheppy_postgres import PostgresBackend
from sheppy_postgres._config import quote_ident

from .conftest import SERVER_URL, finished, task, url_for

INJECTIONS = [
    "'; DROP TABLE tasks; --",
    "x'); DELETE FROM queues; --",
    '"; DROP SCHEMA sheppy CASCADE; --',
    "$1",
    "%s %% {schema} {0}",
    "a\\'b\\\\",
    "nul\x00byte",
    "* ? [a-z] _ % :",
    "ünï ✓ 😀",
    "  spaced  ",
    "x" * 5000,
    # Incompressible and longer than a b-tree key may be: stored under a hash, listed in full.
    secrets.token_hex(2000) + "\x00\\",
]


@pytest.mark.parametrize("name", INJECTIONS)
async def test_injection_strings_as_queue_and_ids(backend: PostgresBackend, name: str) -> None:
    queue = name
    # Task (and workflow) ids may not hold NUL ([input.unencodable]); queue names, cron ids and keys may.
    ident = name.replace("\x00", "")
    assert await backend.append(queue, [task(ident), task("plain")]) == [True, True]
    assert await backend.append(queue, [task(ident)]) == [False]
    assert name in await backend.list_queues()
    assert set(await backend.get_tasks(queue, [ident, "plain"])) == {ident, "plain"}
    claimed = await backend.pop(queue, 2)
    assert [t["id"] for t in claimed] == [ident, "plain"]
    assert await backend.heartbeat(queue, [ident]) == [ident]
    assert await backend.store_result(queue, finished(claimed[0]))
    assert set(await backend.get_results(queue, [ident])) == {ident}
    assert [t["id"] for t in (await backend.list_tasks(queue, status="completed")).records] == [ident]
    assert (await backend.list_tasks(queue, func=name)).records == []
    await backend.register_worker({"id": ident, "queues": [name]}, ttl=30)
    assert {"id": ident, "queues": [name]} in await backend.list_workers()
    assert await backend.unregister_worker(ident)
    assert await backend.add_cron(queue, name, {"expression": name})
    assert await backend.get_crons(queue) == [{"expression": name}]
    assert await backend.acquire_rate_limit(queue, name, 1, 10, name) is None
    assert await backend.store_workflow(queue, {"id": ident, "pending_task_ids": [ident]})
    assert await backend.mark_workflow_task_complete(queue, ident, ident) == 0
    assert await backend.delete_task(queue, ident)
    assert await backend.delete_cron(queue, name)
    assert await backend.clear(queue) == 1  # "plain"
    assert queue not in await backend.list_queues()
    # The schema's tables are all still there.
    conn = await asyncpg.connect(SERVER_URL)
    try:
        tables = await conn.fetchval(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = $1", backend.schema
        )
    finally:
        await conn.close()
    assert tables == 10


async def test_queues_with_hostile_names_stay_isolated(backend: PostgresBackend) -> None:
    await backend.append("a%", [task("1")])
    await backend.append("a_", [task("2")])
    await backend.append("a\x00", [task("3")])
    await backend.append("a\\0", [task("4")])
    assert await backend.size("a%") == 1
    assert [t["id"] for t in await backend.pop("a\\0", 5)] == ["4"]
    assert [t["id"] for t in await backend.pop("a\x00", 5)] == ["3"]
    for q in ("a%", "a_", "a\x00", "a\\0"):
        await backend.clear(q)


async def test_a_hostile_schema_name_is_quoted() -> None:
    schema = 'sheppy "odd"; DROP TABLE x; --'
    try:
        async with PostgresBackend.from_url(url_for(schema)) as backend:
            await backend.append("q", [task("t")])
            assert [t["id"] for t in await backend.pop("q")] == ["t"]
    finally:
        conn = await asyncpg.connect(SERVER_URL)
        try:
            await conn.execute(f"DROP SCHEMA IF EXISTS {quote_ident(schema)} CASCADE")
        finally:
            await conn.close()
