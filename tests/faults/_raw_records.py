"""Stores whose records the fault tests write straight into, behind the backend's back.

Each factory gives a :class:`Store`: the URL of a fresh store (its own SQLite file, PostgreSQL schema
or Redis key prefix), a writer that puts raw text in it as a queued task's stored record, as a bug or a
manual edit would leave it, and what removes the store afterwards. Used by ``test_corrupt_records.py``
and the soak (``soak.py``).
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import sqlite3
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import asyncpg
import redis.asyncio as redis_asyncio
from sheppy_redis._keys import QueueKeys

POSTGRES_SERVER = "postgresql://postgres@127.0.0.1:5432/test"
REDIS_SERVER = "redis://127.0.0.1:6379/0"


@dataclass
class Store:
    """A store under test: its URL, a writer of raw text as a queued task's stored record
    ``(queue_name, task_id, text)``, and what removes the store afterwards."""

    url: str
    write: Callable[[str, str, str], Awaitable[None]]
    remove: Callable[[], Awaitable[None]]


async def postgres_store(tmp_path: Path, server: str = POSTGRES_SERVER, **options: str) -> Store:
    """A schema of its own on ``server``; ``options`` are added to the URL (``application_name``...)."""
    schema = f"sheppy_fault_{uuid.uuid4().hex[:10]}"

    async def execute(sql: str, *args: Any) -> None:
        conn = await asyncpg.connect(server)
        try:
            await conn.execute(sql, *args)
        finally:
            await conn.close()

    async def write(queue_name: str, task_id: str, text: str) -> None:
        # Plain ASCII names are stored as they are; a fresh bigserial puts the row at the queue's tail.
        await execute(
            f'INSERT INTO "{schema}".tasks (queue, id, state, status, data) '
            "VALUES ($1, $2, 'queued', 'pending', $3)",
            queue_name, task_id, text,
        )  # fmt: skip

    async def remove() -> None:
        await execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')

    return Store(f"{server}?{urlencode({'schema': schema, **options})}", write, remove)


async def sqlite_store(tmp_path: Path) -> Store:
    """A database file of its own in ``tmp_path`` (removed with it)."""
    path = tmp_path / f"fault-{uuid.uuid4().hex[:8]}.db"

    def insert(queue_name: str, task_id: str, text: str) -> None:
        # A new row's seq is max(seq) + 1, the tail; the insert trigger registers the queue.
        with contextlib.closing(sqlite3.connect(path, timeout=30, isolation_level=None)) as conn:
            conn.execute(
                "INSERT INTO tasks (queue, id, state, status, data) VALUES (?, ?, 'queued', 'pending', ?)",
                (queue_name, task_id, text),
            )

    async def write(queue_name: str, task_id: str, text: str) -> None:
        await asyncio.to_thread(insert, queue_name, task_id, text)

    def unlink() -> None:
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)

    async def remove() -> None:
        await asyncio.to_thread(unlink)

    return Store(f"sqlite:///{path}", write, remove)


async def redis_store(tmp_path: Path, server: str = REDIS_SERVER) -> Store:
    """A key prefix of its own on ``server``."""
    prefix = f"sheppy-fault-{uuid.uuid4().hex[:10]}"

    async def write(queue_name: str, task_id: str, text: str) -> None:
        # What append.lua stores: the body as field "r", a pending status, the id in the ids set and in
        # the queue's ZSET at the tail (the per-queue counter), the queue in the registry.
        keys = QueueKeys.for_queue(prefix, queue_name)
        client = redis_asyncio.Redis.from_url(server)
        try:
            seq = await client.incr(keys.base + "seq")
            async with client.pipeline(transaction=True) as pipe:
                fields: list[str | int] = ["r", text, "status", '"pending"', "deliveries", 0]
                pipe.hset(keys.base + "t:" + task_id, items=fields)
                pipe.sadd(keys.ids, task_id)
                pipe.zadd(keys.queued, {task_id: seq})
                pipe.rpush(keys.wake, "1")
                pipe.hset(f"{prefix}:queues", queue_name, "1")
                await pipe.execute()
        finally:
            await client.aclose()

    async def remove() -> None:
        client = redis_asyncio.Redis.from_url(server)
        try:
            keys = [key async for key in client.scan_iter(match=f"{prefix}:*", count=1000)]
            if keys:
                await client.unlink(*keys)
        finally:
            await client.aclose()

    separator = "&" if "?" in server else "?"
    return Store(f"{server}{separator}prefix={prefix}", write, remove)


async def jsonfile_store(tmp_path: Path) -> Store:
    """A JSON file of its own in ``tmp_path`` (examples/sheppy-jsonfile; removed with it)."""
    path = tmp_path / f"fault-{uuid.uuid4().hex[:8]}.json"

    def edit(queue_name: str, task_id: str, text: str) -> None:
        # Under the backend's file lock: the record is the text itself, a string where an object
        # belongs (a record stored encoded twice, or pasted in by hand), queued at the tail.
        with open(f"{path}.lock", "a+b") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            empty = {"version": 1, "queues": {}}
            document = json.loads(path.read_text(encoding="utf-8")) if path.exists() else empty
            queue = document["queues"].setdefault(
                queue_name, {"records": {}, "queued": [], "claims": {}, "scheduled": {}}
            )
            queue["records"][task_id] = text
            queue["queued"].append(task_id)
            path.write_text(json.dumps(document), encoding="utf-8")

    async def write(queue_name: str, task_id: str, text: str) -> None:
        await asyncio.to_thread(edit, queue_name, task_id, text)

    def unlink() -> None:
        for suffix in ("", ".lock"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)

    async def remove() -> None:
        await asyncio.to_thread(unlink)

    return Store(f"jsonfile://{path}", write, remove)
