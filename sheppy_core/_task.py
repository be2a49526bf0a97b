"""``@task``: turn a function into a factory of validated ``Task`` records, and register it.

Calling the decorated function runs nothing: it checks the arguments against the annotations
(pydantic, lax mode) and returns a ``Task`` whose ``spec`` names the function and carries the
arguments as JSON. Only functions decorated here are ever run by a worker.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import math
import os
import sys
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, ParamSpec, TypeVar, overload

from pydantic import BaseModel, TypeAdapter, ValidationError
from pydantic_core import InitErrorDetails, PydanticCustomError

from sheppy_core._dependencies import is_dependency
from sheppy_core._registry import TaskDefinition, register
from sheppy_core.models import CURRENT_TASK, Task, TaskConfig, TaskSpec

__all__ = ["arguments_to_json", "module_name_of", "task", "validate_arguments"]

P = ParamSpec("P")
R = TypeVar("R")

_POSITIONAL = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)


def module_name_of(function: Callable[..., Any]) -> str:
    module = function.__module__
    if module != "__main__":
        return module
    # A task defined in the script being run is stored under the module path a worker can import:
    # app/main.py run as a script becomes "app.main".
    main_file = getattr(sys.modules.get("__main__"), "__file__", None)
    if not main_file:
        return module
    path = Path(main_file).resolve()
    try:
        relative = path.relative_to(Path(os.getcwd()).resolve())
    except ValueError:
        relative = Path(path.name)
    parts = list(relative.with_suffix("").parts)
    if parts and parts[-1] == "__main__":
        parts.pop()
    return ".".join(parts) or module


@dataclass(frozen=True)
class _CallPlan:
    """How a task's parameters are bound and checked; derived once per task, used on every call."""

    stored: tuple[inspect.Parameter, ...]  # parameters whose values go into the record
    dependencies: frozenset[str]  # ``Depends`` parameters: stored when given, never required
    positional: tuple[inspect.Parameter, ...]
    var_positional: inspect.Parameter | None
    var_keyword: inspect.Parameter | None
    by_name: dict[str, inspect.Parameter]
    adapters: dict[str, TypeAdapter[Any] | None]


def _plan(definition: TaskDefinition) -> _CallPlan:
    plan = definition.call_plan
    if isinstance(plan, _CallPlan):
        return plan
    parameters = list(definition.signature.parameters.values())
    # A CURRENT_TASK parameter never takes a caller's value; a Depends one may (sheppy stores it: a
    # positional value is used at run time, a keyword one is replaced by the injection).
    stored = tuple(p for p in parameters if p.default is not CURRENT_TASK)
    dependencies = frozenset(p.name for p in stored if is_dependency(p, definition.hints.get(p.name)))
    adapters: dict[str, TypeAdapter[Any] | None] = {}
    for parameter in parameters:
        hint = definition.hints.get(parameter.name, inspect.Parameter.empty)
        adapters[parameter.name] = (
            None if hint is inspect.Parameter.empty or hint is Any else TypeAdapter(hint)
        )
    plan = _CallPlan(
        stored=stored,
        dependencies=dependencies,
        positional=tuple(p for p in stored if p.kind in _POSITIONAL),
        var_positional=next((p for p in stored if p.kind is inspect.Parameter.VAR_POSITIONAL), None),
        var_keyword=next((p for p in stored if p.kind is inspect.Parameter.VAR_KEYWORD), None),
        by_name={p.name: p for p in parameters},
        adapters=adapters,
    )
    definition.call_plan = plan
    return plan


def _adapter(definition: TaskDefinition, name: str) -> TypeAdapter[Any] | None:
    return _plan(definition).adapters.get(name)


