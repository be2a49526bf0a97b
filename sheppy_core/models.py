"""Task records: what a queue stores, as pydantic v2 models that serialise to JSON (never pickle).

Field names and meanings follow sheppy (0.0.7 and later), so records written by either are readable:
0.0.7's ``error`` string becomes a :class:`TaskException`, and its ``spec.middleware`` list is ignored.
Additions of sheppy-core: ``claimed_by``, ``lease_expires_at`` and ``deliveries`` (the claim a worker
holds while a task is ``processing``).
"""

from __future__ import annotations

import builtins
import json
import sys
import traceback as traceback_module
import uuid
import warnings
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Annotated, Any, Final, Generic, Literal, Self, TypeVar

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)

from sheppy_core.exceptions import TaskFailedError

if TYPE_CHECKING:
    from croniter import croniter

__all__ = [
    "CURRENT_TASK",
    "RateLimit",
    "TTLValue",
    "Task",
    "TaskConfig",
    "TaskCron",
    "TaskException",
    "TaskSpec",
    "TaskStatus",
]

R = TypeVar("R")

TaskStatus = Literal[
    "new",
    "scheduled",
    "pending",
    "processing",
    "retrying",
    "completed",
    "failed",
    "cancelled",
    "crashed",
    "unknown",
]
"""Where a task is: ``new`` (created, not stored), ``pending`` (queued), ``scheduled`` (waiting for a
time), ``processing`` (a worker holds its lease), ``retrying`` (waiting for its next attempt), and the
final ``completed``, ``failed``, ``cancelled``, ``crashed``. ``unknown`` is declared for compatibility."""

FINAL_STATUSES = frozenset({"completed", "failed", "cancelled", "crashed"})

TTLValue = Annotated[int, Field(gt=0)] | None | Literal["inherit"]
"""Retention of a finished record in seconds; None keeps it for ever; "inherit" uses the backend's."""


class _CurrentTask:
    """Sentinel default: a parameter ``current: Task = CURRENT_TASK`` receives the running task."""

    _instance: _CurrentTask | None = None

    def __new__(cls) -> _CurrentTask:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "CURRENT_TASK"


CURRENT_TASK: Any = _CurrentTask()


class RateLimit(BaseModel):
    """At most ``max_rate`` starts per ``rate_period`` seconds, per queue and ``key`` (default: the
    task's function)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    max_rate: int = Field(ge=1)
    rate_period: float = Field(gt=0)
    key: str | None = None
    strategy: Literal["sliding_window", "fixed_window"] = "sliding_window"

    def __getitem__(self, name: str) -> Any:
        """Dict-style reads (``config.rate_limit["max_rate"]``): sheppy's ``RateLimit`` is a TypedDict."""
        if name not in type(self).model_fields:
            raise KeyError(name)
        return getattr(self, name)

    def get(self, name: str, default: Any = None) -> Any:
        return self[name] if name in type(self).model_fields else default


