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
from typing import Any

from pydantic import ValidationError

from sheppy_core import _telemetry
from sheppy_core._registry import find_definition
from sheppy_core._runner import (
    Attempt,
    Middleware,
    charge_crash_retry,
    crash_outcome,
    failed,
    released,
    rescheduled,
    run_attempt,
    validation_summary,
)
from sheppy_core._store import HasStore, QueueStore
from sheppy_core._workflow import is_engine_task, run_engine_task, step_finished
from sheppy_core.backend import is_finished, quarantine_record, record_to_json
from sheppy_core.exceptions import CorruptRecordError, NotSupportedError, TaskNotRegisteredError
from sheppy_core.models import Task

__all__ = ["HandBackPolicy", "StaleClaimError", "TaskProcessor"]

logger = logging.getLogger("sheppy.worker")

# What a claim adds to a stored record; left out of a quarantined record's kept text.
_CLAIM_FIELDS = frozenset({"status", "claimed_by", "lease_expires_at", "deliveries"})


class StaleClaimError(Exception):
    """A claimed task turned out finished already: the claim raced its previous holder's outcome."""


async def _finished_meanwhile(store: QueueStore, task: Task[Any]) -> bool:
    """For a redelivered task: is its stored record finished now (outcome stored after our claim)?"""
    current = (await store.records([str(task.id)])).get(str(task.id))
    return current is None or is_finished(current)


@dataclass(frozen=True)
class HandBackPolicy:
    """What a worker does with a claimed task whose function is not registered in it.

    The task goes back to the queue unrun, scheduled after a delay (``delay`` seconds, doubling with
    each hand-back, at most ``max_delay``), using no retry, so a worker that has it registered (another
    deploy, a worker started with the right ``--import``) runs it. After ``limit`` hand-backs, and no
    sooner than ``min_age`` seconds after the first one, it ends ``failed`` with
    ``TaskNotRegisteredError`` — a misconfigured worker can delay a store, not destroy it. With the
    defaults that is about an hour and 20 deliveries.
    """

    limit: int = 20
    min_age: float = 3600.0
    delay: float = 1.0
    max_delay: float = 300.0

    def __post_init__(self) -> None:
        if self.limit < 0 or self.min_age < 0 or self.delay <= 0 or self.max_delay < self.delay:
            raise ValueError(f"invalid hand-back policy {self!r}")

    def delay_for(self, handed_back: int) -> float:
        return float(min(self.delay * 2 ** min(handed_back, 60), self.max_delay))


