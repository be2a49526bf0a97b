"""§13 of sheppy-api.md: ``TestQueue`` (synchronous, in-memory) and ``SyncQueue`` (blocking, threaded).

TestQueue needs no store, so its tests are plain (non-async) functions, as a sheppy user's are.
SyncQueue runs against each of the four stores by URL.
"""

from __future__ import annotations

import asyncio
import inspect
import threading
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from compat import tasks_testqueue as t
from compat.support import QUEUE_NAME, Store, work

from sheppy_core import MemoryBackend, Task, TestQueue, Worker
from sheppy_core.exceptions import TaskCancellationError
from sheppy_core.experimental import SyncQueue

ADD_FACTORIES = [t.add_async, t.add_sync]
FAIL_ONCE_FACTORIES = [t.fails_first_attempt_async, t.fails_first_attempt_sync]


def _is_unprocessed(task: Task) -> None:
    assert task.status == "new"
    assert task.result is None and task.exception is None and task.finished_at is None


def _is_completed(task: Task | None) -> None:
    assert task is not None
    assert task.status == "completed", task
    assert task.exception is None and task.error is None
    assert task.finished_at is not None


def _is_failed(task: Task | None, status: str = "failed") -> None:
    assert task is not None
    assert task.status == status, task
    assert task.error is not None and task.result is None
    if status == "failed":
        assert task.finished_at is not None
    else:
        assert task.finished_at is None


# -- construction ----------------------------------------------------------------------------------

def test_constructor_signature_and_defaults() -> None:
    parameters = inspect.signature(TestQueue).parameters
    assert list(parameters) == ["name", "dependency_overrides"]
    assert parameters["name"].default == "test-queue"
    assert parameters["dependency_overrides"].default is None
    queue = TestQueue()
    assert queue.name == "test-queue"
    assert queue.processed_tasks == [] and queue.failed_tasks == []
    assert TestQueue("mine").name == "mine"


def test_not_collected_by_pytest() -> None:
    assert TestQueue.__test__ is False


def test_queues_are_independent() -> None:
    first, second = TestQueue(), TestQueue()
    first.add(t.add_sync(1, 1))
    assert first.size() == 1 and second.size() == 0


def test_cannot_be_called_inside_a_running_loop() -> None:
    queue = TestQueue()

    async def inside_a_loop() -> None:
        with pytest.raises(RuntimeError, match="cannot be called from a running event loop"):
            queue.size()
        with pytest.raises(RuntimeError, match="cannot be called from a running event loop"):
            queue.add(t.add_sync(1, 2))

    asyncio.run(inside_a_loop())
    assert queue.size() == 0  # nothing was added by the refused call


# -- blocking Queue operations ---------------------------------------------------------------------

def test_add_and_get_task_by_every_reference() -> None:
    queue = TestQueue()
    first, second = t.add_sync(1, 2), t.add_async(3, 4)
    assert queue.add(first) is True
    assert queue.add([second]) == [True]
    assert queue.add(first) is False  # same id again
    for ref in (first, first.id, str(first.id)):
        found = queue.get_task(ref)
        assert found is not None and found.id == first.id and found.spec == first.spec
        # sheppy-core: a queued task says "pending" (sheppy leaves it "new"; §18.13)
        assert found.status == "pending"
    assert set(queue.get_task([first, second.id])) == {first.id, second.id}
    assert set(queue.get_task([str(first.id), str(second.id)])) == {first.id, second.id}
    assert queue.get_task(uuid.uuid4()) is None
    assert queue.get_task([uuid.uuid4()]) == {}
    _is_unprocessed(first)  # the caller's object is never modified


def test_get_all_tasks_get_pending_size_and_clear() -> None:
    queue = TestQueue()
    tasks = [t.add_sync(i, i) for i in range(3)]
    assert queue.add(tasks) == [True, True, True]
    assert queue.size() == 3
    assert [p.id for p in queue.get_pending()] == [tasks[0].id]
    assert [p.id for p in queue.get_pending(2)] == [tasks[0].id, tasks[1].id]
    queue.process_next()
    assert {a.id for a in queue.get_all_tasks()} == {x.id for x in tasks}
    assert queue.size() == 2
    assert queue.clear() == 3
    assert queue.size() == 0 and queue.get_all_tasks() == []


