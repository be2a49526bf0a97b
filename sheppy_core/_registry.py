"""The registry of ``@task`` (and ``@workflow``) functions: the only things a worker will ever run.

A function enters the registry when its module is imported and ``@task`` decorates it, keyed by
``"package.module:function"``. A message naming anything else — ``os:system``, a plain function, a
module nobody imported — is never imported or called: the worker fails that task with
``TaskNotRegisteredError``. Workers import their task modules up front (``Worker(task_modules=...)``,
``sheppy work --import``), optionally limited by an allow-list of module prefixes.
"""

from __future__ import annotations

import importlib
import inspect
import os
import sysconfig
import threading
import traceback
import typing
from collections.abc import Callable, Generator, Iterable
from dataclasses import dataclass, field
from typing import Any

from pydantic import TypeAdapter, ValidationError

from sheppy_core.exceptions import ConfigurationError, TaskNotRegisteredError

__all__ = [
    "TaskDefinition",
    "WorkflowDefinition",
    "coerce_result",
    "get_definition",
    "get_workflow_definition",
    "import_failure",
    "import_task_modules",
    "register",
    "register_workflow",
    "registered_names",
    "registered_workflows",
]


@dataclass(eq=False)
class TaskDefinition:
    """A registered task function and what is needed to call it safely."""

    name: str
    function: Callable[..., Any]
    options: dict[str, Any]
    middleware: list[Callable[..., Any]] = field(default_factory=list)
    signature: inspect.Signature = field(init=False)
    hints: dict[str, Any] = field(init=False)
    return_adapter: TypeAdapter[Any] | None = field(init=False)
    is_async: bool = field(init=False)
    call_plan: Any = field(default=None, init=False, repr=False)  # filled by sheppy_core._task

    def __post_init__(self) -> None:
        self.signature = inspect.signature(self.function)
        try:
            self.hints = _type_hints(self.function)
        except Exception as exc:  # unresolvable forward references: a clear error at decoration time
            raise ConfigurationError(f"cannot resolve the annotations of task {self.name}: {exc}") from exc
        returns = self.hints.get("return", inspect.Signature.empty)
        self.return_adapter = (
            None if returns in (inspect.Signature.empty, None, type(None), Any) else (TypeAdapter(returns))
        )
        self.is_async = inspect.iscoroutinefunction(self.function)


def _type_hints(function: Callable[..., Any]) -> dict[str, Any]:
    return typing.get_type_hints(function, include_extras=True)


def _generator_result_adapter(hint: Any) -> TypeAdapter[Any] | None:
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
            self.hints = _type_hints(self.function)
        except Exception as exc:
            raise ConfigurationError(
                f"cannot resolve the annotations of workflow {self.name}: {exc}"
            ) from exc
        self.return_adapter = _generator_result_adapter(self.hints.get("return"))
        self.is_async = False


_lock = threading.Lock()
_tasks: dict[str, TaskDefinition] = {}
_workflows: dict[str, WorkflowDefinition] = {}
"""Workflows are kept apart from tasks: a workflow name is never run as a task, nor the reverse."""


def register(definition: TaskDefinition) -> None:
    with _lock:
        _tasks[definition.name] = definition


def get_definition(name: str) -> TaskDefinition:
    """The registered definition for ``name``, or ``TaskNotRegisteredError`` — never an import."""
    definition = _tasks.get(name)
    if definition is None:
        raise TaskNotRegisteredError(
            f"{name!r} is not a registered @task in this process, so nothing was run. Import the module "
            f"that defines it in the worker (sheppy work --import MODULE, Worker(task_modules=[...]) or "
            f"[tool.sheppy] tasks), and make sure the function is decorated with @task."
        )
    return definition


def find_definition(name: str) -> TaskDefinition | None:
    return _tasks.get(name)


def registered_names() -> list[str]:
    return sorted(_tasks)


