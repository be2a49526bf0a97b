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
async def slow_parent(n: int, seconds: float) -> list[Task[Any]]:
    await asyncio.sleep(seconds)
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


@task
async def blocks_the_loop(seconds: float, current: Task[Any] = CURRENT_TASK) -> str:
    """Holds the worker's event loop (``time.sleep`` in an ``async def``: a common user bug); appends
    ``start``/``end`` lines to ``$SHEPPY_TEST_LOG`` like :func:`logged_nap`."""
    log = os.environ["SHEPPY_TEST_LOG"]
    _append_line(log, f"start {current.id} {os.getpid()}")
    time.sleep(seconds)  # noqa: ASYNC251 - the point of this task
    _append_line(log, f"end {current.id} {os.getpid()}")
    return "done"


@task(retry=1)
async def long_first_run(seconds: float, current: Task[Any] = CURRENT_TASK) -> str:
    """Naps ``seconds`` on its first attempt and briefly on a retry (e.g. after its worker was killed),
    logging ``start``/``end`` like :func:`logged_nap`."""
    log = os.environ["SHEPPY_TEST_LOG"]
    _append_line(log, f"start {current.id} {os.getpid()}")
    await asyncio.sleep(seconds if current.retry_count == 0 else 0.05)
    _append_line(log, f"end {current.id} {os.getpid()}")
    return "done"


ran_ids: list[str] = []
"""The id of every ``noted`` run in this process, one entry per run (in start order)."""


@task
async def noted(seconds: float, current: Task[Any] = CURRENT_TASK) -> None:
    """Appends its id to :data:`ran_ids` as its side effect, then naps ``seconds``."""
    ran_ids.append(str(current.id))
    await asyncio.sleep(seconds)


@task(retry=5, retry_delay=0.2)
async def soak_nap(seconds: float, failures: int = 0, current: Task[Any] = CURRENT_TASK) -> str:
    """The task of ``tests/faults/soak.py``: naps ``seconds``, and its first ``failures`` attempts raise
    after the nap. Appends ``start <id> <pid>`` and ``end <id> <pid>`` lines to ``$SHEPPY_TEST_LOG``
    like :func:`logged_nap`; ``end`` also when the attempt raises or is cancelled (never on SIGKILL)."""
    log = os.environ["SHEPPY_TEST_LOG"]
    _append_line(log, f"start {current.id} {os.getpid()}")
    try:
        await asyncio.sleep(seconds)
        if current.retry_count < failures:
            raise RuntimeError(f"soak: attempt {current.retry_count + 1} fails on purpose")
    finally:
        _append_line(log, f"end {current.id} {os.getpid()}")
    return "done"
