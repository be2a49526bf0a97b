"""Workflows: a plain generator orchestrates tasks, and the store remembers where it is.

A ``@workflow`` function yields tasks; ``yield t`` resumes with the *finished* task, ``yield [t1, t2]``
fans out and resumes with all of them, ``yield sub_workflow(...)`` runs another workflow inline and
resumes with its return value. Nothing keeps a generator alive between steps: execution is **replay**.
Whenever a step group finishes, the generator is run again from the start and every finished step is
fed back in order, until it reaches a step that is not finished yet (the workflow waits) or returns
(the workflow completes) or raises (the workflow fails).

Step ids are deterministic (``uuid5`` of the workflow id and the step index, as sheppy), so a replay
names the same tasks again and re-submitting one is harmless (``append`` with ``unique=True``). The
record stores a signature (function and a digest of the arguments) per step; a replay that yields a
different task at a known index fails the workflow with :class:`WorkflowError` instead of diverging.

How resumes stay exactly-once on any backend (only the ``Backend`` contract is used, never a lock in
one process's memory):

1. A step's outcome is stored first (``store_result``), then ``mark_workflow_task_complete`` removes it
   from the workflow's pending set. The contract guarantees that exactly one caller sees 0, and since
   every sibling stores before it marks, that caller sees every result of the group.
2. The resume replays and writes the next state with ``store_workflow(if_version=v)``: a
   compare-and-set. Only a resume that *advances* the workflow writes; if two resumes race (a recovery
   and a normal one), one wins and the other re-reads and finds nothing left to do.
3. The next step group is appended after the winning write, with deterministic ids.

A process can die between any two of those calls (SIGKILL after ``store_result`` and before the mark,
or after the write and before the append). On a backend whose store outlives a process
(``SHARED_STORE``), each workflow therefore has a **watch**: an internal task scheduled every
``watch_interval`` seconds while the workflow runs. It runs the same idempotent resume (advance if the
current group is finished, re-submit steps that are missing) and completes once the workflow has ended.
Being a queued task it is itself at-least-once: a worker killed while running it hands it on through its
expired lease. Internal tasks are recognised by the processor before the registry is consulted and are
deleted when done.
"""

from __future__ import annotations

import asyncio
import hashlib
import inspect
import json
import logging
import math
import threading
import time
import typing
import uuid
import warnings
from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, NamedTuple, ParamSpec, overload

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, model_validator

from sheppy_core._dependencies import is_injected
from sheppy_core._registry import TaskDefinition, typed_or_raw
from sheppy_core._runner import released, rescheduled
from sheppy_core._task import _module_name, _to_json, validate_arguments
from sheppy_core.backend import SHARED_STORE, WORKFLOWS
from sheppy_core.exceptions import ConfigurationError, NotSupportedError, WorkflowError
from sheppy_core.models import CURRENT_TASK, Task, TaskException, TaskSpec

if TYPE_CHECKING:
    from sheppy_core._queue import Queue

__all__ = [
    "DEFAULT_WATCH_INTERVAL",
    "Workflow",
    "WorkflowDefinition",
    "WorkflowResult",
    "workflow",
]

logger = logging.getLogger("sheppy.workflow")

P = ParamSpec("P")

WORKFLOW_TASK_NS = uuid.UUID("7005b432-c135-4131-b19e-d3dc89703a9b")
"""Namespace of step ids: ``uuid5(WORKFLOW_TASK_NS, f"{workflow_id}:{step_index}")``, as sheppy."""

DEFAULT_WATCH_INTERVAL = 30.0
"""Seconds between two runs of a workflow's recovery watch (shared-store backends only)."""

WATCH_FUNC = "sheppy_core._workflow:watch"
RESUME_FUNC = "sheppy_core._workflow:resume"
ENGINE_FUNCS = frozenset({WATCH_FUNC, RESUME_FUNC})
"""Internal task names handled by the engine itself (never looked up in the task registry)."""

