"""Running one attempt of a task, and deciding what state it is in afterwards.

Shared by the ``Worker``, ``TestQueue`` and the memory backend's instant processing, so a task behaves
the same everywhere. Only registered ``@task`` functions are called (:mod:`sheppy_core._registry`).
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Callable, Mapping, Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import TypeAdapter, ValidationError

from sheppy_core._dependencies import bind_arguments, has_dependencies
from sheppy_core._registry import TaskDefinition, get_definition
from sheppy_core._task import unstorable, validate_arguments
from sheppy_core.exceptions import (
    MiddlewareError,
    TaskNotRegisteredError,
    TaskTimeoutError,
    WorkerCrashedError,
)
from sheppy_core.models import MAX_ATTEMPT_ERRORS, AttemptError, Task, TaskException

__all__ = ["Attempt", "crash_outcome", "released", "rescheduled", "run_attempt", "with_attempt_error"]

logger = logging.getLogger("sheppy.worker")

Middleware = Callable[..., Any]

_PERMANENT = (TaskNotRegisteredError,)
_ANY: TypeAdapter[Any] = TypeAdapter(Any)


@dataclass
class Attempt:
    """What one run produced: the record to store, the exception (if any) and chained tasks."""

    task: Task[Any]
    exception: BaseException | None = None
    chained: list[Task[Any]] = field(default_factory=list)


def validation_summary(exc: ValidationError) -> str:
    """One line for a validation error: where the first problem is, what it is, how many more."""
    errors = exc.errors()
    if not errors:
        return str(exc)
    where = ".".join(str(part) for part in errors[0]["loc"]) or "record"
    more = f" (+{len(errors) - 1} more)" if len(errors) > 1 else ""
    return f"{where}: {errors[0]['msg']}{more}"


def _now() -> datetime:
    return datetime.now(UTC)


def released(task: Task[Any], **changes: Any) -> Task[Any]:
    """``task`` with its claim dropped (no ``claimed_by``/``lease_expires_at``), plus ``changes``."""
    return task.model_copy(update={"claimed_by": None, "lease_expires_at": None, **changes})


def rescheduled(task: Task[Any], at: datetime) -> Task[Any]:
    """``task`` released to wait in the schedule until ``at``, as a fresh delivery."""
    return released(task, status="scheduled", scheduled_at=at, finished_at=None, deliveries=0)


def completed(task: Task[Any], result: Any) -> Task[Any]:
    return released(
        task, status="completed", result=result, exception=None, finished_at=_now(), next_retry_at=None
    )


def with_attempt_error(
    task: Task[Any], *, status: str, exception: TaskException, finished_at: datetime
) -> list[AttemptError]:
    """``task.attempt_errors`` with the attempt now ending (number ``retry_count + 1``, on the worker
    holding the claim) appended; past :data:`MAX_ATTEMPT_ERRORS` the first one and the latest are kept,
    so the list never grows with the retries and the original cause is never lost."""
    entry = AttemptError(
        attempt=task.retry_count + 1,
        finished_at=finished_at,
        status=status,
        worker=task.claimed_by,
        exception=exception,
    )
    errors = [*task.attempt_errors, entry]
    if len(errors) > MAX_ATTEMPT_ERRORS:
        errors = [errors[0], *errors[len(errors) - MAX_ATTEMPT_ERRORS + 1 :]]
    return errors


def failed(task: Task[Any], exc: BaseException, *, retry: bool = True, status: str = "failed") -> Task[Any]:
    """The record after a failed attempt: ``retrying`` when retries are left, else final. Either way
    the attempt is appended to ``attempt_errors``."""
    now = _now()
    record = TaskException.from_exception(exc, with_traceback=not isinstance(exc, WorkerCrashedError))
    timed_out = isinstance(exc, TaskTimeoutError)
    may_retry = retry and not isinstance(exc, _PERMANENT) and (not timed_out or task.config.retry_on_timeout)
    if may_retry and task.should_retry:
        delay = task.config.delay_for(task.retry_count)
        return released(
            task,
            status="retrying",
            result=None,
            exception=record,
            attempt_errors=with_attempt_error(task, status="retrying", exception=record, finished_at=now),
            finished_at=None,
            retry_count=task.retry_count + 1,
            last_retry_at=now,
            next_retry_at=now + timedelta(seconds=delay),
            deliveries=0,
        )
    return released(
        task,
        status=status,
        result=None,
        exception=record,
        finished_at=now,
        attempt_errors=with_attempt_error(task, status=status, exception=record, finished_at=now),
    )


def crash_outcome(task: Task[Any]) -> Task[Any] | None:
    """Decide a redelivered task (``deliveries > 1``: its previous worker lost the lease).

    Returns None when it should run again — it has retries left and is not marked unsafe to re-run
    (``retry_on_crash=False``); the retry is charged. Otherwise returns the final ``crashed`` record.
    """
    if task.config.retry_on_crash is not False and task.should_retry:
        return None
    return failed(task, _crash_error(task), retry=False, status="crashed")


def _crash_error(task: Task[Any]) -> WorkerCrashedError:
    return WorkerCrashedError(
        f"the worker running this task stopped without finishing it (claimed by {task.claimed_by})"
    )


def charge_crash_retry(task: Task[Any]) -> Task[Any]:
    """A redelivered task that will run again: the lost run uses a retry and is kept in
    ``attempt_errors`` as ``crashed``."""
    now = _now()
    lost = TaskException.from_exception(_crash_error(task), with_traceback=False)
    return task.model_copy(
        update={
            "retry_count": task.retry_count + 1,
            "last_retry_at": now,
            "attempt_errors": with_attempt_error(task, status="crashed", exception=lost, finished_at=now),
        }
    )


async def _pre(mw: Middleware, task: Task[Any], queue: Any) -> tuple[Any, Task[Any]]:
    try:
        generator = mw(task, queue)
        if inspect.isasyncgen(generator):
            yielded = await generator.__anext__()
        elif inspect.isgenerator(generator):
            yielded = next(generator)
        else:
            raise TypeError(f"middleware {mw!r} must be a generator function")
    except MiddlewareError:
        raise
    except BaseException as exc:
        if isinstance(exc, asyncio.CancelledError):
            raise
        raise MiddlewareError(
            f"middleware {getattr(mw, '__name__', mw)!r} failed before the task: {exc}"
        ) from exc
    return generator, yielded if isinstance(yielded, Task) else task


async def _post(generator: Any, task: Task[Any], exc: BaseException | None) -> Task[Any]:
    try:
        if inspect.isasyncgen(generator):
            async_generator: Any = generator
            try:
                value = await async_generator.asend((task, exc))
            except StopAsyncIteration:
                value = None
            else:
                await generator.aclose()
        else:
            try:
                value = generator.send((task, exc))
            except StopIteration as stop:
                value = stop.value
            else:
                generator.close()
    except Exception as error:
        logger.error("middleware failed after task %s: %s", task.id, error)
        return task
    return value if isinstance(value, Task) else task


async def _call(
    definition: TaskDefinition, task: Task[Any], overrides: Mapping[Any, Any], stack: AsyncExitStack | None
) -> Any:
    """Call the task's function with its stored arguments and its injected parameters: dependencies
    (given an exit ``stack`` for their teardown) and ``CURRENT_TASK``."""
    stored_args, stored_kwargs = validate_arguments(
        definition, tuple(task.spec.args), dict(task.spec.kwargs), at_run=True
    )
    args, call_kwargs = await bind_arguments(
        definition.function, stored_args, stored_kwargs, overrides, stack, task
    )
    if definition.is_async:
        coroutine = definition.function(*args, **call_kwargs)
        if task.config.timeout is not None:
            async with asyncio.timeout(task.config.timeout):
                return await coroutine
        return await coroutine
    # Sync tasks run in a thread. A timed-out thread cannot be stopped: it finishes in the background
    # while the attempt is recorded as timed out.
    runner = asyncio.to_thread(definition.function, *args, **call_kwargs)
    if task.config.timeout is not None:
        async with asyncio.timeout(task.config.timeout):
            return await runner
    return await runner


def _json_result(definition: TaskDefinition, value: Any) -> tuple[Any, list[Task[Any]]]:
    if value is None and definition.return_adapter is None:
        return None, []
    chained: list[Task[Any]] = []
    if isinstance(value, Task):
        chained = [value]
    elif isinstance(value, (list, tuple)) and value and all(isinstance(v, Task) for v in value):
        chained = list(value)
    if definition.return_adapter is not None:
        value = definition.return_adapter.validate_python(value)
        _refuse_unstorable_result(value)
        return definition.return_adapter.dump_python(value, mode="json"), chained
    _refuse_unstorable_result(value)
    return _ANY.dump_python(value, mode="json"), chained


def _refuse_unstorable_result(value: Any) -> None:
    """A result JSON cannot carry (NaN, infinity, absurd nesting) fails the attempt with a clear error;
    stored as is, it would read back as ``null``."""
    found = unstorable(value)
    if found is not None:
        where, problem = found
        raise ValueError(f"result{where} {problem}: JSON cannot carry it, so the result cannot be stored")


async def run_attempt(
    task: Task[Any],
    *,
    queue: Any = None,
    dependency_overrides: Mapping[Any, Any] | None = None,
    middleware: Sequence[Middleware] = (),
) -> Attempt:
    """Run ``task`` once and return the record to store (completed, retrying or failed)."""
    try:
        definition = get_definition(task.spec.func)
    except TaskNotRegisteredError as exc:
        return Attempt(failed(task, exc, retry=False), exc)

    started: list[Any] = []
    current = task
    outcome: Attempt
    try:
        if middleware or definition.middleware:
            for mw in [*middleware, *definition.middleware]:
                generator, current = await _pre(mw, current, queue)
                started.append(generator)
        if has_dependencies(definition.function):
            async with AsyncExitStack() as stack:
                value = await _call(definition, current, dependency_overrides or {}, stack)
        else:
            # Nothing to tear down: no exit stack (its enter and exit are a noticeable share of a
            # short task's cost).
            value = await _call(definition, current, {}, None)
        result, chained = _json_result(definition, value)
        outcome = Attempt(completed(current, result), None, chained)
    except TimeoutError as exc:
        error = (
            exc
            if isinstance(exc, TaskTimeoutError)
            else TaskTimeoutError(f"Task exceeded timeout of {current.config.timeout} seconds")
        )
        outcome = Attempt(failed(current, error), error)
    except ValidationError as exc:
        outcome = Attempt(failed(current, exc), exc)
    except Exception as exc:
        outcome = Attempt(failed(current, exc), exc)
    for generator in reversed(started):
        outcome.task = await _post(generator, outcome.task, outcome.exception)
    return outcome
