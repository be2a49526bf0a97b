"""``TestQueue``: a synchronous, in-memory queue that runs tasks in-process, for users' unit tests."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from sheppy_core._processing import TaskProcessor
from sheppy_core._store import QueueStore
from sheppy_core._sync import BlockingQueueMethods
from sheppy_core._workflow import Workflow, WorkflowRef, WorkflowResult, is_engine_task, workflow_id_of
from sheppy_core.backend._memory import MemoryBackend
from sheppy_core.models import Task

__all__ = ["TestQueue"]

T = TypeVar("T")


class TestQueue(BlockingQueueMethods):
    """Blocking twin of ``Queue`` over a private ``MemoryBackend``, plus ``process_*`` methods.

    Retries are re-queued at once (delays ignored); worker middleware is not applied, per-task
    middleware is; rate limits apply. Every method runs its own event loop, so call it from plain
    (non-async) test code.

    ``processed_tasks`` holds every attempt run (failed ones and those that will retry included), in
    order; ``failed_tasks`` the attempts among them that raised.

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
        self._store = QueueStore(self.backend, name)
        self._queue = self._store.as_queue()
        self._processor = TaskProcessor(
            dependency_overrides=dict(dependency_overrides or {}), ignore_delays=True
        )
        self.processed_tasks: list[Task[Any]] = []
        self.failed_tasks: list[Task[Any]] = []
        self.experimental = _TestExperimental(self)

    @staticmethod
    def _run(coroutine: Coroutine[Any, Any, T]) -> T:
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return asyncio.run(coroutine)
        coroutine.close()  # never started: no "coroutine was never awaited" warning on top
        raise RuntimeError(
            "asyncio.run() cannot be called from a running event loop: TestQueue methods block, so "
            "call them from plain (non-async) test code, or use Queue in async code"
        )

    # -- processing ------------------------------------------------------------------------------
    #
    # As sheppy's TestQueue: process_next/process_all take queued tasks only (scheduled ones wait for
    # process_scheduled); each attempt is recorded in processed_tasks (and, if it raised, in
    # failed_tasks); a retry is queued again at once; a task deferred by its rate limit was not run,
    # so process_next returns None for it (which also ends process_all).

    async def _run_claimed(self, record: dict[str, Any]) -> Task[Any] | None:
        """Run one claimed record; returns its stored record, or None if it was not run (deferred by
        its rate limit)."""
        outcome = await self._processor.process(self._store, record)
        if is_engine_task(outcome):
            return outcome  # the workflow engine's own bookkeeping, not a user's task
        if outcome.status == "scheduled":
            return None
        # The stored record, read back as a reader sees it (results coerced to their annotated type).
        stored = await self._queue.get_task(outcome.id) or outcome
        self.processed_tasks.append(stored)
        if stored.exception is not None:
            self.failed_tasks.append(stored)
        if outcome.status == "retrying":
            self.backend._requeue_now(self.name, str(outcome.id))
        return stored

    async def _process_next(self) -> Task[Any] | None:
        claimed = await self._store.claim(1)
        if not claimed:
            return None
        return await self._run_claimed(claimed[0])

    async def _process_one(self) -> Task[Any] | None:
        """One step of ``process_workflow``: scheduled tasks that are due count too."""
        await self._store.release_due(datetime.now(UTC))
        return await self._process_next()

    def process_next(self) -> Task[Any] | None:
        """Claim and run one queued task (one attempt); returns its stored record, or None when the
        queue is empty or the task was deferred by its rate limit."""
        return self._run(self._process_next())

    def process_all(self) -> list[Task[Any]]:
        """Run queued tasks until the queue is empty, including chained tasks and retries."""

        async def drain() -> list[Task[Any]]:
            done: list[Task[Any]] = []
            while (outcome := await self._process_next()) is not None:
                done.append(outcome)
            return done

        return self._run(drain())

    def process_scheduled(self, at: datetime | timedelta | None = None) -> list[Task[Any]]:
        """Run the scheduled tasks due by ``at`` (datetime, timedelta from now, or now), once each, in
        due order. What they queue (retries, chained tasks) waits for ``process_next``/``process_all``."""
        moment = datetime.now(UTC) + at if isinstance(at, timedelta) else at or datetime.now(UTC)
        if moment.tzinfo is None:
            raise TypeError("provided datetime must be offset-aware")

        async def run_due() -> list[Task[Any]]:
            due = await self._store.release_due(moment)
            done: list[Task[Any]] = []
            for record in due:
                claimed = self.backend._claim_queued(self.name, [str(record["id"])], self.backend.client_id)
                if claimed and (outcome := await self._run_claimed(claimed[0])) is not None:
                    done.append(outcome)
            return done

        return self._run(run_due())

    # -- workflows (sheppy 0.0.7 spelling; also under ``.experimental``) ---------------------------

    def add_workflow(self, workflow: Workflow) -> WorkflowResult:
        """Store a workflow and queue its first steps (run them with ``process_all``/``process_workflow``)."""
        return self._run(self._queue.add_workflow(workflow))

    def process_workflow(self, workflow: WorkflowRef) -> WorkflowResult:
        """Drive a workflow to its end in this thread: add it if it is new, then run queued tasks until
        it has completed or failed; returns ``WorkflowResult(final record, [])``, as sheppy (check
        ``result.workflow.completed`` and ``result.workflow.exception``).

        Raises ``ValueError`` for an unknown id, and ``RuntimeError`` if the workflow still waits when
        nothing is left to run (e.g. a step scheduled in the future).
        """

        async def drive() -> WorkflowResult:
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
            return WorkflowResult(current, [])

        return self._run(drive())

    def _resume_workflow(self, workflow: WorkflowRef) -> WorkflowResult:
        """Bring a workflow up to date with its finished steps (sheppy's private name; processing a
        step does this already). Raises ``ValueError`` for an unknown workflow."""
        return self._run(self._queue.resume_workflow(workflow))


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
        self._resume_workflow = queue._resume_workflow
