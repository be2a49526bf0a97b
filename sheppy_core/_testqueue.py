"""``TestQueue``: a synchronous, in-memory queue that runs tasks in-process, for users' unit tests."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from sheppy_core._processing import TaskProcessor
from sheppy_core._queue import Queue
from sheppy_core._sync import BlockingQueueMethods
from sheppy_core._workflow import Workflow, WorkflowRef, WorkflowResult, workflow_id_of
from sheppy_core.backend._memory import MemoryBackend
from sheppy_core.models import Task

__all__ = ["TestQueue"]

T = TypeVar("T")


class TestQueue(BlockingQueueMethods):
    """Blocking twin of ``Queue`` over a private ``MemoryBackend``, plus ``process_*`` methods.

    Retries are re-queued at once (delays ignored); worker middleware is not applied, per-task
    middleware is; rate limits apply. Every method runs its own event loop, so call it from plain
    (non-async) test code.

    Nothing runs in the background: ``wait_for``/``wait_for_workflow`` with ``timeout=0`` on unfinished
    work would wait for ever; drive it with ``process_all``/``process_workflow``.
    """

    __test__ = False  # not a pytest test class

    def __init__(
        self,
        name: str = "test-queue",
        dependency_overrides: Mapping[Callable[..., Any], Callable[..., Any]] | None = None,
    ) -> None:
        self.backend = MemoryBackend(instant_processing=False)
        self.name = name
        self._queue = Queue(self.backend, name)
        self._processor = TaskProcessor(
            dependency_overrides=dict(dependency_overrides or {}), ignore_delays=True
        )
        self.processed_tasks: list[Task[Any]] = []
        self.failed_tasks: list[Task[Any]] = []
        self.experimental = _TestExperimental(self)

    @staticmethod
    def _run(coroutine: Coroutine[Any, Any, T]) -> T:
        return asyncio.run(coroutine)

    # -- processing ------------------------------------------------------------------------------

    async def _process_one(self) -> Task[Any] | None:
        await self._queue._enqueue_scheduled(datetime.now(UTC))
        claimed = await self.backend.pop(self.name, 1)
        if not claimed:
            return None
        outcome = await self._processor.process(self._queue, claimed[0])
        if outcome.status in ("failed", "retrying", "crashed"):
            self.failed_tasks.append(outcome)
        else:
            self.processed_tasks.append(outcome)
        return outcome

    def process_next(self) -> Task[Any] | None:
        """Claim and run one task; returns its stored record (None when the queue is empty)."""
        return self._run(self._process_one())

    def process_all(self) -> list[Task[Any]]:
        """Run until the queue is empty, including chained tasks and retries."""

        async def drain() -> list[Task[Any]]:
            done: list[Task[Any]] = []
            while (outcome := await self._process_one()) is not None:
                done.append(outcome)
            return done

        return self._run(drain())

    def process_scheduled(self, at: datetime | timedelta | None = None) -> list[Task[Any]]:
        """Run the scheduled tasks due by ``at`` (datetime, timedelta from now, or now)."""
        moment = datetime.now(UTC) + at if isinstance(at, timedelta) else at or datetime.now(UTC)
        if moment.tzinfo is None:
            raise TypeError("'at' must be timezone-aware")

        async def run_due() -> list[Task[Any]]:
            await self._queue._enqueue_scheduled(moment)
            done: list[Task[Any]] = []
            while (outcome := await self._process_one()) is not None:
                done.append(outcome)
            return done

        return self._run(run_due())

    # -- workflows (sheppy 0.0.7 spelling; also under ``.experimental``) ---------------------------

    def add_workflow(self, workflow: Workflow) -> WorkflowResult:
        """Store a workflow and queue its first steps (run them with ``process_all``/``process_workflow``)."""
        return self._run(self._queue.add_workflow(workflow))

    def process_workflow(self, workflow: WorkflowRef) -> Workflow:
        """Drive a workflow to its end in this thread: add it if it is new, then run queued tasks until
        it has completed or failed; returns its final record.

        Raises ``ValueError`` for an unknown id, and ``RuntimeError`` if the workflow still waits when
        nothing is left to run (e.g. a step scheduled in the future).
        """

        async def drive() -> Workflow:
            workflow_id = workflow_id_of(workflow)
            current = await self._queue.get_workflow(workflow_id)
            if current is None:
                if not isinstance(workflow, Workflow):
                    raise ValueError(f"workflow not found: {workflow_id}")
                current = (await self._queue.add_workflow(workflow)).workflow
            while not current.is_finished:
                if await self._process_one() is None:
                    raise RuntimeError(
                        f"workflow {workflow_id} waits for {current.pending_task_ids} but no task is queued"
                    )
                found = await self._queue.get_workflow(workflow_id)
                if found is None:
                    raise ValueError(f"workflow {workflow_id} was deleted while running")
                current = found
            return current

        return self._run(drive())


class _TestExperimental:
    """``TestQueue.experimental``: the later-sheppy spelling of cancel, delete and the workflow methods."""

    def __init__(self, queue: TestQueue) -> None:
        self.cancel = queue.cancel
        self.delete = queue.delete
        self.add_workflow = queue.add_workflow
        self.get_workflow = queue.get_workflow
        self.get_all_workflows = queue.get_all_workflows
        self.get_pending_workflows = queue.get_pending_workflows
        self.delete_workflow = queue.delete_workflow
        self.wait_for_workflow = queue.wait_for_workflow
        self.process_workflow = queue.process_workflow
