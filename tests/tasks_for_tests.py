"""Task functions the core tests enqueue. Imported by name, as a user's task module would be."""

from __future__ import annotations

import asyncio
import os
import threading
import time
from collections import Counter
from typing import Annotated, Any

from pydantic import BaseModel

from sheppy_core import CURRENT_TASK, Depends, Task, task

calls: Counter[str] = Counter()
teardowns: list[str] = []
lock = threading.Lock()


def record(name: str) -> None:
    with lock:
        calls[name] += 1


class Point(BaseModel):
    x: int
    y: int


@task
async def add(x: int, y: int) -> int:
    record("add")
    return x + y


@task
def sync_mul(x: int, y: int) -> int:
    record("sync_mul")
    return x * y


@task
async def move(p: Point, dx: int = 1) -> Point:
    return Point(x=p.x + dx, y=p.y)


@task(retry=2, retry_delay=0.05)
async def fails_once(key: str) -> str:
    record(key)
    if calls[key] == 1:
        raise RuntimeError(f"{key} fails the first time")
    return "recovered"


@task(retry=2, retry_delay=[0.01, 0.02])
async def always_fails() -> None:
    record("always_fails")
    raise ValueError("broken")


@task(timeout=0.1)
async def slow_async() -> str:
    await asyncio.sleep(2)
    return "too late"


@task(timeout=0.1, retry=1, retry_on_timeout=True, retry_delay=0)
async def slow_retried() -> str:
    record("slow_retried")
    await asyncio.sleep(2)
    return "too late"


@task(timeout=0.1)
def slow_sync() -> str:
    time.sleep(0.5)
    return "too late"


@task(retry=1)
async def logged_nap(seconds: float, current: Task[Any] = CURRENT_TASK) -> None:
    """Sleeps; appends ``start <id> <pid>`` and ``end <id> <pid>`` lines to ``$SHEPPY_TEST_LOG``, so a
    test sees which process ran what, whatever the store says. One retry: a lost claim may use it."""
    log = os.environ["SHEPPY_TEST_LOG"]
    _append_line(log, f"start {current.id} {os.getpid()}")
    await asyncio.sleep(seconds)
    _append_line(log, f"end {current.id} {os.getpid()}")


def _append_line(path: str, line: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, (line + "\n").encode())
    finally:
        os.close(fd)


@task
async def sleeper(seconds: float) -> float:
    record("sleeper")
    await asyncio.sleep(seconds)
    return seconds


running = {"now": 0, "most": 0}


@task
async def tracked(seconds: float) -> None:
    """Sleeps while counting how many ``tracked`` tasks run at once (``running``)."""
    record("tracked")
    running["now"] += 1
    running["most"] = max(running["most"], running["now"])
    try:
        await asyncio.sleep(seconds)
    finally:
        running["now"] -= 1


@task
async def wrong_return() -> int:
    return "not a number"  # type: ignore[return-value]


@task
async def whoami(current: Task[Any] = CURRENT_TASK) -> str:
    return str(current.id)


def get_resource() -> Any:
    teardowns.append("opened")
    yield "resource"
    teardowns.append("closed")


@task
async def uses_dependency(value: int, resource: Annotated[str, Depends(get_resource)]) -> str:
    return f"{resource}:{value}"


@task
async def parent(n: int) -> list[Task[Any]]:
    return [add(n, i) for i in range(3)]


@task
async def stamp() -> str:
    record("stamp")
    return "tick"


@task(rate_limit={"max_rate": 2, "rate_period": 1.0})
async def limited(i: int) -> int:
    record("limited")
    return i


def plain_function() -> str:  # deliberately NOT a task
    record("plain_function")
    return "ran"
