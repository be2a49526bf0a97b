"""§5 Queue: the constructor, its attributes, every method of the table, ``queue.experimental``'s
cancel/delete and the worker-facing private methods sheppy's own tests call.

Where sheppy-core deliberately differs (statuses ``pending``/``processing`` §18.13, refusing to retry a
live task §18.10, ``size()`` §18.12) the test asserts sheppy-core's behaviour and says so.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta, timezone

import pytest
from compat import tasks_queue as t
from compat.support import QUEUE_NAME, work

from sheppy_core import MemoryBackend, Queue, RedisBackend, Task, Worker
from sheppy_core.backend import Backend
from sheppy_core.exceptions import TaskCancellationError
from sheppy_core.models import TaskCron

ZERO_ID = uuid.UUID("00000000-0000-0000-0000-000000000000")
WAIT_BOUND = 30.0
"""Seconds a test waits for something that should happen at once (a bound, not a sleep)."""


@pytest.fixture(params=["async", "sync"])
def add_task(request: pytest.FixtureRequest):
    """A task factory adding two numbers, as an async and as a sync function."""
    return t.add_async if request.param == "async" else t.add_sync


async def _wait_for_status(queue: Queue, task: Task, status: str) -> Task:
    """The stored ``task`` once it has ``status``; fails after ``WAIT_BOUND`` seconds."""
    deadline = asyncio.get_running_loop().time() + WAIT_BOUND
    while True:
        stored = await queue.get_task(task)
        if stored is not None and stored.status == status:
            return stored
        assert asyncio.get_running_loop().time() < deadline, f"task never became {status}: {stored!r}"
        await asyncio.sleep(0.02)


def no_background_loops(worker: Worker) -> Worker:
    worker.enable_scheduler = False
    worker.enable_cron_manager = False
    return worker


# -- constructor and attributes ---------------------------------------------------------------------


def test_backend_object_is_used_as_given() -> None:
    backend = MemoryBackend()
    assert Queue(backend).backend is backend


@pytest.mark.parametrize("url", ["redis://localhost:6379", "redis://localhost:6379/0", "rediss://localhost:6379"])
def test_redis_url_builds_a_redis_backend(url: str) -> None:
    queue = Queue(url)
    assert isinstance(queue.backend, RedisBackend)
    assert queue.backend.url == url


def test_memory_url_builds_a_memory_backend_that_runs_tasks_inline() -> None:
    queue = Queue("memory://", name="my-queue")
    assert isinstance(queue.backend, MemoryBackend)
    assert queue.backend.instant_processing is True
    assert queue.name == "my-queue"


def test_unknown_scheme_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="Unsupported backend protocol"):
        Queue("unknown://localhost")


@pytest.mark.parametrize("url", ["not-a-valid-url", ""])
def test_missing_scheme_is_a_value_error(url: str) -> None:
    with pytest.raises(ValueError, match="Invalid backend URL"):
        Queue(url)


def test_attributes(backend: Backend) -> None:
    queue = Queue(backend, "some-name")
    assert queue.name == "some-name"
    assert queue.backend is backend
    assert callable(queue.experimental.cancel) and callable(queue.experimental.delete)


async def test_backend_connects_lazily_on_the_first_awaited_call(backend: Backend) -> None:
    queue = Queue(backend, QUEUE_NAME)
    assert backend.is_connected is False
    assert await queue.size() == 0
    assert backend.is_connected is True


# -- add --------------------------------------------------------------------------------------------


async def test_add_returns_true_and_the_task_runs(add_task, queue: Queue, worker: Worker) -> None:
    task = add_task(1, 2)
    assert task.status == "new"
    assert await queue.add(task) is True
    assert await queue.size() == 1
    await work(no_background_loops(worker), max_tasks=1)
    assert await queue.size() == 0
    done = await queue.get_task(task)
    assert done is not None and done.status == "completed" and done.result == 3


async def test_add_is_idempotent_on_id(add_task, queue: Queue) -> None:
    one, two, three = add_task(1, 2), add_task(3, 4), add_task(5, 6)
    assert await queue.add(one) is True
    assert await queue.add(one) is False
    assert await queue.add([one]) == [False]
    assert await queue.schedule(one, at=timedelta(seconds=10)) is False
    assert await queue.add([two, two]) == [True, False]
    assert await queue.add([three, one]) == [True, False]
    assert await queue.size() == 3


async def test_add_of_a_list_returns_a_list(add_task, queue: Queue) -> None:
    assert await queue.add([]) == []
    assert await queue.size() == 0
    assert await queue.get_all_tasks() == []
    assert await queue.add([add_task(1, 1)]) == [True]
    assert await queue.size() == 1


def _not_tasks() -> list[object]:
    return [
        None,
        t.add_async,
        lambda: None,
        42,
        [t.add_async],
        [5],
        [None],
        [t.add_async(1, 2), None, t.add_async(3, 4)],
    ]


@pytest.mark.parametrize("index", range(len(_not_tasks())))
async def test_add_of_something_not_a_task_raises_and_adds_nothing(index: int, queue: Queue) -> None:
    # sheppy raises AttributeError; sheppy-core's error is both a TypeError and an AttributeError.
    bad = _not_tasks()[index]
    with pytest.raises(AttributeError):
        await queue.add(bad)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        await queue.add(bad)  # type: ignore[arg-type]
    assert await queue.get_all_tasks() == []
    assert await queue.size() == 0


@pytest.mark.parametrize("bad", [None, 42, t.add_async, [t.add_async(1, 2)]])
async def test_schedule_of_something_not_a_task_raises_and_stores_nothing(bad: object, queue: Queue) -> None:
    with pytest.raises(AttributeError):
        await queue.schedule(bad, timedelta(seconds=10))  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        await queue.schedule(bad, timedelta(seconds=10))  # type: ignore[arg-type]
    assert await queue.get_all_tasks() == []
    assert await queue.get_scheduled() == []


# -- get_task / get_all_tasks -----------------------------------------------------------------------


async def test_get_task_in_every_form(add_task, queue: Queue, worker: Worker) -> None:
    one, two = add_task(1, 2), add_task(1, 2)
    for form in (one, one.id, str(one.id)):
        assert await queue.get_task(form) is None
        assert await queue.get_task([form]) == {}
    await queue.add(one)
    for form in (one, one.id, str(one.id)):
        found = await queue.get_task(form)
        assert found is not None and found.id == one.id
    await queue.add(two)
    batches = ([one, two], [one.id, two.id], [str(one.id), str(two.id)], [one, two.id], [one.id, str(two.id)])
    for batch in batches:
        found_many = await queue.get_task(batch)
        assert set(found_many) == {one.id, two.id}
        assert all(isinstance(key, uuid.UUID) and value.id == key for key, value in found_many.items())
    await work(no_background_loops(worker), max_tasks=2)
    done = await queue.get_task(one)
    assert done is not None and done.status == "completed" and done.result == 3
    assert await queue.get_task(one.id) == done == await queue.get_task(str(one.id))


async def test_get_task_after_add_differs_from_the_passed_task_only_by_status(add_task, queue: Queue) -> None:
    # §18.13: the stored record says "pending" while the caller's object still says "new".
    task = add_task(1, 2)
    await queue.add(task)
    stored = await queue.get_task(task)
    assert stored is not None and stored.status == "pending" and task.status == "new"
    assert stored == task.model_copy(update={"status": "pending"})


async def test_get_task_batch_collapses_duplicate_ids(add_task, queue: Queue) -> None:
    one, two = add_task(1, 2), add_task(1, 2)
    assert await queue.add([one, two]) == [True, True]
    found = await queue.get_task([one, one, one.id, str(one.id)])
    assert list(found) == [one.id]


@pytest.mark.parametrize("ref", [None, ZERO_ID, str(ZERO_ID), "not-a-uuid", 42])
async def test_get_task_of_an_unknown_id_is_none_never_an_error(ref: object, queue: Queue) -> None:
    await queue.add(t.add_async(1, 2))
    assert await queue.get_task(ref) is None  # type: ignore[arg-type]
    assert await queue.get_task([ref]) == {}  # type: ignore[list-item]


async def test_get_task_of_an_empty_list(queue: Queue) -> None:
    assert await queue.get_task([]) == {}


async def test_get_all_tasks_lists_every_record_in_any_state(add_task, queue: Queue, worker: Worker) -> None:
    assert await queue.get_all_tasks() == []
    tasks = [add_task(i, i) for i in range(8)]
    assert await queue.add(tasks) == [True] * 8
    assert {task.id for task in await queue.get_all_tasks()} == {task.id for task in tasks}
    await work(no_background_loops(worker), max_tasks=4)
    claimed = await queue._pop_pending(limit=2)
    assert [task.id for task in claimed] == [tasks[4].id, tasks[5].id]
    later = add_task(100, 1)
    await queue.schedule(later, timedelta(hours=1))
    by_id = {task.id: task for task in await queue.get_all_tasks()}
    assert set(by_id) == {task.id for task in tasks} | {later.id}
    statuses = [by_id[task.id].status for task in tasks]
    assert statuses == ["completed"] * 4 + ["processing"] * 2 + ["pending"] * 2
    assert by_id[later.id].status == "scheduled"


# -- get_pending ------------------------------------------------------------------------------------


async def test_get_pending_peeks_at_the_head_without_claiming(add_task, queue: Queue, worker: Worker) -> None:
    assert await queue.get_pending() == []
    one, two = add_task(1, 2), add_task(3, 4)
    await queue.add(one)
    await queue.add(two)
    for count, expected in ((None, [one.id]), (1, [one.id]), (2, [one.id, two.id]), (9999, [one.id, two.id])):
        peeked = await queue.get_pending() if count is None else await queue.get_pending(count=count)
        assert [task.id for task in peeked] == expected
        assert await queue.size() == 2
    no_background_loops(worker)
    await work(worker, max_tasks=1)
    assert [task.id for task in await queue.get_pending(count=2)] == [two.id]
    await work(worker, max_tasks=1)
    assert await queue.get_pending(count=2) == []


async def test_get_pending_does_not_show_a_claimed_task(add_task, queue: Queue) -> None:
    task = add_task(1, 2)
    await queue.add(task)
    assert [p.id for p in await queue.get_pending()] == [task.id]
    await queue._pop_pending()
    assert await queue.get_pending() == []
    assert await queue.size() == 0


@pytest.mark.parametrize("count", [0, -1])
async def test_get_pending_count_below_one_is_a_value_error(count: int, queue: Queue) -> None:
    with pytest.raises(ValueError):
        await queue.get_pending(count=count)


# -- schedule / get_scheduled -----------------------------------------------------------------------


async def test_schedule_with_a_timedelta_marks_the_passed_task(add_task, queue: Queue) -> None:
    task = add_task(1, 2)
    before = datetime.now(UTC)
    assert await queue.schedule(task, timedelta(minutes=10)) is True
    after = datetime.now(UTC)
    assert task.status == "scheduled"
    assert task.scheduled_at is not None
    assert before + timedelta(minutes=10) <= task.scheduled_at <= after + timedelta(minutes=10)
    scheduled = await queue.get_scheduled()
    assert scheduled == [task]
    assert await queue.size() == 0


async def test_schedule_with_an_aware_datetime(add_task, queue: Queue) -> None:
    task = add_task(1, 2)
    at = datetime(2099, 1, 1, 12, 0, tzinfo=timezone(timedelta(hours=2)))
    assert await queue.schedule(task, at) is True
    assert task.status == "scheduled" and task.scheduled_at == at
    [stored] = await queue.get_scheduled()
    assert stored.id == task.id and stored.status == "scheduled" and stored.scheduled_at == at


async def test_schedule_with_a_naive_datetime_is_a_type_error(add_task, queue: Queue) -> None:
    task = add_task(1, 2)
    with pytest.raises(TypeError, match="provided datetime must be offset-aware"):
        await queue.schedule(task, at=datetime.fromisoformat("2030-01-01 00:00:00"))
    assert task.status == "new"
    assert await queue.get_all_tasks() == []


async def test_schedule_twice_is_false(add_task, queue: Queue) -> None:
    task = add_task(1, 2)
    assert await queue.schedule(task, at=timedelta(seconds=10)) is True
    assert await queue.schedule(task, at=timedelta(seconds=10)) is False
    assert await queue.schedule(task, at=timedelta(hours=2)) is False
    assert await queue.add(task) is False
    assert len(await queue.get_scheduled()) == 1
    assert await queue.size() == 0


async def test_get_scheduled_lists_tasks_waiting_for_their_time(add_task, queue: Queue) -> None:
    assert await queue.get_scheduled() == []
    later, sooner = add_task(1, 1), add_task(2, 2)
    await queue.schedule(later, timedelta(hours=2))
    await queue.schedule(sooner, timedelta(hours=1))
    await queue.add(add_task(3, 3))
    assert {task.id for task in await queue.get_scheduled()} == {later.id, sooner.id}


# -- wait_for ---------------------------------------------------------------------------------------


async def test_wait_for_one_and_a_list(add_task, queue: Queue, worker: Worker) -> None:
    task = add_task(1, 2)
    await queue.add(task)
    running = asyncio.create_task(work(worker, max_tasks=1))
    done = await queue.wait_for(task, timeout=WAIT_BOUND)
    assert done is not None and done.status == "completed" and done.result == 3
    done_many = await queue.wait_for([task], timeout=WAIT_BOUND)
    assert list(done_many) == [task.id] and done_many[task.id].result == 3
    await running


async def test_wait_for_a_batch_collapses_duplicates(add_task, queue: Queue, worker: Worker) -> None:
    one, two = add_task(1, 2), add_task(3, 4)
    await queue.add([one, two])
    running = asyncio.create_task(work(worker, max_tasks=2))
    done = await queue.wait_for([one, two, one], timeout=WAIT_BOUND)
    assert {key: task.result for key, task in done.items()} == {one.id: 3, two.id: 7}
    await running


async def test_wait_for_zero_waits_without_limit(add_task, queue: Queue, worker: Worker) -> None:
    task = add_task(1, 2)
    await queue.add(task)
    waiting = asyncio.create_task(queue.wait_for(task, timeout=0))
    await asyncio.sleep(0)
    assert not waiting.done()
    await work(worker, max_tasks=1)
    done = await asyncio.wait_for(waiting, WAIT_BOUND)
    assert done is not None and done.result == 3


async def test_wait_for_positive_timeout_raises_unless_everything_finished(
    add_task, queue: Queue, worker: Worker
) -> None:
    finished, waiting = add_task(1, 1), add_task(2, 2)
    await queue.add(finished)
    await work(worker, max_tasks=1)
    await queue.add(waiting)
    with pytest.raises(TimeoutError):
        await queue.wait_for(waiting, timeout=0.05)
    with pytest.raises(TimeoutError):
        await queue.wait_for([finished, waiting], timeout=0.05)


async def test_wait_for_negative_timeout_returns_what_is_finished(
    add_task, queue: Queue, worker: Worker
) -> None:
    finished, waiting = add_task(1, 1), add_task(2, 2)
    await queue.add(finished)
    await work(worker, max_tasks=1)
    await queue.add(waiting)
    assert await queue.wait_for(waiting, timeout=-1) is None
    done = await queue.wait_for(finished, timeout=-1)
    assert done is not None and done.status == "completed"
    assert list(await queue.wait_for([finished, waiting], timeout=-1)) == [finished.id]


@pytest.mark.parametrize("ref", [None, ZERO_ID, str(ZERO_ID), "not-a-uuid"])
async def test_wait_for_an_unknown_id(ref: object, queue: Queue) -> None:
    with pytest.raises(TimeoutError):
        await queue.wait_for(ref, timeout=0.01)  # type: ignore[arg-type]
    assert await queue.wait_for(ref, timeout=None) is None  # type: ignore[arg-type]
    assert await queue.wait_for(ref, timeout=-1) is None  # type: ignore[arg-type]
    assert await queue.wait_for([ref], timeout=-1) == {}  # type: ignore[list-item]
    waiting = asyncio.create_task(queue.wait_for(ref, timeout=0))  # type: ignore[arg-type]
    done, _ = await asyncio.wait({waiting}, timeout=0.2)
    assert not done  # 0 waits for ever, also for an id nobody added
    waiting.cancel()


# -- retry ------------------------------------------------------------------------------------------


async def test_retry_of_an_unknown_task_is_false(queue: Queue) -> None:
    assert await queue.retry(uuid.uuid4()) is False
    assert await queue.retry(str(ZERO_ID), at=timedelta(hours=1)) is False


async def test_retry_queues_a_failed_task_again(queue: Queue, worker: Worker) -> None:
    task = t.always_fails()
    assert await queue.add(task) is True
    no_background_loops(worker)
    await work(worker, oneshot=True)
    failed = await queue.get_task(task)
    assert failed is not None and failed.status == "failed" and failed.finished_at is not None
    before = datetime.now(UTC)
    assert await queue.retry(task) is True
    again = await queue.get_task(task)
    assert again is not None
    assert again.finished_at is None
    assert again.last_retry_at is not None and again.last_retry_at >= before
    assert again.next_retry_at is not None and again.next_retry_at >= before
    assert again.retry_count == failed.retry_count
    assert again.status == "pending"  # §18.13; sheppy keeps "failed" until it runs
    assert await queue.size() == 1
    assert await queue.get_scheduled() == []
    await work(worker, oneshot=True)
    assert await queue.size() == 0
    rerun = await queue.get_task(task)
    assert rerun is not None and rerun.status == "failed" and rerun.finished_at is not None
    assert rerun.finished_at > failed.finished_at and rerun.retry_count == failed.retry_count


async def test_retry_of_a_completed_task_needs_force(queue: Queue, worker: Worker) -> None:
    task = t.fails_first_attempt()
    await queue.add(task)
    await work(worker, max_tasks=2)
    done = await queue.get_task(task)
    assert done is not None and done.status == "completed" and done.retry_count == 1
    message = "Task has already completed successfully, use force to retry anyways"
    for call in (queue.retry(task), queue.retry(task.id), queue.retry(task.id, at=timedelta(hours=10))):
        with pytest.raises(ValueError, match=message):
            await call
    assert await queue.size() == 0
    assert await queue.retry(task.id, force=True) is True
    assert await queue.size() == 1
    await work(worker, max_tasks=1)
    again = await queue.get_task(task)
    assert again is not None and again.status == "completed" and again.retry_count == 1


async def test_retry_at_schedules_it_again(queue: Queue, worker: Worker) -> None:
    task = t.always_fails()
    await queue.add(task)
    await work(worker, max_tasks=1)
    at = datetime.now(UTC) + timedelta(hours=10)
    assert await queue.retry(task, at=at) is True
    assert await queue.size() == 0
    [scheduled] = await queue.get_scheduled()
    assert scheduled.id == task.id and scheduled.status == "scheduled"
    assert scheduled.scheduled_at == at and scheduled.next_retry_at == at and scheduled.finished_at is None
    moved = await queue._enqueue_scheduled(at + timedelta(hours=1))
    assert [m.id for m in moved] == [task.id]
    await work(worker, max_tasks=1)
    rerun = await queue.get_task(task)
    assert rerun is not None and rerun.status == "failed" and rerun.retry_count == 0


async def test_retry_at_with_a_timedelta(queue: Queue, worker: Worker) -> None:
    task = t.always_fails()
    await queue.add(task)
    await work(worker, max_tasks=1)
    before = datetime.now(UTC)
    assert await queue.retry(task, at=timedelta(hours=1)) is True
    [scheduled] = await queue.get_scheduled()
    assert scheduled.scheduled_at is not None and scheduled.scheduled_at >= before + timedelta(hours=1)


async def test_retry_at_a_naive_datetime_is_a_type_error(queue: Queue, worker: Worker) -> None:
    task = t.always_fails()
    await queue.add(task)
    await work(worker, max_tasks=1)
    with pytest.raises(TypeError, match="provided datetime must be offset-aware"):
        await queue.retry(task, at=datetime(2030, 1, 1))
    assert await queue.get_scheduled() == []
    assert await queue.size() == 0


async def test_retry_refuses_a_live_task(queue: Queue, worker: Worker) -> None:
    # §18.10: re-queueing a task that still waits or runs would run it twice.
    retrying = t.fails_then_waits_an_hour()
    await queue.add(retrying)
    await work(no_background_loops(worker), max_tasks=1)
    assert (await queue.get_task(retrying)).status == "retrying"  # type: ignore[union-attr]
    waiting, scheduled, claimed = t.add_async(1, 1), t.add_async(2, 2), t.add_async(3, 3)
    await queue.add(claimed)
    await queue._pop_pending()
    await queue.add(waiting)
    await queue.schedule(scheduled, timedelta(hours=1))
    for task in (waiting, scheduled, claimed, retrying):
        for force in (False, True):
            with pytest.raises(ValueError):
                await queue.retry(task, force=force)
    assert await queue.size() == 1  # only ``waiting``, queued once


# -- size / clear -----------------------------------------------------------------------------------


async def test_size_counts_tasks_waiting_to_be_claimed(add_task, queue: Queue) -> None:
    # §18.12: on every backend; a claimed task no longer counts (sheppy's Redis counts it).
    assert await queue.size() == 0
    await queue.add([add_task(i, i) for i in range(3)])
    await queue.schedule(add_task(9, 9), timedelta(hours=1))
    assert await queue.size() == 3
    await queue._pop_pending()
    assert await queue.size() == 2


async def test_clear_removes_records_and_crons_and_counts_them(
    add_task, queue: Queue, worker: Worker
) -> None:
    tasks = [add_task(1, 2), add_task(3, 4), add_task(5, 6)]
    await queue.add(tasks)
    await work(no_background_loops(worker), max_tasks=1)
    assert [c.id for c in await queue._pop_pending()] == [tasks[1].id]
    await queue.schedule(add_task(7, 8), timedelta(hours=1))
    await queue.add_cron(add_task(1, 1), "*/5 * * * *")
    assert await queue.clear() == 4 + 1
    assert await queue.size() == 0
    assert await queue.get_pending() == []
    assert await queue.get_all_tasks() == []
    assert await queue.get_scheduled() == []
    assert await queue.get_crons() == []
    assert await queue.clear() == 0


async def test_clear_leaves_other_queues_alone(add_task, backend: Backend) -> None:
    mine, other = Queue(backend, QUEUE_NAME), Queue(backend, "other-queue")
    await mine.add(add_task(1, 1))
    kept = add_task(2, 2)
    await other.add(kept)
    assert await mine.clear() == 1
    assert await other.size() == 1 and (await other.get_task(kept)) is not None
    await other.clear()


async def test_clear_resets_rate_limits(queue: Queue, worker: Worker) -> None:
    first, second = t.once_an_hour(1), t.once_an_hour(2)
    await queue.add(first)
    no_background_loops(worker)
    await work(worker, max_tasks=1)
    await queue.add(second)
    running = asyncio.create_task(work(worker))
    deferred = await _wait_for_status(queue, second, "scheduled")  # the hour's one run is used
    worker.stop()
    await running
    assert deferred.scheduled_at is not None
    assert deferred.scheduled_at > datetime.now(UTC) + timedelta(minutes=30)
    await queue.clear()
    third = t.once_an_hour(3)
    await queue.add(third)
    await work(worker, max_tasks=1)
    done = await queue.get_task(third)
    assert done is not None and done.status == "completed"


# -- crons ------------------------------------------------------------------------------------------


async def test_add_cron_is_false_for_an_identical_cron(add_task, queue: Queue) -> None:
    assert await queue.add_cron(add_task(1, 2), "*/5 * * * *") is True
    assert await queue.add_cron(add_task(1, 2), "*/5 * * * *") is False
    assert await queue.add_cron(add_task(1, 3), "*/5 * * * *") is True
    assert await queue.add_cron(add_task(1, 2), "0 * * * *") is True
    crons = await queue.get_crons()
    assert all(isinstance(cron, TaskCron) for cron in crons)
    assert sorted((c.expression, c.spec.args) for c in crons) == sorted(
        [("*/5 * * * *", (1, 2)), ("*/5 * * * *", (1, 3)), ("0 * * * *", (1, 2))]
    )


async def test_delete_cron_by_the_same_task_and_expression(add_task, queue: Queue) -> None:
    assert await queue.get_crons() == []
    await queue.add_cron(add_task(1, 2), "*/5 * * * *")
    assert await queue.delete_cron(add_task(1, 2), "0 * * * *") is False
    assert await queue.delete_cron(add_task(9, 9), "*/5 * * * *") is False
    assert await queue.delete_cron(add_task(1, 2), "*/5 * * * *") is True
    assert await queue.delete_cron(add_task(1, 2), "*/5 * * * *") is False
    assert await queue.get_crons() == []


# -- experimental.cancel ----------------------------------------------------------------------------


def _cancel(queue: Queue, spelling: str):
    return queue.experimental.cancel if spelling == "experimental" else queue.cancel


def _delete(queue: Queue, spelling: str):
    return queue.experimental.delete if spelling == "experimental" else queue.delete


SPELLINGS = ["experimental", "queue"]


@pytest.mark.parametrize("spelling", SPELLINGS)
async def test_cancel_a_queued_task(spelling: str, add_task, queue: Queue, worker: Worker) -> None:
    task = add_task(1, 2)
    await queue.add(task)
    cancelled = await _cancel(queue, spelling)(task)
    assert isinstance(cancelled, Task)
    assert cancelled.status == "cancelled" and cancelled.finished_at is not None
    assert await queue.size() == 0
    stored = await queue.get_task(task)
    assert stored is not None and stored.status == "cancelled" and stored.result is None
    await work(no_background_loops(worker), oneshot=True)
    stored = await queue.get_task(task)
    assert stored is not None and stored.status == "cancelled" and stored.result is None


@pytest.mark.parametrize("spelling", SPELLINGS)
async def test_cancel_by_id_and_id_string(spelling: str, add_task, queue: Queue) -> None:
    one, two = add_task(1, 2), add_task(3, 4)
    await queue.add([one, two])
    assert (await _cancel(queue, spelling)(one.id)).status == "cancelled"
    assert (await _cancel(queue, spelling)(str(two.id))).status == "cancelled"


@pytest.mark.parametrize("spelling", SPELLINGS)
async def test_cancel_a_scheduled_task(spelling: str, add_task, queue: Queue) -> None:
    task = add_task(1, 2)
    await queue.schedule(task, timedelta(minutes=10))
    cancelled = await _cancel(queue, spelling)(task)
    assert cancelled.status == "cancelled" and cancelled.finished_at is not None
    assert await queue.get_scheduled() == []
    assert await queue.size() == 0
    assert (await queue.get_task(task)).status == "cancelled"  # type: ignore[union-attr]


@pytest.mark.parametrize("spelling", SPELLINGS)
async def test_cancel_a_task_waiting_for_its_retry(spelling: str, queue: Queue, worker: Worker) -> None:
    task = t.fails_then_waits_an_hour()
    await queue.add(task)
    await work(no_background_loops(worker), max_tasks=1)
    assert (await queue.get_task(task)).status == "retrying"  # type: ignore[union-attr]
    cancelled = await _cancel(queue, spelling)(task)
    assert cancelled.status == "cancelled" and cancelled.finished_at is not None
    assert await queue.get_scheduled() == []


@pytest.mark.parametrize("spelling", SPELLINGS)
async def test_cancel_refuses_claimed_finished_cancelled_and_unknown(
    spelling: str, add_task, queue: Queue, worker: Worker
) -> None:
    cancel = _cancel(queue, spelling)
    claimed = add_task(1, 2)
    await queue.add(claimed)
    assert len(await queue._pop_pending()) == 1
    with pytest.raises(TaskCancellationError):
        await cancel(claimed)
    finished = add_task(3, 4)
    await queue.add(finished)
    await work(no_background_loops(worker), max_tasks=1)
    assert (await queue.get_task(finished)).status == "completed"  # type: ignore[union-attr]
    with pytest.raises(TaskCancellationError):
        await cancel(finished)
    twice = add_task(5, 6)
    await queue.add(twice)
    await cancel(twice)
    with pytest.raises(TaskCancellationError):
        await cancel(twice)
    for unknown in (uuid.uuid4(), None, "not-a-uuid"):
        with pytest.raises(TaskCancellationError):
            await cancel(unknown)


@pytest.mark.parametrize("spelling", SPELLINGS)
async def test_cancel_wakes_wait_for(spelling: str, add_task, queue: Queue) -> None:
    task = add_task(1, 2)
    await queue.add(task)
    waiting = asyncio.create_task(queue.wait_for(task, timeout=0))
    await asyncio.sleep(0)
    await _cancel(queue, spelling)(task)
    finished = await asyncio.wait_for(waiting, WAIT_BOUND)
    assert finished is not None and finished.status == "cancelled"
    again = await queue.wait_for(task)
    assert again is not None and again.status == "cancelled"


# -- experimental.delete ----------------------------------------------------------------------------


@pytest.mark.parametrize("spelling", SPELLINGS)
async def test_delete_a_cancelled_task(spelling: str, add_task, queue: Queue) -> None:
    task = add_task(1, 2)
    await queue.add(task)
    await queue.experimental.cancel(task)
    assert await _delete(queue, spelling)(task) is True
    assert await queue.get_task(task) is None
    assert await _delete(queue, spelling)(task) is False


@pytest.mark.parametrize("spelling", SPELLINGS)
async def test_delete_a_completed_and_a_failed_task(
    spelling: str, add_task, queue: Queue, worker: Worker
) -> None:
    done, failed = add_task(1, 2), t.always_fails()
    await queue.add([done, failed])
    await work(no_background_loops(worker), max_tasks=2)
    assert await _delete(queue, spelling)(done) is True
    assert await _delete(queue, spelling)(failed.id) is True
    assert await queue.get_all_tasks() == []


@pytest.mark.parametrize("spelling", SPELLINGS)
async def test_delete_of_an_unknown_task_is_false(spelling: str, queue: Queue) -> None:
    for unknown in (uuid.uuid4(), str(ZERO_ID), None, "not-a-uuid"):
        assert await _delete(queue, spelling)(unknown) is False


@pytest.mark.parametrize("spelling", SPELLINGS)
async def test_delete_of_a_task_not_finished_says_cancel_it_first(
    spelling: str, add_task, queue: Queue, worker: Worker
) -> None:
    retrying = t.fails_then_waits_an_hour()
    await queue.add(retrying)
    await work(no_background_loops(worker), max_tasks=1)
    waiting, scheduled, claimed = add_task(1, 2), add_task(1, 2), add_task(5, 5)
    await queue.add(claimed)
    await queue._pop_pending()
    await queue.add(waiting)
    await queue.schedule(scheduled, timedelta(minutes=10))
    for task in (waiting, scheduled, claimed, retrying):
        with pytest.raises(ValueError, match="cancel the task first"):
            await _delete(queue, spelling)(task)
    assert {task.id for task in await queue.get_all_tasks()} == {
        waiting.id, scheduled.id, claimed.id, retrying.id
    }


# -- worker-facing private methods ------------------------------------------------------------------


async def test_pop_pending_claims_in_order(add_task, queue: Queue) -> None:
    tasks = [add_task(i, i) for i in range(8)]
    for task in tasks:
        await queue.add(task)
    assert await queue.size() == 8

    def ids(claimed: list[Task]) -> list[uuid.UUID]:
        return [task.id for task in claimed]

    assert ids(await queue._pop_pending()) == [tasks[0].id]
    assert ids(await queue._pop_pending(timeout=0.01)) == [tasks[1].id]
    assert ids(await queue._pop_pending(limit=2, timeout=0.01)) == [tasks[2].id, tasks[3].id]
    assert ids(await queue._pop_pending(limit=1)) == [tasks[4].id]
    assert ids(await queue._pop_pending(limit=2)) == [tasks[5].id, tasks[6].id]
    assert ids(await queue._pop_pending(limit=2)) == [tasks[7].id]
    assert await queue._pop_pending() == []
    assert await queue._pop_pending(limit=2) == []
    assert await queue._pop_pending(timeout=0.01) == []
    assert await queue._pop_pending(limit=2, timeout=0.01) == []


async def test_pop_pending_returns_the_claimed_record(add_task, queue: Queue) -> None:
    task = add_task(1, 2)
    await queue.add(task)
    [claimed] = await queue._pop_pending()
    assert claimed.id == task.id and claimed.spec == task.spec
    assert claimed.status == "processing"  # §18.13; sheppy's claimed task still says "new"


async def test_pop_pending_limit_checks(queue: Queue) -> None:
    for limit in (0, -1):
        with pytest.raises(ValueError):
            await queue._pop_pending(limit)
    with pytest.raises(TypeError):
        await queue._pop_pending(None)  # type: ignore[arg-type]


async def test_enqueue_scheduled_moves_due_tasks(add_task, queue: Queue) -> None:
    task = add_task(1, 2)
    await queue.schedule(task, timedelta(hours=1))
    assert await queue._enqueue_scheduled() == []
    assert await queue._enqueue_scheduled(datetime.now(UTC) + timedelta(minutes=59)) == []
    moved = await queue._enqueue_scheduled(datetime.now(UTC) + timedelta(hours=2))
    assert [m.id for m in moved] == [task.id] and moved[0].status == "pending"
    assert await queue.get_scheduled() == []
    assert await queue.size() == 1
    assert [p.id for p in await queue.get_pending()] == [task.id]


async def test_store_result_records_the_outcome(add_task, queue: Queue) -> None:
    task = add_task(1, 2)
    await queue.add(task)
    [claimed] = await queue._pop_pending()
    done = claimed.model_copy(update={"status": "completed", "result": 3, "finished_at": datetime.now(UTC)})
    assert await queue._store_result(done) is True
    stored = await queue.wait_for(task, timeout=WAIT_BOUND)
    assert stored is not None and stored.status == "completed" and stored.result == 3
    assert await queue.size() == 0
