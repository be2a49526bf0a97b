"""Turning a ``"module:function"`` name into a ``Task`` — only ever through the ``@task`` registry.

A runtime module (the FastAPI router and the declared-cron reader use it, as does the CLI), so neither
needs the CLI package and its typer/rich imports.

Two entry points with different trust:

- :func:`build_task` (HTTP requests, stored data): looks the name up in the registry and calls the
  registered factory. It never imports a module: a name nobody registered is refused.
- :func:`resolve_task_name` (the operator's command line): imports the module part first (the current
  directory is on ``sys.path``), then requires the name to be in the registry. Importing is the
  operator's own choice here, exactly as ``python -c "import module"`` would be; calling is still
  limited to ``@task`` functions.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from sheppy_core._registry import TaskDefinition, find_definition, import_failure
from sheppy_core.exceptions import ConfigurationError, TaskNotRegisteredError
from sheppy_core.models import Task, TaskConfig, TaskSpec

__all__ = ["build_task", "registered_factory", "resolve_task_name", "split_name"]


def split_name(name: str) -> tuple[str, str]:
    """``"pkg.mod:func"`` -> ``("pkg.mod", "func")``; ``ConfigurationError`` for anything else."""
    module, sep, function = name.strip().partition(":")
    if not sep or not module or not function or " " in name.strip():
        raise ConfigurationError(f"{name!r} is not a task name: expected 'module:function'")
    return module, function


def registered_factory(definition: TaskDefinition) -> Callable[..., Task[Any]] | None:
    """The ``@task`` factory bound in the (already imported) module of ``definition``, or None.

    Only ``sys.modules`` is consulted: nothing is imported.
    """
    function = definition.function
    obj: Any = sys.modules.get(function.__module__)
    for part in function.__qualname__.split("."):
        obj = getattr(obj, part, None)
        if obj is None:
            return None
    if getattr(obj, "sheppy_definition", None) is definition:
        factory: Callable[..., Task[Any]] = obj
        return factory
    return None


def _build_without_factory(
    definition: TaskDefinition, args: Sequence[Any], kwargs: Mapping[str, Any]
) -> Task[Any]:
    # A task defined where its factory is not reachable by name (inside a function, say): the same
    # validation and JSON conversion the factory performs.
    from sheppy_core._task import arguments_to_json, validate_arguments

    valid_args, valid_kwargs = validate_arguments(definition, tuple(args), dict(kwargs))
    json_args, json_kwargs = arguments_to_json(definition, valid_args, valid_kwargs)
    return Task(
        spec=TaskSpec(func=definition.name, args=json_args, kwargs=json_kwargs),
        config=TaskConfig(**definition.options),
    )


def build_task(name: str, args: Sequence[Any] = (), kwargs: Mapping[str, Any] | None = None) -> Task[Any]:
    """A ``Task`` for the registered ``@task`` function ``name`` with these arguments.

    Raises ``TaskNotRegisteredError`` when ``name`` is not registered in this process (nothing is
    imported to find it) and ``pydantic.ValidationError`` when the arguments do not fit. The task keeps
    the decorator's options (retry, timeout, rate limit, ...).
    """
    split_name(name)
    definition = find_definition(name)
    if definition is None:
        raise TaskNotRegisteredError(f"{name!r} is not a registered @task function")
    factory = registered_factory(definition)
    if factory is None:
        return _build_without_factory(definition, args, kwargs or {})
    return factory(*args, **dict(kwargs or {}))


def resolve_task_name(name: str) -> TaskDefinition:
    """Import the module part of ``name`` and return its registered ``@task`` definition.

    ``ConfigurationError`` (one line) when the name is malformed, the module cannot be imported, the
    function does not exist, or it exists but is not a ``@task``.
    """
    module_name, function_name = split_name(name)
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:  # the module itself is broken: still one line, not a traceback
        raise ConfigurationError(import_failure(f"module {module_name!r} (for {name!r})", exc)) from None
    definition = find_definition(f"{module_name}:{function_name}")
    if definition is not None:
        return definition
    target: Any = module
    for part in function_name.split("."):
        target = getattr(target, part, None)
        if target is None:
            raise ConfigurationError(f"module {module_name!r} has no function {function_name!r}")
    definition = getattr(target, "sheppy_definition", None)
    if isinstance(definition, TaskDefinition):
        # Imported under another name (e.g. a re-export): the registered name is the definition's.
        return definition
    raise ConfigurationError(
        f"{name!r} is not a @task function; only functions decorated with @task can be run or queued"
    )
