"""§9 of sheppy-api.md, "Chaining": a task returning a ``Task`` or a list of ``Task``s enqueues them on
the same queue after it completes; its ``result`` holds their serialised form (read back as ``Task``s
through the ``-> Task`` / ``-> list[Task]`` annotation). The same in a real Queue + Worker on every
store, in ``TestQueue`` and in the inline memory backend (``memory://``, ``instant_processing=True``).
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from compat import tasks_testqueue as t
from compat.support import QUEUE_NAME, work

from sheppy_core import MemoryBackend, Queue, Task, TestQueue, Worker

CHAIN_ONE = [t.chain_one_async, t.chain_one_sync]
CHAIN_MANY = [t.chain_many_async, t.chain_many_sync]
INLINE = pytest.mark.parametrize(
    "make_queue",
    [lambda: Queue(MemoryBackend(), QUEUE_NAME), lambda: Queue("memory://", QUEUE_NAME)],
    ids=["MemoryBackend()", "memory://"],
)


def _is_unrun(task: Task) -> None:
    """A chained task as the parent returned it: never queued, never run."""
    assert isinstance(task, Task)
    assert task.status == "new"
    assert task.result is None and task.exception is None and task.finished_at is None


def _completed(task: Task | None) -> Task:
    assert task is not None and task.status == "completed", task
    assert task.exception is None and task.finished_at is not None
    return task


# -- real Queue + Worker, on each store ------------------------------------------------------------

@pytest.mark.parametrize("factory", CHAIN_ONE)
async def test_worker_enqueues_a_returned_task(
    factory: Callable[..., Task], queue: Queue, worker: Worker
) -> None:
    parents = [factory(3, asynchronous=True), factory(4, asynchronous=False)]
    await queue.add(parents)
    assert await queue.size() == 2
    await work(worker, max_tasks=2)
    assert await queue.size() == 2  # the two children wait in the same queue

    first, second = [_completed(await queue.get_task(p)) for p in parents]
    children = [first.result, second.result]
    for child in children:
        _is_unrun(child)
        waiting = await queue.get_task(child)
        # sheppy-core: a queued task says "pending" (sheppy leaves it "new"; §18.13)
        assert waiting is not None and waiting.status == "pending" and waiting.finished_at is None
    assert [c.spec.func for c in children] == [
        "compat.tasks_testqueue:add_async",
        "compat.tasks_testqueue:add_sync",
    ]

    await work(worker, max_tasks=2)
    assert await queue.size() == 0
    assert [_completed(await queue.get_task(c)).result for c in children] == [9, 12]


@pytest.mark.parametrize("factory", CHAIN_MANY)
async def test_worker_enqueues_a_returned_list_of_tasks(
    factory: Callable[..., Task], queue: Queue, worker: Worker
) -> None:
    parents = [factory(3, asynchronous=True), factory(4, asynchronous=False)]
    await queue.add(parents)
    await work(worker, max_tasks=2)
    assert await queue.size() == 4  # two children each

    first, second = [_completed(await queue.get_task(p)) for p in parents]
    assert isinstance(first.result, list) and isinstance(second.result, list)
    children = first.result + second.result
    assert len(children) == 4
    for child in children:
        _is_unrun(child)
        waiting = await queue.get_task(child)
        assert waiting is not None and waiting.finished_at is None and waiting.result is None

    await work(worker, max_tasks=4)
    assert await queue.size() == 0
    done = await queue.get_task(children)
    assert [_completed(done[c.id]).result for c in children] == [9, 8, 12, 10]


async def test_stored_parent_result_is_the_serialised_children(queue: Queue, worker: Worker) -> None:
    parent = t.chain_many_sync(2, asynchronous=False)
    await queue.add(parent)
    await work(worker, max_tasks=1)
    stored = _completed(await queue.get_task(parent))
    dumped = stored.model_dump(mode="json")["result"]
    assert isinstance(dumped, list) and len(dumped) == 2
    assert [d["spec"]["func"] for d in dumped] == ["compat.tasks_testqueue:add_sync"] * 2
    assert [d["spec"]["args"] for d in dumped] == [[2, 4], [2, 4]]  # 2 * 2 and 2 + 2
    assert {d["id"] for d in dumped} == {str(c.id) for c in stored.result}
    assert all(d["status"] == "new" for d in dumped)


async def test_a_failing_parent_chains_nothing(queue: Queue, worker: Worker) -> None:
    parent = t.chain_fails_after_building(1)
    await queue.add(parent)
    await work(worker, max_tasks=1)
    failed = await queue.get_task(parent)
    assert failed is not None and failed.status == "failed" and failed.result is None
    assert await queue.size() == 0
    assert [x.id for x in await queue.get_all_tasks()] == [parent.id]


async def test_only_the_successful_attempt_chains(queue: Queue, worker: Worker) -> None:
    parent = t.chain_after_one_failure(5)
    await queue.add(parent)
    await work(worker, max_tasks=3)  # the failed attempt, the retry, the child
    done = _completed(await queue.get_task(parent))
    assert done.retry_count == 1
    child = _completed(await queue.get_task(done.result))
    assert child.result == 6
    assert len(await queue.get_all_tasks()) == 2  # parent and exactly one child


# -- TestQueue --------------------------------------------------------------------------------------

@pytest.mark.parametrize("factory", CHAIN_ONE)
def test_testqueue_enqueues_a_returned_task(factory: Callable[..., Task]) -> None:
    queue = TestQueue()
    queue.add([factory(3, asynchronous=True), factory(4, asynchronous=False)])
    assert queue.size() == 2
    first, second = queue.process_next(), queue.process_next()
    assert queue.size() == 2
    children = [_completed(first).result, _completed(second).result]
    for child in children:
        _is_unrun(child)
    processed = queue.process_all()
    assert [p.id for p in processed] == [c.id for c in children]
    assert [_completed(p).result for p in processed] == [9, 12]
    assert queue.size() == 0


@pytest.mark.parametrize("factory", CHAIN_MANY)
def test_testqueue_enqueues_a_returned_list_of_tasks(factory: Callable[..., Task]) -> None:
    queue = TestQueue()
    queue.add([factory(3, asynchronous=True), factory(4, asynchronous=False)])
    first, second = queue.process_next(), queue.process_next()
    assert queue.size() == 4
    children = _completed(first).result + _completed(second).result
    assert len(children) == 4
    for child in children:
        _is_unrun(child)
        waiting = queue.get_task(child)
        assert waiting is not None and waiting.finished_at is None and waiting.result is None
    processed = queue.process_all()
    assert queue.size() == 0
    assert [_completed(p).result for p in processed] == [9, 8, 12, 10]


def test_testqueue_process_all_includes_chained_tasks() -> None:
    queue = TestQueue()
    parent = t.chain_many_sync(1)
    queue.add(parent)
    processed = queue.process_all()
    assert processed[0].id == parent.id
    assert [p.result for p in processed[1:]] == [3, 4]
    assert len(queue.processed_tasks) == 3


def test_testqueue_failing_parent_chains_nothing() -> None:
    queue = TestQueue()
    queue.add(t.chain_fails_after_building(1))
    assert [p.status for p in queue.process_all()] == ["failed"]
    assert queue.size() == 0 and len(queue.get_all_tasks()) == 1


# -- inline memory backend --------------------------------------------------------------------------

@INLINE
@pytest.mark.parametrize("factory", CHAIN_ONE)
async def test_inline_memory_runs_a_chained_task(
    factory: Callable[..., Task], make_queue: Callable[[], Queue]
) -> None:
    queue = make_queue()
    parent = factory(5)
    assert await queue.add(parent) is True
    done = _completed(await queue.get_task(parent))
    assert isinstance(done.result, Task)
    child = _completed(await queue.get_task(done.result))
    assert child.result == 15
    assert await queue.size() == 0


@INLINE
@pytest.mark.parametrize("factory", CHAIN_MANY)
async def test_inline_memory_runs_chained_tasks(
    factory: Callable[..., Task], make_queue: Callable[[], Queue]
) -> None:
    queue = make_queue()
    parent = factory(3)
    await queue.add(parent)
    done = _completed(await queue.get_task(parent))
    assert isinstance(done.result, list) and len(done.result) == 2
    children = [_completed(await queue.get_task(c)) for c in done.result]
    assert {c.result for c in children} == {8, 9}
    assert await queue.size() == 0
