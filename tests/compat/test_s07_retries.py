"""§7 Retries and timeouts, run by a real worker on every store.

A failed attempt with retries left becomes ``retrying`` (``retry_count`` +1, ``last_retry_at`` now,
``next_retry_at`` now + the attempt's delay, ``finished_at`` empty) and runs again no earlier than
``next_retry_at``; a task with ``retry=N`` runs at most N+1 times and then ends ``failed``; a timeout
ends the attempt with ``TaskTimeoutError`` and is final unless ``retry_on_timeout``.
"""

from __future__ import annotations

import asyncio
import itertools
import uuid
from datetime import timedelta
from typing import Any

import pytest
from compat import tasks_retries as t
from compat.support import WORK_BOUND, work

from sheppy_core import Queue, Task, Worker
from sheppy_core.exceptions import TaskTimeoutError

CLOCK_SLACK = 0.005
"""Seconds by which a run may appear to start before ``next_retry_at``: the two come from the same
clock, so only float rounding of the stored datetime separates them."""


def label() -> str:
    return uuid.uuid4().hex


async def run_until_finished(queue: Queue, worker: Worker, task: Task[Any]) -> Task[Any]:
    """Let ``worker`` run until ``task`` is finished (``wait_for`` keeps waiting through retries)."""
    runner = asyncio.create_task(worker.work(register_signal_handlers=False))
    try:
        done = await queue.wait_for(task, timeout=WORK_BOUND)
    finally:
        worker.stop()
        await asyncio.wait_for(runner, WORK_BOUND)
    assert done is not None
    return done


async def test_a_task_that_fails_twice_completes_on_its_third_attempt(queue, worker):
    name = label()
    task = t.fails_twice(name)
    await queue.add(task)
    done = await run_until_finished(queue, worker, task)
    assert done.status == "completed"
    assert done.result == "third time lucky"
    assert done.retry_count == 2
    assert done.finished_at is not None
    assert [run.retry_count for run in t.RUNS[name]] == [0, 1, 2]


@pytest.mark.parametrize(
    ("fn", "retries", "error_type"),
    [
        (t.constant_delay, 3, "ValueError"),
        (t.sync_fails, 3, "RuntimeError"),
        (t.returns_the_wrong_type, 1, "ValidationError"),
        (t.no_retries, 0, "ValueError"),
    ],
    ids=["async", "sync", "return-validation", "no-retries"],
)
async def test_retry_n_runs_n_plus_one_times_then_ends_failed(queue, worker, fn, retries, error_type):
    name = label()
    task = fn(name)
    await queue.add(task)
    done = await run_until_finished(queue, worker, task)
    assert done.status == "failed"
    assert done.retry_count == retries
    assert len(t.RUNS[name]) == retries + 1
    assert done.result is None
    assert done.finished_at is not None
    assert done.exception is not None and done.exception.type == error_type


@pytest.mark.parametrize(
    ("fn", "delays"),
    [(t.constant_delay, [0.2, 0.2, 0.2]), (t.list_delay, [0.05, 0.3, 0.3, 0.3])],
    ids=["constant", "list-last-repeats"],
)
async def test_each_retry_waits_the_delay_of_its_attempt(queue, worker, fn, delays):
    name = label()
    task = fn(name)
    await queue.add(task)
    done = await run_until_finished(queue, worker, task)
    assert done.status == "failed"
    runs = t.RUNS[name]
    assert len(runs) == len(delays) + 1
    for attempt, (previous, run) in enumerate(itertools.pairwise(runs)):
        assert run.retry_count == attempt + 1
        assert run.last_retry_at is not None and run.next_retry_at is not None
        # The delay of attempt n is retry_delay (constant), retry_delay[n], or the list's last entry.
        assert run.next_retry_at - run.last_retry_at == timedelta(seconds=delays[attempt])
        assert run.last_retry_at.timestamp() >= previous.started - CLOCK_SLACK
        # The worker runs the retry when it is due, never before.
        assert run.started >= run.next_retry_at.timestamp() - CLOCK_SLACK, (attempt, run)


async def test_a_pending_retry_leaves_the_task_unfinished(queue, worker):
    name = label()
    task = t.retry_far_away(name)
    await queue.add(task)
    await work(worker, max_tasks=1)
    waiting = await queue.get_task(task)
    assert waiting is not None
    assert waiting.status == "retrying"
    assert waiting.retry_count == 1
    assert waiting.finished_at is None
    assert waiting.result is None
    assert waiting.exception is not None and waiting.exception.type == "ValueError"
    assert waiting.last_retry_at is not None
    assert waiting.next_retry_at == waiting.last_retry_at + timedelta(seconds=30)
    assert len(t.RUNS[name]) == 1
    # wait_for keeps waiting while a retry is pending: a positive timeout runs out.
    with pytest.raises(TimeoutError):
        await queue.wait_for(task, timeout=0.3)


@pytest.mark.parametrize(
    "fn", [t.too_slow, t.too_slow_with_retries, t.sync_too_slow], ids=["async", "retries-left", "sync"]
)
async def test_a_timeout_ends_the_attempt_with_task_timeout_error_and_is_final(queue, worker, fn):
    """Final even with retries left (no ``retry_on_timeout``); a sync task times out too (its thread
    runs on, §7)."""
    name = label()
    task = fn(name)
    await queue.add(task)
    done = await run_until_finished(queue, worker, task)
    assert done.status == "failed"
    assert done.retry_count == 0
    assert done.exception is not None and done.exception.type == "TaskTimeoutError"
    assert "exceeded timeout of 0.2 seconds" in done.exception.message
    assert isinstance(done.exception.to_exception(), TaskTimeoutError)
    assert len(t.RUNS[name]) == 1


async def test_retry_on_timeout_spends_a_retry_on_a_timeout(queue, worker):
    name = label()
    task = t.slow_the_first_time(name)
    await queue.add(task)
    done = await run_until_finished(queue, worker, task)
    assert done.status == "completed"
    assert done.result == "quick the second time"
    assert done.retry_count == 1
    assert [run.retry_count for run in t.RUNS[name]] == [0, 1]
