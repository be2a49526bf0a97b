"""One pub/sub connection per backend object that wakes ``get_results`` and ``wait_for_change`` waiters.

``store_result``/``cancel`` publish the finished task's id on the queue's ``done`` channel from inside
their script; ``append``, ``schedule`` and a ``store_result`` that requeues publish an empty payload
there once per call (for ``wait_for_change``; ``get_results`` waiters ignore it). A waiter registers
the ids it waits for, the listener subscribes the channel (once per channel, however many waiters) and
waits for the server's confirmation; only then does the waiter read the records, so a task finishing in
between cannot be missed. Afterwards the waiter sleeps on an ``asyncio.Event`` until a message names
one of its ids (any message, for ``wait_for_change``): no polling.

Messages published while the pub/sub connection is down are lost, so every (re)subscription
confirmation — redis-py resubscribes on reconnect — and every connection failure wakes all waiters of
the channel, and they read the records again.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

from sheppy_core.exceptions import BackendConnectionError

__all__ = ["ResultListener", "Waiter"]

_RECONNECT_DELAYS = (0.05, 0.1, 0.2, 0.5, 1.0, 2.0)


@dataclass(eq=False)
class Waiter:
    """Ids one ``get_results`` call still waits for, and the event that says "look again". A waiter of
    ``wait_for_change`` has ``every`` set: any message of the channel wakes it, the empty payload that
    ``append``/``schedule``/a requeue publish (no task id is empty) as well as a finished task's id."""

    ids: set[str]
    event: asyncio.Event = field(default_factory=asyncio.Event)
    every: bool = False


class ResultListener:
    """Subscriptions shared by every waiter of one backend object (one event loop)."""

    def __init__(self, make_pubsub: Callable[[], Any]) -> None:
        self._make_pubsub = make_pubsub
        self._pubsub: Any = None
        self._reader: asyncio.Task[None] | None = None
        self._waiters: dict[str, set[Waiter]] = {}
        self._confirmed: dict[str, asyncio.Future[None]] = {}
        self._lock = asyncio.Lock()

    @contextlib.asynccontextmanager
    async def watch(
        self, channel: str, ids: set[str], *, event: asyncio.Event | None = None, every: bool = False
    ) -> AsyncIterator[Waiter]:
        """Register a waiter for ``ids`` on ``channel`` (``every``: for any message); returns once the
        subscription is confirmed. ``event``: the waiter's event (one call watching several channels
        shares one)."""
        waiter = Waiter(set(ids), event if event is not None else asyncio.Event(), every)
        async with self._lock:
            waiters = self._waiters.setdefault(channel, set())
            waiters.add(waiter)
            if len(waiters) == 1:
                try:
                    await self._subscribe(channel)
                except BaseException:
                    self._drop(channel, waiter)
                    raise
            confirmed = self._confirmed.get(channel)
        try:
            if confirmed is not None:
                await asyncio.shield(confirmed)
            yield waiter
        finally:
            async with self._lock:
                if self._drop(channel, waiter) and self._pubsub is not None:
                    with contextlib.suppress(Exception):
                        await self._pubsub.unsubscribe(channel)

    def _drop(self, channel: str, waiter: Waiter) -> bool:
        """Forget a waiter; True when it was the channel's last one."""
        waiters = self._waiters.get(channel)
        if waiters is None:
            return False
        waiters.discard(waiter)
        if waiters:
            return False
        del self._waiters[channel]
        future = self._confirmed.pop(channel, None)
        if future is not None and not future.done():
            future.cancel()
        return True

    async def _subscribe(self, channel: str) -> None:
        loop = asyncio.get_running_loop()
        confirmed: asyncio.Future[None] = loop.create_future()
        # Its exception is read by the waiters; mark it read for the case that none is left.
        confirmed.add_done_callback(lambda f: f.cancelled() or f.exception())
        self._confirmed[channel] = confirmed
        if self._pubsub is None:
            self._pubsub = self._make_pubsub()
        await self._pubsub.subscribe(channel)
        if self._reader is None or self._reader.done():
            self._reader = loop.create_task(self._read(), name="sheppy-redis result listener")

    def _wake(self, channel: str | None, task_id: str | None = None) -> None:
        channels = [channel] if channel is not None else list(self._waiters)
        for name in channels:
            for waiter in self._waiters.get(name, ()):
                if task_id is None or waiter.every or task_id in waiter.ids:
                    waiter.event.set()

    async def _read(self) -> None:
        failures = 0
        while self._waiters or self._confirmed:
            try:
                message = await self._pubsub.get_message(timeout=None)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                # Connection lost (redis-py gave up reconnecting): let every waiter look for itself,
                # and try again after a pause; redis-py resubscribes our channels on reconnect.
                for future in self._confirmed.values():
                    if not future.done():
                        future.set_exception(exc)
                self._wake(None)
                await asyncio.sleep(_RECONNECT_DELAYS[min(failures, len(_RECONNECT_DELAYS) - 1)])
                failures += 1
                with contextlib.suppress(Exception):
                    await self._pubsub.connect()
                continue
            failures = 0
            if not message:
                continue
            kind = message.get("type")
            channel = _text(message.get("channel"))
            if kind == "message":
                self._wake(channel, _text(message.get("data")))
            elif kind == "subscribe":
                confirmed = self._confirmed.get(channel)
                if confirmed is not None and not confirmed.done():
                    confirmed.set_result(None)
                # A resubscription after a reconnect: messages may have been lost meanwhile.
                self._wake(channel)
        self._reader = None

    async def close(self) -> None:
        """Stop the reader and release the pub/sub connection; waiters are woken to notice."""
        reader, self._reader = self._reader, None
        if reader is not None:
            reader.cancel()
            with contextlib.suppress(BaseException):
                await reader
        pubsub, self._pubsub = self._pubsub, None
        if pubsub is not None:
            with contextlib.suppress(Exception):
                await pubsub.aclose()
        for future in self._confirmed.values():
            if not future.done():
                future.set_exception(BackendConnectionError("the backend was disconnected"))
        self._confirmed.clear()
        self._wake(None)


def _text(value: Any) -> str:
    return value.decode("utf-8", "surrogateescape") if isinstance(value, bytes) else str(value)