_CAS_ATTEMPTS = 50
_SUBMIT_GRACE = 1.0
"""Seconds after a state was written during which its writer is presumed to be appending its steps: a
recovery re-submits a missing step only after that (or one watch interval, if longer), so it does not
race a writer that is merely slow."""
_ANY: TypeAdapter[Any] = TypeAdapter(Any)


# -- records ---------------------------------------------------------------------------------------


class Workflow(BaseModel):  # type: ignore[no-redef]  # pydantic's plugin adds **kwargs (extra="ignore")
    """One run of a workflow function, as stored. Frozen: the engine stores new versions.

    ``task_order`` holds the step ids in step order and ``step_signatures`` what each step called (for
    non-determinism detection); ``pending_task_ids`` is the step group the workflow waits for and
    ``processed_tasks`` the finished steps by id (both as in sheppy 0.0.7); ``version`` counts stored
    states (the compare-and-set token). ``finished_at`` is set when it completed (``completed=True``,
    ``final_result``) or failed (``exception``).
    """

    model_config = ConfigDict(frozen=True, extra="ignore")

    id: uuid.UUID = Field(default_factory=uuid.uuid4)
    func: str
    args: tuple[Any, ...] = ()
    kwargs: dict[str, Any] = Field(default_factory=dict)
    task_order: list[str] = Field(default_factory=list)
    step_signatures: list[str] = Field(default_factory=list)
    pending_task_ids: list[str] = Field(default_factory=list)
    processed_tasks: dict[str, Task[Any]] = Field(default_factory=dict)
    completed: bool = False
    final_result: Any = None
    exception: TaskException | None = None
    created_at: datetime = Field(default_factory=lambda: datetime.now(UTC))
    finished_at: datetime | None = None
    version: int = 0
    updated_at: datetime | None = None
    watch_interval: float | None = None

    @model_validator(mode="before")
    @classmethod
    def _read_legacy(cls, data: Any) -> Any:
        # sheppy 0.0.7 stored the failure as an ``error`` string.
        if isinstance(data, dict) and "error" in data:
            data = dict(data)
            error = data.pop("error")
            if error and not data.get("exception"):
                data["exception"] = TaskException.from_error_string(str(error))
        # Records that kept no step map (or not as {id: task}) are read without one.
        if isinstance(data, dict) and not isinstance(data.get("processed_tasks", {}), dict):
            data = dict(data)
            data.pop("processed_tasks")
        return data

    @model_validator(mode="after")
    def _coerce_final_result(self) -> Workflow:
        if self.completed and self.final_result is not None:
            object.__setattr__(self, "final_result", typed_final_result(self.func, self.final_result))
        return self

    @property
    def error(self) -> str | None:
        """Deprecated spelling of ``str(workflow.exception)`` (sheppy 0.0.7's field; warns, as later
        sheppy)."""
        warnings.warn(
            "workflow.error is deprecated, use workflow.exception instead", DeprecationWarning, stacklevel=2
        )
        return str(self.exception) if self.exception is not None else None

    @property
    def is_finished(self) -> bool:
        return self.finished_at is not None or self.completed

    def get_stored_task_ids(self) -> dict[int, uuid.UUID]:
        """Step index -> step id of the steps submitted so far (sheppy's name)."""
        return {index: uuid.UUID(task_id) for index, task_id in enumerate(self.task_order)}

    def get_incomplete_task_ids(self) -> list[uuid.UUID]:
        """Ids of the step group the workflow waits for (sheppy 0.0.7's name)."""
        return [uuid.UUID(task_id) for task_id in self.pending_task_ids]

    def __repr__(self) -> str:
        state = "completed" if self.completed else "failed" if self.exception else "running"
        # sheppy's fields first, then ours.
        return (
            f"Workflow(id={self.id!r}, func={self.func!r}, completed={self.completed}, "
            f"steps={len(self.task_order)}, state={state}, version={self.version})"
        )

    __str__ = __repr__


