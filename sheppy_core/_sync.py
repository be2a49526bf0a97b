"""Blocking twins of ``Queue``'s methods, written once for every synchronous facade.

``TestQueue`` (a fresh event loop per call, for unit tests) and ``SyncQueue`` (a loop in a daemon
thread, for code without asyncio) differ only in how they run a coroutine: each supplies ``_run`` and
a ``_queue``, and inherits the methods from here so the two cannot drift apart.
"""

from __future__ import annotations

import uuid
from collections.abc import Coroutine, Sequence
from datetime import datetime, timedelta
from typing import Any, TypeVar, overload

from sheppy_core._queue import Queue, TaskRef
from sheppy_core._workflow import Workflow, WorkflowRef
from sheppy_core.models import Task, TaskCron

__all__ = ["BlockingQueueMethods"]

T = TypeVar("T")


class BlockingQueueMethods:
    """The ``Queue`` API as blocking calls, over ``self._queue`` and ``self._run``."""

    _queue: Queue

    def _run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        raise NotImplementedError

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