def _check(
    definition: TaskDefinition,
    name: str,
    value: Any,
    loc: tuple[int | str, ...],
    errors: list[InitErrorDetails],
    *,
    skip_none: bool,
) -> Any:
    adapter = _adapter(definition, name)
    if adapter is None or (skip_none and value is None):
        return value
    try:
        return adapter.validate_python(value)
    except ValidationError as exc:
        for error in exc.errors():
            detail: InitErrorDetails = {
                "type": error["type"],
                "loc": loc + tuple(error["loc"]),
                "input": error["input"],
            }
            if "ctx" in error:
                detail["ctx"] = error["ctx"]
            errors.append(detail)
        return value


def validate_arguments(
    definition: TaskDefinition, args: tuple[Any, ...], kwargs: dict[str, Any], *, at_run: bool = False
) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """Check call arguments the way a Python call would, then against the annotations.

    Raises ``pydantic.ValidationError`` listing every problem: missing or surplus arguments, unknown
    keywords, a keyword for a positional-only parameter, values that do not fit. At call time values
    are returned as validated; ``at_run`` (in the worker) skips None values, as sheppy does.
    """
    plan = _plan(definition)
    stored, positional = plan.stored, plan.positional
    var_positional, var_keyword, by_name = plan.var_positional, plan.var_keyword, plan.by_name
    errors: list[InitErrorDetails] = []
    out_args: list[Any] = []
    out_kwargs: dict[str, Any] = {}
    given: set[str] = set()

    for index, value in enumerate(args):
        if index < len(positional):
            name = positional[index].name
            given.add(name)
            out_args.append(_check(definition, name, value, (index,), errors, skip_none=at_run))
        elif var_positional is not None:
            out_args.append(value)
        else:
            surplus = f"Too many positional arguments: expected {len(positional)}, got {len(args)}"
            errors.append(_error("unexpected_positional_argument", surplus, (index,), value))

    unknown = [name for name in kwargs if name not in by_name] if var_keyword is None else []
    for name, value in kwargs.items():
        parameter = by_name.get(name)
        if parameter is not None and parameter.default is CURRENT_TASK and not at_run:
            message = f"Cannot provide value for Task injection parameter '{name}'"
            errors.append(_error("unexpected_keyword_argument", message, (name,), value))
        elif (
            parameter is None
            or parameter.kind in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)
            or parameter not in stored
        ):
            if var_keyword is not None and parameter is None:
                out_kwargs[name] = value
            elif parameter is not None and parameter not in stored and at_run:
                continue  # CURRENT_TASK: the running task replaces a stored value at run time
            else:
                message = f"Unexpected keyword arguments: {', '.join(unknown if name in unknown else [name])}"
                errors.append(_error("unexpected_keyword_argument", message, (name,), value))
        elif parameter.kind is inspect.Parameter.POSITIONAL_ONLY:
            message = f"Cannot pass '{name}' as keyword argument (positional-only)"
            errors.append(_error("unexpected_keyword_argument", message, (name,), value))
        elif name in given:
            errors.append({"type": "multiple_argument_values", "loc": (name,), "input": value})
        else:
            given.add(name)
            out_kwargs[name] = _check(definition, name, value, (name,), errors, skip_none=at_run)

    for parameter in stored:
        if (
            parameter.name in given
            or parameter.default is not inspect.Parameter.empty
            or parameter.name in plan.dependencies
        ):
            continue
        missing = _MISSING.get(parameter.kind)
        if missing is not None:
            message = f"No value provided for parameter '{parameter.name}'"
            errors.append(_error(missing, message, (parameter.name,), None))

    if not errors and not at_run:
        _refuse_unstorable(plan, out_args, out_kwargs, errors)
    if errors:
        raise ValidationError.from_exception_data(definition.name, errors)
    return tuple(out_args), out_kwargs


_MISSING: Final[dict[object, str]] = {
    inspect.Parameter.POSITIONAL_ONLY: "missing_positional_only_argument",
    inspect.Parameter.KEYWORD_ONLY: "missing_keyword_only_argument",
    inspect.Parameter.POSITIONAL_OR_KEYWORD: "missing_argument",
}


