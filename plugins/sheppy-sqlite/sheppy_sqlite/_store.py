"""How statements reach the file: connections, the per-object lock, busy retries, purge and checkpoints.

:class:`Store` is everything of ``SQLiteBackend`` that is about *running* SQL rather than about the
contract's semantics:

* one aiosqlite connection, shared by the coroutines of one event loop through a lock, so each
  operation — a statement or a ``BEGIN IMMEDIATE`` transaction — runs alone on it, in a shielded task
  (cancelling a caller never leaves the connection inside a transaction);
* the fast path (:mod:`sheppy_sqlite._fastpath`) for single statements that need not wait;
* ``SQLITE_BUSY``: waited out by SQLite's busy handler for ``busy_timeout``; busy answers SQLite gives
  without waiting are retried here with a short backoff until the same deadline; then ``BackendError``.
  A busy failure rolled the statement or transaction back, so running it again is safe;
* the periodic purge of expired records and the background WAL checkpoints of the fast path.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
import threading
import time
import warnings
import weakref
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import aiosqlite

from sheppy_core.backend import BackendConnectionError
from sheppy_sqlite._config import SQLiteOptions
from sheppy_sqlite._errors import is_busy, translate
from sheppy_sqlite._fastpath import CHECKPOINT_EVERY, FastPath
from sheppy_sqlite._migrations import check_sqlite_version, configure, migrate
from sheppy_sqlite._sql import queries

__all__ = ["Conn", "Store"]

logger = logging.getLogger("sheppy_sqlite")

T = TypeVar("T")
Conn = aiosqlite.Connection

_RETRY_FIRST_DELAY = 0.002
_RETRY_MAX_DELAY = 0.05

_open_connections: weakref.WeakSet[aiosqlite.Connection] = weakref.WeakSet()
_exit_hook_installed = False


def _stop_open_connections() -> None:
    """At interpreter exit, stop the threads of connections nobody closed.

    Each aiosqlite connection runs a non-daemon thread, and Python joins those *before* ``atexit``
    handlers run: a program that never calls ``disconnect()`` would hang on exit. ``stop()`` closes the
    SQLite connection (any open transaction rolls back; committed data is safe) and ends the thread.
    """
    for conn in list(_open_connections):
        with warnings.catch_warnings(), contextlib.suppress(Exception):
            warnings.simplefilter("ignore")
            conn.stop()


def _track(conn: aiosqlite.Connection) -> None:
    global _exit_hook_installed
    _open_connections.add(conn)
    if not _exit_hook_installed:
        # threading's own pre-join hook (what concurrent.futures uses); atexit would run too late.
        register = getattr(threading, "_register_atexit", None)
        if register is not None:
            register(_stop_open_connections)
        _exit_hook_installed = True


async def _checkpoint(conn: Conn) -> None:
    """Copy the WAL back into the database file without waiting for readers (off the event loop)."""
    await conn.execute_fetchall("PRAGMA wal_checkpoint(PASSIVE)")


async def fetch(conn: Conn, name: str, params: dict[str, Any]) -> list[Any]:
    """Run a named statement on ``conn`` (inside an operation) and return its rows."""
    return list(await conn.execute_fetchall(queries()[name], params))


class Store:
    """The connections of one ``SQLiteBackend`` object and the way operations run on them.

    :param options: the backend's validated options.
    :param path: the resolved database path (used in messages).
    """

    def __init__(self, options: SQLiteOptions, path: str) -> None:
        self.options = options
        self.path = path
        self.journal_mode = options.journal_mode
        self.schema_version = 0
        self._conn: Conn | None = None
        self._fast: FastPath | None = None
        self._lock: asyncio.Lock | None = None
        self._lock_loop: asyncio.AbstractEventLoop | None = None
        self._next_purge = 0.0
        self._background: set[asyncio.Task[Any]] = set()

    @property
    def is_open(self) -> bool:
        return self._conn is not None

    # -- opening and closing ---------------------------------------------------------------------

    async def _connect(self) -> Conn:
        try:
            # Fail fast without a thread: aiosqlite's own failure path leaves its thread reporting to
            # an event loop that may be gone by then.
            sqlite3.connect(self.path, timeout=0).close()
        except sqlite3.Error as exc:
            raise BackendConnectionError(f"sheppy-sqlite cannot open {self.path}: {exc}") from exc
        try:
            conn = await aiosqlite.connect(
                self.path, timeout=self.options.busy_timeout / 1000, isolation_level=None,
                check_same_thread=False,
            )
        except (sqlite3.Error, ValueError) as exc:
            raise BackendConnectionError(f"sheppy-sqlite cannot open {self.path}: {exc}") from exc
        _track(conn)
        return conn

    async def open(self) -> None:
        """Open the file (creating it), set the journal mode, create or migrate the schema, and open the
        fast path where it applies."""
        check_sqlite_version()
        conn = await self._connect()
        self._lock, self._lock_loop = asyncio.Lock(), asyncio.get_running_loop()
        options = self.options
        try:
            async def setup(c: Conn) -> int:
                self.journal_mode = await configure(c, options.journal_mode, options.synchronous)
                return await migrate(c)

            self.schema_version = await self._retrying(conn, "connect", setup)
            if options.fast_path and self.journal_mode == "wal" and options.synchronous in ("normal", "off"):
                try:
                    self._fast = FastPath(self.path, options.synchronous)
                except sqlite3.Error as exc:
                    raise translate(exc, "connect", self.path, options.busy_timeout) from exc
        except BaseException:
            await conn.close()
            raise
        self._conn = conn
        self._next_purge = 0.0  # purge once on the first call

    async def close(self) -> None:
        """Close the connections, after the operation running now (if any)."""
        conn, self._conn = self._conn, None
        fast, self._fast = self._fast, None
        if fast is not None:
            fast.close()
        if conn is None:
            return
        if self._lock is not None and self._lock_loop is asyncio.get_running_loop():
            async with self._lock:
                await conn.close()
        else:
            await conn.close()

    def not_connected(self) -> BackendConnectionError:
        return BackendConnectionError(f"SQLiteBackend({self.path!r}) is not connected; call connect() first")

    # -- running operations ----------------------------------------------------------------------

    async def _retrying(self, conn: Conn, operation: str, body: Callable[[Conn], Awaitable[T]]) -> T:
        """Run ``body`` on ``conn``; retry it while the database is busy, up to the busy timeout."""
        deadline = time.monotonic() + self.options.busy_timeout / 1000
        delay = _RETRY_FIRST_DELAY
        while True:
            try:
                return await body(conn)
            except (sqlite3.Error, ValueError) as exc:
                await self._rollback_quietly(conn)
                if is_busy(exc) and time.monotonic() + delay < deadline:
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, _RETRY_MAX_DELAY)
                    continue
                raise translate(exc, operation, self.path, self.options.busy_timeout) from exc
            except BaseException:
                await self._rollback_quietly(conn)
                raise

    @staticmethod
    async def _rollback_quietly(conn: Conn) -> None:
        try:
            if conn.in_transaction:
                await conn.execute_fetchall("ROLLBACK")
        except (sqlite3.Error, ValueError):
            pass

    async def locked(self, operation: str, body: Callable[[Conn], Awaitable[T]]) -> T:
        """Run ``body`` alone on the connection (purging first when a purge is due)."""
        conn, lock = self._conn, self._lock
        if conn is None or lock is None:
            raise self.not_connected()
        loop = asyncio.get_running_loop()
        if loop is not self._lock_loop:
            # An asyncio.Lock belongs to one loop; an object reused from a new loop gets a new lock
            # (two loops never run this object's operations at the same time).
            lock = self._lock = asyncio.Lock()
            self._lock_loop = loop
        async with lock:
            if self._conn is not conn:
                raise BackendConnectionError(f"SQLiteBackend({self.path!r}) was disconnected")
            if time.monotonic() >= self._next_purge:
                await self._purge(conn)
            return await self._retrying(conn, operation, body)

    async def call(self, operation: str, body: Callable[[Conn], Awaitable[T]]) -> T:
        """:meth:`locked`, shielded from the caller's cancellation (the operation finishes in the
        background; it is short, bounded by the busy timeout)."""
        task = asyncio.ensure_future(self.locked(operation, body))
        try:
            return await asyncio.shield(task)
        except asyncio.CancelledError:
            self.keep(task)
            raise

    def keep(self, task: asyncio.Future[Any]) -> None:
        """Keep a reference to a task finishing in the background, and retrieve its outcome."""
        if isinstance(task, asyncio.Task):
            self._background.add(task)
        task.add_done_callback(self._forget)

    def _forget(self, task: asyncio.Future[Any]) -> None:
        if isinstance(task, asyncio.Task):
            self._background.discard(task)
        if not task.cancelled() and task.exception() is not None:
            logger.debug("sheppy-sqlite: background operation failed: %s", task.exception())

    async def _purge(self, conn: Conn) -> None:
        """Delete expired finished records. Failure (e.g. a busy file) only postpones it."""
        self._next_purge = time.monotonic() + self.options.purge_interval
        try:
            await conn.execute_fetchall(queries()["purge_expired"], {"now": time.time()})
        except (sqlite3.Error, ValueError) as exc:
            logger.debug("sheppy-sqlite: purge of %s postponed: %s", self.path, exc)
            self._next_purge = time.monotonic() + min(1.0, self.options.purge_interval)

    def try_fast(self, operation: str, name: str, params: dict[str, Any]) -> list[Any] | None:
        """Run one statement on the loop through the fast path; None when it must go to the thread
        (no fast path, a purge is due, or the database is busy)."""
        fast = self._fast
        if fast is None or time.monotonic() >= self._next_purge:
            return None
        try:
            rows = fast.run(queries()[name], params)
        except (sqlite3.Error, UnicodeError) as exc:
            raise translate(exc, operation, self.path, self.options.busy_timeout) from exc
        if fast.writes_since_checkpoint >= CHECKPOINT_EVERY:
            fast.writes_since_checkpoint = 0
            self.keep(asyncio.ensure_future(self.call("checkpoint", _checkpoint)))
        return rows

    def try_fast_many(
        self, operation: str, statements: list[tuple[str, dict[str, Any]]]
    ) -> list[list[Any]] | None:
        """:meth:`try_fast` for several named statements run in one transaction."""
        fast = self._fast
        if fast is None or time.monotonic() >= self._next_purge:
            return None
        try:
            results = fast.run_many([(queries()[name], params) for name, params in statements])
        except (sqlite3.Error, UnicodeError) as exc:
            raise translate(exc, operation, self.path, self.options.busy_timeout) from exc
        if fast.writes_since_checkpoint >= CHECKPOINT_EVERY:
            fast.writes_since_checkpoint = 0
            self.keep(asyncio.ensure_future(self.call("checkpoint", _checkpoint)))
        return results

    async def rows_many(
        self, operation: str, statements: list[tuple[str, dict[str, Any]]]
    ) -> list[list[Any]]:
        """Run several named statements in one transaction (the fast path first) and return the rows of
        each, in order. A failure rolls all of them back."""
        fast_results = self.try_fast_many(operation, statements)
        if fast_results is not None:
            return fast_results

        async def body(conn: Conn) -> list[list[Any]]:
            return [await fetch(conn, name, params) for name, params in statements]

        return await self.transaction(operation, body)

    async def rows(
        self, operation: str, name: str, params: dict[str, Any], *, inline: bool = True
    ) -> list[Any]:
        """Run one named statement and return its rows.

        ``inline=False`` keeps the statement off the event loop even with the fast path: for
        statements whose work grows with the data (listing a whole queue, a huge batch), which could
        otherwise stall the loop.
        """
        fast_rows = self.try_fast(operation, name, params) if inline else None
        if fast_rows is not None:
            return fast_rows
        sql = queries()[name]

        async def body(conn: Conn) -> list[Any]:
            return list(await conn.execute_fetchall(sql, params))

        return await self.call(operation, body)

    async def transaction(self, operation: str, body: Callable[[Conn], Awaitable[T]]) -> T:
        """Run ``body`` inside ``BEGIN IMMEDIATE`` … ``COMMIT`` (rolled back on any error)."""

        async def run(conn: Conn) -> T:
            await conn.execute_fetchall("BEGIN IMMEDIATE")
            result = await body(conn)
            await conn.execute_fetchall("COMMIT")
            return result

        return await self.call(operation, run)