def test_schedule_and_get_scheduled() -> None:
    queue = TestQueue()
    later, latest = t.add_sync(1, 1), t.add_sync(2, 2)
    assert queue.schedule(latest, timedelta(hours=2)) is True
    assert queue.schedule(later, datetime.now(UTC) + timedelta(hours=1)) is True
    assert queue.schedule(later, timedelta(hours=1)) is False
    assert [s.id for s in queue.get_scheduled()] == [later.id, latest.id]
    assert all(s.status == "scheduled" for s in queue.get_scheduled())
    assert queue.size() == 0
    with pytest.raises(TypeError, match="provided datetime must be offset-aware"):
        queue.schedule(t.add_sync(3, 3), datetime.now() + timedelta(hours=1))


def test_cron_operations() -> None:
    queue = TestQueue()
    crons = [
        (t.add_async(1, 2), "*/5 * * * *"),
        (t.add_async(1, 2), "0 * * * *"),
        (t.add_async(2, 2), "*/5 * * * *"),
        (t.add_sync(1, 2), "*/5 * * * *"),
    ]
    for cron_task, expression in crons:
        assert queue.add_cron(cron_task, expression) is True
        assert queue.add_cron(cron_task, expression) is False
    assert len(queue.get_crons()) == 4
    for cron_task, expression in crons:
        assert queue.delete_cron(cron_task, expression) is True
        assert queue.delete_cron(cron_task, expression) is False
    assert queue.get_crons() == []
    assert queue.delete_cron(t.add_sync(9, 9), "1 * * * *") is False


def test_experimental_cancel_and_delete() -> None:
    queue = TestQueue()
    task = t.add_sync(1, 1)
    queue.schedule(task, timedelta(hours=1))
    cancelled = queue.experimental.cancel(task)
    assert cancelled.status == "cancelled" and cancelled.finished_at is not None
    assert queue.get_scheduled() == []
    assert queue.process_scheduled(timedelta(hours=2)) == []
    with pytest.raises(TaskCancellationError):
        queue.experimental.cancel(task)
    assert queue.experimental.delete(task) is True
    assert queue.get_task(task) is None


# -- process_next / process_all --------------------------------------------------------------------

@pytest.mark.parametrize("factory", ADD_FACTORIES)
def test_process_next_runs_one_task_and_returns_its_stored_record(factory: Callable[..., Task]) -> None:
    queue = TestQueue()
    task = factory(1, 2)
    queue.add(task)
    processed = queue.process_next()
    _is_completed(processed)
    assert processed is not None and processed.id == task.id and processed.result == 3
    assert queue.get_task(task) == processed
    assert [p.id for p in queue.processed_tasks] == [task.id]
    _is_completed(queue.processed_tasks[0])
    assert queue.failed_tasks == []
    assert queue.size() == 0
    _is_unprocessed(task)


def test_process_next_on_an_empty_queue() -> None:
    queue = TestQueue()
    assert queue.process_next() is None
    assert queue.process_all() == []
    assert queue.processed_tasks == []


def test_process_all_keeps_queue_order_for_sync_and_async_tasks() -> None:
    queue = TestQueue()
    tasks = [t.add_sync(1, 2), t.add_async(3, 4), t.add_sync(5, 6)]
    queue.add(tasks)
    processed = queue.process_all()
    assert [p.id for p in processed] == [x.id for x in tasks]
    assert [p.result for p in processed] == [3, 7, 11]
    for p in processed:
        _is_completed(p)
    assert [p.id for p in queue.processed_tasks] == [x.id for x in tasks]
    assert queue.size() == 0


def test_failing_task_is_in_processed_and_failed_tasks() -> None:
    queue = TestQueue()
    task = t.always_fails("x")
    queue.add(task)
    processed = queue.process_next()
    _is_failed(processed)
    assert processed is not None and processed.error == "ValueError: failure of x"
    assert [p.id for p in queue.processed_tasks] == [task.id]
    assert [f.id for f in queue.failed_tasks] == [task.id]
    _is_failed(queue.processed_tasks[0])
    assert queue.size() == 0
    _is_unprocessed(task)


def test_current_task_is_injected() -> None:
    queue = TestQueue()
    queue.add(task := t.own_id())
    processed = queue.process_next()
    _is_completed(processed)
    assert processed is not None and processed.result == str(task.id)


