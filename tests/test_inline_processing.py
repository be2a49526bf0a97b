"""``memory://`` runs queued work inline as one loop at the top of the caller's ``add``: a long
workflow or a long chain of tasks does not nest one call frame set per step (it did: a 400-step
chain re-entered ``Queue.add`` 400 times), and work added from inside a running task is picked up by
the loop already running."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Generator
from typing import Any

import pytest

from sheppy_core import Depends, MemoryBackend, Queue, Task, task, workflow

DEPTHS: dict[str, list[int]] = {}


def frame_depth() -> int:
    """Call frames under this one plus asyncio tasks alive: a shielded resume nests in a new task."""
    depth, frame = 0, sys._getframe()
    while frame is not None:
        depth, frame = depth + 1, frame.f_back
    return depth + len(asyncio.all_tasks())


@task
async def step(label: str, n: int) -> int:
    DEPTHS.setdefault(label, []).append(frame_depth())
    return n + 1


@workflow
def long_chain(label: str, steps: int) -> Generator[Any, Any, int]:
    n = 0
    for _ in range(steps):
        done = yield step(label, n)
        n = done.result
    return n


@task
async def countdown(label: str, n: int) -> Task[Any] | int:
    DEPTHS.setdefault(label, []).append(frame_depth())
    return countdown(label, n - 1) if n > 0 else 0


@task
async def adds_from_inside(label: str, queue_name: str, n: int) -> int:
    """Adds its successor through a Queue of its own, as task code may."""
    DEPTHS.setdefault(label, []).append(frame_depth())
    if n > 0:
        assert await Queue(BACKEND, queue_name).add(adds_from_inside(label, queue_name, n - 1))
    return n


BACKEND = MemoryBackend()  # instant processing, as memory:// gives


@pytest.mark.timeout(300)  # 400 replays of a growing generator: CPU-bound, slow on a busy machine
async def test_a_400_step_workflow_runs_at_a_constant_depth() -> None:
    queue = Queue(MemoryBackend(), "inline")
    result = await queue.add_workflow(long_chain("wf", 400))
    assert result.workflow.completed and result.workflow.final_result == 400
    depths = DEPTHS["wf"]
    assert len(depths) == 400
    assert max(depths) - min(depths) <= 5, (min(depths), max(depths))


async def test_a_400_task_chain_runs_at_a_constant_depth() -> None:
    queue = Queue(MemoryBackend(), "inline")
    assert await queue.add(countdown("chain", 399))
    depths = DEPTHS["chain"]
    assert len(depths) == 400
    assert max(depths) - min(depths) <= 5, (min(depths), max(depths))


async def test_work_added_from_inside_a_task_is_run_by_the_loop_already_running() -> None:
    queue = Queue(BACKEND, "inside")
    first = adds_from_inside("inside", "inside", 199)
    assert await queue.add(first)
    depths = DEPTHS["inside"]
    assert len(depths) == 200
    assert max(depths) - min(depths) <= 5, (min(depths), max(depths))
    stored = await queue.get_all_tasks()
    assert len(stored) == 200 and all(t.status == "completed" for t in stored)


def real_greeting() -> str:
    return "hello"


@task
async def greet(greeting: str = Depends(real_greeting)) -> str:
    return greeting


async def test_run_inline_is_a_queue_option() -> None:
    # On a MemoryBackend made without instant processing, the queue can still ask for it ...
    inline = Queue(MemoryBackend(instant_processing=False), "opt", run_inline=True)
    job = countdown("opt-on", 0)
    assert await inline.add(job)
    assert (await inline.get_task(job)).status == "completed"  # type: ignore[union-attr]
    # ... and on one made with it, the queue can decline it: the task waits for a worker.
    waiting = Queue(MemoryBackend(), "opt", run_inline=False)
    job = countdown("opt-off", 0)
    assert await waiting.add(job)
    assert (await waiting.get_task(job)).status == "pending"  # type: ignore[union-attr]
    assert "opt-off" not in DEPTHS


async def test_dependency_overrides_are_a_queue_option() -> None:
    plain = Queue(MemoryBackend(), "deps")
    job = greet()
    assert await plain.add(job)
    assert (await plain.get_task(job)).result == "hello"  # type: ignore[union-attr]
    overridden = Queue(MemoryBackend(), "deps", dependency_overrides={real_greeting: lambda: "hi"})
    job = greet()
    assert await overridden.add(job)
    assert (await overridden.get_task(job)).result == "hi"  # type: ignore[union-attr]
