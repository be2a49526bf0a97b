"""§12 of sheppy-api.md: ``Worker`` — constructor, attributes, claim loops, concurrency, ``work()``
options, the per-task steps and shutdown (with §18.2: tasks cut off by the shutdown timeout are handed
back at once), on every store."""

from __future__ import annotations

import asyncio
import inspect
import os
import re
import signal
import socket
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from compat import tasks_worker as t
from compat.support import QUEUE_NAME, WORK_BOUND, until, work

from sheppy_core import MemoryBackend, Queue, Worker
from sheppy_core.backend import Backend


def new_key() -> str:
    return f"k-{uuid.uuid4().hex[:10]}"


def handler_installed(sig: signal.Signals) -> bool:
    """Whether an event loop handles ``sig`` now (``loop.add_signal_handler`` installs this function)."""
    return getattr(signal.getsignal(sig), "__name__", "") == "_sighandler_noop"


# -- constructor and attributes -------------------------------------------------------------------


def test_constructor_signature_matches_sheppy() -> None:
    parameters = list(inspect.signature(Worker).parameters.values())
    expected = [
        ("queue_name", inspect.Parameter.empty),
        ("backend", inspect.Parameter.empty),
        ("shutdown_timeout", 30.0),
        ("max_concurrent_tasks", 10),
        ("max_prefetch_tasks", None),
        ("enable_job_processing", True),
        ("enable_scheduler", True),
        ("enable_cron_manager", True),
        ("task_processor", None),
        ("middleware", None),
        ("dependency_overrides", None),
    ]
    assert [(p.name, p.default) for p in parameters[: len(expected)]] == expected
    assert all(p.kind is inspect.Parameter.POSITIONAL_OR_KEYWORD for p in parameters[: len(expected)])
    # Anything sheppy-core adds comes after, keyword-only, with a default.
    extras = parameters[len(expected):]
    assert all(p.kind is inspect.Parameter.KEYWORD_ONLY and p.default is not p.empty for p in extras)


def test_work_signature_matches_sheppy() -> None:
    parameters = [p for name, p in inspect.signature(Worker.work).parameters.items() if name != "self"]
    expected = [("max_tasks", None), ("oneshot", False), ("register_signal_handlers", True)]
    assert [(p.name, p.default) for p in parameters[: len(expected)]] == expected
    assert all(p.kind is inspect.Parameter.POSITIONAL_OR_KEYWORD for p in parameters[: len(expected)])
    # sheppy-core's additions (wait_scheduled) come after, keyword-only, with a default.
    extras = parameters[len(expected):]
    assert all(p.kind is inspect.Parameter.KEYWORD_ONLY and p.default is not p.empty for p in extras)


def test_attributes_and_defaults(worker_backend: Backend) -> None:
    worker = Worker(queue_name=QUEUE_NAME, backend=worker_backend)
    assert isinstance(worker.queues, list) and len(worker.queues) == 1
    assert isinstance(worker.queues[0], Queue) and worker.queues[0].name == QUEUE_NAME
    assert re.fullmatch(rf"worker-{re.escape(socket.gethostname())}-[0-9a-f]{{8}}", worker.worker_id)
    assert Worker(QUEUE_NAME, worker_backend).worker_id != worker.worker_id
    assert worker.stats.processed == 0 and worker.stats.failed == 0
    flags = (worker.enable_job_processing, worker.enable_scheduler, worker.enable_cron_manager)
    assert flags == (True, True, True)
    assert worker.shutdown_timeout == 30.0
    # The private polling attributes sheppy's tests tune, with sheppy's defaults.
    assert (worker._blocking_timeout, worker._scheduler_polling_interval, worker._cron_polling_interval) == (
        5, 1.0, 10.0
    )
    # Later sheppy's crash-recovery settings, with its defaults (sheppy-core's leases do the job: §18.2).
    recovery = (worker.heartbeat_timeout, worker.heartbeat_interval, worker.reclaim_interval)
    assert recovery == (300.0, 30.0, 60.0)


def test_queue_names_as_a_list(worker_backend: Backend) -> None:
    worker = Worker(["a", "b", "c"], worker_backend)
    assert [q.name for q in worker.queues] == ["a", "b", "c"]
    assert all(q.backend is worker_backend for q in worker.queues)


def test_enable_flags_are_kept(worker_backend: Backend) -> None:
    worker = Worker(QUEUE_NAME, worker_backend, enable_job_processing=False, enable_cron_manager=False)
    flags = (worker.enable_job_processing, worker.enable_scheduler, worker.enable_cron_manager)
    assert flags == (False, True, False)


