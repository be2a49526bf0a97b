"""``QueueStore``: the storage layer — one named queue of one backend, as the engine sees it.

Everything that reads or writes tasks and workflows goes through here: ``Queue`` (the user-facing
handle), ``Worker``, ``TaskProcessor``, ``TestQueue`` and the workflow engine. It converts ``Task`` ⇄
record (JSON-ready dicts) and connects the backend lazily; it runs nothing. Reads that the engine
must inspect before validating (a claim may hold a corrupt record) return records, the rest ``Task``.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

from pydantic import ValidationError

from sheppy_core import _telemetry
from sheppy_core._runner import validation_summary
from sheppy_core._task_record import task_record
from sheppy_core.backend import (
    TRANSACTIONAL_ENQUEUE,
    Backend,
    check_queue_name,
    is_quarantined,
    missing_capability,
)
from sheppy_core.exceptions import BackendInputError
from sheppy_core.models import Task, TaskCron

if TYPE_CHECKING:
    from sheppy_core._queue import Queue
    from sheppy_core._workflow import Workflow

__all__ = ["HasStore", "QueueStore", "by_id", "checked_queue_name", "readable_tasks"]

logger = logging.getLogger("sheppy.queue")


def checked_queue_name(name: object) -> str:
    """A valid queue name, or ``ValueError`` naming the problem (sheppy's class for bad input)."""
    try:
        return check_queue_name(name)
    except BackendInputError as exc:
        raise ValueError(str(exc)) from None


def readable_tasks(queue_name: str, records: Iterable[Mapping[str, Any]]) -> list[Task[Any]]:
    """The records that are tasks, as ``Task`` objects. A quarantined record (see
    ``sheppy task list --status quarantined``) or one that is not a task is left out with a warning, so
    one bad record never fails a whole listing."""
    tasks: list[Task[Any]] = []
    for record in records:
        if is_quarantined(record):
            reason = (record.get("quarantine") or {}).get("reason", "")
            logger.warning(
                "queue %r: skipping quarantined record %r (%s); see `sheppy task info %s`",
                queue_name, record.get("id"), reason, record.get("id"),
            )
            continue
        try:
            tasks.append(Task.model_validate(record))
        except ValidationError as exc:
            logger.warning(
                "queue %r: skipping record %r, which is not a task (%s)",
                queue_name, record.get("id"), validation_summary(exc),
            )
    return tasks


def by_id(queue_name: str, records: Mapping[str, Mapping[str, Any]]) -> dict[uuid.UUID, Task[Any]]:
    return {task.id: task for task in readable_tasks(queue_name, records.values())}


class HasStore(Protocol):
    """What stands on a store (a ``Queue``): the engine takes it for its ``store``."""

    @property
    def store(self) -> QueueStore: ...


class QueueStore:
    """One queue of one backend. Several stores may share a backend (a worker of many queues).

    :param backend: connected on the first awaited call that needs it.
    :param name: a valid queue name.
    """

    def __init__(self, backend: Backend, name: str) -> None:
        self.backend = backend
        self.name = checked_queue_name(name)
        self._connect_lock: asyncio.Lock | None = None
        self._queue: Queue | None = None

    def __repr__(self) -> str:
        return f"QueueStore(name={self.name!r}, backend={type(self.backend).__name__})"

    async def connected(self) -> Backend:
        """The backend, connected (once, however many callers ask at the same time)."""
        if not self.backend.is_connected:
            if self._connect_lock is None:
                self._connect_lock = asyncio.Lock()
            async with self._connect_lock:
                if not self.backend.is_connected:
                    await self.backend.connect()
        return self.backend

    def as_queue(self) -> Queue:
        """The user-facing ``Queue`` on this store (what middleware and task code are handed)."""
        if self._queue is None:
            from sheppy_core._queue import Queue

            self._queue = Queue._on_store(self)
        return self._queue

    # -- writes ----------------------------------------------------------------------------------

    async def add(
        self, tasks: Sequence[Task[Any]], *, connection: Any = None, unique: bool = True
    ) -> list[bool]:
        """Append ``tasks`` in one call; False for an id the queue already has (``unique``).

        ``connection``: the caller's open transaction, on a backend declaring ``transactional_enqueue``.
        """
        if not tasks:
            return []
        backend = await self.connected()
        records = [task_record(task) for task in tasks]
        if connection is not None:
            self._check_transactional(backend)
        telemetry = _telemetry.current
        if telemetry is None:
            return await self._append(backend, records, unique, connection)
        with telemetry.adding(self.name, records):
            stored = await self._append(backend, records, unique, connection)
        telemetry.added(self.name, records, stored)
        return stored

    async def _append(
        self, backend: Backend, records: list[dict[str, Any]], unique: bool, connection: Any
    ) -> list[bool]:
        if connection is not None:
            return await backend.append(self.name, records, unique=unique, connection=connection)
        return await backend.append(self.name, records, unique=unique)

    async def schedule(
        self, task: Task[Any], at: datetime, *, connection: Any = None, unique: bool = True
    ) -> bool:
        backend = await self.connected()
        record = task_record(task)
        if connection is not None:
            self._check_transactional(backend)
        telemetry = _telemetry.current
        if telemetry is None:
            return await self._schedule(backend, record, at, unique, connection)
        with telemetry.adding(self.name, [record]):
            stored = await self._schedule(backend, record, at, unique, connection)
        telemetry.added(self.name, [record], [stored])
        return stored

    async def _schedule(
        self, backend: Backend, record: dict[str, Any], at: datetime, unique: bool, connection: Any
    ) -> bool:
        if connection is not None:
            return await backend.schedule(self.name, record, at, unique=unique, connection=connection)
        return await backend.schedule(self.name, record, at, unique=unique)

    async def store_result(self, task: Task[Any]) -> bool:
        """Store ``task``'s record as it now is (an outcome, a release, a deferral); it also ends the
        claim that delivered it."""
        return await self.store_record(task_record(task))

    async def store_record(self, record: dict[str, Any]) -> bool:
        """``store_result`` of a record that is not a ``Task`` (a quarantine stand-in)."""
        return await (await self.connected()).store_result(self.name, record)

    async def cancel(self, task_id: str) -> dict[str, Any] | None:
        return await (await self.connected()).cancel(self.name, task_id)

    async def delete(self, task_id: str) -> bool:
        return await (await self.connected()).delete_task(self.name, task_id)

    # -- claims ----------------------------------------------------------------------------------

    async def claim(
        self,
        limit: int,
        timeout: float | None = None,
        *,
        worker_id: str | None = None,
        lease: float | None = None,
    ) -> list[dict[str, Any]]:
        """Claim up to ``limit`` ready records (validated by the caller: one may be corrupt)."""
        backend = await self.connected()
        return await backend.pop(self.name, limit, timeout, worker_id=worker_id, lease=lease)

    async def heartbeat(self, task_ids: Sequence[str], *, worker_id: str, lease: float | None) -> list[str]:
        """Extend the leases ``worker_id`` holds on ``task_ids``; returns the ids still held."""
        backend = await self.connected()
        return await backend.heartbeat(self.name, list(task_ids), worker_id=worker_id, lease=lease)

    async def release_due(self, now: datetime | None = None) -> list[dict[str, Any]]:
        """Move scheduled records due by ``now`` (default: the current time) into the queue."""
        return await (await self.connected()).pop_scheduled(self.name, now)

    async def acquire_rate_limit(
        self, key: str, max_rate: int, rate_period: float, task_id: str, strategy: str
    ) -> float | None:
        """None: go; else seconds to wait (the backend's rate-limit rule)."""
        backend = await self.connected()
        return await backend.acquire_rate_limit(
            self.name, key, max_rate, rate_period, task_id, strategy
        )

    # -- reads -----------------------------------------------------------------------------------

    async def records(self, task_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        """Stored records by id (unknown ids omitted)."""
        if not task_ids:
            return {}
        return await (await self.connected()).get_tasks(self.name, list(task_ids))

    async def results(self, task_ids: Sequence[str], timeout: float | None) -> dict[str, dict[str, Any]]:
        """Finished records among ``task_ids``, waiting by the contract's ``get_results`` rules."""
        return await (await self.connected()).get_results(self.name, list(task_ids), timeout=timeout)

    async def finished(self, task_ids: Sequence[str], timeout: float | None) -> dict[uuid.UUID, Task[Any]]:
        """Readable finished tasks among ``task_ids``, waiting by ``get_results``'s timeout rules."""
        return by_id(self.name, await self.results(task_ids, timeout)) if task_ids else {}

    async def tasks(self, task_ids: Sequence[str]) -> dict[uuid.UUID, Task[Any]]:
        """Readable tasks by id (unknown, quarantined and unreadable records omitted)."""
        return by_id(self.name, await self.records(task_ids))

    async def all_tasks(self) -> list[Task[Any]]:
        return readable_tasks(self.name, await (await self.connected()).get_all_tasks(self.name))

    async def pending(self, count: int) -> list[Task[Any]]:
        """The head of the queue, not claimed."""
        return readable_tasks(self.name, await (await self.connected()).get_pending(self.name, count))

    async def scheduled(self) -> list[Task[Any]]:
        return readable_tasks(self.name, await self.scheduled_records())

    async def scheduled_records(self) -> list[dict[str, Any]]:
        """Every scheduled record as stored (``due_at`` reads its time; one may not be a task)."""
        return await (await self.connected()).get_scheduled(self.name)

    async def next_scheduled_at(self) -> datetime | None:
        return await (await self.connected()).next_scheduled_at(self.name)

    async def size(self) -> int:
        return await (await self.connected()).size(self.name)

    async def stats(self) -> dict[str, int]:
        return await (await self.connected()).get_stats(self.name)

    async def list_queues(self) -> dict[str, int]:
        return await (await self.connected()).list_queues()

    async def clear(self) -> int:
        return await (await self.connected()).clear(self.name)

    # -- crons -----------------------------------------------------------------------------------

    async def add_cron(self, cron: TaskCron) -> bool:
        """Store ``cron`` under its deterministic id; False if that id exists."""
        backend = await self.connected()
        return await backend.add_cron(self.name, str(cron.deterministic_id), cron.model_dump(mode="json"))

    async def delete_cron(self, cron_id: str) -> bool:
        return await (await self.connected()).delete_cron(self.name, cron_id)

    async def crons(self) -> list[TaskCron]:
        return [TaskCron.model_validate(c) for c in await self.cron_records()]

    async def cron_records(self) -> list[dict[str, Any]]:
        """The stored cron definitions as stored (the cron manager skips one that does not validate)."""
        return await (await self.connected()).get_crons(self.name)

    # -- workflows -------------------------------------------------------------------------------

    async def workflows(self, workflow_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        if not workflow_ids:
            return {}
        return await (await self.connected()).get_workflows(self.name, list(workflow_ids))

    async def store_workflow(self, record: dict[str, Any], *, if_version: int) -> bool:
        """Compare-and-set: store ``record`` only if the stored version is ``if_version`` (0: absent)."""
        return await (await self.connected()).store_workflow(self.name, record, if_version=if_version)

    async def all_workflows(self) -> list[Workflow]:
        from sheppy_core._workflow import Workflow

        records = await (await self.connected()).get_all_workflows(self.name)
        return [Workflow.model_validate(r) for r in records]

    async def pending_workflows(self) -> list[Workflow]:
        from sheppy_core._workflow import Workflow

        records = await (await self.connected()).get_pending_workflows(self.name)
        return [Workflow.model_validate(r) for r in records]

    async def delete_workflow(self, workflow_id: str) -> bool:
        return await (await self.connected()).delete_workflow(self.name, workflow_id)

    async def step_done(self, workflow_id: str, task_id: str) -> int:
        """Mark a workflow step finished; returns how many of its group are still pending."""
        backend = await self.connected()
        return await backend.mark_workflow_task_complete(self.name, workflow_id, task_id)

    @staticmethod
    def _check_transactional(backend: Backend) -> None:
        if TRANSACTIONAL_ENQUEUE not in backend.capabilities:
            raise missing_capability(backend, TRANSACTIONAL_ENQUEUE)
