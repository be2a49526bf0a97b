"""§10 of sheppy-api.md: ``CURRENT_TASK`` and ``Depends`` injection, run by a real Worker on every store
(plus §18.8: dependencies are cached per task and generator dependencies are closed after it)."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import pytest
from compat import tasks_worker as t
from compat.support import work
from pydantic import ValidationError

from sheppy_core import Depends, Queue, Task, Worker


def new_key() -> str:
    key = f"k-{uuid.uuid4().hex[:10]}"
    t.ACTIVE_KEY["key"] = key
    return key


async def run_one(queue: Queue, worker: Worker, task: Task[Any]) -> Task[Any]:
    await queue.add(task)
    await work(worker, max_tasks=1)
    done = await queue.get_task(task)
    assert done is not None
    return done


# -- CURRENT_TASK -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("make", "expected"),
    [
        (lambda: t.current_first(x=22, y=33), 55),
        (lambda: t.current_middle(22, y=33), 55),
        (lambda: t.current_middle(22, 33), 55),
        (lambda: t.current_last(22, 33), 55),
    ],
    ids=["first-keywords", "middle-mixed", "middle-positional", "last-positional"],
)
async def test_current_task_receives_the_running_record(
    queue: Queue, worker: Worker, make: Callable[[], Task[Any]], expected: int
) -> None:
    task = make()
    done = await run_one(queue, worker, task)
    assert done.status == "completed", done.exception
    assert done.result["task_id"] == str(task.id)
    assert done.result["sum"] == expected


async def test_current_task_is_not_part_of_the_stored_arguments(queue: Queue, worker: Worker) -> None:
    task = t.current_middle(1, y=2)
    assert list(task.spec.args) == [1] and dict(task.spec.kwargs) == {"y": 2}
    done = await run_one(queue, worker, task)
    assert list(done.spec.args) == [1] and dict(done.spec.kwargs) == {"y": 2}
    assert "current" not in done.model_dump(mode="json")["spec"]["kwargs"]


def test_current_task_cannot_be_given_by_the_caller() -> None:
    with pytest.raises(ValidationError):
        t.current_first(current=None, x=1)  # type: ignore[arg-type]


# -- Depends ------------------------------------------------------------------------------------


async def test_depends_as_default_value(queue: Queue, worker: Worker) -> None:
    done = await run_one(queue, worker, t.with_default_dep(42))
    assert done.result == {"value": 42, "config": {"env": "test", "debug": True}}
    assert list(done.spec.args) == [42] and not done.spec.kwargs


async def test_depends_inside_annotated(queue: Queue, worker: Worker) -> None:
    done = await run_one(queue, worker, t.with_annotated_dep(7))
    assert done.result == {"value": 7, "config": {"env": "test", "debug": True}}


async def test_dependency_overrides_given_to_worker(queue: Queue, make_worker: Callable[..., Worker]) -> None:
    worker = make_worker(dependency_overrides={t.get_config: t.replacement_config})
    done = await run_one(queue, worker, t.with_default_dep(1))
    assert done.result["config"] == {"env": "overridden", "debug": False}
    nested = await run_one(queue, worker, t.with_nested_dep(2))  # overrides apply to nested ones too
    assert nested.result["stack"]["stack"]["config"] == {"env": "overridden", "debug": False}


async def test_dependencies_of_dependencies_are_resolved(queue: Queue, worker: Worker) -> None:
    done = await run_one(queue, worker, t.with_nested_dep(3))
    assert done.result == {
        "value": 3,
        "stack": {"stack": {"service": "svc", "config": {"env": "test", "debug": True}}},
    }


async def test_sync_dependency_runs_in_a_thread(queue: Queue, worker: Worker) -> None:
    done = await run_one(queue, worker, t.with_thread_dep())
    assert done.result == {"in_main_thread": False}


async def test_async_dependency_is_awaited_on_the_loop(queue: Queue, worker: Worker) -> None:
    done = await run_one(queue, worker, t.with_async_dep())
    assert done.result == {"env": "async", "loop_thread": True}


async def test_generator_dependencies_give_their_first_value_and_are_closed_after(
    queue: Queue, worker: Worker
) -> None:
    key = new_key()
    done = await run_one(queue, worker, t.with_generator_deps(key))
    assert done.status == "completed", done.exception
    assert done.result == [{"resource": "sync"}, {"resource": "async"}]
    events = t.EVENTS[key]
    # §18.8 (sheppy never runs the teardown): both are closed, after the task, last opened first.
    assert events == ["sync setup", "async setup", "task", "async teardown", "sync teardown"]


async def test_generator_dependency_is_closed_when_the_task_fails(queue: Queue, worker: Worker) -> None:
    key = new_key()
    done = await run_one(queue, worker, t.with_failing_generator_dep(key))
    assert done.status == "failed"
    assert t.EVENTS[key] == ["sync setup", "task", "sync teardown"]


async def test_dependency_is_cached_within_one_task(queue: Queue, worker: Worker) -> None:
    key = new_key()
    first = await run_one(queue, worker, t.with_cached_dep(key))
    # §18.8: one call serves both parameters and the dependency that needs it too.
    assert first.result == [1, 1, 10]
    second = await run_one(queue, worker, t.with_cached_dep(key))
    assert second.result == [2, 2, 20]  # not cached across tasks
    assert t.RUNS[key] == 2


async def test_a_positionally_supplied_value_is_used(queue: Queue, worker: Worker) -> None:
    task = t.with_seven(1, 100)
    assert list(task.spec.args) == [1, 100]
    done = await run_one(queue, worker, task)
    assert done.result == [1, 100]


async def test_a_keyword_supplied_value_is_replaced_by_the_injection(queue: Queue, worker: Worker) -> None:
    done = await run_one(queue, worker, t.with_seven(1, dep=100))
    assert done.status == "completed", done.exception
    assert done.result == [1, 7]


def test_depends_marker_carries_its_dependency() -> None:
    marker = Depends(t.get_config)
    assert marker.dependency is t.get_config
    try:
        from fastapi import params
    except ImportError:
        return
    assert isinstance(marker, params.Depends)  # FastAPI installed: it is FastAPI's own class


async def test_sync_generator_dependency_runs_in_a_thread(queue: Queue, worker: Worker) -> None:
    # Like any sync dependency: blocking set-up code must not hold up the worker's event loop.
    done = await run_one(queue, worker, t.with_sync_generator_thread_dep())
    assert done.result == {"in_main_thread": False}


async def test_a_failing_dependency_fails_the_task(queue: Queue, worker: Worker) -> None:
    done = await run_one(queue, worker, t.with_broken_dep())
    assert done.status == "failed"
    assert done.exception is not None and done.exception.type == "LookupError"
    assert "dependency could not be built" in done.exception.message