@dataclass
class TaskProcessor:
    """Processes claimed records for one worker (or an inline caller).

    :param ignore_delays: retries become due at once (``TestQueue``, instant processing).
    """

    dependency_overrides: Mapping[Any, Any] = field(default_factory=dict)
    middleware: Sequence[Middleware] = ()
    ignore_delays: bool = False
    unregistered: HandBackPolicy | None = None
    """For a worker among others: hand back, unrun, a task whose function is not registered here (see
    :class:`HandBackPolicy`). None (``TestQueue``, inline processing): such a task fails at once."""

    async def process(
        self,
        store: QueueStore | HasStore,
        record: dict[str, Any],
        attempt_done: Callable[[], None] | None = None,
    ) -> Task[Any]:
        """Run a claimed record to its next state and store it; returns the stored record.

        ``store``: the queue's storage layer (a ``Queue`` is taken for its ``store``, as before).

        ``attempt_done``: called once the task's own code has finished, before its outcome is stored,
        so a worker can start the next task while the store is on its way (not for workflow steps).

        A workflow step that reached a final state (completed, failed, crashed, cancelled, timed out)
        then resumes its workflow; internal workflow tasks (watches, deferred resumes) are run by the
        workflow engine itself, before the crash and registry checks (they are idempotent).
        """
        if not isinstance(store, QueueStore):
            store = store.store
        try:
            task: Task[Any] = Task.model_validate(record)
        except ValidationError as exc:
            await self._quarantine(store, record, exc)
            raise CorruptRecordError(store.name, str(record.get("id")), validation_summary(exc)) from None
        if is_engine_task(task):
            return await run_engine_task(store, task)
        outcome, resumed = await self._process(store, task, attempt_done)
        if not resumed:
            await _resume_workflow(store, outcome)
        return outcome

    @staticmethod
    async def _quarantine(store: QueueStore, record: dict[str, Any], exc: ValidationError) -> None:
        """Set aside a claimed record that is not a task: stored as finished with status
        ``quarantined`` and its text kept, so it is neither redelivered every lease nor lost."""
        task_id = str(record.get("id"))
        text = record_to_json({k: v for k, v in record.items() if k not in _CLAIM_FIELDS})
        stand_in = quarantine_record(task_id, text, f"not a task: {validation_summary(exc)}")
        await store.store_record(stand_in)

    async def _process(
        self, store: QueueStore, task: Task[Any], attempt_done: Callable[[], None] | None = None
    ) -> tuple[Task[Any], bool]:
        """The outcome, and whether its workflow (if any) was resumed already."""
        attempt_number = task.retry_count + 1

        if task.deliveries > 1 and await _finished_meanwhile(store, task):
            # The claim raced the previous holder's outcome: its worker (this one, or another whose
            # lease lapsed) stored it just after this claim, releasing the claim. Nothing to run, and
            # storing a crash now would overwrite a real outcome.
            raise StaleClaimError(f"task {task.id} was finished by its previous claim; dropped this one")

        if self.unregistered is not None and find_definition(task.spec.func) is None:
            return await self._hand_back(store, task, self.unregistered), False

        if task.deliveries > 1:
            if _telemetry.current is not None:
                _telemetry.current.redelivered(store.name, task)
            crashed = crash_outcome(task)
            if crashed is not None:
                logger.warning(
                    "task %s (%s) crashed: its worker lost the lease",
                    task.id,
                    task.spec.func,
                    extra=_log_fields(task, store, attempt_number),
                )
                await store.store_result(crashed)
                if _telemetry.current is not None:
                    _telemetry.current.finished_unrun(store.name, crashed)
                return crashed, False
            task = charge_crash_retry(task)
            attempt_number = task.retry_count + 1  # the lost run counted as one
            logger.warning(
                "task %s (%s) redelivered after a lost lease; retry %d of %d",
                task.id,
                task.spec.func,
                task.retry_count,
                task.config.retry,
                extra=_log_fields(task, store, attempt_number),
            )

        deferred = await self._rate_limited(store, task)
        if deferred is not None:
            return deferred, False

        telemetry = _telemetry.current
        if telemetry is None:
            outcome, _ = await self._attempt(store, task, attempt_number, attempt_done)
            return outcome, True
        observed = await _telemetry.observe_attempt(
            telemetry,
            store.name,
            task,
            attempt_number,
            lambda: self._attempt(store, task, attempt_number, attempt_done),
        )
        return observed, True

    async def _attempt(
        self, store: QueueStore, task: Task[Any], attempt_number: int, attempt_done: Callable[[], None] | None
    ) -> tuple[Task[Any], float]:
        """Run one attempt of ``task``, queue its chained tasks, store its outcome and resume its workflow
        (inside the attempt's span: the next steps continue its trace); returns the outcome and the time
        the task's own code took."""
        started = time.perf_counter()
        attempt = await run_attempt(
            task,
            queue=store.as_queue(),
            dependency_overrides=self.dependency_overrides,
            middleware=self.middleware,
        )
        duration = time.perf_counter() - started
        outcome = attempt.task
        if attempt.chained and outcome.status == "completed":
            # Children are queued before the parent is marked done: a crash in between runs the parent
            # again (at-least-once) rather than losing its children.
            await store.add(attempt.chained)
        if outcome.status == "retrying" and self.ignore_delays:
            outcome = outcome.model_copy(update={"next_retry_at": datetime.now(UTC)})
        if attempt_done is not None and outcome.workflow_id is None:
            # A workflow step keeps its slot through storing and resuming its workflow: resumes take
            # database connections and row locks, and letting a worker take on more steps meanwhile
            # can starve its own heartbeats of connections.
            attempt_done()
        await store.store_result(outcome)
        self._log(attempt, duration, task, store, attempt_number)
        await _resume_workflow(store, outcome)
        return outcome, duration

    @staticmethod
    async def _hand_back(store: QueueStore, task: Task[Any], policy: HandBackPolicy) -> Task[Any]:
        """A task this worker cannot run: back to the queue unrun for another worker, or — past the
        policy's bound — failed with the reason."""
        now = datetime.now(UTC)
        first = task.first_handed_back_at or now
        if task.handed_back >= policy.limit and (now - first).total_seconds() >= policy.min_age:
            error = TaskNotRegisteredError(
                f"{task.spec.func!r} is not a registered @task in any worker that claimed it: handed back "
                f"{task.handed_back} time(s) over {(now - first).total_seconds():.0f} s without running. "
                "Import the module that defines it in the workers (sheppy work --import MODULE)."
            )
            outcome = failed(task, error, retry=False)
            await store.store_result(outcome)
            logger.error("task %s (%s) failed: %s", task.id, task.spec.func, error,
                         extra=_log_fields(task, store, task.retry_count + 1))
            return outcome
        delay = policy.delay_for(task.handed_back)
        back = released(
            task,
            status="scheduled",
            scheduled_at=now + timedelta(seconds=delay),
            # The claim that brought it here does not count: a crash before a real run stays visible.
            deliveries=max(task.deliveries - 1, 0),
            handed_back=task.handed_back + 1,
            first_handed_back_at=first,
        )
        await store.store_result(back)
        logger.warning(
            "task %s (%s) is not registered in this worker; handed back unrun (%d so far), due again "
            "in %.1f s. Import its module here (sheppy work --import MODULE) or leave it to a worker "
            "that has it",
            task.id, task.spec.func, back.handed_back, delay,
            extra=_log_fields(task, store, task.retry_count + 1),
        )
        return back

    async def _rate_limited(self, store: QueueStore, task: Task[Any]) -> Task[Any] | None:
        limit = task.config.rate_limit
        if limit is None:
            return None
        try:
            wait = await store.acquire_rate_limit(
                limit.key or task.spec.func,
                limit.max_rate,
                limit.rate_period,
                str(task.id),
                limit.strategy,
            )
        except NotSupportedError as exc:
            # Running an unlimited task silently could break the very service the limit protects.
            outcome = failed(task, exc, retry=False)
            await store.store_result(outcome)
            return outcome
        if wait is None:
            return None
        deferred = rescheduled(task, datetime.now(UTC) + timedelta(seconds=wait))
        await store.store_result(deferred)
        logger.info("task %s (%s) rate-limited; deferred %.3f s", task.id, task.spec.func, wait)
        return deferred

    @staticmethod
    def _log(
        attempt: Attempt, duration: float, ran: Task[Any], store: QueueStore, attempt_number: int
    ) -> None:
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
        extra = {**_log_fields(ran, store, attempt_number), "duration": duration, "status": task.status}
        where = f"task {ran.id} ({ran.spec.func}) on queue {store.name!r}, attempt {attempt_number}"
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


async def _resume_workflow(store: QueueStore, outcome: Task[Any]) -> None:
    """For a workflow step that reached a final state: resume its workflow."""
    if outcome.workflow_id is not None and outcome.finished_at is not None:
        # Shielded: the outcome is stored and the claim released, so the worker's heartbeat may see
        # the lease as gone and cancel this job; the resume must not be cut off half-way.
        await asyncio.shield(step_finished(store, outcome))


def _log_fields(task: Task[Any], store: QueueStore, attempt_number: int) -> dict[str, Any]:
    """The ``extra`` fields of a worker log record about ``task``."""
    return {"task_id": str(task.id), "task": task.spec.func, "queue": store.name, "attempt": attempt_number}
