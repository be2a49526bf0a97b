"""Unstable API (later sheppy's ``sheppy.experimental``): workflows and ``SyncQueue``.

``workflow``, ``Workflow`` and ``WorkflowResult`` are the same objects as the top-level ones (sheppy
0.0.7 exported them there). See docs/workflows.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

from sheppy_core._queue import Queue
from sheppy_core._sync import BlockingQueueMethods
from sheppy_core._workflow import DEFAULT_WATCH_INTERVAL, Workflow, WorkflowResult, workflow

__all__ = ["SyncQueue", "Workflow", "WorkflowResult", "workflow"]

T = TypeVar("T")


class SyncQueue(BlockingQueueMethods):
    """A thread-safe, blocking ``Queue`` for code without asyncio.

    A private event loop runs in a daemon thread; each method submits the matching ``Queue`` coroutine
    to it and blocks the calling thread until it is done, so one ``SyncQueue`` can be shared by many
    threads (the queue and its backend only ever run on that loop). Long waits (``wait_for`` without
    a timeout) block the caller, not the loop. The backend is given as a URL only (or resolved from
    ``SHEPPY_BACKEND_URL``), as in sheppy. Call :meth:`close` when done (also a context manager).
    """

    def __init__(self, backend: str | None = None, name: str | None = None) -> None:
        if backend is not None and not isinstance(backend, str):
            raise TypeError("SyncQueue takes a backend URL string (or None for SHEPPY_BACKEND_URL)")
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="sheppy-syncqueue", daemon=True)
        self._closed = False
        self._thread.start()
        try:
            self._queue: Queue = self._run(self._create(backend, name))
        except BaseException:
            self.close()
            raise
        self.name = self._queue.name

    @staticmethod
    async def _create(backend: str | None, name: str | None) -> Queue:
        # Built on the loop's thread so anything loop-bound the backend creates belongs to that loop.
        return Queue(backend, name)

    def _run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        if self._closed:
            coroutine.close()
            raise RuntimeError("this SyncQueue is closed")
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result()

    def close(self) -> None:
        """Disconnect the backend, stop the loop and join its thread. Safe to call twice."""
        if self._closed:
            return
        queue: Queue | None = getattr(self, "_queue", None)
        if queue is not None and queue.backend.is_connected:
            # Closing must not fail because the server went away.
            with contextlib.suppress(Exception):
                asyncio.run_coroutine_threadsafe(queue.backend.disconnect(), self._loop).result(timeout=5)
        self._closed = True
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)
        if not self._thread.is_alive():
            self._loop.close()

    def __enter__(self) -> SyncQueue:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Sync{self._queue!r}"

    # -- workflows -------------------------------------------------------------------------------

    def add_workflow(
        self, workflow: Workflow, *, watch_interval: float | None = DEFAULT_WATCH_INTERVAL
    ) -> WorkflowResult:
        return self._run(self._queue.add_workflow(workflow, watch_interval=watch_interval))