def typed_final_result(func: str, value: Any) -> Any:
    """A stored (JSON) ``final_result`` as the type the workflow's ``Generator[..., R]`` names, when
    the workflow is registered here and the value fits; otherwise the value unchanged."""
    definition = _definitions.get(func)
    return typed_or_raw(definition.return_adapter if definition is not None else None, value)


class WorkflowResult(NamedTuple):
    """What driving a workflow produced: its state and the tasks it now waits for."""

    workflow: Workflow
    pending_tasks: list[Task[Any]]


WorkflowRef = Workflow | uuid.UUID | str


def workflow_id_of(ref: WorkflowRef) -> str:
    if isinstance(ref, Workflow):
        return str(ref.id)
    if isinstance(ref, uuid.UUID):
        return str(ref)
    if isinstance(ref, str):
        return str(uuid.UUID(ref))
    raise TypeError(f"expected a Workflow, UUID or id string, got {type(ref).__name__}")


# -- definitions and the decorator -----------------------------------------------------------------


def _result_adapter(hint: Any) -> TypeAdapter[Any] | None:
    """The adapter for a ``Generator[Y, S, R]`` annotation's ``R`` (None when absent or ``Any``)."""
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin is not Generator or len(args) != 3:
        return None
    returns = args[2]
    if returns in (Any, None, type(None)):
        return None
    return TypeAdapter(returns)


@dataclass(eq=False)
class WorkflowDefinition(TaskDefinition):
    """A registered workflow function. Shaped like a ``TaskDefinition`` so ``@task``'s argument
    validation applies unchanged; ``return_adapter`` comes from the ``Generator`` annotation."""

    def __post_init__(self) -> None:
        self.signature = inspect.signature(self.function)
        try:
            self.hints = typing.get_type_hints(self.function, include_extras=True)
        except Exception as exc:
            raise ConfigurationError(
                f"cannot resolve the annotations of workflow {self.name}: {exc}"
            ) from exc
        self.return_adapter = _result_adapter(self.hints.get("return"))
        self.is_async = False


_lock = threading.Lock()
_definitions: dict[str, WorkflowDefinition] = {}


def get_workflow_definition(name: str) -> WorkflowDefinition | None:
    """The registered workflow called ``name`` in this process, or None (nothing is ever imported)."""
    return _definitions.get(name)


def registered_workflows() -> list[str]:
    return sorted(_definitions)


def _check_function(function: Callable[..., Any]) -> None:
    if inspect.isasyncgenfunction(function):
        raise TypeError(
            "@workflow does not support async generator functions, use a regular generator function "
            f"({function.__qualname__} is an async generator)"
        )
    if not inspect.isgeneratorfunction(function):
        raise TypeError(
            "@workflow can only decorate generator functions (a function that yields tasks); "
            f"{function.__qualname__} is not one"
        )


def _decorate(function: Callable[P, Generator[Any, Any, Any]]) -> Callable[P, Workflow]:
    _check_function(function)
    name = f"{_module_name(function)}:{function.__qualname__}"
    definition = WorkflowDefinition(name, function, {})
    for parameter in definition.signature.parameters.values():
        if is_injected(parameter, definition.hints.get(parameter.name)):
            what = "CURRENT_TASK injection" if parameter.default is CURRENT_TASK else "dependency injection"
            raise TypeError(
                f"@workflow function cannot use {what} (parameter '{parameter.name}'): {name} is "
                f"replayed from its stored arguments, not run as a task"
            )
    with _lock:
        _definitions[name] = definition

    def factory(*args: P.args, **kwargs: P.kwargs) -> Workflow:
        valid_args, valid_kwargs = validate_arguments(definition, tuple(args), dict(kwargs))
        json_args, json_kwargs = _to_json(definition, valid_args, valid_kwargs)
        return Workflow(func=name, args=json_args, kwargs=json_kwargs)

    factory.__name__ = function.__name__
    factory.__qualname__ = function.__qualname__
    factory.__doc__ = function.__doc__
    factory.__module__ = function.__module__
    factory.__wrapped__ = function  # type: ignore[attr-defined]
    factory.sheppy_definition = definition  # type: ignore[attr-defined]
    return factory