class TaskSpec(BaseModel):
    """What to call: ``func`` is ``"package.module:function"``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    func: str
    args: tuple[Any, ...] = ()
    kwargs: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _drop_legacy_middleware(cls, data: Any) -> Any:
        # sheppy 0.0.7 stored dotted middleware names; resolving them would execute whatever a message
        # names, so they are read and ignored. Its ``return_type`` (a dotted class name, imported to
        # rebuild the result) is ignored too: results are typed through the registered task instead.
        if isinstance(data, dict) and ("middleware" in data or "return_type" in data):
            data = {k: v for k, v in data.items() if k not in ("middleware", "return_type")}
        return data

    # ``func`` is not checked here: a record naming anything (even "") can be built and stored, as in
    # sheppy. What a worker runs is decided by the @task registry, which never imports or calls a name
    # it does not hold (sheppy_core._registry).


DEFAULT_RETRY_DELAY: Final = 1.0
"""Seconds between attempts when a task sets no ``retry_delay``."""


class TaskConfig(BaseModel):
    """How to run a task: retries, timeout, rate limit and retention."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    retry: int = Field(default=0, ge=0)
    retry_delay: float | list[float] | None = DEFAULT_RETRY_DELAY
    """Seconds between attempts: a constant, or one entry per retry (the last one repeating). None (in
    records written before this default existed) means the default."""
    timeout: float | None = Field(default=None, gt=0)
    retry_on_timeout: bool = False
    retry_on_crash: bool | None = None
    rate_limit: RateLimit | None = None
    ttl: TTLValue = "inherit"
    error_ttl: TTLValue = "inherit"

    @field_validator("retry_delay")
    @classmethod
    def _check_delay(cls, value: float | list[float] | None) -> float | list[float] | None:
        if isinstance(value, list):
            if not value:
                raise ValueError("retry_delay list cannot be empty")
            if any(d < 0 for d in value):
                raise ValueError("retry_delay entries must be >= 0")
        elif value is not None and value < 0:
            raise ValueError("retry_delay must be >= 0")
        return value

    def delay_for(self, attempt: int) -> float:
        """Seconds to wait before retry number ``attempt`` (0-based): a constant, or the list entry, the
        last one repeating."""
        if self.retry_delay is None:
            return DEFAULT_RETRY_DELAY
        if isinstance(self.retry_delay, list):
            return float(self.retry_delay[min(attempt, len(self.retry_delay) - 1)])
        return float(self.retry_delay)


DEFAULT_CONFIG: Final = TaskConfig()
"""The config of a task that sets no options: one shared instance (frozen), so reading a record that
leaves ``config`` out builds nothing."""


def _json_safe(value: Any) -> Any:
    try:
        json.dumps(value)
        return value
    except (TypeError, ValueError):
        return repr(value)


class TaskException(BaseModel):
    """A frozen record of why an attempt failed."""

    model_config = ConfigDict(frozen=True)

    type: str
    module: str = "builtins"
    message: str = ""
    args: tuple[Any, ...] = ()
    traceback: str | None = None

    @classmethod
    def from_exception(cls, exc: BaseException, *, with_traceback: bool = True) -> TaskException:
        """The record of ``exc``. ``with_traceback=False`` is for synthesised errors (a worker crash),
        whose traceback would only show sheppy-core's own code."""
        tb = None
        if with_traceback:
            # Formatted without local variables: they may hold secrets.
            tb = "".join(traceback_module.format_exception(type(exc), exc, exc.__traceback__))
        return cls(
            type=type(exc).__qualname__,
            module=type(exc).__module__,
            message=str(exc),
            args=tuple(_json_safe(a) for a in exc.args),
            traceback=tb,
        )

    @classmethod
    def from_error_string(cls, error: str) -> TaskException:
        """Read a sheppy 0.0.7 ``error`` string (``"Type: message"``)."""
        kind, sep, message = error.partition(": ")
        if not sep or not kind.replace(".", "").replace("_", "").isalnum():
            return cls(type="Exception", message=error, args=(error,))
        return cls(type=kind, message=message, args=(message,))

    def to_exception(self) -> Exception:
        """Best-effort instance of the original class, built from ``args`` (or, if the class refuses
        them, from ``message``); else ``TaskFailedError("module:Type", message, traceback)``.

        The class is looked up only in modules this process has imported already (``sys.modules``):
        nothing is imported because a record names it. Only ``Exception`` subclasses are rebuilt.
        """
        exception_class = self._known_exception_class()
        if exception_class is not None:
            for args in (tuple(self.args), (self.message,)):
                try:
                    return exception_class(*args)
                except Exception:
                    continue
        return TaskFailedError(f"{self.module}:{self.type}", self.message, self.traceback)

    def _known_exception_class(self) -> builtins.type[Exception] | None:
        found: Any = sys.modules.get(self.module)
        for name in self.type.split("."):  # a qualname: nested classes too
            if found is None or name.startswith("__"):
                return None
            found = getattr(found, name, None)
        if isinstance(found, type) and issubclass(found, Exception):
            return found
        return None

    def __repr__(self) -> str:
        return f"TaskException(type={self.type!r}, message={self.message!r})"

    def __str__(self) -> str:
        return f"{self.type}: {self.message}"


