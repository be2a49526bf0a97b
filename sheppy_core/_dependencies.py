"""``Depends`` and ``CURRENT_TASK`` injection, resolved per task run.

When FastAPI is installed ``Depends`` is FastAPI's own function, so dependencies written for FastAPI
are reused; otherwise a minimal look-alike with a ``.dependency`` attribute is used. Either marker is
recognised whichever is imported. FastAPI is imported on first access to ``Depends``, not with this
module: a worker whose tasks use no ``Depends`` never pays for it. Unlike sheppy, dependencies are
cached within one task run, and generator dependencies are closed (their teardown runs) after the task.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import sys
from collections.abc import Callable, Mapping
from contextlib import AsyncExitStack
from typing import TYPE_CHECKING, Annotated, Any, get_args, get_origin

from sheppy_core.models import CURRENT_TASK

__all__ = ["Depends", "bind_arguments", "dependency_of", "resolve_dependencies"]


class _Depends:
    """Marks a parameter to be filled by calling ``dependency`` when the task runs."""

    def __init__(self, dependency: Callable[..., Any] | None = None, *, use_cache: bool = True) -> None:
        self.dependency = dependency
        self.use_cache = use_cache

    def __repr__(self) -> str:
        name = getattr(self.dependency, "__name__", repr(self.dependency))
        return f"Depends({name})"


if TYPE_CHECKING:
    Depends: Callable[..., Any]


def _load_depends() -> Callable[..., Any]:
    try:
        from fastapi import Depends as fastapi_depends  # type: ignore[import-not-found, unused-ignore]
    except ImportError:
        return _Depends
    depends: Callable[..., Any] = fastapi_depends
    return depends


def __getattr__(name: str) -> Any:
    # ``Depends`` is looked up on first use: importing FastAPI costs a worker start ~0.2 s.
    if name == "Depends":
        depends = _load_depends()
        globals()["Depends"] = depends
        return depends
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _is_marker(value: Any) -> bool:
    if isinstance(value, _Depends):
        return True
    # A FastAPI marker exists only once FastAPI is imported: no need to import it to look for one.
    fastapi_params = sys.modules.get("fastapi.params")
    return fastapi_params is not None and isinstance(value, fastapi_params.Depends)


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


def is_dependency(parameter: inspect.Parameter, hint: Any) -> bool:
    """Whether the parameter is filled by a ``Depends`` (a caller may still give it a value)."""
    return parameter.default is not CURRENT_TASK and dependency_of(parameter, hint) is not None


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
        # Set-up and teardown are sync code (often blocking I/O): in a thread, like sync dependencies.
        sync_generator = function(**kwargs)
        value = await asyncio.to_thread(_first_value, sync_generator)
        stack.push_async_callback(asyncio.to_thread, _close_generator, sync_generator)
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


def _first_value(generator: Any) -> Any:
    try:
        return next(generator)
    except StopIteration:
        # (A StopIteration cannot travel through the thread's future.)
        raise RuntimeError(f"dependency generator {generator.__name__} did not yield a value") from None


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


_POSITIONAL_KINDS = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
_NOT_INJECTED = object()


@functools.lru_cache(maxsize=1024)
def _parameters(function: Callable[..., Any]) -> tuple[inspect.Parameter, ...]:
    return tuple(inspect.signature(function).parameters.values())


async def bind_arguments(
    function: Callable[..., Any],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    overrides: Mapping[Callable[..., Any], Callable[..., Any]],
    stack: AsyncExitStack | None,
    current_task: Any,
) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """The call of ``function`` for one run: its stored arguments plus the injected ones.

    As in sheppy: stored positional values fill the parameters in order, skipping ``CURRENT_TASK``
    ones, which get the running task in position; a stored positional value for a ``Depends``
    parameter is used as given (the dependency is not called), a stored keyword value for one is
    replaced by the injection. ``stack`` (needed when a dependency is called) closes generator
    dependencies after the run.
    """
    sources = dict(_injection_plan(function))
    if not sources:
        return args, kwargs
    cache: dict[Callable[..., Any], Any] = {}
    remaining = list(args)
    call_args: list[Any] = []
    call_kwargs = dict(kwargs)
    # Positional-only parameters left to their default once the stored values ran out: passed
    # explicitly if an injected positional-only parameter comes after them.
    defaults_before: list[Any] = []
    for parameter in _parameters(function):
        source = sources.get(parameter.name, _NOT_INJECTED)
        if parameter.kind is inspect.Parameter.VAR_POSITIONAL:
            call_args += remaining
            remaining = []
            continue
        if parameter.kind in _POSITIONAL_KINDS and source is not CURRENT_TASK and remaining:
            call_args.append(remaining.pop(0))
            continue
        if source is _NOT_INJECTED:
            if parameter.kind is inspect.Parameter.POSITIONAL_ONLY:
                defaults_before.append(parameter.default)
            continue
        if source is CURRENT_TASK:
            value = current_task
        else:
            if stack is None:
                raise RuntimeError(f"{function!r} has dependencies: binding its call needs an exit stack")
            value = await _call(source, overrides, cache, stack, current_task)
        positional_only = parameter.kind is inspect.Parameter.POSITIONAL_ONLY
        if parameter.kind in _POSITIONAL_KINDS and (remaining or positional_only):
            call_args += defaults_before
            defaults_before = []
            call_args.append(value)
        else:
            call_kwargs[parameter.name] = value
    call_args += remaining  # more values than parameters: the call itself reports it
    return tuple(call_args), call_kwargs
