"""The @task functions the browser tests enqueue and real ``sheppy work`` processes run.

Imported by name (``sheppy work --import browser_tasks``) with ``tests/browser`` on ``PYTHONPATH``.
"""

from __future__ import annotations

from collections.abc import Generator
from pathlib import Path
from typing import Any

from sheppy_core import task, workflow


class KnownFailure(Exception):
    """The exception the failing tasks raise, so a test can find it in the dashboard's traceback."""


@task
async def noop() -> None:
    """Does nothing: a task that completes."""


@task
async def boom(reason: str) -> None:
    """Always fails with ``KnownFailure(reason)``."""
    raise KnownFailure(reason)


@task
def fails_first_time(marker: str) -> str:
    """Fails on the first run (and leaves ``marker`` behind), succeeds on every run after it."""
    path = Path(marker)
    if not path.exists():
        path.write_text("ran once\n")
        raise KnownFailure("the first attempt always fails")
    return "second attempt succeeded"


@task
async def double(x: int) -> int:
    return 2 * x


@task
async def total(values: list[int]) -> int:
    return sum(values)


@workflow
def fan_out_fan_in(n: int) -> Generator[Any, Any, int]:
    """Doubles 0..n-1 in parallel, then sums them: a small graph for the workflow pages."""
    doubled = yield [double(i) for i in range(n)]
    summed = yield total([step.result for step in doubled])
    return int(summed.result)
