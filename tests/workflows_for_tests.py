"""Workflow functions (and their tasks) the workflow tests run, imported by name like a user's module."""

from __future__ import annotations

import asyncio
import os
import random
from collections.abc import Generator
from typing import Any

from pydantic import BaseModel

from sheppy_core import CURRENT_TASK, Task, task, workflow

Step = Generator[Any, Any, Any]

# Changed by the non-determinism test between two replays.
knobs: dict[str, int] = {"offset": 0}


class Summary(BaseModel):
    count: int
    total: int


@task
async def double(x: int) -> int:
    # A little jitter so sibling steps finish close together but in no fixed order.
    await asyncio.sleep(random.uniform(0, 0.003))
    return 2 * x


@task
async def add(x: int, y: int) -> int:
    return x + y


@task
async def total(values: list[int]) -> int:
    return sum(values)


@task
async def boom(message: str = "boom") -> None:
    raise ValueError(message)


@task
async def nap(seconds: float) -> float:
    await asyncio.sleep(seconds)
    return seconds


@workflow
def fan_out_fan_in(n: int) -> Generator[Any, Any, int]:
    """``n`` parallel ``double`` steps, then one ``total`` step over their results."""
    doubled = yield [double(i) for i in range(n)]
    summed = yield total([t.result for t in doubled])
    return int(summed.result)


@workflow
def prepare_fan_out_finish(n: int) -> Generator[Any, Any, int]:
    """One step, then ``n`` parallel steps, then one step over their results (the graph's three rows)."""
    first = yield add(n, 0)
    doubled = yield [double(i) for i in range(first.result)]
    summed = yield total([t.result for t in doubled])
    return int(summed.result)


@workflow
def sequential(x: int) -> Step:
    a = yield add(x, 1)
    b = yield add(a.result, 10)
    return b.result


@workflow()
def tuple_fan_out(x: int) -> Step:
    pair = yield (add(x, 1), add(x, 2))
    return [type(pair).__name__, pair[0].result, pair[1].result]


@workflow
def failure_branch() -> Step:
    failed = yield boom("first try")
    if failed.status == "failed":
        fallback = yield add(1, 1)
        return f"recovered {fallback.result} after {failed.exception.type}: {failed.exception.message}"
    return "no failure?"


@workflow
def unhandled() -> Step:
    step = yield boom("kaput")
    if step.status != "completed":
        raise RuntimeError(f"step ended {step.status}")
    return "unreachable"


@workflow
def waits_on_nap(seconds: float) -> Step:
    step = yield nap(seconds)
    return step.status


@workflow
def cancel_one_of_two(seconds: float) -> Step:
    steps = yield [nap(seconds), add(1, 2)]
    return [s.status for s in steps]


@workflow
def nondeterministic() -> Step:
    first = yield add(knobs["offset"], 0)
    second = yield add(first.result, 1)
    return second.result


@workflow
def nested(x: int) -> Step:
    one = yield sequential(x)
    many = yield [sequential(1), sequential(2)]
    last = yield add(one, sum(many))
    return last.result


@workflow
def summary(n: int) -> Generator[Any, Any, Summary]:
    steps = yield [add(i, 0) for i in range(n)]
    return {"count": len(steps), "total": sum(s.result for s in steps)}  # type: ignore[return-value]


@workflow
def bad_yield() -> Step:
    yield 42
    return None


@workflow
def mixed_yield() -> Step:
    yield [add(1, 2), sequential(1)]
    return None


@workflow
def no_steps(x: int) -> Step:
    return x * 3
    yield  # a generator that never yields


def typed_step(x: int) -> Task[int]:
    return add(x, 0)


# -- the stress test's workflow: every execution is logged (start and end) to SHEPPY_STRESS_LOG -----


def _log(line: str) -> None:
    path = os.environ.get("SHEPPY_STRESS_LOG")
    if path:
        # One write() of a short line with O_APPEND: lines of concurrent processes do not interleave.
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, f"{line} {os.getpid()}\n".encode())
        finally:
            os.close(fd)


@task(retry=5, retry_delay=0.05)
async def stress_double(x: int, current: Task[Any] = CURRENT_TASK) -> int:
    _log(f"start {current.id}")
    await asyncio.sleep(random.uniform(0.002, 0.01))
    _log(f"end {current.id}")
    return 2 * x


@task(retry=5, retry_delay=0.05)
async def stress_total(values: list[int], current: Task[Any] = CURRENT_TASK) -> int:
    _log(f"start {current.id}")
    _log(f"end {current.id}")
    return sum(values)


@workflow
def stress(n: int) -> Generator[Any, Any, int]:
    doubled = yield [stress_double(i) for i in range(n)]
    summed = yield stress_total([t.result for t in doubled])
    return int(summed.result)