@overload
def workflow(function: Callable[P, Generator[Any, Any, Any]], /) -> Callable[P, Workflow]: ...
@overload
def workflow() -> Callable[[Callable[P, Generator[Any, Any, Any]]], Callable[P, Workflow]]: ...


def workflow(
    function: Callable[P, Generator[Any, Any, Any]] | None = None, /
) -> Callable[P, Workflow] | Callable[[Callable[P, Generator[Any, Any, Any]]], Callable[P, Workflow]]:
    """Make a plain generator function a workflow factory; usable as ``@workflow`` or ``@workflow()``.

    Calling the factory validates the arguments like ``@task`` (``pydantic.ValidationError``) and
    returns a :class:`Workflow`; nothing runs until ``queue.add_workflow(wf)``. The function is
    registered under ``"module:function"``: a worker only replays workflows registered in its process.
    Async generators, non-generators and ``CURRENT_TASK``/``Depends`` parameters raise ``TypeError``.
    """
    if function is not None:
        return _decorate(function)
    return _decorate


# -- replay ----------------------------------------------------------------------------------------


def step_id(workflow_id: uuid.UUID | str, index: int) -> uuid.UUID:
    return uuid.uuid5(WORKFLOW_TASK_NS, f"{workflow_id}:{index}")


def step_signature(task: Task[Any]) -> str:
    payload = json.dumps([list(task.spec.args), task.spec.kwargs], sort_keys=True, default=str)
    return f"{task.spec.func}#{hashlib.sha256(payload.encode()).hexdigest()[:16]}"


def _describe(signature: str) -> str:
    func, _, digest = signature.partition("#")
    return f"{func} (arguments digest {digest})"


class _Pending(Exception):
    """Internal: the replay reached a step group that is not finished."""

    def __init__(self, tasks: list[Task[Any]]) -> None:
        super().__init__()
        self.tasks = tasks