# -- retries ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("factory", FAIL_ONCE_FACTORIES)
def test_process_next_runs_one_attempt_and_requeues_a_retry_at_once(factory: Callable[..., Task]) -> None:
    queue = TestQueue()
    task = factory()
    queue.add(task)
    first = queue.process_next()
    _is_failed(first, status="retrying")
    assert first is not None and first.id == task.id and first.retry_count == 1
    assert queue.size() == 1  # back in the queue at once, the 30 s retry delay ignored
    second = queue.process_next()
    _is_completed(second)
    assert second is not None and second.result == "ok" and second.retry_count == 1
    assert queue.size() == 0
    assert [p.status for p in queue.processed_tasks] == ["retrying", "completed"]
    assert [f.status for f in queue.failed_tasks] == ["retrying"]


@pytest.mark.parametrize("factory", FAIL_ONCE_FACTORIES)
def test_process_all_runs_the_retries(factory: Callable[..., Task]) -> None:
    queue = TestQueue()
    task = factory()
    queue.add(task)
    processed = queue.process_all()
    assert [p.id for p in processed] == [task.id, task.id]
    _is_failed(processed[0], status="retrying")
    _is_completed(processed[1])
    assert queue.size() == 0
    stored = queue.get_task(task)
    _is_completed(stored)
    assert stored is not None and stored.retry_count == 1
    assert [p.status for p in queue.processed_tasks] == ["retrying", "completed"]
    assert [f.id for f in queue.failed_tasks] == [task.id]


def test_every_failed_attempt_is_recorded_until_retries_run_out() -> None:
    queue = TestQueue()
    task = t.always_fails_with_retries("y")
    queue.add(task)
    processed = queue.process_all()
    assert [(p.status, p.retry_count) for p in processed] == [("retrying", 1), ("retrying", 2), ("failed", 2)]
    assert [(p.status, p.retry_count) for p in queue.processed_tasks] == [
        ("retrying", 1),
        ("retrying", 2),
        ("failed", 2),
    ]
    assert [(f.status, f.retry_count) for f in queue.failed_tasks] == [
        ("retrying", 1),
        ("retrying", 2),
        ("failed", 2),
    ]
    assert all(f.error == "ValueError: failure of y" for f in queue.failed_tasks)
    _is_failed(queue.get_task(task))
    assert queue.size() == 0


def test_retry_of_a_failed_task_runs_it_again() -> None:
    queue = TestQueue()
    task = t.always_fails("z")
    queue.add(task)
    first = queue.process_next()
    _is_failed(first)
    assert queue.retry(task) is True
    assert queue.size() == 1
    assert len(queue.processed_tasks) == 1 and len(queue.failed_tasks) == 1
    second = queue.process_next()
    _is_failed(second)
    assert second is not None and first is not None
    assert second.id == first.id and second != first
    assert queue.size() == 0
    assert len(queue.processed_tasks) == 2 and len(queue.failed_tasks) == 2
    assert queue.retry(uuid.uuid4()) is False


@pytest.mark.parametrize("factory", FAIL_ONCE_FACTORIES)
def test_retry_of_a_completed_task_needs_force(factory: Callable[..., Task]) -> None:
    queue = TestQueue()
    task = factory()
    queue.add(task)
    assert len(queue.process_all()) == 2
    message = "Task has already completed successfully, use force to retry anyways"
    with pytest.raises(ValueError, match=message):
        queue.retry(task)
    with pytest.raises(ValueError, match=message):
        queue.retry(task.id)
    with pytest.raises(ValueError, match=message):
        queue.retry(task.id, at=timedelta(hours=10))
    assert queue.size() == 0
    assert queue.retry(task.id, force=True) is True
    assert queue.size() == 1
    again = queue.process_all()
    assert len(again) == 1
    _is_completed(again[0])
    assert again[0].retry_count == 1  # a manual retry does not count as an automatic one


def test_retry_at_a_later_time_schedules_the_task() -> None:
    queue = TestQueue()
    task = t.always_fails("later")
    queue.add(task)
    assert len(queue.process_all()) == 1
    assert queue.retry(task, at=timedelta(hours=10)) is True
    assert queue.size() == 0
    assert queue.process_next() is None
    assert [s.id for s in queue.get_scheduled()] == [task.id]
    assert queue.process_scheduled() == []
    assert queue.process_scheduled(timedelta(hours=5)) == []
    ran = queue.process_scheduled(timedelta(hours=10, minutes=1))
    assert [r.id for r in ran] == [task.id]
    _is_failed(ran[0])
    assert queue.get_scheduled() == []
    with pytest.raises(TypeError, match="provided datetime must be offset-aware"):
        queue.retry(task, at=datetime.now() + timedelta(hours=1))


