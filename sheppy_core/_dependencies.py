"""``Depends`` and ``CURRENT_TASK`` injection, resolved per task run.

When FastAPI is installed ``Depends`` is FastAPI's own function, so dependencies written for FastAPI
are reused; otherwise a minimal look-alike with a ``.dependency`` attribute is used. Either marker is
recognised whichever is imported. Unlike sheppy, dependencies are cached within one task run, and
generator dependencies are closed (their teardown runs) after the task.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
from collections.abc import Callable, Mapping
from contextlib import AsyncExitStack
from typing import Annotated, Any, get_args, get_origin

from sheppy_core.models import CURRENT_TASK

__all__ = ["Depends", "dependency_of", "resolve_dependencies"]


class _Depends:
    """Marks a parameter to be filled by calling ``dependency`` when the task runs."""

    def __init__(self, dependency: Callable[..., Any] | None = None, *, use_cache: bool = True) -> None:
        self.dependency = dependency
        self.use_cache = use_cache

    def __repr__(self) -> str:
        name = getattr(self.dependency, "__name__", repr(self.dependency))
        return f"Depends({name})"


def _fastapi_depends_class() -> type | None:
    try:
        from fastapi import params  # type: ignore[import-not-found, unused-ignore]
    except ImportError:
        return None
    depends_class: type = params.Depends
    return depends_class


_FASTAPI_DEPENDS = _fastapi_depends_class()

Depends: Callable[..., Any]
if _FASTAPI_DEPENDS is not None:
    from fastapi import Depends as _fastapi_depends  # type: ignore[import-not-found, unused-ignore]

    Depends = _fastapi_depends
else:
    Depends = _Depends


def _is_marker(value: Any) -> bool:
    return isinstance(value, _Depends) or (
        _FASTAPI_DEPENDS is not None and isinstance(value, _FASTAPI_DEPENDS)
    )


def dependency_of(parameter: inspect.Parameter, hint: Any) -> Any | None:
    """The ``Depends`` marker of a parameter (as its default or inside ``Annotated``), or None."""
    if _is_marker(parameter.default):
        return parameter.default
    if get_origin(hint) is Annotated:
        for meta in get_args(hint)[1:]:
            if _is_marker(meta):
                return meta
    return None


def is_injected(parameter: inspect.Parameter, hint: Any) -> bool:
    return parameter.default is CURRENT_TASK or dependency_of(parameter, hint) is not None


async def _call(
    function: Callable[..., Any],
    overrides: Mapping[Callable[..., Any], Callable[..., Any]],
    cache: dict[Callable[..., Any], Any],
    stack: AsyncExitStack,
    current_task: Any,
) -> Any:
    function = overrides.get(function, function)
    if function in cache:
        return cache[function]
    kwargs = await resolve_dependencies(function, overrides, cache, stack, current_task)
    if inspect.isasyncgenfunction(function):
        generator = function(**kwargs)
        value = await generator.__anext__()
        stack.push_async_callback(_close_async_generator, generator)
    elif inspect.isgeneratorfunction(function):
        sync_generator = function(**kwargs)
        value = next(sync_generator)
        stack.callback(_close_generator, sync_generator)
    elif inspect.iscoroutinefunction(function):
        value = await function(**kwargs)
    else:
        value = await asyncio.to_thread(function, **kwargs)
    cache[function] = value
    return value


async def _close_async_generator(generator: Any) -> None:
    try:
        await generator.__anext__()
    except StopAsyncIteration:
        return
    await generator.aclose()


def _close_generator(generator: Any) -> None:
    try:
        next(generator)
    except StopIteration:
        return
    generator.close()


@functools.lru_cache(maxsize=1024)
def _injection_plan(function: Callable[..., Any]) -> tuple[tuple[str, Any], ...]:
    """``(parameter name, CURRENT_TASK or the dependency to call)`` for each injected parameter;
    computed once per function, since signatures do not change."""
    import typing

    try:
        hints = typing.get_type_hints(function, include_extras=True)
    except Exception:
        hints = {}
    plan: list[tuple[str, Any]] = []
    for name, parameter in inspect.signature(function).parameters.items():
        if parameter.default is CURRENT_TASK:
            plan.append((name, CURRENT_TASK))
            continue
        marker = dependency_of(parameter, hints.get(name))
        if marker is None:
            continue
        # Annotated[T, Depends()] without a callable means "call T".
        plan.append((name, marker.dependency if marker.dependency is not None else get_args(hints[name])[0]))
    return tuple(plan)


def has_dependencies(function: Callable[..., Any]) -> bool:
    """Whether ``function`` has a ``Depends`` parameter (one that may need an exit stack)."""
    return any(source is not CURRENT_TASK for _, source in _injection_plan(function))


@functools.lru_cache(maxsize=1024)
def current_task_parameters(function: Callable[..., Any]) -> tuple[str, ...]:
    """The parameters of ``function`` that receive the running task (``CURRENT_TASK``)."""
    return tuple(name for name, source in _injection_plan(function) if source is CURRENT_TASK)


async def resolve_dependencies(
    function: Callable[..., Any],
    overrides: Mapping[Callable[..., Any], Callable[..., Any]],
    cache: dict[Callable[..., Any], Any],
    stack: AsyncExitStack,
    current_task: Any,
) -> dict[str, Any]:
    """Keyword arguments for every injected parameter of ``function``."""
    values: dict[str, Any] = {}
    for name, source in _injection_plan(function):
        if source is CURRENT_TASK:
            values[name] = current_task
        else:
            values[name] = await _call(source, overrides, cache, stack, current_task)
    return values