def test_disabling_every_role_is_refused(worker_backend: Backend) -> None:
    with pytest.raises(ValueError):
        Worker(
            QUEUE_NAME,
            worker_backend,
            enable_job_processing=False,
            enable_scheduler=False,
            enable_cron_manager=False,
        )


# -- claim loops and concurrency ------------------------------------------------------------------


async def test_each_queue_of_a_list_is_served(
    backend: Backend, make_worker: Callable[..., Worker]
) -> None:
    queues = [Queue(backend, name) for name in ("queue1", "queue2", "queue3")]
    tasks = [t.add(1, 2), t.add(3, 4), t.add(5, 6)]
    for queue, task in zip(queues, tasks, strict=True):
        await queue.add(task)
    worker = make_worker(["queue1", "queue2", "queue3"])
    await work(worker, max_tasks=3)
    results = [await queue.get_task(task) for queue, task in zip(queues, tasks, strict=True)]
    assert [r.result if r else None for r in results] == [3, 7, 11]
    assert worker.stats.processed == 3


async def test_an_idle_queue_does_not_hold_up_another(
    backend: Backend, make_worker: Callable[..., Worker]
) -> None:
    # Each queue has its own claim loop: a long blocking claim on the empty queue neither delays the
    # busy one nor keeps work(max_tasks=...) from returning.
    busy = Queue(backend, "busy")
    worker = make_worker(["idle", "busy"])
    worker._blocking_timeout = 30.0
    task = t.add(2, 2)
    await busy.add(task)
    loop = asyncio.get_running_loop()
    started = loop.time()
    await work(worker, max_tasks=1)
    assert loop.time() - started < 10.0
    done = await busy.get_task(task)
    assert done is not None and done.result == 4


@pytest.mark.parametrize("limit", [1, 3])
async def test_at_most_max_concurrent_tasks_run_at_once(
    queue: Queue, make_worker: Callable[..., Worker], limit: int
) -> None:
    key = new_key()
    tasks = [t.concurrent(key, limit, hold=0.1) for _ in range(limit * 2 + 1)]
    await queue.add(tasks)
    worker = make_worker(max_concurrent_tasks=limit)
    await work(worker, oneshot=True)
    done = await queue.get_task(tasks)
    assert all(task.status == "completed" for task in done.values())
    assert t.PEAK[key] == limit


async def test_default_concurrency_is_ten(queue: Queue, worker: Worker) -> None:
    key = new_key()
    tasks = [t.concurrent(key, 10, hold=0.1) for _ in range(14)]
    await queue.add(tasks)
    await work(worker, oneshot=True)
    assert t.PEAK[key] == 10


def spy_on_claims(worker: Worker) -> list[int]:
    """Record the ``limit`` of every claim the worker makes (the backend's ``pop``)."""
    limits: list[int] = []
    original = worker.queues[0].backend.pop

    async def pop(queue_name: str, limit: int = 1, *args: Any, **kwargs: Any) -> Any:
        limits.append(limit)
        return await original(queue_name, limit, *args, **kwargs)

    worker.queues[0].backend.pop = pop  # type: ignore[method-assign]
    return limits


async def test_claims_are_capped_by_max_prefetch_tasks(
    queue: Queue, make_worker: Callable[..., Worker]
) -> None:
    tasks = [t.add(i, i) for i in range(7)]
    await queue.add(tasks)
    worker = make_worker(max_concurrent_tasks=5, max_prefetch_tasks=2)
    limits = spy_on_claims(worker)
    await work(worker, oneshot=True)
    assert all(task.status == "completed" for task in (await queue.get_task(tasks)).values())
    assert limits and max(limits) == 2


async def test_claims_ask_for_at_most_the_free_slots(
    queue: Queue, make_worker: Callable[..., Worker]
) -> None:
    tasks = [t.sleeps(0.05) for _ in range(6)]
    await queue.add(tasks)
    worker = make_worker(max_concurrent_tasks=4)
    limits = spy_on_claims(worker)
    await work(worker, oneshot=True)
    assert limits and max(limits) == 4


async def test_claims_are_capped_by_the_remaining_max_tasks(queue: Queue, worker: Worker) -> None:
    tasks = [t.add(i, 1) for i in range(6)]
    await queue.add(tasks)
    limits = spy_on_claims(worker)
    await work(worker, max_tasks=3)
    assert limits and max(limits) <= 3
    done = await queue.get_task(tasks)
    assert sum(task.status == "completed" for task in done.values()) == 3