def _error(kind: str, message: str, loc: tuple[int | str, ...], value: Any) -> InitErrorDetails:
    """One line of the ValidationError a bad call raises: pydantic's error type (``missing_argument``
    ...), with sheppy's words as the message (sheppy users' tests match on them)."""
    return {"type": PydanticCustomError(kind, "{message}", {"message": message}), "loc": loc, "input": value}


MAX_NESTING: Final = 200
"""How deeply a task's argument or result may nest lists, dicts and models. JSON encoders stop at a
depth (pydantic-core's at about 250, counting the levels of the record around the value), so deeper
values are refused with a clear error when the task is built instead of failing later."""


def unstorable(value: Any) -> tuple[str, str] | None:
    """What keeps ``value`` from travelling as JSON, as ``(where, problem)``, or None if nothing does.

    ``where`` is the path inside ``value`` (``"[1]['a'].x"``; ``""`` for the value itself) and
    ``problem`` reads after it: ``"is not a finite number (inf)"`` — JSON has no NaN or infinity, and
    pydantic would store ``null`` instead — or ``"is nested too deeply (more than 200 levels)"``. Lists,
    tuples, sets, mappings, pydantic models and dataclasses are searched; other objects are left to
    the serializer.
    """
    # (value, depth, parent node, key); a node is (parent node, key), turned into text only when needed.
    stack: list[tuple[Any, int, Any, Any]] = [(value, 0, None, None)]
    seen: set[int] = set()
    while stack:
        item, depth, parent, key = stack.pop()
        if isinstance(item, float):
            if not math.isfinite(item):
                return _path((parent, key)), f"is not a finite number ({item!r})"
            continue
        if item is None or isinstance(item, (str, int, bytes, bytearray)):
            continue
        children: list[tuple[Any, Any]]
        if isinstance(item, Mapping):
            children = [(v, ("item", k)) for k, v in item.items()]
        elif isinstance(item, (list, tuple, set, frozenset)):
            children = [(v, ("item", i)) for i, v in enumerate(item)]
        elif isinstance(item, BaseModel):
            children = [(v, ("attr", k)) for k, v in item]
        elif dataclasses.is_dataclass(item) and not isinstance(item, type):
            children = [(getattr(item, f.name), ("attr", f.name)) for f in dataclasses.fields(item)]
        else:
            continue
        if depth >= MAX_NESTING:
            return "", f"is nested too deeply (more than {MAX_NESTING} levels)"
        if id(item) in seen:  # a cycle (or a shared object, already searched)
            continue
        seen.add(id(item))
        node = None if parent is None and key is None else (parent, key)
        stack.extend((child, depth + 1, node, step) for child, step in reversed(children))
    return None


def _path(node: Any) -> str:
    steps: list[str] = []
    while node is not None and node[1] is not None:
        node, (kind, key) = node
        steps.append(f".{key}" if kind == "attr" else f"[{key!r}]")
    return "".join(reversed(steps))


def _refuse_unstorable(
    plan: _CallPlan, args: list[Any], kwargs: dict[str, Any], errors: list[InitErrorDetails]
) -> None:
    """Add an error naming the argument for each argument JSON cannot carry (see :func:`unstorable`)."""
    named: list[tuple[tuple[int | str, ...], str, str, Any]] = []
    for index, value in enumerate(args):
        if index < len(plan.positional):
            named.append(((index,), plan.positional[index].name, "", value))
        else:
            star = plan.var_positional.name if plan.var_positional is not None else "args"
            named.append(((index,), star, f"[{index - len(plan.positional)}]", value))
    named += [((name,), name, "", value) for name, value in kwargs.items()]
    for loc, name, prefix, value in named:
        found = unstorable(value)
        if found is None:
            continue
        where = prefix + found[0]
        subject = f"argument {name!r}: {name}{where}" if where else f"argument {name!r}"
        errors.append({
            "type": PydanticCustomError("unstorable_value", "{message}", {
                "message": f"{subject} {found[1]}: JSON cannot carry it",
            }),
            "loc": loc,
            "input": value,
        })


