"""Task functions of the retry and timeout compatibility tests (§7).

Each run records what it saw in ``RUNS[label]``: the wall-clock start and the retry bookkeeping of the
record it was handed, so a test can check the delay of every attempt and that no attempt started early.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sheppy_core import CURRENT_TASK, Task, task


@dataclass(frozen=True)
class Run:
    started: float
    retry_count: int
    last_retry_at: datetime | None
    next_retry_at: datetime | None


RUNS: dict[str, list[Run]] = {}


def record(label: str, current: Task[Any]) -> Run:
    run = Run(time.time(), current.retry_count, current.last_retry_at, current.next_retry_at)
    RUNS.setdefault(label, []).append(run)
    return run


@task(retry=2, retry_delay=0.05)
async def fails_twice(label: str, current: Task[Any] = CURRENT_TASK) -> str:
    if record(label, current).retry_count < 2:
        raise ValueError(f"attempt {current.retry_count + 1} fails")
    return "third time lucky"


@task(retry=3, retry_delay=0.2)
async def constant_delay(label: str, current: Task[Any] = CURRENT_TASK) -> None:
    record(label, current)
    raise ValueError("fails every time")


@task(retry=4, retry_delay=[0.05, 0.3])
async def list_delay(label: str, current: Task[Any] = CURRENT_TASK) -> None:
    record(label, current)
    raise ValueError("fails every time")


@task(retry=3, retry_delay=0.05)
def sync_fails(label: str, current: Task[Any] = CURRENT_TASK) -> None:
    record(label, current)
    raise RuntimeError("never works either")


@task(retry=1, retry_delay=0.05)
async def returns_the_wrong_type(label: str, current: Task[Any] = CURRENT_TASK) -> int:
    record(label, current)
    return "not a number"  # type: ignore[return-value]


@task(retry=1, retry_delay=30)
async def retry_far_away(label: str, current: Task[Any] = CURRENT_TASK) -> None:
    record(label, current)
    raise ValueError("first attempt fails, the retry is far away")


@task
async def no_retries(label: str, current: Task[Any] = CURRENT_TASK) -> None:
    record(label, current)
    raise ValueError("once is enough")


@task(timeout=0.2)
async def too_slow(label: str, current: Task[Any] = CURRENT_TASK) -> str:
    record(label, current)
    await asyncio.sleep(30)
    return "never"


@task(timeout=0.2, retry=2, retry_delay=0.05)
async def too_slow_with_retries(label: str, current: Task[Any] = CURRENT_TASK) -> str:
    record(label, current)
    await asyncio.sleep(30)
    return "never"


@task(timeout=0.2, retry=1, retry_delay=0.05, retry_on_timeout=True)
async def slow_the_first_time(label: str, current: Task[Any] = CURRENT_TASK) -> str:
    if record(label, current).retry_count == 0:
        await asyncio.sleep(30)
    return "quick the second time"


@task(timeout=0.2)
def sync_too_slow(label: str, current: Task[Any] = CURRENT_TASK) -> str:
    record(label, current)
    time.sleep(1)
    return "never"
