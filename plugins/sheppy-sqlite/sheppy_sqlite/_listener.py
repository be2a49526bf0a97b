"""Waking waiters without a busy loop.

Two paths deliver "something changed" to a coroutine blocked in ``pop(timeout=...)``,
``get_results(timeout=...)`` or ``wait_for_change``:

* **Same process** — every write that can unblock someone (append, schedule, store_result, cancel,
  pop_scheduled, clear) calls :func:`notify` with the database's resolved path and the queue name. The
  module-level registry maps ``(path, queue)`` to the waiters of *every* backend object in this process
  on that file, so a producer and a consumer built separately (two ``SQLiteBackend`` objects, even on
  different event loops or threads) still wake each other at once.
* **Other processes** — SQLite has no notification channel between processes. A :class:`ChangeWatcher`
  (one per backend object, running only while someone waits) reads ``PRAGMA data_version`` on a
  dedicated connection: the value changes whenever *another* connection commits to the file, and
  reading it costs about 3 µs (no table is touched). The watcher looks after 1 ms, then backs off
  by doubling to ``poll_interval`` (10 ms by default) while nothing changes, and starts again at 1 ms
  after each change. On a change it wakes every waiter on that file; each re-runs its (indexed) query.

Worst case for a cross-process pick-up: ``poll_interval`` plus one claim query (~0.1 ms) plus event-loop
scheduling; the idle pick-up probe of ``benchmarks/bench_sqlite.py`` gives the typical figure.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
import threading
from types import TracebackType

__all__ = ["ChangeWatcher", "Waiter", "notify"]

logger = logging.getLogger("sheppy_sqlite")

MIN_POLL_INTERVAL = 0.001
"""First pause of the watcher after a change: back-to-back tasks are seen within about a millisecond."""

_registry: dict[str, dict[str, set[Waiter]]] = {}
# Waiters may live on several event loops (threads) of one process; the registry is shared by them.
_registry_lock = threading.Lock()


def notify(path: str, queue: str | None = None) -> None:
    """Wake the waiters of this process on ``path`` — of one ``queue``, or of all queues when None."""
    with _registry_lock:
        by_queue = _registry.get(path)
        if not by_queue:
            return
        if queue is None:
            waiters = [w for group in by_queue.values() for w in group]
        else:
            waiters = list(by_queue.get(queue, ()))
    for waiter in waiters:
        waiter.wake()


class Waiter:
    """One blocked call's registration for wake-ups on ``(path, queue)``; use as a context manager.

    Register *before* looking at the database, then :meth:`clear` and look again after each wake-up: a
    change committed between the look and the wait then still sets the event, so no wake-up is lost.
    """

    def __init__(self, path: str, queue: str, event: asyncio.Event | None = None) -> None:
        self.path = path
        self.queue = queue
        self._loop = asyncio.get_running_loop()
        # Waiters of one call on several queues share one event (wait_for_change).
        self._event = event if event is not None else asyncio.Event()

    def __enter__(self) -> Waiter:
        with _registry_lock:
            _registry.setdefault(self.path, {}).setdefault(self.queue, set()).add(self)
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        with _registry_lock:
            by_queue = _registry.get(self.path, {})
            group = by_queue.get(self.queue)
            if group is not None:
                group.discard(self)
                if not group:
                    del by_queue[self.queue]
            if not by_queue:
                _registry.pop(self.path, None)

    def wake(self) -> None:
        """Set the event from any thread (asyncio events are not thread-safe)."""
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is self._loop:
            self._event.set()
        else:
            with contextlib.suppress(RuntimeError):  # that loop is closed: nobody is waiting any more
                self._loop.call_soon_threadsafe(self._event.set)

    def clear(self) -> None:
        self._event.clear()

    async def wait(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for a wake-up; True if woken.

        ``asyncio.timeout`` rather than ``asyncio.wait_for``: on Python 3.11, ``wait_for`` swallows a
        cancellation that arrives just as the event is set, and the caller (say, a worker shutting
        down) would then block for the rest of its timeout.
        """
        if self._event.is_set():
            return True
        try:
            async with asyncio.timeout(timeout):
                await self._event.wait()
        except TimeoutError:
            return False
        return True


class ChangeWatcher:
    """Turns commits by other processes into :func:`notify` calls while at least one caller waits.

    The watcher reads ``PRAGMA data_version`` on its own plain ``sqlite3`` connection, directly on the
    event loop: the read takes about 3 µs (it looks at the WAL index or the file header, never at a
    table), far less than a hop to a connection thread, and with ``timeout=0`` it can never block —
    a busy file just means "look again at the next tick". No thread also means nothing is left running
    when an event loop closes, so the backend can be used from successive loops.

    :param path: the resolved database path (the registry key).
    :param poll_interval: the longest pause between two reads.
    """

    def __init__(self, path: str, poll_interval: float) -> None:
        self.path = path
        self.poll_interval = poll_interval
        self._conn: sqlite3.Connection | None = None
        self._task: asyncio.Task[None] | None = None
        self._users = 0
        self._last_version: int | None = None

    def _data_version(self) -> int:
        if self._conn is None:
            self._conn = sqlite3.connect(self.path, timeout=0, isolation_level=None, check_same_thread=False)
        row = self._conn.execute("PRAGMA data_version").fetchone()
        return int(row[0])

    def acquire(self) -> None:
        """Start watching (if not yet) for one more waiter.

        The baseline ``data_version`` is read before this returns, so a commit made afterwards is always
        seen as a change. Raises ``sqlite3.Error`` if the file cannot be read.
        """
        loop = asyncio.get_running_loop()
        if self._task is not None and (self._task.done() or self._task.get_loop() is not loop):
            # Finished, or left behind on another (possibly closed) event loop.
            self._task, self._users = None, 0
        self._users += 1
        if self._task is None:
            try:
                self._last_version = self._data_version()
            except BaseException:
                self._users -= 1
                raise
            self._task = loop.create_task(self._watch(), name="sheppy-sqlite-watch")

    def release(self) -> None:
        """One waiter fewer; the watch loop ends by itself at its next tick when nobody is left."""
        self._users = max(0, self._users - 1)

    async def _watch(self) -> None:
        interval = MIN_POLL_INTERVAL
        while self._users > 0:
            await asyncio.sleep(interval)
            try:
                version = self._data_version()
            except sqlite3.OperationalError as exc:
                if "locked" in str(exc) or "busy" in str(exc):
                    interval = MIN_POLL_INTERVAL  # a writer is committing: look again very soon
                    continue
                self._report(exc)
                interval = self.poll_interval
                continue
            except sqlite3.Error as exc:
                self._report(exc)
                interval = self.poll_interval
                continue
            if version != self._last_version:
                self._last_version = version
                notify(self.path)
                interval = MIN_POLL_INTERVAL
            else:
                interval = min(interval * 2, self.poll_interval)
        self._task = None

    def _report(self, exc: sqlite3.Error) -> None:
        # The waiters' own queries will raise the real error; wake them so they do.
        logger.warning("sheppy-sqlite: cannot read data_version of %s: %s", self.path, exc)
        notify(self.path)

    async def close(self) -> None:
        """Stop watching and close the watcher's connection."""
        task, self._task = self._task, None
        if task is not None and not task.done() and task.get_loop() is asyncio.get_running_loop():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(sqlite3.Error):
                conn.close()
        self._users = 0
