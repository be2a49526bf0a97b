"""Task functions ``sheppy bench`` enqueues; its worker processes import this module (``--import``)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from sheppy_core._task import task
from sheppy_core.models import CURRENT_TASK, Task

__all__ = ["hold", "stamp"]


@task
async def stamp() -> float:
    """Does nothing but report when it started (wall clock), for throughput and latency."""
    return time.time()


@task(retry=1, retry_delay=0)
async def hold(seconds: float, current: Task[Any] = CURRENT_TASK) -> float:
    """Sleeps ``seconds`` on its first delivery only, so a worker can be killed mid-task; the delivery
    after the crash (which is charged a retry) returns at once."""
    if current.retry_count == 0:
        await asyncio.sleep(seconds)
    return time.time()
