from __future__ import annotations

import asyncio
import uuid
from datetime import datetime, timedelta

import pytest
import tasks_for_tests as t

from sheppy_core import MemoryBackend, Queue
from sheppy_core.exceptions import TaskCancellationError, UnknownSchemeError


async def test_add_is_unique_by_id(queue: Queue) -> None:
    task = t.add(1, 2)
    assert await queue.add(task) is True
    assert await queue.add(task) is False
    assert await queue.add([t.add(2, 3), task]) == [True, False]
    assert await queue.size() == 2
    stored = await queue.get_task(task)
    assert stored is not None and stored.status == "pending"


async def test_get_task_forms(queue: Queue) -> None:
    one, two = t.add(1, 1), t.add(2, 2)
    await queue.add([one, two])
    assert (await queue.get_task(str(one.id))) is not None
    assert await queue.get_task(uuid.uuid4()) is None
    found = await queue.get_task([one, one.id, str(two.id), uuid.uuid4()])
    assert set(found) == {one.id, two.id}
    assert await queue.get_task("not-a-uuid") is None  # as in sheppy: an id that names nothing


async def test_get_pending_peeks_in_order(queue: Queue) -> None:
    tasks = [t.add(i, i) for i in range(3)]
    await queue.add(tasks)
    assert [p.id for p in await queue.get_pending(2)] == [tasks[0].id, tasks[1].id]
    assert await queue.size() == 3
    with pytest.raises(ValueError):
        await queue.get_pending(0)


async def test_schedule_needs_aware_time(queue: Queue) -> None:
    with pytest.raises(TypeError, match="timezone-aware"):
        await queue.schedule(t.add(1, 2), datetime.now())
    task = t.add(1, 2)
    assert await queue.schedule(task, timedelta(seconds=30))
    assert await queue.schedule(task, timedelta(seconds=30)) is False
    scheduled = await queue.get_scheduled()
    assert [s.id for s in scheduled] == [task.id] and scheduled[0].status == "scheduled"
    assert await queue.size() == 0


async def test_wait_for_timeout_rules(queue: Queue, backend: MemoryBackend) -> None:
    task = t.add(1, 2)
    await queue.add(task)
    assert await queue.wait_for(task, timeout=-1) is None
    with pytest.raises(TimeoutError):
        await queue.wait_for(task, timeout=0.05)
    assert await queue.wait_for([task], timeout=-1) == {}

    async def finish() -> None:
        await asyncio.sleep(0.05)
        [claimed] = await backend.pop("q")
        claimed.update(status="completed", result=3, finished_at=datetime.now().astimezone().isoformat())
        await backend.store_result("q", claimed)

    finisher = asyncio.create_task(finish())
    done = await queue.wait_for(task, timeout=0)  # 0 waits for ever
    await finisher
    assert done is not None and done.status == "completed" and done.result == 3


async def test_cancel_and_delete(queue: Queue, backend: MemoryBackend) -> None:
    waiting, running = t.add(1, 1), t.add(2, 2)
    await queue.add([waiting, running])
    with pytest.raises(TaskCancellationError, match="does not exist"):
        await queue.cancel(uuid.uuid4())
    with pytest.raises(ValueError):
        await queue.delete(waiting)  # not finished
    cancelled = await queue.experimental.cancel(waiting)
    assert cancelled.status == "cancelled" and cancelled.finished_at is not None
    assert (await queue.wait_for(waiting, timeout=-1)) is not None  # cancel wakes waiters
    await backend.pop("q")
    with pytest.raises(TaskCancellationError, match="processing"):
        await queue.cancel(running)
    assert await queue.experimental.delete(waiting) is True
    assert await queue.delete(waiting) is False


async def test_retry_rules(queue: Queue, backend: MemoryBackend) -> None:
    task = t.add(1, 2)
    await queue.add(task)
    with pytest.raises(ValueError, match="only finished tasks"):
        await queue.retry(task)  # still waiting: re-queueing would run it twice
    [claimed] = await backend.pop("q")
    claimed.update(status="completed", result=3, finished_at=datetime.now().astimezone().isoformat())
    await backend.store_result("q", claimed)
    with pytest.raises(ValueError, match="force=True"):
        await queue.retry(task)
    assert await queue.retry(task, force=True) is True
    again = await queue.get_task(task)
    assert again is not None and again.status == "pending" and again.finished_at is None
    assert await queue.retry(uuid.uuid4()) is False


async def test_crons_are_unique_per_definition(queue: Queue) -> None:
    assert await queue.add_cron(t.stamp(), "*/5 * * * *") is True
    assert await queue.add_cron(t.stamp(), "*/5 * * * *") is False
    assert await queue.add_cron(t.stamp(), "0 * * * *") is True
    crons = await queue.get_crons()
    assert sorted(c.expression for c in crons) == ["*/5 * * * *", "0 * * * *"]
    assert await queue.delete_cron(t.stamp(), "0 * * * *") is True
    assert await queue.delete_cron(t.stamp(), "0 * * * *") is False


async def test_clear_and_list_queues(backend: MemoryBackend) -> None:
    first, second = Queue(backend, "first"), Queue(backend, "second")
    await first.add([t.add(1, 1), t.add(2, 2)])
    await second.add(t.add(3, 3))
    await first.add_cron(t.stamp(), "* * * * *")
    assert await first.list_queues() == {"first": 2, "second": 1}
    assert await first.clear() == 3
    assert await first.list_queues() == {"second": 1}
    assert await second.size() == 1


async def test_memory_url_processes_inline_with_retries() -> None:
    queue = Queue("memory://", "inline")
    task = t.fails_once(f"inline-{uuid.uuid4()}")
    assert await queue.add(task) is True
    done = await queue.get_task(task)
    assert done is not None and done.status == "completed" and done.result == "recovered"
    assert done.retry_count == 1


async def test_chained_tasks_are_enqueued() -> None:
    queue = Queue("memory://", "chain")
    parent = t.parent(10)
    await queue.add(parent)
    children = [c for c in await queue.get_all_tasks() if c.id != parent.id]
    assert sorted(c.result for c in children) == [10, 11, 12]


async def test_result_is_coerced_through_the_return_annotation() -> None:
    queue = Queue("memory://", "coerce")
    task = t.move(t.Point(x=1, y=1))
    await queue.add(task)
    done = await queue.get_task(task)
    assert done is not None and isinstance(done.result, t.Point) and done.result.x == 2


def test_unknown_scheme_names_it_and_lists_installed() -> None:
    with pytest.raises(UnknownSchemeError) as info:
        Queue("nope://x")
    assert "'nope'" in str(info.value) and "memory" in str(info.value)


def test_queue_repr_hides_password() -> None:
    queue = Queue("dummy://user:hunter2@host/db")
    assert "hunter2" not in repr(queue)