def _assume_utc(value: datetime) -> datetime:
    # Older writers stored naive UTC times.
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


UTCDatetime = Annotated[datetime, AfterValidator(_assume_utc)]
"""A datetime read as UTC when it comes without a zone. (An annotation rather than a field validator:
it runs only for values present, not for the many fields that are None.)"""


class AttemptError(BaseModel):
    """An earlier attempt of a task that did not complete: when it ended, on which worker, how, and
    the exception (with its traceback). The task's own ``exception`` is the latest one; this keeps the
    ones before it for the dashboard's task page."""

    model_config = ConfigDict(frozen=True)

    attempt: int
    """1 for the first run, counting runs lost to a crash."""
    finished_at: UTCDatetime
    status: str
    """The state the attempt left the task in: ``retrying``, ``failed``, ``crashed``."""
    worker: str | None = None
    exception: TaskException | None = None


MAX_ATTEMPT_ERRORS = 20
"""How many earlier attempts a record keeps in ``attempt_errors``: the first and the latest ones."""


class Task(BaseModel, Generic[R]):
    """One unit of work and everything known about it. Frozen: changes make a copy."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    id: uuid.UUID = Field(default_factory=uuid.uuid4)
    status: TaskStatus = "new"
    result: R | None = None
    """None until completed. ``Task[int]`` validates it as an int; a plain ``Task`` accepts anything.
    Either way a result is typed through the return annotation of the registered task ``spec.func``
    names (a ``-> MyModel`` task gives a ``MyModel``), see :meth:`_type_result`."""
    exception: TaskException | None = None
    spec: TaskSpec
    config: TaskConfig = DEFAULT_CONFIG

    created_at: UTCDatetime = Field(default_factory=lambda: datetime.now(UTC))
    finished_at: UTCDatetime | None = None
    scheduled_at: UTCDatetime | None = None

    retry_count: int = 0
    last_retry_at: UTCDatetime | None = None
    next_retry_at: UTCDatetime | None = None

    workflow_id: uuid.UUID | None = None
    cron_id: uuid.UUID | None = None

    claimed_by: str | None = None
    lease_expires_at: UTCDatetime | None = None
    deliveries: int = 0
    handed_back: int = 0
    """How often a worker handed this task back unrun because its function is not registered there
    (a worker of another deploy, or one missing ``--import``); bounded, see ``Worker``."""
    first_handed_back_at: UTCDatetime | None = None

    attempt_errors: list[AttemptError] = Field(default_factory=list)
    """Attempts before the current state that failed, timed out or crashed, oldest first (at most
    :data:`MAX_ATTEMPT_ERRORS`: the first one and the latest)."""
    trace_context: dict[str, str] = Field(default_factory=dict)
    """The W3C trace context (``traceparent``, ``tracestate``) of the span that enqueued the task, when
    OpenTelemetry is installed and a span was recording; the worker's span continues that trace."""

    @model_validator(mode="before")
    @classmethod
    def _read_legacy(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        if "status" not in data and "completed" in data:
            # sheppy 0.0.7 had no status, only a ``completed`` flag (and ``error`` for a failure).
            data = dict(data)
            finished = data.get("finished_at") is not None
            failed = bool(data.get("error")) and finished
            data["status"] = "completed" if data.pop("completed") else "failed" if failed else "new"
        if "error" in data:
            data = dict(data)
            error = data.pop("error")
            if error and not data.get("exception"):
                data["exception"] = TaskException.from_error_string(str(error))
        return data

    @model_validator(mode="after")
    def _coerce_result(self) -> Task[R]:
        self._type_result()
        return self

    def _type_result(self) -> None:
        """Type the result through the return annotation of the task ``spec.func`` names, whatever the
        status, as sheppy does. Only a task registered in this process is used (reading a record never
        imports anything); a result that does not fit the annotation is kept as stored."""
        if self.result is not None:
            from sheppy_core._registry import coerce_result

            coerced = coerce_result(self.spec.func, self.result)
            if coerced is not self.result:
                object.__setattr__(self, "result", coerced)

    def model_copy(self, *, update: Mapping[str, Any] | None = None, deep: bool = False) -> Self:
        """A copy with ``update`` applied (not validated, as pydantic's); a new ``result`` is typed
        through the task's return annotation as when reading a record, so a record the worker just
        completed (``TestQueue.process_next``) holds the same typed result ``get_task`` gives."""
        copied = super().model_copy(update=update, deep=deep)
        if update and update.get("result") is not None:
            copied._type_result()
        return copied

    @property
    def error(self) -> str | None:
        """Deprecated spelling of ``str(task.exception)`` (sheppy 0.0.7's field; warns, as later sheppy)."""
        warnings.warn(
            "task.error is deprecated, use task.exception instead", DeprecationWarning, stacklevel=2
        )
        return str(self.exception) if self.exception is not None else None

    @property
    def is_retriable(self) -> bool:
        return self.config.retry > 0

    @property
    def should_retry(self) -> bool:
        return self.config.retry > 0 and self.retry_count < self.config.retry

    @property
    def completed(self) -> bool:
        warnings.warn(
            "task.completed is deprecated, use task.status instead", DeprecationWarning, stacklevel=2
        )
        return self.status == "completed"

    @property
    def is_terminal(self) -> bool:
        """Finished for good: completed, or a final failure/crash/cancel."""
        return self.status in FINAL_STATUSES

    def __repr__(self) -> str:
        error = str(self.exception) if self.exception is not None else None
        parts = [
            f"id={self.id!r}",
            f"func={self.spec.func!r}",
            f"args={self.spec.args!r}",
            f"kwargs={self.spec.kwargs!r}",
            f"status={self.status!r}",
            f"error={error!r}",
        ]
        if self.retry_count:
            parts.append(f"retry_count={self.retry_count}")
        return f"Task({', '.join(parts)})"

    __str__ = __repr__


_CRON_NAMESPACE = uuid.UUID("6f1e4f5c-2c8e-4b2e-9a53-3d0b8d7f7a10")


class TaskCron(BaseModel):
    """A recurring task: ``expression`` is a cron expression (UTC), e.g. ``"*/5 * * * *"`` or ``"@daily"``.

    Workers' cron managers keep the next three occurrences of every stored cron scheduled
    (:meth:`create_task`: one id per cron and slot, so any number of workers schedule each occurrence
    once). Deleting the cron deletes its occurrences still waiting; adding it back resumes on its next
    slot.

    Missed runs: when every worker was down through several slots, the occurrences scheduled before
    are all overdue. A worker's cron manager, on its first pass after that (a worker's scheduler waits
    for it), runs only the **latest missed slot, once, at once**, and skips the older ones (stored as
    ``cancelled``, with a warning in the log). The same on every backend: the policy is applied here,
    in sheppy-core, not by the storage.
    """

    model_config = ConfigDict(frozen=True, extra="ignore")

    id: uuid.UUID = Field(default_factory=uuid.uuid4)
    expression: str
    spec: TaskSpec
    config: TaskConfig = DEFAULT_CONFIG
    managed_by: str | None = None

    @field_validator("expression")
    @classmethod
    def _check_expression(cls, value: str) -> str:
        # What croniter accepts, as in sheppy: five fields, an optional seconds (and year) field, and
        # the @hourly/@daily/@weekly/@monthly/@yearly/@annually/@midnight shorthands.
        problem = cron_expression_problem(value)
        if problem:
            raise ValueError(f"{value} is not a valid cron expression: {problem}")
        return value

    @property
    def deterministic_id(self) -> uuid.UUID:
        """Same function, arguments, config and expression → same id (the storage key), whatever
        ``id`` is. The id is sheppy-core's own (namespace and inputs differ from sheppy's; both
        have the same properties)."""
        config = self.config.model_dump(mode="json")
        if config.get("retry_delay") == DEFAULT_RETRY_DELAY:
            # retry_delay defaulted to None before it defaulted to 1.0 (as in sheppy): the same
            # identity, so crons stored before keep their ids (delete_cron, no doubled occurrences).
            config["retry_delay"] = None
        identity = json.dumps(
            {"spec": self.spec.model_dump(mode="json"), "config": config, "expression": self.expression},
            sort_keys=True,
        )
        return uuid.uuid5(_CRON_NAMESPACE, identity)

    def next_run(self, start: datetime | None = None) -> datetime:
        base = start or datetime.now(UTC)
        if base.tzinfo is None:
            base = base.replace(tzinfo=UTC)
        return _croniter()(self.expression, base.astimezone(UTC)).get_next(datetime)

    def previous_run(self, moment: datetime | None = None) -> datetime:
        """The latest slot at or before ``moment`` (default: now)."""
        base = moment or datetime.now(UTC)
        if base.tzinfo is None:
            base = base.replace(tzinfo=UTC)
        # croniter's get_prev is strictly before its start: start a microsecond later to include it.
        start = base.astimezone(UTC) + timedelta(microseconds=1)
        return _croniter()(self.expression, start).get_prev(datetime)

    def next_runs(self, count: int, start: datetime | None = None) -> list[datetime]:
        runs: list[datetime] = []
        moment = start or datetime.now(UTC)
        for _ in range(count):
            moment = self.next_run(moment)
            runs.append(moment)
        return runs

    def create_task(self, start: datetime) -> Task[Any]:
        """The occurrence at ``start``: its id is derived from the cron and the time, so every worker
        creating it makes the same task."""
        occurrence = uuid.uuid5(self.deterministic_id, start.astimezone(UTC).isoformat())
        return Task(id=occurrence, spec=self.spec, config=self.config, cron_id=self.deterministic_id)


_CRON_FIELDS: Final = (("minute", 60), ("hour", 24), ("day-of-month", 31), ("month", 12), ("day-of-week", 7),
                       ("second", 60))
"""Each field of a cron expression, in croniter's order, and how many values it has."""


def cron_expression_problem(expression: str) -> str | None:
    """Why ``expression`` is not a cron expression :class:`TaskCron` takes, in a few words (``"step 61 in
    the minute field ..."``); None when it is one. The CLI and the HTTP router show this."""
    if not _croniter().is_valid(expression):
        return "expected five fields like '*/5 * * * *', or '@hourly'"
    return _impossible_cron_part(expression)


def _impossible_cron_part(expression: str) -> str | None:
    """What croniter accepts but no one means: a step as long as its field (``*/61`` in the minute field
    fires at minute 0 only, not every 61 minutes) or a date that never comes (``0 0 31 2 *``)."""
    for (name, values), part in zip(_CRON_FIELDS, expression.split(), strict=False):
        for piece in part.split(","):
            _, slash, step = piece.partition("/")
            if slash and step.isdigit() and int(step) >= values:
                return (
                    f"step {step} in the {name} field is not less than the field's {values} values, "
                    "so it matches only the range's first value"
                )
    try:
        _croniter()(expression, datetime(2000, 1, 1, tzinfo=UTC)).get_next(datetime)
    except Exception:  # croniter's CroniterBadDateError: it searched and found no date
        return "it never fires (no date matches its day and month fields)"
    return None


def _croniter() -> type[croniter]:
    # Imported on first use (with dateutil it is ~20 ms): processes that never touch a cron skip it.
    from croniter import croniter

    return croniter


def utc_in(delta: timedelta) -> datetime:
    return datetime.now(UTC) + delta