def test_a_running_retry_cannot_be_retried_by_hand() -> None:
    """sheppy-core refuses to re-queue a task that is still waiting (§18.10); sheppy would queue it
    twice."""
    queue = TestQueue()
    task = t.fails_first_attempt_sync()
    queue.add(task)
    _is_failed(queue.process_next(), status="retrying")
    with pytest.raises(ValueError):
        queue.retry(task)
    assert queue.size() == 1


# -- process_scheduled ------------------------------------------------------------------------------

def test_process_scheduled_with_a_timedelta() -> None:
    queue = TestQueue()
    task = t.add_async(1, 2)
    queue.schedule(task, timedelta(hours=1))
    assert queue.process_next() is None
    ran = queue.process_scheduled(timedelta(hours=2))
    assert [r.id for r in ran] == [task.id]
    _is_completed(ran[0])
    assert ran[0].result == 3
    assert [p.id for p in queue.processed_tasks] == [task.id]


def test_process_scheduled_with_a_datetime_runs_what_is_due_by_then() -> None:
    queue = TestQueue()
    now = datetime.now(UTC)
    tasks = [t.add_sync(1, 2), t.add_sync(3, 4), t.add_sync(5, 6)]
    for hours, task in zip((1, 2, 3), tasks, strict=True):
        queue.schedule(task, now + timedelta(hours=hours))
    assert [r.result for r in queue.process_scheduled(at=now + timedelta(hours=1))] == [3]
    assert [r.result for r in queue.process_scheduled(at=now + timedelta(hours=2))] == [7]
    assert [r.result for r in queue.process_scheduled(at=now + timedelta(hours=10))] == [11]
    assert len(queue.processed_tasks) == 3


def test_process_scheduled_orders_by_due_time() -> None:
    queue = TestQueue()
    now = datetime.now(UTC)
    third, first, second = t.add_sync(5, 6), t.add_sync(1, 2), t.add_sync(3, 4)
    queue.schedule(third, now + timedelta(hours=3))
    queue.schedule(first, now + timedelta(hours=1))
    queue.schedule(second, now + timedelta(hours=2))
    assert queue.process_next() is None
    assert queue.process_all() == []
    ran = queue.process_scheduled(at=now + timedelta(hours=5))
    assert [r.id for r in ran] == [first.id, second.id, third.id]
    assert [r.result for r in ran] == [3, 7, 11]


def test_process_scheduled_without_a_time_runs_what_is_due_now() -> None:
    queue = TestQueue()
    past, future = t.add_sync(1, 2), t.add_sync(2, 2)
    queue.schedule(past, datetime.now(UTC) - timedelta(hours=10))
    queue.schedule(future, timedelta(hours=1))
    assert queue.process_next() is None  # process_next only takes queued tasks, as sheppy's
    ran = queue.process_scheduled()
    assert [r.id for r in ran] == [past.id]
    _is_completed(ran[0])
    assert [s.id for s in queue.get_scheduled()] == [future.id]
    assert TestQueue().process_scheduled() == []


def test_process_scheduled_runs_only_the_scheduled_tasks() -> None:
    queue = TestQueue()
    waiting, scheduled = t.add_sync(1, 1), t.add_sync(2, 2)
    queue.add(waiting)
    queue.schedule(scheduled, timedelta(minutes=5))
    ran = queue.process_scheduled(timedelta(minutes=6))
    assert [r.id for r in ran] == [scheduled.id]
    assert queue.size() == 1
    assert [p.id for p in queue.process_all()] == [waiting.id]


def test_scheduled_task_beside_an_immediate_one() -> None:
    queue = TestQueue()
    scheduled = t.add_sync(1, 2)
    at = datetime.now(UTC) + timedelta(hours=1)
    queue.schedule(scheduled, at)
    queue.add(immediate := t.add_sync(3, 4))
    done = queue.process_next()
    assert done is not None and done.id == immediate.id and done.result == 7
    assert queue.process_next() is None
    ran = queue.process_scheduled(at=at)
    assert [r.result for r in ran] == [3]
    assert len(queue.processed_tasks) == 2


def test_scheduled_failing_task() -> None:
    queue = TestQueue()
    task = t.always_fails("scheduled")
    queue.schedule(task, timedelta(hours=1))
    ran = queue.process_scheduled(timedelta(hours=2))
    assert len(ran) == 1
    _is_failed(ran[0])
    assert ran[0].error == "ValueError: failure of scheduled"
    assert [f.id for f in queue.failed_tasks] == [task.id]