# -- work() options ----------------------------------------------------------------------------------


async def test_max_tasks_stops_after_claiming_then_drains(queue: Queue, worker: Worker) -> None:
    tasks = [t.sleeps(0.2) for _ in range(5)]
    await queue.add(tasks)
    await work(worker, max_tasks=2)
    done = await queue.get_task(tasks)
    statuses = [done[task.id].status for task in tasks]
    # The two claimed tasks finished before work() returned (drained); the rest still wait.
    assert statuses.count("completed") == 2
    assert all(s not in ("completed", "failed", "processing") for s in statuses if s != "completed")
    assert await queue.size() == 3
    assert worker.stats.processed == 2


async def test_oneshot_stops_when_the_queues_are_empty(
    backend: Backend, make_worker: Callable[..., Worker]
) -> None:
    first, second = Queue(backend, "first"), Queue(backend, "second")
    a, b, c = t.add(1, 1), t.add(2, 2), t.add(3, 3)
    await first.add([a, b])
    await second.add(c)
    worker = make_worker(["first", "second"])
    await work(worker, oneshot=True)
    assert (await first.get_task(a)).result == 2  # type: ignore[union-attr]
    assert (await first.get_task(b)).result == 4  # type: ignore[union-attr]
    assert (await second.get_task(c)).result == 6  # type: ignore[union-attr]
    assert await first.size() == 0 and await second.size() == 0


async def test_oneshot_on_empty_queue_returns(worker: Worker) -> None:
    loop = asyncio.get_running_loop()
    started = loop.time()
    await work(worker, oneshot=True)
    assert loop.time() - started < 10.0
    assert worker.stats.processed == 0


async def test_stats_count_like_sheppy(queue: Queue, worker: Worker) -> None:
    # processed: tasks that completed; failed: tasks that ended failed (an attempt that will be retried
    # counts in neither).
    key = new_key()
    tasks = [t.add(1, 1), t.fails_once(key), t.always_fails(key)]
    await queue.add(tasks)
    await work(worker, oneshot=True)
    done = await queue.get_task(tasks)
    assert [done[task.id].status for task in tasks] == ["completed", "completed", "failed"]
    assert (worker.stats.processed, worker.stats.failed) == (2, 1)


# -- per task ----------------------------------------------------------------------------------------


async def test_a_cancelled_task_is_skipped(queue: Queue, worker: Worker) -> None:
    key = new_key()
    skipped, ran = t.counted_run(key), t.counted_run(key)
    await queue.add([skipped, ran])
    await queue.cancel(skipped)
    await work(worker, oneshot=True)
    done = await queue.get_task([skipped, ran])
    assert done[skipped.id].status == "cancelled" and done[skipped.id].result is None
    assert done[ran.id].status == "completed" and done[ran.id].result == 1
    assert t.RUNS[key] == 1


async def test_a_vanished_task_is_skipped(queue: Queue, worker: Worker) -> None:
    key = new_key()
    gone = t.counted_run(key)
    await queue.add(gone)
    await queue.cancel(gone)
    assert await queue.delete(gone) is True
    await work(worker, oneshot=True)
    assert await queue.get_task(gone) is None
    assert t.RUNS[key] == 0


# -- shutdown ------------------------------------------------------------------------------------------


async def start_blocked(
    queue: Queue, worker: Worker, key: str, **work_options: Any
) -> tuple[asyncio.Task[None], Any]:
    """Start ``work()`` in the background with a ``blocks_first_run`` task, once it is running."""
    t.RELEASE[key] = asyncio.Event()
    blocked = t.blocks_first_run(key)
    await queue.add(blocked)
    job = asyncio.create_task(asyncio.wait_for(worker.work(**work_options), WORK_BOUND))
    await until(lambda: "run 1" in t.EVENTS[key] or job.done())
    assert not job.done()
    return job, blocked


async def send(sig: signal.Signals) -> None:
    # Never deliver a signal nobody handles: it would end the test run.
    await until(lambda: handler_installed(sig))
    os.kill(os.getpid(), sig)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
