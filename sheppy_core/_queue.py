"""``Queue``: the user-facing handle on one named queue of one backend."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, overload

from sheppy_core._config import resolve_backend_url, resolve_queue
from sheppy_core.backend import TRANSACTIONAL_ENQUEUE, Backend, redact_url
from sheppy_core.exceptions import NotSupportedError, TaskCancellationError
from sheppy_core.models import Task, TaskCron

__all__ = ["Queue"]

TaskRef = Task[Any] | uuid.UUID | str
_WAITING = frozenset({"new", "pending", "scheduled", "processing", "retrying"})


def _task_id(ref: TaskRef) -> str:
    if isinstance(ref, Task):
        return str(ref.id)
    if isinstance(ref, uuid.UUID):
        return str(ref)
    if isinstance(ref, str):
        return str(uuid.UUID(ref))  # a clear ValueError for a malformed id
    raise TypeError(f"expected a Task, UUID or id string, got {type(ref).__name__}")


def _as_datetime(at: datetime | timedelta) -> datetime:
    if isinstance(at, timedelta):
        return datetime.now(UTC) + at
    if isinstance(at, datetime):
        if at.tzinfo is None:
            raise TypeError("'at' must be timezone-aware (e.g. datetime.now(timezone.utc)), not naive")
        return at
    raise TypeError(f"'at' must be a datetime or timedelta, got {type(at).__name__}")


class Queue:
    """A named queue on a backend.

    :param backend: a ``Backend`` object or a URL (``sqlite:///jobs.db``, ``redis://...``,
        ``memory://``); None resolves ``SHEPPY_BACKEND_URL``, then ``[tool.sheppy] backend``, then
        ``sqlite:///sheppy.db``.
    :param name: the queue name; None resolves ``SHEPPY_QUEUE``, then ``"default"``.

    The backend is connected lazily, on the first awaited call.
    """

    def __init__(self, backend: Backend | str | None = None, name: str | None = None) -> None:
        if backend is None or isinstance(backend, str):
            from sheppy_core._plugins import backend_from_url

            backend = backend_from_url(resolve_backend_url(backend))
        if not isinstance(backend, Backend):
            raise TypeError(f"backend must be a Backend or a URL string, got {type(backend).__name__}")
        self.backend: Backend = backend
        self.name: str = resolve_queue(name)
        self._connect_lock: asyncio.Lock | None = None
        self.experimental = _Experimental(self)

    def __repr__(self) -> str:
        url = getattr(self.backend, "url", None)
        where = redact_url(url) if isinstance(url, str) else repr(self.backend)
        return f"Queue(name={self.name!r}, backend={where})"

    async def _ensure(self) -> Backend:
        if not self.backend.is_connected:
            if self._connect_lock is None:
                self._connect_lock = asyncio.Lock()
            async with self._connect_lock:
                if not self.backend.is_connected:
                    await self.backend.connect()
        return self.backend

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
        tasks = [task] if isinstance(task, Task) else list(task)
        for item in tasks:
            if not isinstance(item, Task):
                raise TypeError(
                    f"add() takes Task objects (call your @task function), got {type(item).__name__}"
                )
        backend = await self._ensure()
        records = [t.model_dump(mode="json") for t in tasks]
        if connection is not None:
            if TRANSACTIONAL_ENQUEUE not in backend.capabilities:
                raise NotSupportedError(
                    f"{type(backend).__name__} does not declare capability 'transactional_enqueue'"
                )
            results = await backend.append(self.name, records, connection=connection)  # type: ignore[call-arg]
        else:
            results = await backend.append(self.name, records) if records else []
        if getattr(backend, "instant_processing", False) and any(results):
            await self._process_inline()
        return results[0] if isinstance(task, Task) else results

    async def schedule(self, task: Task[Any], at: datetime | timedelta, *, connection: Any = None) -> bool:
        """Store ``task`` to be queued at ``at`` (aware datetime, or timedelta from now); False for a
        duplicate id."""
        if not isinstance(task, Task):
            raise TypeError(f"schedule() takes a Task, got {type(task).__name__}")
        when = _as_datetime(at)
        backend = await self._ensure()
        record = task.model_dump(mode="json")
        if connection is not None:
            if TRANSACTIONAL_ENQUEUE not in backend.capabilities:
                raise NotSupportedError(
                    f"{type(backend).__name__} does not declare capability 'transactional_enqueue'"
                )
            stored = await backend.schedule(self.name, record, when, connection=connection)  # type: ignore[call-arg]
        else:
            stored = await backend.schedule(self.name, record, when)
        if stored and getattr(backend, "instant_processing", False):
            await self._process_inline(now=when)
        return stored

    async def _process_inline(self, now: datetime | None = None) -> None:
        # memory:// with instant_processing: run what was just queued inside the caller, retries
        # included (delays ignored), as sheppy does.
        from sheppy_core._processing import TaskProcessor

        backend = self.backend
        processor = TaskProcessor(
            dependency_overrides=getattr(backend, "dependency_overrides", {}), ignore_delays=True
        )
        while True:
            await backend.pop_scheduled(self.name, now=max(now or datetime.now(UTC), datetime.now(UTC)))
            claimed = await backend.pop(self.name, limit=10)
            if not claimed:
                return
            for record in claimed:
                await processor.process(self, record)

    # -- read ------------------------------------------------------------------------------------

    @overload
    async def get_task(self, task: TaskRef) -> Task[Any] | None: ...  # type: ignore[overload-overlap]
    @overload
    async def get_task(self, task: Sequence[TaskRef]) -> dict[uuid.UUID, Task[Any]]: ...

    async def get_task(
        self, task: TaskRef | Sequence[TaskRef]
    ) -> Task[Any] | dict[uuid.UUID, Task[Any]] | None:
        """One task (None if unknown), or ``{id: Task}`` for a list (unknown ids omitted)."""
        single = isinstance(task, (Task, uuid.UUID, str))
        refs: list[TaskRef] = [task] if single else list(task)  # type: ignore[list-item, arg-type]
        ids = list(dict.fromkeys(_task_id(r) for r in refs))
        records = await (await self._ensure()).get_tasks(self.name, ids)
        found: dict[uuid.UUID, Task[Any]] = {uuid.UUID(k): Task.model_validate(v) for k, v in records.items()}
        if single:
            return found.get(uuid.UUID(ids[0]))
        return found

    async def get_all_tasks(self) -> list[Task[Any]]:
        return [Task.model_validate(r) for r in await (await self._ensure()).get_all_tasks(self.name)]

    async def get_pending(self, count: int = 1) -> list[Task[Any]]:
        """Peek at the head of the queue without claiming."""
        if count < 1:
            raise ValueError("count must be >= 1")
        return [Task.model_validate(r) for r in await (await self._ensure()).get_pending(self.name, count)]

    async def get_scheduled(self) -> list[Task[Any]]:
        return [Task.model_validate(r) for r in await (await self._ensure()).get_scheduled(self.name)]

    async def size(self) -> int:
        """Tasks waiting to be claimed."""
        return await (await self._ensure()).size(self.name)

    async def stats(self) -> dict[str, int]:
        """Counts by state: pending, processing, scheduled, completed, failed, cancelled, crashed."""
        return await (await self._ensure()).get_stats(self.name)

    async def list_queues(self) -> dict[str, int]:
        return await (await self._ensure()).list_queues()

    async def clear(self) -> int:
        """Delete everything of this queue; returns task records plus crons removed."""
        return await (await self._ensure()).clear(self.name)

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
        everything finished in time; ``< 0`` returns at once with what is finished."""
        single = isinstance(task, (Task, uuid.UUID, str))
        refs: list[TaskRef] = [task] if single else list(task)  # type: ignore[list-item, arg-type]
        ids = list(dict.fromkeys(_task_id(r) for r in refs))
        records = await (await self._ensure()).get_results(self.name, ids, timeout=timeout)
        found: dict[uuid.UUID, Task[Any]] = {uuid.UUID(k): Task.model_validate(v) for k, v in records.items()}
        if single:
            return found.get(uuid.UUID(ids[0]))
        return found

    # -- manage ----------------------------------------------------------------------------------

    async def retry(self, task: TaskRef, at: datetime | timedelta | None = None, force: bool = False) -> bool:
        """Queue a finished task again; False if unknown. A completed task needs ``force=True``; a task
        that is still waiting or running is refused (ValueError) so it never runs twice at once."""
        current = await self.get_task(_task_id(task))
        if current is None:
            return False
        if current.status in _WAITING or current.finished_at is None:
            raise ValueError(f"task {current.id} is {current.status}: only finished tasks can be retried")
        if current.status == "completed" and not force:
            raise ValueError(f"task {current.id} already completed; pass force=True to run it again")
        now = datetime.now(UTC)
        when = _as_datetime(at) if at is not None else None
        again = current.model_copy(
            update={
                "finished_at": None,
                "last_retry_at": now,
                "next_retry_at": when or now,
                "deliveries": 0,
                "claimed_by": None,
                "lease_expires_at": None,
            }
        )
        backend = await self._ensure()
        record = again.model_dump(mode="json")
        if when is not None:
            return await backend.schedule(self.name, record, when, unique=False)
        stored = (await backend.append(self.name, [record], unique=False))[0]
        if getattr(backend, "instant_processing", False):
            await self._process_inline()
        return stored

    async def add_cron(self, task: Task[Any], expression: str) -> bool:
        """Register a recurring task; False if the same task, arguments, config and expression exist."""
        cron = TaskCron(expression=expression, spec=task.spec, config=task.config)
        return await (await self._ensure()).add_cron(
            self.name, str(cron.deterministic_id), cron.model_dump(mode="json")
        )

    async def delete_cron(self, task: Task[Any], expression: str) -> bool:
        cron = TaskCron(expression=expression, spec=task.spec, config=task.config)
        return await (await self._ensure()).delete_cron(self.name, str(cron.deterministic_id))

    async def get_crons(self) -> list[TaskCron]:
        return [TaskCron.model_validate(c) for c in await (await self._ensure()).get_crons(self.name)]

    async def cancel(self, task: TaskRef) -> Task[Any]:
        """Cancel a task that is still waiting; ``TaskCancellationError`` if it is unknown, claimed or
        finished."""
        task_id = _task_id(task)
        backend = await self._ensure()
        record = await backend.cancel(self.name, task_id)
        if record is None:
            current = await self.get_task(task_id)
            reason = "it does not exist" if current is None else f"it is {current.status}"
            raise TaskCancellationError(f"cannot cancel task {task_id}: {reason}")
        return Task.model_validate(record)

    async def delete(self, task: TaskRef) -> bool:
        """Delete a finished task record; False if unknown; ``ValueError`` (``TaskStateError``) if it
        is not finished."""
        return await (await self._ensure()).delete_task(self.name, _task_id(task))

    # -- worker-facing (sheppy's private names, kept for its tests) ------------------------------

    async def _pop_pending(
        self,
        limit: int = 1,
        timeout: float | None = None,
        *,
        worker_id: str | None = None,
        lease: float | None = None,
    ) -> list[Task[Any]]:
        records = await (await self._ensure()).pop(
            self.name, limit, timeout, worker_id=worker_id, lease=lease
        )
        return [Task.model_validate(r) for r in records]

    async def _enqueue_scheduled(self, now: datetime | None = None) -> list[Task[Any]]:
        records = await (await self._ensure()).pop_scheduled(self.name, now)
        return [Task.model_validate(r) for r in records]

    async def _store_result(self, task: Task[Any]) -> bool:
        return await (await self._ensure()).store_result(self.name, task.model_dump(mode="json"))


class _Experimental:
    """``queue.experimental``: operations later sheppy groups as unstable."""

    def __init__(self, queue: Queue) -> None:
        self._queue = queue

    async def cancel(self, task: TaskRef) -> Task[Any]:
        return await self._queue.cancel(task)

    async def delete(self, task: TaskRef) -> bool:
        return await self._queue.delete(task)