def test_process_scheduled_runs_one_attempt_of_a_retrying_task() -> None:
    queue = TestQueue()
    task = t.fails_first_attempt_sync()
    queue.schedule(task, timedelta(minutes=1))
    ran = queue.process_scheduled(timedelta(minutes=2))
    assert [r.status for r in ran] == ["retrying"]
    assert queue.size() == 1  # the retry is queued at once, for process_next/process_all
    _is_completed(queue.process_next())


def test_process_scheduled_refuses_a_naive_datetime() -> None:
    queue = TestQueue()
    with pytest.raises(TypeError):
        queue.process_scheduled(datetime.now() + timedelta(hours=1))


# -- middleware, dependency overrides, rate limits --------------------------------------------------

def test_per_task_middleware_is_applied() -> None:
    queue = TestQueue()
    plain, one, two = t.add_sync(1, 2), t.add_with_result_middleware(1, 2), t.add_with_two_middlewares(1, 2)
    queue.add([plain, one, two])
    done = {d.id: d for d in queue.process_all()}
    assert done[plain.id].result == 3
    assert done[one.id].result == 103  # result changed after the call
    assert done[two.id].result == 104  # first argument doubled before the call, then +100


def test_worker_middleware_is_not_applied() -> None:
    """A TestQueue has no worker, so no worker middleware: its constructor takes none (as sheppy's),
    and middleware given to a Worker elsewhere does not reach it."""
    with pytest.raises(TypeError):
        TestQueue(middleware=[t.recording_worker_middleware])  # type: ignore[call-arg]
    Worker("other-queue", MemoryBackend(), middleware=[t.recording_worker_middleware])
    t.worker_middleware_calls.clear()
    queue = TestQueue()
    queue.add(t.add_sync(1, 1))
    _is_completed(queue.process_next())
    assert t.worker_middleware_calls == []


def test_dependency_overrides_are_used() -> None:
    production = TestQueue()
    production.add(t.greet("Ada"))
    assert production.process_next().result == "hello from production, Ada"  # type: ignore[union-attr]
    overridden = TestQueue(dependency_overrides={t.real_greeting: t.test_greeting})
    overridden.add(t.greet("Ada"))
    assert overridden.process_next().result == "hello from the override, Ada"  # type: ignore[union-attr]


def test_rate_limits_apply() -> None:
    """Over the limit, a task is not run but deferred (scheduled); sheppy's TestQueue then returns None
    from process_next, which also ends process_all."""
    queue = TestQueue()
    first, second = t.once_per_hour(1), t.once_per_hour(2)
    queue.add([first, second])
    done = queue.process_next()
    _is_completed(done)
    assert done is not None and done.id == first.id
    assert queue.process_next() is None
    assert [s.id for s in queue.get_scheduled()] == [second.id]
    deferred = queue.get_task(second)
    assert deferred is not None and deferred.status == "scheduled" and deferred.scheduled_at is not None
    assert deferred.scheduled_at > datetime.now(UTC) + timedelta(minutes=30)
    assert [p.id for p in queue.processed_tasks] == [first.id]

    again = TestQueue()
    again.add([t.once_per_hour(3), t.once_per_hour(4)])
    assert [p.result for p in again.process_all()] == [3]
    assert again.size() == 0 and len(again.get_scheduled()) == 1


# -- SyncQueue ----------------------------------------------------------------------------------------

def _sync_url(store: Store) -> str:
    return store.url or "memory://"


