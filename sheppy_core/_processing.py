"""What happens to one claimed task: crash recovery, rate limit, the attempt, chaining, storing.

``TaskProcessor.process`` is the single path from "a record was popped" to "its outcome is stored",
shared by ``Worker``, ``TestQueue`` and ``memory://`` instant processing.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from sheppy_core._runner import (
    Attempt,
    Middleware,
    charge_crash_retry,
    crash_outcome,
    failed,
    rescheduled,
    run_attempt,
)
from sheppy_core._workflow import is_engine_task, run_engine_task, step_finished
from sheppy_core.exceptions import NotSupportedError
from sheppy_core.models import Task

if TYPE_CHECKING:
    from sheppy_core._queue import Queue

__all__ = ["TaskProcessor"]

logger = logging.getLogger("sheppy.worker")


@dataclass
class TaskProcessor:
    """Processes claimed records for one worker (or an inline caller).

    :param ignore_delays: retries become due at once (``TestQueue``, instant processing).
    """

    dependency_overrides: Mapping[Any, Any] = field(default_factory=dict)
    middleware: Sequence[Middleware] = ()
    ignore_delays: bool = False

    async def process(
        self, queue: Queue, record: dict[str, Any], attempt_done: Callable[[], None] | None = None
    ) -> Task[Any]:
        """Run a claimed record to its next state and store it; returns the stored record.

        ``attempt_done``: called once the task's own code has finished, before its outcome is stored,
        so a worker can start the next task while the store is on its way (not for workflow steps).

        A workflow step that reached a final state (completed, failed, crashed, cancelled, timed out)
        then resumes its workflow; internal workflow tasks (watches, deferred resumes) are run by the
        workflow engine itself, before the crash and registry checks (they are idempotent).
        """
        task: Task[Any] = Task.model_validate(record)
        if is_engine_task(task):
            return await run_engine_task(queue, task)
        outcome = await self._process(queue, task, attempt_done)
        if outcome.workflow_id is not None and outcome.finished_at is not None:
            # Shielded: the outcome is stored and the claim released, so the worker's heartbeat may see
            # the lease as gone and cancel this job; the resume must not be cut off half-way.
            await asyncio.shield(step_finished(queue, outcome))
        return outcome

    async def _process(
        self, queue: Queue, task: Task[Any], attempt_done: Callable[[], None] | None = None
    ) -> Task[Any]:
        attempt_number = task.retry_count + 1

        if task.deliveries > 1:
            crashed = crash_outcome(task)
            if crashed is not None:
                logger.warning(
                    "task %s (%s) crashed: its worker lost the lease",
                    task.id,
                    task.spec.func,
                    extra=_log_fields(task, queue, attempt_number),
                )
                await queue._store_result(crashed)
                return crashed
            task = charge_crash_retry(task)
            attempt_number = task.retry_count + 1  # the lost run counted as one
            logger.warning(
                "task %s (%s) redelivered after a lost lease; retry %d of %d",
                task.id,
                task.spec.func,
                task.retry_count,
                task.config.retry,
                extra=_log_fields(task, queue, attempt_number),
            )

        deferred = await self._rate_limited(queue, task)
        if deferred is not None:
            return deferred

        started = time.perf_counter()
        attempt = await run_attempt(
            task, queue=queue, dependency_overrides=self.dependency_overrides, middleware=self.middleware
        )
        duration = time.perf_counter() - started
        outcome = attempt.task
        if attempt.chained and outcome.status == "completed":
            # Children are queued before the parent is marked done: a crash in between runs the parent
            # again (at-least-once) rather than losing its children.
            await queue.add(attempt.chained)
        if outcome.status == "retrying" and self.ignore_delays:
            outcome = outcome.model_copy(update={"next_retry_at": datetime.now(UTC)})
        if attempt_done is not None and outcome.workflow_id is None:
            # A workflow step keeps its slot through storing and resuming its workflow: resumes take
            # database connections and row locks, and letting a worker take on more steps meanwhile
            # can starve its own heartbeats of connections.
            attempt_done()
        await queue._store_result(outcome)
        self._log(attempt, duration, task, queue, attempt_number)
        return outcome

    async def _rate_limited(self, queue: Queue, task: Task[Any]) -> Task[Any] | None:
        limit = task.config.rate_limit
        if limit is None:
            return None
        try:
            wait = await queue.backend.acquire_rate_limit(
                queue.name,
                limit.key or task.spec.func,
                limit.max_rate,
                limit.rate_period,
                str(task.id),
                limit.strategy,
            )
        except NotSupportedError as exc:
            # Running an unlimited task silently could break the very service the limit protects.
            outcome = failed(task, exc, retry=False)
            await queue._store_result(outcome)
            return outcome
        if wait is None:
            return None
        deferred = rescheduled(task, datetime.now(UTC) + timedelta(seconds=wait))
        await queue._store_result(deferred)
        logger.info("task %s (%s) rate-limited; deferred %.3f s", task.id, task.spec.func, wait)
        return deferred

    @staticmethod
    def _log(attempt: Attempt, duration: float, ran: Task[Any], queue: Queue, attempt_number: int) -> None:
        """Log the outcome of ``attempt`` of task ``ran`` (named as claimed, whatever middleware did)."""
        task = attempt.task
        level = (
            logging.INFO
            if task.status == "completed"
            else logging.WARNING
            if task.status == "retrying"
            else logging.ERROR
        )
        if not logger.isEnabledFor(level):
            return  # nobody listens at this level: don't build the message
        extra = {**_log_fields(ran, queue, attempt_number), "duration": duration, "status": task.status}
        where = f"task {ran.id} ({ran.spec.func}) on queue {queue.name!r}, attempt {attempt_number}"
        if task.status == "completed":
            logger.info("%s completed in %.3f s", where, duration, extra=extra)
        elif task.status == "retrying":
            due = task.next_retry_at.isoformat() if task.next_retry_at else "?"
            logger.warning(
                "%s failed in %.3f s (%s); retry %d of %d at %s",
                where,
                duration,
                task.exception,
                task.retry_count,
                task.config.retry,
                due,
                extra=extra,
            )
        else:
            logger.error("%s %s in %.3f s: %s", where, task.status, duration, task.exception, extra=extra)


def _log_fields(task: Task[Any], queue: Queue, attempt_number: int) -> dict[str, Any]:
    """The ``extra`` fields of a worker log record about ``task``."""
    return {"task_id": str(task.id), "task": task.spec.func, "queue": queue.name, "attempt": attempt_number}
