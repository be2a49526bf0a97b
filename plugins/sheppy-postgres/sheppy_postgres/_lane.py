"""A dedicated connection for lease heartbeats, so they never queue behind the pool's other users.

A worker's pool connections are busy with claims, stored outcomes and workflow resumes. Resumes of
one workflow lock the same row and wait for each other *while holding a pooled connection*; when a
burst of a workflow's steps finishes at once they can hold every connection of the pool. A heartbeat
that waited for a pooled connection then could wait past the lease, and the worker would lose tasks
that are running fine (another worker runs them a second time). Heartbeats are small and periodic,
so they get a connection of their own: :class:`Lane`, opened on first use.

If the lane's connection fails (a restart, a terminated session), the heartbeat in hand is sent
through the pool instead and the lane reconnects on its next use: a heartbeat is never lost to the
lane itself.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg

__all__ = ["Lane"]


class Lane:
    """One lazily opened connection, used by one statement at a time.

    :param connect: opens a new connection (the backend's own connection settings).
    """

    def __init__(self, connect: Callable[[], Awaitable[asyncpg.Connection[Any]]]) -> None:
        self._connect = connect
        self._conn: asyncpg.Connection[Any] | None = None
        self._lock = asyncio.Lock()
        self._closed = False

    @property
    def server_pid(self) -> int | None:
        """The server process id of the lane's session, while it is open."""
        conn = self._conn
        return conn.get_server_pid() if conn is not None and not conn.is_closed() else None

    async def fetch(self, sql: str, *args: Any) -> list[asyncpg.Record]:
        """Run ``sql`` on the lane's connection, opening it first if needed.

        Any error propagates; after one, the connection is dropped and the next call opens a new one.
        ``RuntimeError`` once :meth:`close` was called.
        """
        async with self._lock:
            if self._closed:
                raise RuntimeError("the heartbeat lane is closed")
            conn = self._conn
            try:
                if conn is None or conn.is_closed():
                    conn = self._conn = await self._connect()
                return await conn.fetch(sql, *args)
            except BaseException:
                self._drop()
                raise

    async def close(self) -> None:
        """Close the connection (waiting for a statement in flight); later calls fail."""
        async with self._lock:
            self._closed = True
            conn, self._conn = self._conn, None
            if conn is not None and not conn.is_closed():
                try:
                    await asyncio.wait_for(conn.close(), 5.0)
                except Exception:
                    conn.terminate()

    def _drop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                conn.terminate()
