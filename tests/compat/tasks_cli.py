"""Task functions and prestart hooks of the §15 (CLI) and §17 (FastAPI) compatibility tests."""

from __future__ import annotations

from sheppy_core import task

calls: dict[str, int] = {"plain_function": 0}
hook_calls: list[str] = []


@task
async def add(x: int, y: int) -> int:
    return x + y


@task
def sync_mul(x: int, y: int) -> int:
    return x * y


@task
async def always_fails() -> None:
    raise ValueError("broken on purpose")


@task(retry=1, retry_delay=0.01)
async def fails_after_one_retry() -> None:
    raise ValueError("broken twice")


def plain_function() -> int:
    """Not a @task: neither the CLI nor the router may queue or run it."""
    calls["plain_function"] += 1
    return 0


def record_hook() -> None:
    hook_calls.append("hook")


async def async_record_hook() -> None:
    hook_calls.append("async hook")


def failing_hook() -> None:
    raise RuntimeError("prestart failed")
