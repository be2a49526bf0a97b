"""Single statements run directly on the event loop when they need not wait.

A round trip through aiosqlite's connection thread costs about 40 µs of queueing and wake-ups, more
than most of this backend's statements take to run (an indexed claim or insert, committed to the WAL
without fsync under ``synchronous=normal``). :class:`FastPath` therefore keeps a second, plain
``sqlite3`` connection with ``timeout=0`` and runs single-statement operations on it, on the loop's own
thread: they either finish at once or fail with ``SQLITE_BUSY`` *without waiting and without effect*
(a failed autocommit statement changes nothing), in which case the caller sends the same statement
through the aiosqlite connection, whose busy handler waits for the lock off the loop. Every statement
is atomic on its own, so which connection runs it changes nothing for other connections.

It is used only in WAL mode with ``synchronous`` ``normal`` or ``off``, where a commit does no fsync;
with ``full``/``extra`` every commit would block the loop on the disk, so everything goes through the
thread. The fast connection never checkpoints (``wal_autocheckpoint=0``): a checkpoint writes and
syncs the database file, so the backend asks the aiosqlite connection to run it, off the loop, every
:data:`CHECKPOINT_EVERY` writes.
"""

from __future__ import annotations

import contextlib
import sqlite3
from typing import Any, Final

from sheppy_sqlite._errors import is_busy

__all__ = ["CHECKPOINT_EVERY", "FastPath"]

CHECKPOINT_EVERY: Final = 250
"""Fast writes between two background checkpoints (≈ SQLite's default of 1000 WAL pages)."""


class FastPath:
    """A non-waiting ``sqlite3`` connection for the event loop's thread.

    :param path: the database file (already created and migrated).
    :param synchronous: the ``PRAGMA synchronous`` value, as on the main connection.
    """

    def __init__(self, path: str, synchronous: str) -> None:
        # check_same_thread=False: a backend may be used from successive event loops, and a loop may
        # run in another thread; calls never overlap (one loop at a time).
        self._conn = sqlite3.connect(path, timeout=0, isolation_level=None, check_same_thread=False)
        try:
            self._conn.execute(f"PRAGMA synchronous = {synchronous}")
            self._conn.execute("PRAGMA wal_autocheckpoint = 0")
        except BaseException:
            self._conn.close()
            raise
        self.writes_since_checkpoint = 0

    def run(self, sql: str, params: dict[str, Any]) -> list[Any] | None:
        """The statement's rows, or None when the database is busy (nothing was done: use the thread).

        Raises ``sqlite3.Error`` for any other failure.
        """
        before = self._conn.total_changes
        try:
            rows = self._conn.execute(sql, params).fetchall()
        except sqlite3.OperationalError as exc:
            if is_busy(exc):
                return None
            raise
        if self._conn.total_changes != before:
            self.writes_since_checkpoint += 1
        return rows

    def run_many(self, statements: list[tuple[str, dict[str, Any]]]) -> list[list[Any]] | None:
        """Run ``statements`` in one ``BEGIN IMMEDIATE`` transaction: the rows of each, in order, or None
        when the database is busy (nothing was done: use the thread).

        One commit for many writes shares the WAL pages they touch. Any other failure rolls the whole
        transaction back and raises ``sqlite3.Error``.
        """
        conn = self._conn
        try:
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            if is_busy(exc):
                return None
            raise
        try:
            results = [conn.execute(sql, params).fetchall() for sql, params in statements]
            conn.execute("COMMIT")
        except BaseException as exc:
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
            if isinstance(exc, sqlite3.OperationalError) and is_busy(exc):
                return None
            raise
        # Counted per statement, as if committed one by one: a conservative bound on the WAL's growth.
        self.writes_since_checkpoint += len(statements)
        return results

    def close(self) -> None:
        with contextlib.suppress(sqlite3.Error):
            self._conn.close()
