"""A dedicated connection for lease heartbeats, so they never queue behind the pool's other users.

A worker's pool connections are busy with claims, stored outcomes and workflow resumes. Resumes of
one workflow lock the same row and wait for each other *while holding a pooled connection*; when a
burst of a workflow's steps finishes at once they can hold every connection of the pool. A heartbeat
that waited for a pooled connection then could wait past the lease, and the worker would lose tasks
that are running fine (another worker runs them a second time). Heartbeats are small and periodic,
so they get a connection of their own: :class:`Lane`, opened on first use.

The lane only ever helps: whenever it cannot take a heartbeat at once — another one is on it, its
connection is down, or it failed a moment ago — :class:`LaneUnavailable` sends the caller to the pool,
as before the lane existed. Its own waits are bounded: connecting by ``connect_timeout``, a statement
by the caller's ``timeout``; after a failure it rests for ``retry_after`` seconds, so a server that is
down costs one short connect attempt per rest, not one per heartbeat.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg

from sheppy_postgres._errors import is_connection_problem

__all__ = ["Lane", "LaneUnavailable"]


class LaneUnavailable(Exception):
    """The lane cannot run a statement now; use the pool."""


class Lane:
    """One lazily opened connection, used by one statement at a time.

    :param connect: opens a new connection (the backend's own connection settings).
    :param connect_timeout: the longest a heartbeat waits for the lane to connect.
    :param retry_after: after a failure, seconds during which the lane is not tried again.
    """

    def __init__(
        self,
        connect: Callable[[], Awaitable[asyncpg.Connection[Any]]],
        *,
        connect_timeout: float = 2.0,
        retry_after: float = 5.0,
    ) -> None:
        self._connect = connect
        self._connect_timeout = connect_timeout
        self._retry_after = retry_after
        self._conn: asyncpg.Connection[Any] | None = None
        self._busy = False
        self._closed = False
        self._resting_until = 0.0

    @property
    def server_pid(self) -> int | None:
        """The server process id of the lane's session, while it is open."""
        conn = self._conn
        return conn.get_server_pid() if conn is not None and not conn.is_closed() else None

    async def fetch(self, sql: str, *args: Any, timeout: float) -> list[asyncpg.Record]:
        """Run ``sql`` on the lane's connection (opening it first if needed) within ``timeout`` seconds.

        ``LaneUnavailable`` when the lane is busy, closed or resting, or when its connection fails or
        the statement times out (the connection is then dropped, and the lane rests). Any other error
        (e.g. the server refusing the statement) propagates; the connection is kept.
        """
        if self._busy or self._closed or time.monotonic() < self._resting_until:
            raise LaneUnavailable
        self._busy = True
        try:
            conn = self._conn
            if conn is None or conn.is_closed():
                conn = self._conn = await self._open()
            return await conn.fetch(sql, *args, timeout=timeout)
        except asyncio.CancelledError:
            self._drop()  # cut off mid-statement: the session's state is unknown
            raise
        except Exception as exc:
            if isinstance(exc, TimeoutError) or is_connection_problem(exc):
                self._drop()
                self._rest()
                raise LaneUnavailable from exc
            raise
        finally:
            self._busy = False

    async def _open(self) -> asyncpg.Connection[Any]:
        """A new connection, or ``LaneUnavailable`` (and a rest) if none comes within the timeout."""
        try:
            conn = await asyncio.wait_for(self._connect(), self._connect_timeout)
        except Exception as exc:  # whatever the reason (even "too many clients"), the pool may still work
            self._rest()
            raise LaneUnavailable from exc
        if self._closed:  # closed while connecting
            conn.terminate()
            raise LaneUnavailable
        return conn

    def _rest(self) -> None:
        self._resting_until = time.monotonic() + self._retry_after

    async def close(self) -> None:
        """Close the connection; a statement in flight is cut off, not waited for. Later calls raise
        ``LaneUnavailable``."""
        self._closed = True
        conn, self._conn = self._conn, None
        if conn is None or conn.is_closed():
            return
        if self._busy:
            conn.terminate()
            return
        try:
            await asyncio.wait_for(conn.close(), 5.0)
        except Exception:
            conn.terminate()

    def _drop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                conn.terminate()