@dataclass
class _Replay:
    """One replay of a workflow against the finished step records known now."""

    workflow: Workflow
    finished: dict[str, Task[Any]]
    order: list[str] = field(init=False)
    signatures: list[str] = field(init=False)
    processed: dict[str, Task[Any]] = field(init=False)
    index: int = 0

    def __post_init__(self) -> None:
        self.order = list(self.workflow.task_order)
        self.signatures = list(self.workflow.step_signatures)
        self.processed = {}

    def run(self) -> WorkflowResult:
        """The workflow's next state; never raises for a failing workflow (that is a state too)."""
        wf = self.workflow
        try:
            value = self._coerce(wf.func, self._run_workflow(wf.func, wf.args, wf.kwargs))
            if self.index < len(self.order):
                raise WorkflowError(
                    f"workflow {wf.func} ({wf.id}) is not deterministic: it returned after "
                    f"{self.index} step(s) on replay, but an earlier run submitted {len(self.order)}"
                )
        except _Pending as pending:
            return WorkflowResult(self._state(pending=pending.tasks), pending.tasks)
        except Exception as exc:
            return WorkflowResult(self._state(exception=exc), [])
        return WorkflowResult(self._state(result=value), [])

    def _state(
        self,
        *,
        pending: list[Task[Any]] | None = None,
        result: Any = None,
        exception: BaseException | None = None,
    ) -> Workflow:
        update: dict[str, Any] = {
            "task_order": self.order,
            "step_signatures": self.signatures,
            "processed_tasks": self.processed,
        }
        if pending is not None:
            update["pending_task_ids"] = [str(t.id) for t in pending]
        else:
            update["pending_task_ids"] = []
            update["finished_at"] = datetime.now(UTC)
            if exception is None:
                update["completed"] = True
                # What the caller gets back reads like a stored record: typed by the annotation.
                update["final_result"] = typed_final_result(self.workflow.func, result)
            else:
                update["exception"] = TaskException.from_exception(exception)
        return self.workflow.model_copy(update=update)

    def _run_workflow(self, func: str, args: Sequence[Any], kwargs: dict[str, Any]) -> Any:
        definition = get_workflow_definition(func)
        if definition is None:
            raise WorkflowError(
                f"{func!r} is not a registered @workflow in this process, so it cannot be replayed. "
                f"Import the module that defines it in the worker (sheppy work --import MODULE)."
            )
        call_args, call_kwargs = validate_arguments(definition, tuple(args), dict(kwargs), at_run=True)
        generator = definition.function(*call_args, **call_kwargs)
        try:
            to_send: Any = None
            while True:
                try:
                    yielded = generator.send(to_send)
                except StopIteration as stop:
                    return stop.value
                to_send = self._handle(yielded)
        finally:
            generator.close()

    @staticmethod
    def _coerce(func: str, value: Any) -> Any:
        """A return value as stored: validated by the ``Generator`` annotation, then made JSON."""
        definition = get_workflow_definition(func)
        if definition is None or definition.return_adapter is None:
            return _ANY.dump_python(value, mode="json")
        return definition.return_adapter.dump_python(
            definition.return_adapter.validate_python(value), mode="json"
        )

    def _handle(self, yielded: Any) -> Any:
        items: list[Any]
        wrap: type[list[Any]] | type[tuple[Any, ...]] | None
        if isinstance(yielded, (list, tuple)):
            items, wrap = list(yielded), type(yielded)
        else:
            items, wrap = [yielded], None
        if items and all(isinstance(i, Workflow) for i in items):
            values = []
            for sub in items:
                definition = get_workflow_definition(sub.func)
                # The sub-workflow's return value goes back as is (validated by its annotation, if any).
                value = self._run_workflow(sub.func, sub.args, sub.kwargs)
                if definition is not None and definition.return_adapter is not None:
                    value = definition.return_adapter.validate_python(value)
                values.append(value)
            return wrap(values) if wrap is not None else values[0]
        if all(isinstance(i, Task) for i in items):
            results: list[Task[Any]] = []
            waiting: list[Task[Any]] = []
            for item in items:
                step = self._step(item)
                done = self.finished.get(str(step.id))
                if done is not None:
                    self.processed[str(step.id)] = done
                    # A copy: what the generator does to a result never reaches the stored records.
                    results.append(done.model_copy(deep=True))
                else:
                    waiting.append(step)
            if waiting:
                raise _Pending(waiting)
            return wrap(results) if wrap is not None else results[0]
        if wrap is None:
            got = f"{type(yielded).__name__} ({yielded!r:.80})"
        else:
            got = f"{wrap.__name__} containing: {', '.join(sorted({type(i).__name__ for i in items}))}"
        raise WorkflowError(
            "Invalid yield in workflow: expected a Task, a Workflow, or a homogeneous list or tuple of "
            f"one of those, got {got}"
        )

    def _step(self, task: Task[Any]) -> Task[Any]:
        index = self.index
        self.index += 1
        signature = step_signature(task)
        expected_id = str(step_id(self.workflow.id, index))
        if index < len(self.order):
            if self.signatures[index : index + 1] and self.signatures[index] != signature:
                raise WorkflowError(
                    f"workflow {self.workflow.func} ({self.workflow.id}) is not deterministic: step "
                    f"{index} was {_describe(self.signatures[index])} on an earlier run, but the "
                    f"replay yielded {_describe(signature)}. A workflow must yield the same tasks in the "
                    f"same order for the same results (no randomness, clock or outside state)."
                )
            expected_id = self.order[index]
        else:
            self.order.append(expected_id)
            self.signatures.append(signature)
        return task.model_copy(
            update={"id": uuid.UUID(expected_id), "workflow_id": self.workflow.id, "status": "new"}
        )


