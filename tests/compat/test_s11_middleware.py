"""§11 of sheppy-api.md: middleware (sync and async generators taking ``(task, queue)``), run by a real
Worker on every store."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from compat import tasks_worker as t
from compat.support import work

from sheppy_core import Queue, Task, Worker
from sheppy_core.exceptions import MiddlewareError


def new_key() -> str:
    return f"k-{uuid.uuid4().hex[:10]}"


async def run_one(queue: Queue, worker: Worker, task: Task[Any]) -> Task[Any]:
    await queue.add(task)
    await work(worker, max_tasks=1)
    done = await queue.get_task(task)
    assert done is not None
    return done


async def test_sync_and_async_middleware_wrap_the_task(queue: Queue, worker: Worker) -> None:
    key = new_key()
    done = await run_one(queue, worker, t.mw_recorded(key, 4))
    assert done.result == 8
    # Pre-phases in registration order, post-phases in reverse; post sees (task, None) on success.
    assert t.EVENTS[key] == [
        "pre task-a", "pre task-b", "task", "post task-b NoneType", "post task-a NoneType"
    ]


async def test_post_phase_receives_the_exception(queue: Queue, worker: Worker) -> None:
    key = new_key()
    done = await run_one(queue, worker, t.mw_recorded_failing(key, 1))
    assert done.status == "failed"
    assert t.EVENTS[key] == ["pre task-a", "task", "post task-a ValueError"]


async def test_yielding_nothing_keeps_task_and_outcome(queue: Queue, worker: Worker) -> None:
    key = new_key()
    done = await run_one(queue, worker, t.mw_noop(key, 1))
    assert done.status == "completed" and done.result == 2
    assert t.EVENTS[key] == ["pre nothing", f"queue {queue.name} True", "post nothing"]


@pytest.mark.parametrize("factory", [t.mw_replaced, t.mw_replaced_in_place], ids=["new-task", "in-place"])
async def test_pre_phase_can_replace_the_task(
    queue: Queue, worker: Worker, factory: Callable[..., Task[Any]]
) -> None:
    done = await run_one(queue, worker, factory(new_key(), 1))
    assert done.status == "completed", done.exception
    assert done.result == 50


async def test_post_phase_can_replace_the_outcome(queue: Queue, worker: Worker) -> None:
    # result_plus_1000 (registered last) runs its post-phase first, then the async one adds 20.
    done = await run_one(queue, worker, t.mw_outcome(new_key(), 3))
    assert done.status == "completed"
    assert done.result == 1023


async def test_post_phase_can_turn_a_failure_into_a_success(queue: Queue, worker: Worker) -> None:
    done = await run_one(queue, worker, t.mw_rescued(new_key(), 3))
    assert done.status == "completed" and done.result == -1 and done.exception is None


async def test_worker_middleware_runs_before_task_middleware(
    queue: Queue, make_worker: Callable[..., Worker]
) -> None:
    worker = make_worker(middleware=[t.record_async("worker-1"), t.record_sync("worker-2")])
    key = new_key()
    done = await run_one(queue, worker, t.mw_recorded(key, 5))
    assert done.result == 10
    assert t.EVENTS[key] == [
        "pre worker-1", "pre worker-2", "pre task-a", "pre task-b",
        "task",
        "post task-b NoneType", "post task-a NoneType", "post worker-2 NoneType", "post worker-1 NoneType",
    ]


async def test_worker_middleware_applies_to_plain_tasks(
    queue: Queue, make_worker: Callable[..., Worker]
) -> None:
    worker = make_worker(middleware=[t.record_sync("worker")])
    key = new_key()
    done = await run_one(queue, worker, t.plain(key, 5))
    assert done.result == 5
    assert t.EVENTS[key] == ["pre worker", "task", "post worker NoneType"]


async def test_pre_phase_failure_fails_the_task_with_middleware_error(queue: Queue, worker: Worker) -> None:
    key = new_key()
    done = await run_one(queue, worker, t.mw_fails_before(key, 1))
    assert done.status == "failed" and done.finished_at is not None
    assert "task" not in t.EVENTS[key]  # the task did not run
    assert done.exception is not None and done.exception.type == "MiddlewareError"
    rebuilt = done.exception.to_exception()
    assert isinstance(rebuilt, MiddlewareError)


async def test_pre_phase_failure_in_worker_middleware(
    queue: Queue, make_worker: Callable[..., Worker]
) -> None:
    worker = make_worker(middleware=[t.fails_before])
    key = new_key()
    done = await run_one(queue, worker, t.plain(key, 1))
    assert done.status == "failed"
    assert done.exception is not None and done.exception.type == "MiddlewareError"
    assert t.EVENTS[key] == []


@pytest.mark.parametrize(
    ("factory", "status", "result", "logged"),
    [
        (t.mw_fails_after, "completed", 101, "post-phase exploded"),
        (t.mw_async_fails_after, "failed", None, "async post-phase exploded"),
    ],
    ids=["sync-success", "async-failure"],
)
async def test_post_phase_failure_is_logged_and_the_outcome_kept(
    queue: Queue,
    worker: Worker,
    caplog: pytest.LogCaptureFixture,
    factory: Callable[..., Task[Any]],
    status: str,
    result: Any,
    logged: str,
) -> None:
    with caplog.at_level(logging.ERROR):
        done = await run_one(queue, worker, factory(new_key(), 1))
    assert done.status == status and done.result == result
    if status == "failed":
        assert done.exception is not None and done.exception.type == "KeyError"  # the real outcome
    assert any(logged in record.getMessage() for record in caplog.records)
