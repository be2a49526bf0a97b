"""Unstable API (later sheppy's ``sheppy.experimental``): workflows and ``SyncQueue``.

``workflow``, ``Workflow`` and ``WorkflowResult`` are the same objects as the top-level ones (sheppy
0.0.7 exported them there). See docs/workflows.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import uuid
from collections.abc import Coroutine, Sequence
from datetime import datetime, timedelta
from typing import Any, TypeVar, overload

from sheppy_core._queue import Queue, TaskRef
from sheppy_core._workflow import DEFAULT_WATCH_INTERVAL, Workflow, WorkflowRef, WorkflowResult, workflow
from sheppy_core.models import Task, TaskCron

__all__ = ["SyncQueue", "Workflow", "WorkflowResult", "workflow"]

T = TypeVar("T")


class SyncQueue:
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

    # -- tasks -----------------------------------------------------------------------------------

    @overload
    def add(self, task: Task[Any]) -> bool: ...
    @overload
    def add(self, task: Sequence[Task[Any]]) -> list[bool]: ...

    def add(self, task: Task[Any] | Sequence[Task[Any]]) -> bool | list[bool]:
        if isinstance(task, Task):
            return self._run(self._queue.add(task))
        return self._run(self._queue.add(list(task)))

    @overload
    def get_task(self, task: TaskRef) -> Task[Any] | None: ...  # type: ignore[overload-overlap]
    @overload
    def get_task(self, task: Sequence[TaskRef]) -> dict[uuid.UUID, Task[Any]]: ...

    def get_task(self, task: TaskRef | Sequence[TaskRef]) -> Task[Any] | dict[uuid.UUID, Task[Any]] | None:
        return self._run(self._queue.get_task(task))

    def get_all_tasks(self) -> list[Task[Any]]:
        return self._run(self._queue.get_all_tasks())

    def get_pending(self, count: int = 1) -> list[Task[Any]]:
        return self._run(self._queue.get_pending(count))

    def schedule(self, task: Task[Any], at: datetime | timedelta) -> bool:
        return self._run(self._queue.schedule(task, at))

    def get_scheduled(self) -> list[Task[Any]]:
        return self._run(self._queue.get_scheduled())

    @overload
    def wait_for(self, task: TaskRef, timeout: float = 0) -> Task[Any] | None: ...  # type: ignore[overload-overlap]
    @overload
    def wait_for(self, task: Sequence[TaskRef], timeout: float = 0) -> dict[uuid.UUID, Task[Any]]: ...

    def wait_for(
        self, task: TaskRef | Sequence[TaskRef], timeout: float = 0
    ) -> Task[Any] | dict[uuid.UUID, Task[Any]] | None:
        return self._run(self._queue.wait_for(task, timeout))

    def retry(self, task: TaskRef, at: datetime | timedelta | None = None, force: bool = False) -> bool:
        return self._run(self._queue.retry(task, at, force))

    def cancel(self, task: TaskRef) -> Task[Any]:
        return self._run(self._queue.cancel(task))

    def delete(self, task: TaskRef) -> bool:
        return self._run(self._queue.delete(task))

    def size(self) -> int:
        return self._run(self._queue.size())

    def clear(self) -> int:
        return self._run(self._queue.clear())

    def add_cron(self, task: Task[Any], expression: str) -> bool:
        return self._run(self._queue.add_cron(task, expression))

    def delete_cron(self, task: Task[Any], expression: str) -> bool:
        return self._run(self._queue.delete_cron(task, expression))

    def get_crons(self) -> list[TaskCron]:
        return self._run(self._queue.get_crons())

    # -- workflows -------------------------------------------------------------------------------

    def add_workflow(
        self, workflow: Workflow, *, watch_interval: float | None = DEFAULT_WATCH_INTERVAL
    ) -> WorkflowResult:
        return self._run(self._queue.add_workflow(workflow, watch_interval=watch_interval))

    @overload
    def get_workflow(self, workflow: WorkflowRef) -> Workflow | None: ...  # type: ignore[overload-overlap]
    @overload
    def get_workflow(self, workflow: Sequence[WorkflowRef]) -> dict[uuid.UUID, Workflow]: ...

    def get_workflow(
        self, workflow: WorkflowRef | Sequence[WorkflowRef]
    ) -> Workflow | dict[uuid.UUID, Workflow] | None:
        return self._run(self._queue.get_workflow(workflow))

    def get_all_workflows(self) -> list[Workflow]:
        return self._run(self._queue.get_all_workflows())

    def get_pending_workflows(self) -> list[Workflow]:
        return self._run(self._queue.get_pending_workflows())

    def delete_workflow(self, workflow: WorkflowRef) -> bool:
        return self._run(self._queue.delete_workflow(workflow))

    @overload
    def wait_for_workflow(  # type: ignore[overload-overlap]
        self, workflow: WorkflowRef, timeout: float = 0
    ) -> Workflow | None: ...
    @overload
    def wait_for_workflow(
        self, workflow: Sequence[WorkflowRef], timeout: float = 0
    ) -> dict[uuid.UUID, Workflow]: ...

    def wait_for_workflow(
        self, workflow: WorkflowRef | Sequence[WorkflowRef], timeout: float = 0
    ) -> Workflow | dict[uuid.UUID, Workflow] | None:
        return self._run(self._queue.wait_for_workflow(workflow, timeout))