def replay(workflow_record: Workflow, finished: dict[str, Task[Any]]) -> WorkflowResult:
    """Run ``workflow_record``'s generator against ``finished`` step records (``{id: Task}``)."""
    return _Replay(workflow_record, finished).run()


# -- driving a workflow through a queue ------------------------------------------------------------


def _watches(queue: Queue) -> bool:
    return SHARED_STORE in queue.backend.capabilities


def _engine_task(func: str, workflow_id: str, task_id: uuid.UUID, *args: Any) -> Task[Any]:
    return Task(id=task_id, spec=TaskSpec(func=func, args=(workflow_id, *args)))


def watch_task(workflow_id: str) -> Task[Any]:
    return _engine_task(WATCH_FUNC, workflow_id, uuid.uuid5(WORKFLOW_TASK_NS, f"{workflow_id}:watch"))


def resume_task(workflow_id: str, cause: str) -> Task[Any]:
    return _engine_task(
        RESUME_FUNC, workflow_id, uuid.uuid5(WORKFLOW_TASK_NS, f"{workflow_id}:resume:{cause}")
    )


async def _finished_steps(queue: Queue, wf: Workflow) -> tuple[dict[str, Task[Any]], set[str]]:
    """Finished step records by id, and the ids of every step record that exists at all."""
    if not wf.task_order:
        return {}, set()
    backend = await queue._ensure()
    records = await backend.get_tasks(queue.name, list(wf.task_order))
    finished: dict[str, Task[Any]] = {
        task_id: Task.model_validate(record)
        for task_id, record in records.items()
        if record.get("finished_at") is not None
    }
    return finished, set(records)


async def _load(queue: Queue, workflow_id: str) -> Workflow | None:
    backend = await queue._ensure()
    record = (await backend.get_workflows(queue.name, [workflow_id])).get(workflow_id)
    return Workflow.model_validate(record) if record is not None else None


async def _submit(queue: Queue, tasks: list[Task[Any]]) -> None:
    if tasks:
        # Deterministic ids + unique append: a step is stored and queued once, whoever submits it.
        await queue.add(tasks)


async def start(
    queue: Queue, wf: Workflow, *, watch_interval: float | None = DEFAULT_WATCH_INTERVAL
) -> WorkflowResult:
    """Store ``wf`` and submit its first step group (``Queue.add_workflow``). Adding a workflow whose id
    is already stored changes nothing and returns the stored state."""
    if not isinstance(wf, Workflow):
        raise TypeError(f"add_workflow() takes a Workflow (call your @workflow function), got {wf!r}")
    if watch_interval is not None and watch_interval <= 0:
        raise ValueError("watch_interval must be > 0 (or None to disable the recovery watch)")
    backend = await queue._ensure()
    if WORKFLOWS not in backend.capabilities:
        raise NotSupportedError(f"{type(backend).__name__} does not declare capability 'workflows'")
    workflow_id = str(wf.id)
    interval = watch_interval if _watches(queue) else None
    first = replay(wf.model_copy(update={"watch_interval": interval, "version": 0}), {})
    state = first.workflow.model_copy(update={"version": 1, "updated_at": datetime.now(UTC)})
    if interval is not None and not state.is_finished:
        # Scheduled before the record is stored: whatever happens after this line, a worker will look.
        watch = watch_task(workflow_id)
        await backend.schedule(
            queue.name, watch.model_dump(mode="json"), datetime.now(UTC) + timedelta(seconds=interval)
        )
    if not await backend.store_workflow(queue.name, state.model_dump(mode="json"), if_version=0):
        existing = await _load(queue, workflow_id)
        if existing is None:  # deleted in between; nothing sensible to return but the attempt
            return WorkflowResult(state, first.pending_tasks)
        return WorkflowResult(existing, [])
    await _submit(queue, first.pending_tasks)
    if getattr(backend, "instant_processing", False):
        # memory:// ran the steps inline; report where the workflow got to.
        latest = await _load(queue, workflow_id)
        if latest is not None and latest.version != state.version:
            return WorkflowResult(latest, [])
    return WorkflowResult(state, first.pending_tasks)