async def test_signal_stops_claiming_and_waits_for_running_tasks(
    queue: Queue, make_worker: Callable[..., Worker], sig: signal.Signals
) -> None:
    key = new_key()
    before = signal.getsignal(sig)
    worker = make_worker(max_concurrent_tasks=1)
    job, blocked = await start_blocked(queue, worker, key)
    waiting = t.add(1, 1)
    await queue.add(waiting)
    await send(sig)
    await asyncio.sleep(0.2)
    assert not job.done()  # waits for the running task (shutdown_timeout is 30 s)
    t.RELEASE[key].set()
    await job
    finished = await queue.get_task(blocked)
    assert finished is not None and finished.status == "completed" and finished.result == 1
    left = await queue.get_task(waiting)
    assert left is not None and left.finished_at is None and await queue.size() == 1  # not claimed
    assert signal.getsignal(sig) == before  # handlers removed when work() returns


async def test_shutdown_timeout_cuts_off_and_hands_back(
    queue: Queue, make_worker: Callable[..., Worker]
) -> None:
    key = new_key()
    worker = make_worker(shutdown_timeout=0.3)
    job, blocked = await start_blocked(queue, worker, key)
    loop = asyncio.get_running_loop()
    started = loop.time()
    await send(signal.SIGTERM)
    await job
    assert loop.time() - started < 10.0
    # §18.2: handed back for redelivery at once, not charged a retry, not crashed.
    back = await queue.get_task(blocked)
    assert back is not None and back.status == "pending" and back.finished_at is None
    assert back.retry_count == 0 and back.exception is None
    assert await queue.size() == 1
    again = make_worker()
    await work(again, oneshot=True)
    done = await queue.get_task(blocked)
    assert done is not None and done.status == "completed" and done.result == 2


async def test_repeated_signals_force_an_immediate_stop(
    queue: Queue, make_worker: Callable[..., Worker]
) -> None:
    key = new_key()
    worker = make_worker(shutdown_timeout=30.0)
    job, blocked = await start_blocked(queue, worker, key)
    loop = asyncio.get_running_loop()
    started = loop.time()
    for _ in range(6):
        if job.done():
            break
        await send(signal.SIGINT)
        await asyncio.sleep(0.2)
    await job
    assert loop.time() - started < 10.0
    back = await queue.get_task(blocked)
    assert back is not None and back.finished_at is None


async def test_no_signal_handlers_when_asked(queue: Queue, worker: Worker) -> None:
    key = new_key()
    before = (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM))
    job, blocked = await start_blocked(queue, worker, key, max_tasks=1, register_signal_handlers=False)
    assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == before
    t.RELEASE[key].set()
    await job
    assert (await queue.get_task(blocked)).status == "completed"  # type: ignore[union-attr]


def test_backend_must_be_an_instance_or_a_url() -> None:
    # sheppy's Worker takes no URL; sheppy-core takes one as Queue does (docs/migrating-from-sheppy.md)
    # and refuses anything else clearly rather than failing later.
    assert isinstance(Worker(QUEUE_NAME, "memory://").backend, MemoryBackend)
    with pytest.raises(TypeError):
        Worker(QUEUE_NAME, object())  # type: ignore[arg-type]


async def test_work_can_be_called_again(queue: Queue, worker: Worker) -> None:
    await queue.add(t.add(1, 2))
    await work(worker, max_tasks=1)
    await queue.add(t.add(3, 4))
    await work(worker, max_tasks=1)
    assert worker.stats.processed == 2



async def test_scheduler_only_worker_queues_due_tasks_without_running_them(
    queue: Queue, make_worker: Callable[..., Worker]
) -> None:
    task = t.add(1, 1)
    await queue.schedule(task, datetime.now(UTC) - timedelta(seconds=1))
    worker = make_worker(enable_job_processing=False, enable_cron_manager=False)
    job = asyncio.create_task(work(worker))
    try:
        await until(lambda: queue.size())
        await asyncio.sleep(0.1)
        record = await queue.get_task(task)
        assert record is not None and record.finished_at is None and record.result is None
    finally:
        worker.stop()
        await job


async def test_job_only_worker_leaves_scheduled_tasks(
    queue: Queue, make_worker: Callable[..., Worker]
) -> None:
    # No scheduler: a due scheduled task is not moved into the queue, so a oneshot run finds the queue
    # empty and returns.
    scheduled, queued = t.add(1, 1), t.add(2, 2)
    await queue.schedule(scheduled, datetime.now(UTC) - timedelta(seconds=1))
    await queue.add(queued)
    worker = make_worker(enable_scheduler=False, enable_cron_manager=False)
    await work(worker, bound=15.0, oneshot=True)
    assert (await queue.get_task(queued)).result == 4  # type: ignore[union-attr]
    left = await queue.get_task(scheduled)
    assert left is not None and left.finished_at is None
