"""``Queue``: the user-facing handle on one named queue of one backend."""

from __future__ import annotations

import asyncio
import contextvars
import logging
import uuid
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, Final, overload

from sheppy_core import _workflow
from sheppy_core._config import resolve_backend_url, resolve_queue
from sheppy_core._runner import released
from sheppy_core._store import QueueStore, checked_queue_name
from sheppy_core._workflow import (
    DEFAULT_WATCH_INTERVAL,
    Workflow,
    WorkflowRef,
    WorkflowResult,
    workflow_id_of,
)
from sheppy_core.backend import UNFINISHED_DELETE, Backend, is_quarantined, redact_url
from sheppy_core.backend._memory import MemoryBackend
from sheppy_core.exceptions import TaskCancellationError, TaskStateError
from sheppy_core.models import Task, TaskCron

__all__ = ["FORCE_HINT", "MAX_DELAY", "NotATaskError", "Queue"]

logger = logging.getLogger("sheppy.queue")

TaskRef = Task[Any] | uuid.UUID | str
_WAITING = frozenset({"new", "pending", "scheduled", "processing", "retrying"})

# Set while a queue runs tasks inline: a task that adds to an inline queue leaves the new tasks to
# the loop already running (one loop at the top, never a nested one per add).
_INLINE_LOOP: contextvars.ContextVar[bool] = contextvars.ContextVar("sheppy_inline_loop", default=False)


class NotATaskError(TypeError, AttributeError):
    """``Queue.add``/``schedule`` was given something that is not a ``Task`` (nothing was stored).

    Both a ``TypeError`` and an ``AttributeError``: sheppy raises the latter, so code catching either
    keeps working."""


def _lookup_id(ref: object) -> str | None:
    """The canonical id ``ref`` names, or None when it cannot name a task (None, a malformed id
    string, any other object): such a reference is simply unknown, as in sheppy, never an error."""
    if isinstance(ref, Task):
        return str(ref.id)
    if isinstance(ref, uuid.UUID):
        return str(ref)
    if isinstance(ref, str):
        try:
            return str(uuid.UUID(ref))
        except ValueError:
            return None
    return None


def _task_id(ref: TaskRef) -> str:
    task_id = _lookup_id(ref)
    if task_id is None:
        raise ValueError(f"not a task id: {ref!r} (expected a Task, UUID or UUID string)")
    return task_id


def _lookup_refs(task: object) -> tuple[bool, list[str], bool]:
    """``(single, ids, unnamed)`` for ``get_task``/``wait_for``: a list, tuple or set is a batch,
    anything else one reference. Duplicate ids collapse; ``unnamed`` says a reference could not name a
    task (None, a malformed id), which is left out of ``ids``."""
    single = not isinstance(task, (list, tuple, set, frozenset))
    refs: list[object] = [task] if single else list(task)  # type: ignore[call-overload]
    lookup = list(dict.fromkeys(_lookup_id(ref) for ref in refs))
    ids = [task_id for task_id in lookup if task_id is not None]
    return single, ids, len(ids) < len(lookup)


def _one_or_all(
    single: bool, ids: list[str], found: dict[uuid.UUID, Task[Any]]
) -> Task[Any] | dict[uuid.UUID, Task[Any]] | None:
    if single:
        return found.get(uuid.UUID(ids[0])) if ids else None
    return found


FORCE_HINT: Final = "pass force=True to run it again"
"""The end of ``retry``'s refusal of a completed task; front ends that spell the option otherwise
(``sheppy task retry --force``) replace it."""

MAX_DELAY: Final = timedelta(days=365_000)
"""The longest delay the command line (``--delay``) and the web router (``delay_seconds``) accept:
about a thousand years, well inside what datetimes and every backend can hold."""


def _as_datetime(at: datetime | timedelta) -> datetime:
    if isinstance(at, timedelta):
        try:
            return datetime.now(UTC) + at
        except OverflowError:
            raise ValueError(f"'at' is {at} from now: too far in the future (times end in 9999)") from None
    if isinstance(at, datetime):
        if at.tzinfo is None:
            raise TypeError(
                "provided datetime must be offset-aware: 'at' must be timezone-aware "
                "(e.g. datetime.now(timezone.utc)), not naive"
            )
        return at
    raise TypeError(f"'at' must be a datetime or timedelta, got {type(at).__name__}")