async def resume(
    queue: Queue, workflow_id: str, *, defer_unregistered: bool = False
) -> WorkflowResult | None:
    """Bring a workflow up to date with its finished steps; idempotent and safe to run concurrently.

    Advances (stores the next state with compare-and-set and submits the next steps) when the current
    step group is finished; otherwise re-submits any step that is missing and stores nothing. Returns
    None for an unknown workflow. ``defer_unregistered``: when the workflow function is not registered
    here (a client cancelling a step), hand the resume to a worker through an internal task instead
    of failing the workflow.
    """
    backend = await queue._ensure()
    lost_race = False
    for _ in range(_CAS_ATTEMPTS):
        wf = await _load(queue, workflow_id)
        if wf is None or wf.is_finished:
            return None if wf is None else WorkflowResult(wf, [])
        if defer_unregistered and get_workflow_definition(wf.func) is None:
            await queue.add(resume_task(workflow_id, f"v{wf.version}"))
            return WorkflowResult(wf, [])
        finished, existing = await _finished_steps(queue, wf)
        outcome = replay(wf, finished)
        advanced = outcome.workflow.is_finished or len(outcome.workflow.task_order) != len(wf.task_order)
        if not advanced:
            written = wf.updated_at or wf.created_at
            grace = max(_SUBMIT_GRACE, wf.watch_interval or 0.0)
            settled = (datetime.now(UTC) - written).total_seconds() > grace
            if settled and not lost_race:
                # Steps lost by a crash after an earlier write. Right after a write (or after losing a
                # race) the writer is appending them itself — and if it died, the watch comes back.
                await _submit(queue, [t for t in outcome.pending_tasks if str(t.id) not in existing])
            return WorkflowResult(wf, outcome.pending_tasks)
        state = outcome.workflow.model_copy(
            update={"version": wf.version + 1, "updated_at": datetime.now(UTC)}
        )
        if await backend.store_workflow(queue.name, state.model_dump(mode="json"), if_version=wf.version):
            _log_state(queue, state)
            await _submit(queue, outcome.pending_tasks)
            if state.is_finished and state.watch_interval is not None:
                await _retire_watch(queue, workflow_id)
            return WorkflowResult(state, outcome.pending_tasks)
        # Another resume advanced it first; look again.
        lost_race = True
    raise WorkflowError(f"workflow {workflow_id}: gave up after {_CAS_ATTEMPTS} conflicting updates")


async def _retire_watch(queue: Queue, workflow_id: str) -> None:
    """Remove a finished workflow's watch now rather than when it next fires. A watch that is running
    at this moment cannot be cancelled; it finds the workflow finished and removes itself."""
    backend = await queue._ensure()
    watch_id = str(watch_task(workflow_id).id)
    if await backend.cancel(queue.name, watch_id) is not None:
        await backend.delete_task(queue.name, watch_id)


def _log_state(queue: Queue, wf: Workflow) -> None:
    if wf.completed:
        logger.info("workflow %s (%s) on queue %r completed", wf.id, wf.func, queue.name)
    elif wf.exception is not None:
        logger.error("workflow %s (%s) on queue %r failed: %s", wf.id, wf.func, queue.name, wf.exception)
    else:
        logger.debug("workflow %s advanced to step %d", wf.id, len(wf.task_order))


