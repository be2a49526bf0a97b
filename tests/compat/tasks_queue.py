"""Task functions of the §5 (Queue) and §16 (configuration) compatibility tests."""

from __future__ import annotations

from typing import Any

from sheppy_core import CURRENT_TASK, Task, task


@task
async def add_async(x: int, y: int) -> int:
    return x + y


@task
def add_sync(x: int, y: int) -> int:
    return x + y


@task
async def always_fails() -> None:
    raise RuntimeError("this task always fails")


@task(retry=1, retry_delay=0)
async def fails_first_attempt(current: Task[Any] = CURRENT_TASK) -> str:
    """Fails on its first attempt and succeeds on any later one (a retry or a manual re-run)."""
    if current.retry_count == 0:
        raise RuntimeError("first attempt fails")
    return "ok"


@task(retry=1, retry_delay=3600)
async def fails_then_waits_an_hour() -> None:
    """Fails, then waits an hour for its retry: it stays ``retrying`` for the whole test."""
    raise RuntimeError("fails, retry in an hour")


@task(rate_limit={"max_rate": 1, "rate_period": 3600})
async def once_an_hour(n: int) -> int:
    return n