def arguments_to_json(
    definition: TaskDefinition, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> tuple[tuple[Any, ...], dict[str, Any]]:
    positional = _plan(definition).positional

    def dump(name: str | None, value: Any) -> Any:
        adapter = _adapter(definition, name) if name else None
        return (adapter or _ANY).dump_python(value, mode="json")

    json_args = tuple(
        dump(positional[i].name if i < len(positional) else None, v) for i, v in enumerate(args)
    )
    json_kwargs = {k: dump(k if k in definition.signature.parameters else None, v) for k, v in kwargs.items()}
    return json_args, json_kwargs


_ANY: TypeAdapter[Any] = TypeAdapter(Any)

_OPTIONS: Final = frozenset(TaskConfig.model_fields) | {"middleware"}


@overload
def task(function: Callable[P, Awaitable[R]], /) -> Callable[P, Task[R]]: ...
@overload
def task(function: Callable[P, R], /) -> Callable[P, Task[R]]: ...
@overload
def task(
    *,
    retry: int = 0,
    retry_delay: float | list[float] | None = None,
    timeout: float | None = None,
    retry_on_timeout: bool = False,
    retry_on_crash: bool | None = None,
    rate_limit: dict[str, Any] | None = None,
    middleware: list[Callable[..., Any]] | None = None,
    ttl: int | str | None = "inherit",
    error_ttl: int | str | None = "inherit",
) -> Callable[[Callable[P, Any]], Callable[P, Task[Any]]]: ...


def task(function: Callable[..., Any] | None = None, /, **options: Any) -> Any:
    """Make ``function`` (sync or async) a task factory; usable bare or with options.

    Options (keyword-only): ``retry``, ``retry_delay``, ``timeout``, ``retry_on_timeout``,
    ``retry_on_crash``, ``rate_limit``, ``middleware``, ``ttl``, ``error_ttl`` — see ``TaskConfig``.
    An unknown option name is a ``TypeError`` at once; an invalid option value raises
    ``pydantic.ValidationError`` when the task is called (as in sheppy), not at decoration.
    """
    unknown = sorted(set(options) - _OPTIONS)
    if unknown:
        raise TypeError(f"task() got unexpected keyword argument(s): {', '.join(unknown)}")
    middleware = list(options.pop("middleware", None) or [])
    try:
        config: TaskConfig | None = TaskConfig(**options)
    except ValidationError:
        config = None  # raised again, in full, by every call of the task

    def decorate(fn: Callable[..., Any]) -> Callable[..., Task[Any]]:
        if isinstance(fn, (staticmethod, classmethod)) or not callable(fn):
            raise TypeError(f"@task needs a function, got {fn!r}")
        name = f"{module_name_of(fn)}:{fn.__qualname__}"
        definition = TaskDefinition(name, fn, config.model_dump() if config else dict(options), middleware)
        register(definition)

        @functools.wraps(fn)
        def factory(*args: Any, **kwargs: Any) -> Task[Any]:
            task_config = config if config is not None else TaskConfig(**options)
            valid_args, valid_kwargs = validate_arguments(definition, args, kwargs)
            json_args, json_kwargs = arguments_to_json(definition, valid_args, valid_kwargs)
            return Task(spec=TaskSpec(func=name, args=json_args, kwargs=json_kwargs), config=task_config)

        factory.__sheppy_task__ = True  # type: ignore[attr-defined]
        fn.__sheppy_task__ = True  # type: ignore[attr-defined]
        factory.__sheppy_middleware__ = list(middleware)  # type: ignore[attr-defined]
        factory.sheppy_definition = definition  # type: ignore[attr-defined]
        return factory

    if function is not None:
        return decorate(function)
    return decorate