def register_workflow(definition: WorkflowDefinition) -> None:
    with _lock:
        _workflows[definition.name] = definition


def get_workflow_definition(name: str) -> WorkflowDefinition | None:
    """The registered workflow called ``name`` in this process, or None (nothing is ever imported)."""
    return _workflows.get(name)


def registered_workflows() -> list[str]:
    return sorted(_workflows)


def coerce_result(name: str, value: Any) -> Any:
    """A stored result turned back into its annotated type, if the task is registered here; otherwise
    the raw JSON value (reading a record never imports anything)."""
    definition = _tasks.get(name)
    return typed_or_raw(definition.return_adapter if definition is not None else None, value)


def typed_or_raw(adapter: TypeAdapter[Any] | None, value: Any) -> Any:
    """``value`` validated by ``adapter`` (a return annotation), or unchanged when there is none or
    the value does not fit it: a changed annotation never makes a stored value unreadable."""
    if adapter is None:
        return value
    try:
        return adapter.validate_python(value)
    except ValidationError:
        return value


def _allowed(module: str, allow: Iterable[str] | None) -> bool:
    if allow is None:
        return True
    return any(module == prefix or module.startswith(prefix + ".") for prefix in allow)


def import_task_modules(modules: Iterable[str], allow: Iterable[str] | None = None) -> list[str]:
    """Import the modules that define a worker's tasks (filling the registry); returns the task names
    they registered. A module outside the ``allow`` prefixes is refused with ``ConfigurationError``."""
    allow_list = list(allow) if allow is not None else None
    before = set(_tasks)
    for module in modules:
        if not _allowed(module, allow_list):
            raise ConfigurationError(f"task module {module!r} is not in the allow-list {allow_list}")
        try:
            importlib.import_module(module)
        except Exception as exc:  # a broken module is the operator's to fix: one line, no traceback
            raise ConfigurationError(import_failure(f"task module {module!r}", exc)) from None
    return sorted(set(_tasks) - before)


# Where library code lives (the standard library, installed packages, sheppy-core itself): a line there
# is where the error surfaced, not where the operator's module went wrong.
_LIBRARY_DIRS = tuple(
    {sysconfig.get_paths()[key] for key in ("stdlib", "platstdlib", "purelib", "platlib")}
    | {os.path.dirname(os.path.abspath(__file__))}
)


def _shown_path(filename: str) -> str:
    """A source path as an operator reads it: relative to the current directory when inside it."""
    try:
        relative = os.path.relpath(filename)
    except ValueError:  # another drive (Windows)
        return filename
    return filename if relative.startswith("..") else relative


def import_failure(what: str, exc: BaseException) -> str:
    """One line saying why importing ``what`` (e.g. "task module 'jobs'") failed, at the place in the
    module's own source where it did: ``task module 'jobs' failed to import: jobs.py:5: KeyError:
    'DATABASE_URL'``. A ``SyntaxError`` names its own file and line; another exception the last line of
    the imported module's file on its traceback (where a library raised it on the module's behalf),
    else just the error (the module is not there, or a library failed before any of its lines ran)."""
    if isinstance(exc, SyntaxError) and exc.filename:
        where = f"{_shown_path(exc.filename)}:{exc.lineno}: "
        return f"{what} failed to import: {where}{type(exc).__name__}: {exc.msg}"
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if not f.filename.startswith("<")]
    own = [f for f in frames if not f.filename.startswith(_LIBRARY_DIRS)]
    if not own:  # nothing of the operator's ran: the module itself is not there, or a library failed
        return f"cannot import {what}: {type(exc).__name__}: {exc}"
    where = f"{_shown_path(own[-1].filename)}:{own[-1].lineno}: "
    message = str(exc) if not isinstance(exc, KeyError) else repr(exc.args[0]) if exc.args else ""
    return f"{what} failed to import: {where}{type(exc).__name__}: {message}".rstrip(": ")
