"""Task functions of the scheduling, retry and rate-limit compatibility tests (§6-§8)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from sheppy_core import CURRENT_TASK, Task, task

STARTS: dict[str, list[float]] = {}
"""Wall-clock start times (``time.time()``) of each run, by label: the rate-limit tests read them."""


def record_start(label: str) -> float:
    now = time.time()
    STARTS.setdefault(label, []).append(now)
    return now


@task(rate_limit={"max_rate": 2, "rate_period": 1, "strategy": "fixed_window"})
async def limited_fixed(label: str) -> float:
    return record_start(label)


@task(rate_limit={"max_rate": 2, "rate_period": 1, "strategy": "sliding_window"})
async def limited_sliding(label: str) -> float:
    return record_start(label)


@task(rate_limit={"max_rate": 2, "rate_period": 1})
async def limited_default(label: str) -> float:
    return record_start(label)


@task(rate_limit={"max_rate": 1, "rate_period": 30, "key": "shared-budget"})
async def shared_budget_a(label: str) -> float:
    return record_start(label)


@task(rate_limit={"max_rate": 1, "rate_period": 30, "key": "shared-budget"})
async def shared_budget_b(label: str) -> float:
    return record_start(label)


@task(rate_limit={"max_rate": 1, "rate_period": 30})
async def own_budget(label: str) -> float:
    return record_start(label)


@task
async def add(x: int, y: int) -> int:
    return x + y


@task
def sync_add(x: int, y: int) -> int:
    return x + y


@task
async def stamp(label: str) -> float:
    return record_start(label)


@task(retry=2, timeout=30)
async def housekeeping(days: int, dry_run: bool = False) -> int:
    """A task with decorator options, declared as a cron in the §6 tests: the options must be kept."""
    return 0 if dry_run else days


@task(retry=2, retry_delay=0.05)
async def fails_until_third(current: Task[Any] = CURRENT_TASK) -> str:
    if current.retry_count < 2:
        raise ValueError(f"attempt {current.retry_count + 1} fails")
    return "third time lucky"


@task(retry=2, retry_delay=0.05)
async def always_fails() -> None:
    raise RuntimeError("never works")


@task(retry=3, retry_delay=0.05)
def sync_always_fails() -> None:
    raise RuntimeError("never works either")


@task(retry=1, retry_delay=30)
async def fails_then_waits() -> None:
    raise ValueError("first attempt fails, the retry is far away")


@task(retry=4, retry_delay=[0.05, 0.1])
async def list_delays_fail() -> None:
    raise ValueError("fails every time")


@task(timeout=0.1)
async def too_slow() -> str:
    await asyncio.sleep(5)
    return "never"


@task(timeout=0.1, retry=2, retry_delay=0.05)
async def too_slow_with_retries() -> str:
    await asyncio.sleep(5)
    return "never"


@task(timeout=0.1, retry=1, retry_delay=0.05, retry_on_timeout=True)
async def slow_first_time(current: Task[Any] = CURRENT_TASK) -> str:
    if current.retry_count == 0:
        await asyncio.sleep(5)
    return "quick the second time"


@task(timeout=0.2)
def sync_too_slow() -> str:
    time.sleep(1)
    return "never"