class Queue:
    """A named queue on a backend.

    :param backend: a ``Backend`` object or a URL (``sqlite:///jobs.db``, ``redis://...``,
        ``memory://``); None resolves ``SHEPPY_BACKEND_URL``, then ``[tool.sheppy] backend``, then
        ``sqlite:///sheppy.db``.
    :param name: the queue name; None resolves ``SHEPPY_QUEUE``, then ``"default"``.
    :param run_inline: run what ``add``/``schedule``/``retry`` queue at once, inside the call (retry
        delays ignored), as sheppy's ``memory://`` does. None: as the backend was made
        (``MemoryBackend(instant_processing=...)``; never for other backends).
    :param dependency_overrides: ``{dependency: replacement}`` for inline runs, as
        ``Worker(dependency_overrides=...)``. None: the ``MemoryBackend``'s own.

    The backend is connected lazily, on the first awaited call.
    """

    def __init__(
        self,
        backend: Backend | str | None = None,
        name: str | None = None,
        *,
        run_inline: bool | None = None,
        dependency_overrides: Mapping[Callable[..., Any], Callable[..., Any]] | None = None,
    ) -> None:
        if name is not None:
            checked_queue_name(name)  # "" is refused, not taken for the default
        if backend is None or isinstance(backend, str):
            from sheppy_core._plugins import backend_from_url

            # A URL given is used as given ("" is an invalid URL, not "use the default").
            backend = backend_from_url(backend if isinstance(backend, str) else resolve_backend_url())
        if not isinstance(backend, Backend):
            raise TypeError(f"backend must be a Backend or a URL string, got {type(backend).__name__}")
        self.backend: Backend = backend
        self.name: str = checked_queue_name(resolve_queue(name))
        self._store = QueueStore(backend, self.name)
        self._run_inline = run_inline
        self._dependency_overrides = None if dependency_overrides is None else dict(dependency_overrides)
        self.experimental = _Experimental(self)

    @classmethod
    def _on_store(cls, store: QueueStore) -> Queue:
        """The handle on an existing store (``QueueStore.as_queue``): it shares the connection."""
        queue = cls(store.backend, store.name, run_inline=False)
        queue._store = store
        return queue

    def __repr__(self) -> str:
        url = getattr(self.backend, "url", None)
        where = redact_url(url) if isinstance(url, str) else repr(self.backend)
        return f"Queue(name={self.name!r}, backend={where})"

    @property
    def store(self) -> QueueStore:
        """The storage layer under this queue (what ``TaskProcessor`` and the engine work through)."""
        return self._store

    async def _ensure(self) -> Backend:
        return await self._store.connected()

    @property
    def _inline(self) -> bool:
        if self._run_inline is not None:
            return self._run_inline
        # Read at each call: sheppy's tests switch a MemoryBackend's instant processing on and off.
        return isinstance(self.backend, MemoryBackend) and self.backend.instant_processing

    # -- enqueue ---------------------------------------------------------------------------------

    @overload
    async def add(self, task: Task[Any], *, connection: Any = None) -> bool: ...
    @overload
    async def add(self, task: Sequence[Task[Any]], *, connection: Any = None) -> list[bool]: ...

    async def add(
        self, task: Task[Any] | Sequence[Task[Any]], *, connection: Any = None
    ) -> bool | list[bool]:
        """Queue one task or many; False for a task whose id the queue already has.

        ``connection=`` enqueues inside the caller's open transaction on backends declaring
        ``transactional_enqueue`` (e.g. an asyncpg connection for sheppy-postgres).
        """
        # Every item is checked before anything is stored: a bad item adds nothing of the list.
        if isinstance(task, Task):
            tasks = [task]
        elif isinstance(task, (list, tuple)):
            tasks = list(task)
        else:
            raise NotATaskError(
                f"add() takes a Task or a list of Tasks (call your @task function), got {type(task).__name__}"
            )
        for item in tasks:
            if not isinstance(item, Task):
                raise NotATaskError(
                    f"add() takes Task objects (call your @task function), got {type(item).__name__}"
                )
        results = await self._store.add(tasks, connection=connection)
        if any(results):
            await self._process_inline()
        return results[0] if isinstance(task, Task) else results

    async def schedule(self, task: Task[Any], at: datetime | timedelta, *, connection: Any = None) -> bool:
        """Store ``task`` to be queued at ``at`` (aware datetime, or timedelta from now); False for a
        duplicate id. The passed ``task`` itself is marked ``scheduled`` with ``scheduled_at``, as in
        sheppy, so it compares equal to what ``get_scheduled()`` returns."""
        if not isinstance(task, Task):
            raise NotATaskError(
                f"schedule() takes a Task (call your @task function), got {type(task).__name__}"
            )
        when = _as_datetime(at)
        task.__dict__.update(status="scheduled", scheduled_at=when)  # frozen model, updated in place
        stored = await self._store.schedule(task, when, connection=connection)
        if stored:
            await self._process_inline(now=when)
        return stored

    async def _process_inline(self, now: datetime | None = None) -> None:
        """With ``run_inline``: run what is queued inside the caller, retries and chained tasks and
        workflow steps included (delays ignored), as sheppy's instant processing does: one loop until
        the queue is empty. Called inside a task that this loop runs, it leaves the work to the loop.
        Without: nothing (a worker runs the tasks)."""
        if not self._inline or _INLINE_LOOP.get():
            return
        from sheppy_core._processing import TaskProcessor

        overrides = self._dependency_overrides
        if overrides is None and isinstance(self.backend, MemoryBackend):
            overrides = self.backend.dependency_overrides
        processor = TaskProcessor(dependency_overrides=overrides or {}, ignore_delays=True)
        token = _INLINE_LOOP.set(True)
        try:
            while True:
                await self._store.release_due(max(now or datetime.now(UTC), datetime.now(UTC)))
                claimed = await self._store.claim(10)
                if not claimed:
                    return
                for record in claimed:
                    await processor.process(self._store, record)
        finally:
            _INLINE_LOOP.reset(token)

    # -- read ------------------------------------------------------------------------------------

    @overload
    async def get_task(self, task: TaskRef) -> Task[Any] | None: ...  # type: ignore[overload-overlap]
    @overload
    async def get_task(self, task: Sequence[TaskRef]) -> dict[uuid.UUID, Task[Any]]: ...

    async def get_task(
        self, task: TaskRef | Sequence[TaskRef]
    ) -> Task[Any] | dict[uuid.UUID, Task[Any]] | None:
        """One task (None if unknown), or ``{id: Task}`` for a list (unknown ids omitted). A reference
        that cannot name a task (None, a malformed id) is unknown, never an error."""
        single, ids, _ = _lookup_refs(task)
        found = await self._store.tasks(ids)
        return _one_or_all(single, ids, found)

    async def get_all_tasks(self) -> list[Task[Any]]:
        return await self._store.all_tasks()

    async def get_pending(self, count: int = 1) -> list[Task[Any]]:
        """Peek at the head of the queue without claiming."""
        if count < 1:
            raise ValueError(f"Value must be larger than zero: count must be >= 1, got {count}")
        return await self._store.pending(count)

    async def get_scheduled(self) -> list[Task[Any]]:
        return await self._store.scheduled()

    async def size(self) -> int:
        """Tasks waiting to be claimed."""
        return await self._store.size()

    async def stats(self) -> dict[str, int]:
        """Counts by state: pending, processing, scheduled, completed, failed, cancelled, crashed,
        quarantined."""
        return await self._store.stats()

    async def list_queues(self) -> dict[str, int]:
        return await self._store.list_queues()

    async def clear(self) -> int:
        """Delete everything of this queue; returns task records plus crons removed."""
        return await self._store.clear()

    # -- wait ------------------------------------------------------------------------------------

    @overload
    async def wait_for(  # type: ignore[overload-overlap]
        self, task: TaskRef, timeout: float = 0
    ) -> Task[Any] | None: ...
    @overload
    async def wait_for(self, task: Sequence[TaskRef], timeout: float = 0) -> dict[uuid.UUID, Task[Any]]: ...

    async def wait_for(
        self, task: TaskRef | Sequence[TaskRef], timeout: float = 0
    ) -> Task[Any] | dict[uuid.UUID, Task[Any]] | None:
        """Wait until finished. ``timeout=0`` waits for ever; ``> 0`` raises ``TimeoutError`` unless
        everything finished in time; ``< 0`` returns at once with what is finished. A reference that
        cannot name a task (None, a malformed id) is waited for like an id nobody added: it never
        finishes."""
        single, ids, unnamed = _lookup_refs(task)
        found = await self._store.finished(ids, timeout=timeout)
        if unnamed and timeout is not None and timeout >= 0:
            if timeout > 0:
                raise TimeoutError(f"task(s) of queue {self.name!r} did not finish within {timeout} s")
            await asyncio.Event().wait()  # timeout=0 waits for ever, as for any id that never finishes
        return _one_or_all(single, ids, found)

    # -- manage ----------------------------------------------------------------------------------

    async def retry(self, task: TaskRef, at: datetime | timedelta | None = None, force: bool = False) -> bool:
        """Queue a finished task again; False if unknown. A completed task needs ``force=True``; a task
        that is still waiting or running is refused (ValueError) so it never runs twice at once."""
        current = await self.get_task(task)
        if current is None:
            return False
        if current.status == "completed" and not force:
            raise ValueError(
                "Task has already completed successfully, use force to retry anyways "
                f"(task {current.id}: {FORCE_HINT})"
            )
        if current.status in _WAITING or current.finished_at is None:
            raise ValueError(f"task {current.id} is {current.status}: only finished tasks can be retried")
        now = datetime.now(UTC)
        when = _as_datetime(at) if at is not None else None
        again = released(
            current, finished_at=None, last_retry_at=now, next_retry_at=when or now, deliveries=0
        )
        if when is not None:
            return await self._store.schedule(again, when, unique=False)
        [stored] = await self._store.add([again], unique=False)
        await self._process_inline()
        return stored

    async def add_cron(self, task: Task[Any], expression: str) -> bool:
        """Register a recurring task; False if the same task, arguments, config and expression exist."""
        cron = TaskCron(expression=expression, spec=task.spec, config=task.config)
        return await self._store.add_cron(cron)

    async def delete_cron(self, task: Task[Any], expression: str) -> bool:
        """Remove a recurring task and, in the same step, its occurrences still scheduled (a run already
        started finishes); False if no such cron exists. Added back later, it resumes on its next slot."""
        cron = TaskCron(expression=expression, spec=task.spec, config=task.config)
        return await self._store.delete_cron(str(cron.deterministic_id))

    async def get_crons(self) -> list[TaskCron]:
        return await self._store.crons()

    async def cancel(self, task: TaskRef) -> Task[Any]:
        """Cancel a task that is still waiting; ``TaskCancellationError`` if it is unknown, claimed or
        finished.

        A cancelled workflow step resumes its workflow like any other final state (the generator sees
        the cancelled task). If this process does not have the workflow function registered, the
        resume is handed to a worker as an internal task.
        """
        task_id = _lookup_id(task)
        if task_id is None:
            raise TaskCancellationError(f"cannot cancel task {task!r}: it does not exist")
        record = await self._store.cancel(task_id)
        if record is None:
            current = await self.get_task(task_id)
            reason = "it does not exist" if current is None else f"it is {current.status}"
            raise TaskCancellationError(f"cannot cancel task {task_id}: {reason}")
        if is_quarantined(record):
            raise TaskCancellationError(f"cannot cancel task {task_id}: it is quarantined (not a task)")
        cancelled: Task[Any] = Task.model_validate(record)
        if cancelled.workflow_id is not None:
            await _workflow.step_finished(self._store, cancelled, defer_unregistered=True)
            await self._process_inline()
        return cancelled

    async def delete(self, task: TaskRef) -> bool:
        """Delete a finished task record; False if unknown; ``ValueError`` (``TaskStateError``) if it
        is not finished."""
        task_id = _lookup_id(task)
        if task_id is None:
            return False
        try:
            return await self._store.delete(task_id)
        except TaskStateError as exc:
            if UNFINISHED_DELETE in str(exc):
                raise
            # A backend with its own wording: sheppy's words first, which callers match on.
            raise TaskStateError(f"{UNFINISHED_DELETE} ({exc})") from exc

    # -- workflows (sheppy 0.0.7 spelling; later sheppy has them under ``queue.experimental``) -----

    async def add_workflow(
        self, workflow: Workflow, *, watch_interval: float | None = DEFAULT_WATCH_INTERVAL
    ) -> WorkflowResult:
        """Store a workflow and submit its first steps; returns ``(workflow, pending_tasks)``.

        ``watch_interval``: seconds between runs of the workflow's recovery watch on shared-store
        backends (None disables it; see docs/workflows.md). Adding an id that exists changes nothing.
        """
        result = await _workflow.start(self._store, workflow, watch_interval=watch_interval)
        if result.pending_tasks and self._inline:
            await self._process_inline()
            # The steps ran inline: report where the workflow got to.
            latest = (await _workflow.get_workflows(self._store, [str(result.workflow.id)])).get(
                result.workflow.id
            )
            if latest is not None and latest.version != result.workflow.version:
                return WorkflowResult(latest, [])
        return result

    async def resume_workflow(self, workflow: WorkflowRef) -> WorkflowResult:
        """Bring a workflow up to date with its finished steps (workers do this on their own).

        Raises ``ValueError`` for an unknown workflow."""
        result = await _workflow.resume(self._store, workflow_id_of(workflow))
        if result is None:
            raise ValueError(f"Workflow not found: {workflow_id_of(workflow)}")
        if result.pending_tasks:
            await self._process_inline()
        return result

    _resume_workflow = resume_workflow  # the name later sheppy (and its tests) use

    @overload
    async def get_workflow(self, workflow: WorkflowRef) -> Workflow | None: ...  # type: ignore[overload-overlap]
    @overload
    async def get_workflow(self, workflow: Sequence[WorkflowRef]) -> dict[uuid.UUID, Workflow]: ...

    async def get_workflow(
        self, workflow: WorkflowRef | Sequence[WorkflowRef]
    ) -> Workflow | dict[uuid.UUID, Workflow] | None:
        """One workflow (None if unknown), or ``{id: Workflow}`` for a list (unknown ids omitted)."""
        single, ids = _workflow_ids(workflow)
        found = await _workflow.get_workflows(self._store, ids)
        return found.get(uuid.UUID(ids[0])) if single else found

    async def get_all_workflows(self) -> list[Workflow]:
        """Every stored workflow of the queue, finished or not."""
        return await self._store.all_workflows()

    async def get_pending_workflows(self) -> list[Workflow]:
        """Workflows that have not finished yet."""
        return await self._store.pending_workflows()

    async def delete_workflow(self, workflow: WorkflowRef) -> bool:
        """Delete a workflow record; True if it existed. Its step task records are left alone."""
        return await self._store.delete_workflow(workflow_id_of(workflow))

    @overload
    async def wait_for_workflow(  # type: ignore[overload-overlap]
        self, workflow: WorkflowRef, timeout: float = 0
    ) -> Workflow | None: ...
    @overload
    async def wait_for_workflow(
        self, workflow: Sequence[WorkflowRef], timeout: float = 0
    ) -> dict[uuid.UUID, Workflow]: ...

    async def wait_for_workflow(
        self, workflow: WorkflowRef | Sequence[WorkflowRef], timeout: float = 0
    ) -> Workflow | dict[uuid.UUID, Workflow] | None:
        """Wait until finished (completed or failed), with ``wait_for``'s timeout rules: ``0`` waits
        for ever, ``> 0`` raises ``TimeoutError`` unless all finished in time, ``< 0`` returns at once
        with what has finished. Unknown ids are not waited for (single form: None)."""
        single, ids = _workflow_ids(workflow)
        found = await _workflow.wait_for(self._store, ids, timeout)
        return found.get(uuid.UUID(ids[0])) if single else found

    # -- worker-facing (sheppy's private names, kept for its tests) ------------------------------

    async def _pop_pending(
        self,
        limit: int = 1,
        timeout: float | None = None,
        *,
        worker_id: str | None = None,
        lease: float | None = None,
    ) -> list[Task[Any]]:
        if isinstance(limit, bool) or not isinstance(limit, int):
            raise TypeError(f"limit must be an integer >= 1, got {type(limit).__name__}")
        if limit < 1:
            raise ValueError(f"Pop limit must be greater than zero, got {limit}")
        records = await self._store.claim(limit, timeout, worker_id=worker_id, lease=lease)
        return [Task.model_validate(r) for r in records]

    async def _enqueue_scheduled(self, now: datetime | None = None) -> list[Task[Any]]:
        return [Task.model_validate(r) for r in await self._store.release_due(now)]

    async def _store_result(self, task: Task[Any]) -> bool:
        return await self._store.store_result(task)


def _workflow_ids(workflow: WorkflowRef | Sequence[WorkflowRef]) -> tuple[bool, list[str]]:
    single = isinstance(workflow, (Workflow, uuid.UUID, str))
    refs: list[WorkflowRef] = [workflow] if single else list(workflow)  # type: ignore[list-item, arg-type]
    return single, list(dict.fromkeys(workflow_id_of(r) for r in refs))


class _Experimental:
    """``queue.experimental``: operations later sheppy groups as unstable (cancel, delete, workflows)."""

    def __init__(self, queue: Queue) -> None:
        self._queue = queue
        self.add_workflow = queue.add_workflow
        self.get_workflow = queue.get_workflow
        self.get_all_workflows = queue.get_all_workflows
        self.get_pending_workflows = queue.get_pending_workflows
        self.delete_workflow = queue.delete_workflow
        self.wait_for_workflow = queue.wait_for_workflow
        self._resume_workflow = queue.resume_workflow

    async def cancel(self, task: TaskRef) -> Task[Any]:
        return await self._queue.cancel(task)

    async def delete(self, task: TaskRef) -> bool:
        return await self._queue.delete(task)
