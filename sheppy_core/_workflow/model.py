"""The workflow record (``Workflow``), what driving one returns (``WorkflowResult``) and the
``@workflow`` decorator that makes them. Nothing here talks to a store."""

from __future__ import annotations

import inspect
import uuid
import warnings
from collections.abc import Callable, Generator
from datetime import UTC, datetime
from typing import Any, NamedTuple, ParamSpec, overload

from pydantic import BaseModel, ConfigDict, Field, model_validator

from sheppy_core._dependencies import is_injected
from sheppy_core._registry import (
    WorkflowDefinition,
    get_workflow_definition,
    register_workflow,
    typed_or_raw,
)
from sheppy_core._task import arguments_to_json, module_name_of, validate_arguments
from sheppy_core.models import CURRENT_TASK, Task, TaskException

__all__ = [
    "DEFAULT_WATCH_INTERVAL",
    "WORKFLOW_TASK_NS",
    "Workflow",
    "WorkflowRef",
    "WorkflowResult",
    "step_rows",
    "workflow",
    "workflow_id_of",
]

P = ParamSpec("P")

WORKFLOW_TASK_NS = uuid.UUID("7005b432-c135-4131-b19e-d3dc89703a9b")
"""Namespace of step ids: ``uuid5(WORKFLOW_TASK_NS, f"{workflow_id}:{step_index}")``, as sheppy."""

DEFAULT_WATCH_INTERVAL = 30.0
"""Seconds between two runs of a workflow's recovery watch (shared-store backends only)."""


class Workflow(BaseModel):  # type: ignore[no-redef]  # pydantic's plugin adds **kwargs (extra="ignore")
    """One run of a workflow function, as stored. Frozen: the engine stores new versions.

    ``task_order`` holds the step ids in step order and ``step_signatures`` what each step called (for
    non-determinism detection); ``pending_task_ids`` is the step group the workflow waits for and
    ``processed_tasks`` the finished steps by id (both as in sheppy 0.0.7); ``version`` counts stored
    states (the compare-and-set token). ``finished_at`` is set when it completed (``completed=True``,
    ``final_result``) or failed (``exception``). ``step_groups`` (ours) is how many steps each yield
    submitted, in order: ``[1, 3, 1]`` is a step, a fan-out of three, a step (see :func:`step_rows`).
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
    step_groups: list[int] = Field(default_factory=list)

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


def step_rows(wf: Workflow) -> list[list[str]]:
    """``wf.task_order`` cut into the step groups its yields submitted together (a fan-out is one row).

    Steps that ``step_groups`` does not account for (a record written before the field, or one whose
    groups do not add up) read one step per row, the way such a record was always drawn.
    """
    rows: list[list[str]] = []
    start = 0
    for size in wf.step_groups:
        if size < 1 or start + size > len(wf.task_order):
            break
        rows.append(list(wf.task_order[start : start + size]))
        start += size
    rows.extend([step] for step in wf.task_order[start:])
    return rows


def typed_final_result(func: str, value: Any) -> Any:
    """A stored (JSON) ``final_result`` as the type the workflow's ``Generator[..., R]`` names, when
    the workflow is registered here and the value fits; otherwise the value unchanged."""
    definition = get_workflow_definition(func)
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


# -- the decorator ---------------------------------------------------------------------------------


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
    name = f"{module_name_of(function)}:{function.__qualname__}"
    definition = WorkflowDefinition(name, function, {})
    for parameter in definition.signature.parameters.values():
        if is_injected(parameter, definition.hints.get(parameter.name)):
            what = "CURRENT_TASK injection" if parameter.default is CURRENT_TASK else "dependency injection"
            raise TypeError(
                f"@workflow function cannot use {what} (parameter '{parameter.name}'): {name} is "
                f"replayed from its stored arguments, not run as a task"
            )
    register_workflow(definition)

    def factory(*args: P.args, **kwargs: P.kwargs) -> Workflow:
        valid_args, valid_kwargs = validate_arguments(definition, tuple(args), dict(kwargs))
        json_args, json_kwargs = arguments_to_json(definition, valid_args, valid_kwargs)
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
