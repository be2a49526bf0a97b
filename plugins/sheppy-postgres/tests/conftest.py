"""Fixtures for sheppy-postgres tests, against the real server (never a mock).

The server is ``SHEPPY_TEST_POSTGRES_URL`` (default: the shared PostgreSQL on 127.0.0.1:5432, database
``test``). Each test module gets a schema of its own, dropped afterwards; each test its own queue
names. When the server is down, the tests that need it fail — nothing here skips.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import asyncpg
import pytest
from sheppy_postgres import PostgresBackend
from sheppy_postgres._config import quote_ident
from sheppy_postgres._records import encode_name, escape_name

from sheppy_core.backend import utcnow

SERVER_URL = os.environ.get("SHEPPY_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")


def url_for(schema: str, **options: Any) -> str:
    from urllib.parse import urlencode

    query = urlencode({"schema": schema, **{k: str(v) for k, v in options.items()}})
    sep = "&" if "?" in SERVER_URL else "?"
    return f"{SERVER_URL}{sep}{query}"


async def drop_schema(schema: str, server_url: str = SERVER_URL) -> None:
    conn = await asyncpg.connect(server_url)
    try:
        await conn.execute(f"DROP SCHEMA IF EXISTS {quote_ident(schema)} CASCADE")
    finally:
        await conn.close()


async def write_raw_task(schema: str, queue_name: str, task_id: str, text: str) -> None:
    """Store ``text`` as the data of a task queued at the tail of ``queue_name``, behind the backend's
    back with plain SQL: exactly what a bug or a manual ``UPDATE`` would leave (robust.corrupt_record)."""
    tasks, queues = f"{quote_ident(schema)}.tasks", f"{quote_ident(schema)}.queues"
    conn = await asyncpg.connect(SERVER_URL)
    try:
        async with conn.transaction():
            await conn.execute(
                f"INSERT INTO {queues} (queue, name) VALUES ($1, $2) ON CONFLICT DO NOTHING",
                encode_name(queue_name), escape_name(queue_name),
            )
            await conn.execute(
                f"INSERT INTO {tasks} (queue, id, state, status, data) "
                "VALUES ($1, $2, 'queued', 'pending', $3)",
                encode_name(queue_name), encode_name(task_id), text,
            )
    finally:
        await conn.close()


def new_schema_name() -> str:
    return f"sheppy_test_{uuid.uuid4().hex[:10]}"


@pytest.fixture(scope="module")
def schema() -> Iterator[str]:
    """A schema for this test module, dropped when the module is done."""
    name = new_schema_name()
    yield name
    asyncio.run(drop_schema(name))


@pytest.fixture
def url(schema: str) -> str:
    return url_for(schema)


@pytest.fixture
async def backend(url: str) -> AsyncIterator[PostgresBackend]:
    b = PostgresBackend.from_url(url)
    await b.connect()
    try:
        yield b
    finally:
        await b.disconnect()


@pytest.fixture
def queue() -> str:
    return f"q-{uuid.uuid4().hex[:8]}"


def task(task_id: str | None = None, **fields: Any) -> dict[str, Any]:
    """A minimal task record (the backend reads only a few fields)."""
    record: dict[str, Any] = {"id": task_id or str(uuid.uuid4()), "status": "new", "payload": fields}
    return record


def finished(record: dict[str, Any], status: str = "completed", **extra: Any) -> dict[str, Any]:
    done = dict(record)
    done.update(status=status, finished_at=utcnow().isoformat(), **extra)
    return done