async def _blocking(function: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """A SyncQueue call from async test code: in a thread, so the test's worker keeps running."""
    return await asyncio.wait_for(asyncio.to_thread(function, *args, **kwargs), 60)


def test_sync_queue_is_importable_where_sheppy_had_it() -> None:
    import sheppy_core

    assert sheppy_core.SyncQueue is SyncQueue  # some releases exported it at the top level


def test_sync_queue_signature() -> None:
    parameters = inspect.signature(SyncQueue).parameters
    assert list(parameters) == ["backend", "name"]
    assert parameters["backend"].default is None and parameters["name"].default is None
    with pytest.raises(TypeError):
        SyncQueue(t)  # type: ignore[arg-type]  # not a URL


def test_sync_queue_on_memory_url_runs_inline() -> None:
    queue = SyncQueue("memory://", "woof")
    try:
        assert queue.name == "woof"
        queue.add(task := t.add_async(4, 8))
        done = queue.wait_for(task)
        _is_completed(done)
        assert done is not None and done.result == 12
    finally:
        queue.close()
    queue.close()  # closing twice is harmless
    with pytest.raises(RuntimeError):
        queue.size()


async def test_sync_queue_with_a_worker(store: Store, worker: Worker) -> None:
    queue = await _blocking(SyncQueue, _sync_url(store), QUEUE_NAME)
    try:
        tasks = [t.add_sync(1, 2), t.add_async(3, 4)]
        assert await _blocking(queue.add, tasks) == [True, True]
        if store.kind != "memory":  # memory:// ran them inline, in another store than the worker's
            assert await _blocking(queue.size) == 2
            runner = asyncio.create_task(work(worker, max_tasks=2))
            done = await _blocking(queue.wait_for, tasks, timeout=30)
            await runner
        else:
            done = await _blocking(queue.wait_for, tasks, timeout=30)
        assert [done[x.id].result for x in tasks] == [3, 7]
        assert (await _blocking(queue.get_task, tasks[0])).status == "completed"
        assert {x.id for x in await _blocking(queue.get_all_tasks)} == {x.id for x in tasks}
    finally:
        await _blocking(queue.close)


async def test_sync_queue_cancel_and_delete(store: Store) -> None:
    queue = await _blocking(SyncQueue, _sync_url(store), QUEUE_NAME)
    try:
        task = t.add_sync(5, 5)
        assert await _blocking(queue.schedule, task, timedelta(hours=1)) is True
        if store.kind == "memory":  # memory:// runs even scheduled tasks at once
            assert (await _blocking(queue.get_task, task)).status == "completed"
            with pytest.raises(TaskCancellationError):
                await _blocking(queue.cancel, task)
        else:
            with pytest.raises(ValueError, match="cancel the task first"):
                await _blocking(queue.delete, task)
            cancelled = await _blocking(queue.cancel, task)
            assert cancelled.status == "cancelled" and cancelled.finished_at is not None
            assert await _blocking(queue.get_scheduled) == []
        assert await _blocking(queue.delete, task) is True
        assert await _blocking(queue.get_task, task) is None
        assert await _blocking(queue.delete, task) is False
    finally:
        await _blocking(queue.close)


async def test_sync_queue_is_thread_safe(store: Store, worker: Worker) -> None:
    """One SyncQueue shared by several threads, each adding a task and waiting for its result."""
    queue = await _blocking(SyncQueue, _sync_url(store), QUEUE_NAME)
    results: dict[int, Any] = {}
    errors: list[BaseException] = []

    def client(number: int) -> None:
        try:
            task = t.add_sync(number, number)
            queue.add(task)
            results[number] = queue.wait_for(task, timeout=30).result
        except BaseException as exc:
            errors.append(exc)

    def run_clients() -> None:
        threads = [threading.Thread(target=client, args=(n,)) for n in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)

    runner = asyncio.create_task(work(worker)) if store.kind != "memory" else None
    try:
        await _blocking(run_clients)
        assert not errors
        assert results == {n: 2 * n for n in range(8)}
        assert len(await _blocking(queue.get_all_tasks)) == 8
    finally:
        if runner is not None:
            worker.stop()
            await runner
        await _blocking(queue.close)


async def test_sync_queue_workflow_methods(store: Store, worker: Worker) -> None:
    queue = await _blocking(SyncQueue, _sync_url(store), QUEUE_NAME)
    try:
        flow = t.add_then_double(2, 3)
        result = await _blocking(queue.add_workflow, flow)
        assert result.workflow.id == flow.id
        if store.kind != "memory":
            runner = asyncio.create_task(work(worker))
            try:
                finished = await _blocking(queue.wait_for_workflow, flow, timeout=30)
            finally:
                worker.stop()
                await runner
        else:
            finished = await _blocking(queue.wait_for_workflow, flow, timeout=30)
        assert finished is not None and finished.completed and finished.final_result == 10
        assert (await _blocking(queue.get_workflow, flow.id)).completed
        assert [w.id for w in await _blocking(queue.get_all_workflows)] == [flow.id]
        assert await _blocking(queue.get_pending_workflows) == []
        assert await _blocking(queue.delete_workflow, flow) is True
        assert await _blocking(queue.get_workflow, flow) is None
    finally:
        await _blocking(queue.close)
