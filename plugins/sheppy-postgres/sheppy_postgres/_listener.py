"""Wakeups by LISTEN/NOTIFY on one dedicated connection per backend object.

Writers send ``pg_notify(channel, key)`` in the same statement (and so the same transaction) as the
change: ``q<hash of queue>`` when tasks became claimable, ``r<hash of queue>`` when tasks finished.
PostgreSQL delivers a notification only when its transaction commits, so a waiter never wakes for a
task it cannot see yet, and a rolled-back enqueue wakes nobody.

Idle ``pop``/``get_results``/``wait_for_change`` calls :meth:`Notifier.subscribe` to a key (or several)
and wait on an :class:`asyncio.Event`. Notifications can still be missed (the listening connection
drops and comes back, a NOTIFY queue overflows), so every waiter also re-checks after ``poll_interval``
seconds — the documented fallback poll. After the connection comes back, every waiter is woken once
to re-check.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import asyncpg

__all__ = ["Notifier"]

logger = logging.getLogger("sheppy.postgres")

_KEEPALIVE_SECONDS = 10.0
"""How often the idle listening connection is probed, so a silently dead one is noticed."""
_MAX_BACKOFF = 1.0


class Notifier:
    """Keeps one connection LISTENing on ``channel`` and wakes the coroutines subscribed to a payload."""

    def __init__(self, connect: Callable[[], Awaitable[asyncpg.Connection[Any]]], channel: str) -> None:
        self._connect = connect
        self._channel = channel
        self._waiters: dict[str, set[asyncio.Event]] = {}
        self._task: asyncio.Task[None] | None = None
        self._listening = asyncio.Event()
        self._server_pid: int | None = None

    @property
    def listening(self) -> bool:
        """True while the LISTEN connection is up."""
        return self._listening.is_set()

    @property
    def server_pid(self) -> int | None:
        """The server process id of the LISTEN session, while it is up."""
        return self._server_pid if self.listening else None

    async def start(self, first_wait: float = 5.0) -> None:
        """Start listening in the background, waiting up to ``first_wait`` seconds for the first LISTEN
        (waiters fall back to polling until it is up)."""
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name=f"sheppy-postgres LISTEN {self._channel}")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._listening.wait(), first_wait)

    async def close(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self.wake_all()

    @contextlib.contextmanager
    def subscribe(self, key: str, event: asyncio.Event | None = None) -> Iterator[asyncio.Event]:
        """An event set whenever a notification with payload ``key`` arrives (clear it before checking);
        ``event``: that one (a call waiting on several keys subscribes one event to each)."""
        event = event if event is not None else asyncio.Event()
        self._waiters.setdefault(key, set()).add(event)
        try:
            yield event
        finally:
            waiters = self._waiters.get(key)
            if waiters is not None:
                waiters.discard(event)
                if not waiters:
                    del self._waiters[key]

    def wake_all(self) -> None:
        for waiters in self._waiters.values():
            for event in waiters:
                event.set()

    def _on_notify(self, conn: object, pid: int, channel: str, payload: object) -> None:
        for event in self._waiters.get(str(payload), ()):
            event.set()

    async def _run(self) -> None:
        delay = 0.05
        while True:
            conn: asyncpg.Connection[Any] | None = None
            try:
                conn = await self._connect()
                lost = asyncio.Event()
                conn.add_termination_listener(lambda _conn: lost.set())  # noqa: B023 (used within this iteration)
                await conn.add_listener(self._channel, self._on_notify)
                self._server_pid = conn.get_server_pid()
                self._listening.set()
                delay = 0.05
                # Whatever was sent while nobody listened is lost: let every waiter look again.
                self.wake_all()
                while not conn.is_closed():
                    try:
                        await asyncio.wait_for(lost.wait(), _KEEPALIVE_SECONDS)
                    except TimeoutError:
                        await conn.execute("SELECT 1", timeout=_KEEPALIVE_SECONDS)
                    else:
                        break
                logger.warning("sheppy-postgres: LISTEN connection lost; reconnecting")
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the server is down or restarting: retry with backoff
                logger.debug("sheppy-postgres: LISTEN connection failed: %s", exc)
            finally:
                self._listening.clear()
                if conn is not None and not conn.is_closed():
                    conn.terminate()
            self.wake_all()
            await asyncio.sleep(delay)
            delay = min(delay * 2, _MAX_BACKOFF)