async def step_finished(queue: Queue, task: Task[Any], *, defer_unregistered: bool = False) -> None:
    """Called once a step's final outcome is stored (completed, failed, crashed, cancelled, timed out).

    Only the caller that removes the group's last pending id resumes the workflow; a failure here is
    logged, not raised — the outcome is stored and the watch (shared stores) resumes the workflow.
    """
    if task.workflow_id is None or task.finished_at is None:
        return
    workflow_id = str(task.workflow_id)
    try:
        backend = await queue._ensure()
        remaining = await backend.mark_workflow_task_complete(queue.name, workflow_id, str(task.id))
        if remaining == 0:
            await resume(queue, workflow_id, defer_unregistered=defer_unregistered)
    except Exception:
        logger.exception("resuming workflow %s after step %s failed", workflow_id, task.id)


async def run_engine_task(queue: Queue, task: Task[Any]) -> Task[Any]:
    """Run an internal workflow task (a watch or a deferred resume) and store its outcome.

    Redelivery after a crash simply runs it again: everything it does is idempotent.
    """
    workflow_id = str(task.spec.args[0]) if task.spec.args else ""
    state = await resume(queue, workflow_id) if workflow_id else None
    wf = state.workflow if state is not None else None
    if task.spec.func == WATCH_FUNC and wf is not None and not wf.is_finished:
        interval = wf.watch_interval or DEFAULT_WATCH_INTERVAL
        again = rescheduled(task, datetime.now(UTC) + timedelta(seconds=interval))
        await queue._store_result(again)
        return again
    done = released(task, status="completed", finished_at=datetime.now(UTC))
    # Internal bookkeeping is not the user's data: leave no record behind. Shielded, because once the
    # outcome is stored the claim is gone and a heartbeat may cancel this job.
    await asyncio.shield(_store_and_delete(queue, done))
    return done


async def _store_and_delete(queue: Queue, done: Task[Any]) -> None:
    await queue._store_result(done)
    backend = await queue._ensure()
    await backend.delete_task(queue.name, str(done.id))


def is_engine_task(task: Task[Any]) -> bool:
    return task.spec.func in ENGINE_FUNCS


# -- reading and waiting ---------------------------------------------------------------------------


async def get_workflows(queue: Queue, ids: list[str]) -> dict[uuid.UUID, Workflow]:
    backend = await queue._ensure()
    records = await backend.get_workflows(queue.name, ids)
    return {uuid.UUID(k): Workflow.model_validate(v) for k, v in records.items()}


async def wait_for(queue: Queue, ids: list[str], timeout: float) -> dict[uuid.UUID, Workflow]:
    """Finished workflows among ``ids``, with ``Queue.wait_for``'s timeout rules: 0 waits for ever,
    > 0 raises ``TimeoutError`` unless all finished in time, < 0 returns at once. Unknown ids are not
    waited for. Blocks on the pending steps' results (woken by the store), then polls briefly for the
    resume that follows them."""
    backend = await queue._ensure()
    deadline = None if timeout <= 0 else time.monotonic() + timeout
    backoff = 0.01
    while True:
        workflows = await get_workflows(queue, ids)
        done = {k: w for k, w in workflows.items() if w.is_finished}
        running = [w for w in workflows.values() if not w.is_finished]
        if timeout < 0 or not running:
            return done
        remaining = math.inf if deadline is None else deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError(f"{len(running)} of {len(ids)} workflow(s) did not finish within {timeout} s")
        pending = [t for w in running for t in w.pending_task_ids]
        started = time.monotonic()
        try:
            await backend.get_results(queue.name, pending, timeout=min(remaining, 1.0))
        except TimeoutError:
            backoff = 0.01
            continue
        if time.monotonic() - started < 0.005:
            # The steps were already finished: the resume is on its way (or a watch will do it).
            await asyncio.sleep(min(backoff, max(remaining, 0.0)))
            backoff = min(backoff * 2, 0.5)
        else:
            backoff = 0.01
