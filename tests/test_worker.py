from __future__ import annotations

import asyncio
import logging
import os
import signal
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import tasks_for_tests as t

from sheppy_core import MemoryBackend, Queue, Task, Worker
from sheppy_core._processing import TaskProcessor

Runner = Callable[..., Awaitable[Worker]]


@pytest.fixture
async def start_worker(backend: MemoryBackend) -> AsyncIterator[Callable[..., Worker]]:
    started: list[tuple[Worker, asyncio.Task[None]]] = []

    def start(**options: Any) -> Worker:
        worker = Worker("q", backend, **options)
        worker._scheduler_polling_interval = 0.05
        worker._cron_polling_interval = 0.05
        started.append((worker, asyncio.create_task(worker.work(register_signal_handlers=False))))
        return worker

    yield start
    for worker, job in started:
        worker.stop()
        await asyncio.wait_for(job, 10)


async def test_runs_plain_retried_and_scheduled_tasks(
    queue: Queue, start_worker: Callable[..., Worker]
) -> None:
    worker = start_worker()
    plain, flaky, later = t.add(1, 2), t.fails_once(f"k-{uuid.uuid4()}"), t.add(5, 5)
    await queue.add([plain, flaky])
    scheduled_at = datetime.now(UTC) + timedelta(seconds=0.5)
    await queue.schedule(later, scheduled_at)
    results = await queue.wait_for([plain, flaky, later], timeout=5)
    assert results[plain.id].result == 3
    assert results[flaky.id].status == "completed" and results[flaky.id].retry_count == 1
    assert results[later.id].finished_at is not None and results[later.id].finished_at >= scheduled_at
    assert worker.stats.processed == 3 and worker.stats.failed == 0  # a retried attempt is not a failure


async def test_retries_run_n_plus_one_times_then_fail(
    queue: Queue, start_worker: Callable[..., Worker]
) -> None:
    start_worker()
    before = t.calls["always_fails"]
    task = t.always_fails()
    await queue.add(task)
    done = await queue.wait_for(task, timeout=5)
    assert done is not None and done.status == "failed" and done.retry_count == 2
    assert t.calls["always_fails"] - before == 3
    assert done.exception is not None and done.exception.type == "ValueError"


async def test_timeouts(queue: Queue, start_worker: Callable[..., Worker]) -> None:
    start_worker()
    before = t.calls["slow_retried"]
    tasks = [t.slow_async(), t.slow_sync(), t.slow_retried()]
    await queue.add(tasks)
    done = await queue.wait_for(tasks, timeout=5)
    for task in tasks:
        outcome = done[task.id]
        assert outcome.status == "failed"
        assert outcome.exception is not None and outcome.exception.type == "TaskTimeoutError"
    assert done[tasks[0].id].retry_count == 0
    assert t.calls["slow_retried"] - before == 2  # retry_on_timeout consumed its one retry


async def test_return_value_is_validated(queue: Queue, start_worker: Callable[..., Worker]) -> None:
    start_worker()
    task = t.wrong_return()
    await queue.add(task)
    done = await queue.wait_for(task, timeout=5)
    assert done is not None and done.status == "failed" and done.exception is not None
    assert done.exception.type == "ValidationError"


async def test_current_task_and_dependencies(
    backend: MemoryBackend, start_worker: Callable[..., Worker]
) -> None:
    queue = Queue(backend, "q")
    start_worker()
    me, dep = t.whoami(), t.uses_dependency(7)
    t.teardowns.clear()
    await queue.add([me, dep])
    done = await queue.wait_for([me, dep], timeout=5)
    assert done[me.id].result == str(me.id)
    assert done[dep.id].result == "resource:7"
    assert t.teardowns == ["opened", "closed"]  # generator dependency closed after the task


async def test_dependency_overrides(backend: MemoryBackend, start_worker: Callable[..., Worker]) -> None:
    queue = Queue(backend, "q")

    def fake() -> str:
        return "fake"

    start_worker(dependency_overrides={t.get_resource: fake})
    task = t.uses_dependency(1)
    await queue.add(task)
    done = await queue.wait_for(task, timeout=5)
    assert done is not None and done.result == "fake:1"


async def test_status_is_processing_with_visible_claim(
    queue: Queue, start_worker: Callable[..., Worker]
) -> None:
    worker = start_worker()
    task = t.sleeper(0.5)
    await queue.add(task)
    for _ in range(100):
        current = await queue.get_task(task)
        if current is not None and current.status == "processing":
            break
        await asyncio.sleep(0.01)
    assert current is not None and current.status == "processing"
    assert current.claimed_by == worker.worker_id and current.lease_expires_at is not None
    assert (await queue.stats())["processing"] == 1 and await queue.size() == 0


async def test_concurrency_is_bounded(queue: Queue, start_worker: Callable[..., Worker]) -> None:
    start_worker(max_concurrent_tasks=2)
    tasks = [t.sleeper(0.2) for _ in range(4)]
    await queue.add(tasks)
    await asyncio.sleep(0.1)
    assert (await queue.stats())["processing"] == 2
    await queue.wait_for(tasks, timeout=5)


async def test_heartbeat_keeps_a_long_task(
    backend: MemoryBackend, start_worker: Callable[..., Worker]
) -> None:
    queue = Queue(backend, "q")
    before = t.calls["sleeper"]
    start_worker(lease=0.15)
    start_worker(lease=0.15)  # a second worker that would steal it if the lease lapsed
    task = t.sleeper(0.6)
    await queue.add(task)
    done = await queue.wait_for(task, timeout=5)
    assert done is not None and done.status == "completed"
    assert t.calls["sleeper"] - before == 1 and done.deliveries == 1


async def test_expired_lease_is_redelivered_and_recorded_as_crash(
    queue: Queue, backend: MemoryBackend, start_worker: Callable[..., Worker]
) -> None:
    no_retry, with_retry = t.add(1, 1), t.fails_once(f"crash-{uuid.uuid4()}")
    await queue.add([no_retry, with_retry])
    claimed = await backend.pop("q", limit=2, worker_id="dead-worker", lease=0.05)
    assert len(claimed) == 2  # ...and that worker dies without finishing
    await asyncio.sleep(0.1)
    start_worker()
    done = await queue.wait_for([no_retry, with_retry], timeout=5)
    crashed = done[no_retry.id]
    assert crashed.status == "crashed" and crashed.exception is not None
    assert crashed.exception.type == "WorkerCrashedError"
    rerun = done[with_retry.id]
    assert rerun.status != "crashed" and rerun.retry_count >= 1  # the crash consumed a retry


async def test_retry_on_crash_false_never_reruns(
    queue: Queue, backend: MemoryBackend, start_worker: Callable[..., Worker]
) -> None:
    task = t.fails_once(f"unsafe-{uuid.uuid4()}")
    task = task.model_copy(update={"config": task.config.model_copy(update={"retry_on_crash": False})})
    await queue.add(task)
    await backend.pop("q", worker_id="dead", lease=0.05)
    await asyncio.sleep(0.1)
    start_worker()
    done = await queue.wait_for(task, timeout=5)
    assert done is not None and done.status == "crashed"


async def test_lost_lease_stops_the_task_here(queue: Queue, backend: MemoryBackend) -> None:
    before = t.calls["sleeper"]
    worker = Worker("q", backend, lease=0.1)
    job = asyncio.create_task(worker.work(register_signal_handlers=False))
    task = t.sleeper(1.0)
    await queue.add(task)
    await asyncio.sleep(0.05)
    # Another party reclaims it (as if this worker had stalled past its lease).
    record = (await backend.get_tasks("q", [str(task.id)]))[str(task.id)]
    backend._queues["q"].claimed[str(task.id)] = datetime.now(UTC) - timedelta(seconds=1)
    stolen = await backend.pop("q", worker_id="thief", lease=30)
    assert [r["id"] for r in stolen] == [record["id"]]
    await asyncio.sleep(0.2)
    assert str(task.id) not in worker._running  # cancelled here after the heartbeat said "lost"
    current = await queue.get_task(task)
    assert current is not None and current.claimed_by == "thief" and current.status == "processing"
    worker.stop()
    await job
    assert t.calls["sleeper"] - before == 1


async def test_shutdown_hands_unfinished_tasks_back(queue: Queue, backend: MemoryBackend) -> None:
    worker = Worker("q", backend, shutdown_timeout=0.1)
    job = asyncio.create_task(worker.work(register_signal_handlers=False))
    task = t.sleeper(5)
    await queue.add(task)
    await asyncio.sleep(0.1)
    worker.stop()
    await asyncio.wait_for(job, 5)
    back = await queue.get_task(task)
    assert back is not None and back.status == "pending" and back.claimed_by is None
    assert back.deliveries == 0 and await queue.size() == 1  # not counted as a crash


async def test_sigterm_stops_gracefully(queue: Queue, backend: MemoryBackend) -> None:
    worker = Worker("q", backend, shutdown_timeout=5)
    job = asyncio.create_task(worker.work())
    task = t.sleeper(0.2)
    await queue.add(task)
    await asyncio.sleep(0.05)
    os.kill(os.getpid(), signal.SIGTERM)
    await asyncio.wait_for(job, 5)
    done = await queue.get_task(task)
    assert done is not None and done.status == "completed"  # in-flight work finished within the grace


async def test_scheduled_task_runs_once_across_workers(
    queue: Queue, start_worker: Callable[..., Worker]
) -> None:
    before = t.calls["stamp"]
    for _ in range(3):
        start_worker()
    task = t.stamp()
    await queue.schedule(task, timedelta(seconds=0.2))
    await queue.wait_for(task, timeout=5)
    await asyncio.sleep(0.2)
    assert t.calls["stamp"] - before == 1


async def test_cron_occurrences_are_created_once_across_workers(
    queue: Queue, start_worker: Callable[..., Worker]
) -> None:
    await queue.add_cron(t.stamp(), "* * * * *")
    for _ in range(3):
        start_worker(enable_job_processing=False)
    await asyncio.sleep(0.3)
    scheduled = await queue.get_scheduled()
    assert len(scheduled) == 3  # the next three minutes, each once, whatever the number of workers
    assert len({s.id for s in scheduled}) == 3 and all(s.cron_id for s in scheduled)
    due = await queue._enqueue_scheduled(scheduled[0].scheduled_at)
    assert [d.id for d in due] == [scheduled[0].id]
    start_worker(enable_scheduler=False, enable_cron_manager=False)
    ran = await queue.wait_for(due[0], timeout=5)
    assert ran is not None and ran.status == "completed" and ran.result == "tick"


async def test_retry_wakes_the_scheduler_instead_of_waiting_for_its_poll(
    queue: Queue, backend: MemoryBackend
) -> None:
    worker = Worker("q", backend)
    worker._scheduler_polling_interval = 30  # without the wake-up, the retry would wait 30 s
    job = asyncio.create_task(worker.work(register_signal_handlers=False))
    task = t.fails_once(f"wake-{uuid.uuid4()}")
    await queue.add(task)
    done = await queue.wait_for(task, timeout=10)
    assert done is not None and done.status == "completed" and done.retry_count == 1
    worker.stop()
    await job


async def test_middleware_wraps_execution(queue: Queue, start_worker: Callable[..., Worker]) -> None:
    seen: list[str] = []

    def outer(task: Task[Any], queue: Queue) -> Any:
        seen.append("before")
        task, _exc = yield task
        seen.append(f"after:{task.status}")
        return task.model_copy(update={"result": 100})

    start_worker(middleware=[outer])
    task = t.add(1, 2)
    await queue.add(task)
    done = await queue.wait_for(task, timeout=5)
    assert seen == ["before", "after:completed"]
    assert done is not None and done.result == 100


async def test_rate_limit_defers_over_budget_tasks(queue: Queue, start_worker: Callable[..., Worker]) -> None:
    start_worker()
    tasks = [t.limited(i) for i in range(4)]
    await queue.add(tasks)
    await asyncio.sleep(0.3)
    finished = [x for x in (await queue.get_task(tasks)).values() if x.status == "completed"]
    assert len(finished) == 2  # two starts per second
    done = await queue.wait_for(tasks, timeout=5)
    assert all(x.status == "completed" for x in done.values())


async def test_oneshot_exits_when_empty(queue: Queue, backend: MemoryBackend) -> None:
    tasks = [t.add(i, i) for i in range(5)]
    await queue.add(tasks)
    worker = Worker("q", backend)
    await asyncio.wait_for(worker.work(oneshot=True, register_signal_handlers=False), 5)
    assert worker.stats.processed == 5 and await queue.size() == 0


class _ClaimAnsweringLate(MemoryBackend):
    """A store whose empty answer to a claim arrives only after the worker's running tasks are all
    done (a slow round trip): by then a finishing task may have queued more work."""

    worker: Worker | None = None

    async def pop(self, queue_name: str, limit: int = 1, timeout: float | None = None, **kw: Any
                  ) -> list[dict[str, Any]]:
        records = await super().pop(queue_name, limit, timeout, **kw)
        if not records and self.worker is not None and self.worker._running:
            deadline = asyncio.get_running_loop().time() + 5
            # Polled: the worker offers no event for "nothing running".
            while self.worker._running and asyncio.get_running_loop().time() < deadline:  # noqa: ASYNC110
                await asyncio.sleep(0.001)
        return records


async def test_oneshot_runs_what_a_task_queued_while_an_empty_claim_was_on_its_way() -> None:
    backend = _ClaimAnsweringLate(instant_processing=False)
    await backend.connect()
    try:
        queue = Queue(backend, "q")
        parent = t.slow_parent(10, 0.2)  # running when the worker's next (empty) claim goes out
        await queue.add(parent)
        worker = Worker("q", backend)
        backend.worker = worker
        await asyncio.wait_for(worker.work(oneshot=True, register_signal_handlers=False), 10)
        assert worker.stats.processed == 4, worker.stats  # the parent and the three tasks it chained
        assert await queue.size() == 0
    finally:
        await backend.disconnect()


async def test_oneshot_waits_for_its_own_retries(queue: Queue, backend: MemoryBackend) -> None:
    task = t.fails_once(f"burst-{uuid.uuid4()}")
    far = t.add(9, 9)
    await queue.add(task)
    await queue.schedule(far, timedelta(hours=1))  # scheduled far ahead: not this run's business
    worker = Worker("q", backend)
    await asyncio.wait_for(worker.work(oneshot=True, register_signal_handlers=False), 10)
    done = await queue.get_task(task)
    assert done is not None and done.status == "completed" and done.retry_count == 1
    assert [s.id for s in await queue.get_scheduled()] == [far.id]


async def test_max_tasks(queue: Queue, backend: MemoryBackend) -> None:
    await queue.add([t.add(i, i) for i in range(5)])
    worker = Worker("q", backend, max_concurrent_tasks=1)
    await asyncio.wait_for(worker.work(max_tasks=2, register_signal_handlers=False), 5)
    assert worker.stats.processed == 2 and await queue.size() == 3


def test_worker_refuses_nonsense(backend: MemoryBackend) -> None:
    with pytest.raises(ValueError):
        Worker("q", backend, enable_job_processing=False, enable_scheduler=False, enable_cron_manager=False)
    with pytest.raises(TypeError):
        Worker("q", object())  # type: ignore[arg-type]


class _HeldStores(MemoryBackend):
    """A memory backend whose finished-record stores wait for ``gate``: a slow database, frozen."""

    def __init__(self) -> None:
        super().__init__(instant_processing=False)
        self.gate = asyncio.Event()

    async def store_result(self, queue_name: str, task_data: dict[str, Any]) -> bool:
        if task_data.get("finished_at") is not None:
            await self.gate.wait()
        return await super().store_result(queue_name, task_data)


async def _until(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    async with asyncio.timeout(timeout):
        while not condition():  # noqa: ASYNC110 - a test polling counters the tasks bump
            await asyncio.sleep(0.01)


async def test_next_task_starts_while_the_last_outcome_is_stored() -> None:
    backend = _HeldStores()
    await backend.connect()
    queue = Queue(backend, "q")
    worker = Worker("q", backend, max_concurrent_tasks=1, enable_cron_manager=False)
    job = asyncio.create_task(worker.work(register_signal_handlers=False))
    before = t.calls["tracked"]
    tasks = [t.tracked(0) for _ in range(3)]
    await queue.add(tasks)
    # The first outcome is held in the store, yet the second task runs: its slot was free.
    await _until(lambda: t.calls["tracked"] - before == 2)
    # Claims waiting on their store stay bounded (2 x max_concurrent_tasks): the third waits.
    await asyncio.sleep(0.2)
    assert t.calls["tracked"] - before == 2
    backend.gate.set()
    done = await queue.wait_for(tasks, timeout=5)
    assert all(task.status == "completed" for task in done.values())
    assert t.calls["tracked"] - before == 3
    worker.stop()
    await asyncio.wait_for(job, 5)
    await backend.disconnect()


async def test_prefetch_claims_ahead_but_runs_at_most_max_concurrent(
    queue: Queue, start_worker: Callable[..., Worker]
) -> None:
    t.running["most"] = 0
    start_worker(max_concurrent_tasks=2, prefetch=3)
    tasks = [t.tracked(0.3) for _ in range(8)]
    await queue.add(tasks)
    await asyncio.sleep(0.15)
    assert (await queue.stats())["processing"] == 5  # 2 running + 3 prefetched, all under lease
    assert t.running["now"] == 2
    done = await queue.wait_for(tasks, timeout=10)
    assert all(task.status == "completed" for task in done.values())
    assert t.running["most"] == 2


async def test_shutdown_hands_prefetched_tasks_back_without_running_them(
    queue: Queue, backend: MemoryBackend
) -> None:
    worker = Worker("q", backend, max_concurrent_tasks=1, prefetch=2, shutdown_timeout=5)
    job = asyncio.create_task(worker.work(register_signal_handlers=False))
    before = t.calls["tracked"]
    tasks = [t.tracked(0.3) for _ in range(3)]
    await queue.add(tasks)
    await _until(lambda: t.calls["tracked"] - before == 1)
    assert (await queue.stats())["processing"] == 3
    worker.stop()
    await asyncio.wait_for(job, 5)
    assert t.calls["tracked"] - before == 1  # the running one finished; the others never started
    stored = await queue.get_task(tasks)
    assert stored[tasks[0].id] is not None and stored[tasks[0].id].status == "completed"
    for task in tasks[1:]:
        back = stored[task.id]
        assert back is not None and back.status == "pending" and back.claimed_by is None
        assert back.deliveries == 0  # handed back, not charged as a crash
    assert await queue.size() == 2


def test_prefetch_must_not_be_negative(backend: MemoryBackend) -> None:
    with pytest.raises(ValueError, match="prefetch"):
        Worker("q", backend, prefetch=-1)


async def test_slots_are_handed_over_in_order_and_skip_cancelled_waiters() -> None:
    from sheppy_core._worker import _Slots

    slots = _Slots(1)
    await slots.acquire()
    order: list[str] = []

    async def wait(name: str) -> None:
        await slots.acquire()
        order.append(name)

    waiters = {name: asyncio.create_task(wait(name)) for name in ("a", "b", "c")}
    await asyncio.sleep(0)
    waiters["b"].cancel()
    slots.release()
    await asyncio.sleep(0)
    assert order == ["a"]
    slots.release()
    await asyncio.sleep(0)
    assert order == ["a", "c"]
    # A waiter cancelled after the slot was handed to it passes the slot on instead of losing it.
    late = asyncio.create_task(wait("late"))
    after = asyncio.create_task(wait("after"))
    await asyncio.sleep(0)
    slots.release()  # handed to "late"...
    late.cancel()  # ...which is cancelled before it runs
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    assert order == ["a", "c", "after"]
    slots.release()
    await slots.acquire()  # the slot is free again: no deadlock, nothing leaked
    await asyncio.gather(*waiters.values(), late, after, return_exceptions=True)


async def test_max_tasks_with_prefetch_runs_every_claimed_task(queue: Queue, backend: MemoryBackend) -> None:
    # Claiming stops at max_tasks, but prefetched claims still waiting for a slot run: it is not a stop.
    await queue.add([t.sleeper(0.05) for _ in range(5)])
    worker = Worker("q", backend, max_concurrent_tasks=1, prefetch=2)
    await asyncio.wait_for(worker.work(max_tasks=3, register_signal_handlers=False), 10)
    assert worker.stats.processed == 3 and await queue.size() == 2
    assert (await queue.stats())["processing"] == 0


async def test_a_task_processor_without_attempt_done_still_works(
    queue: Queue, backend: MemoryBackend
) -> None:
    class OldStyle(TaskProcessor):
        async def process(self, queue: Queue, record: dict[str, Any]) -> Task[Any]:  # type: ignore[override]
            return await super().process(queue, record)

    await queue.add([t.add(1, 2), t.add(3, 4)])
    worker = Worker("q", backend, task_processor=OldStyle())
    await asyncio.wait_for(worker.work(oneshot=True, register_signal_handlers=False), 10)
    assert worker.stats.processed == 2


async def test_concurrency_bound_holds_across_queues(backend: MemoryBackend) -> None:
    # Two claim loops (one per queue) each see the free slots; together they may claim more, but never
    # more than max_concurrent_tasks tasks run at once.
    t.running["most"] = 0
    queues = [Queue(backend, name) for name in ("q1", "q2")]
    tasks = {q.name: [t.tracked(0.05) for _ in range(6)] for q in queues}
    for queue in queues:
        await queue.add(tasks[queue.name])
    worker = Worker(["q1", "q2"], backend, max_concurrent_tasks=2)
    await asyncio.wait_for(worker.work(oneshot=True, register_signal_handlers=False), 10)
    assert worker.stats.processed == 12
    assert t.running["most"] == 2


async def test_outcomes_are_logged_with_their_fields(
    queue: Queue, start_worker: Callable[..., Worker], caplog: pytest.LogCaptureFixture
) -> None:
    start_worker()
    plain, flaky = t.add(1, 2), t.fails_once(f"k-{uuid.uuid4()}")
    with caplog.at_level(logging.INFO, logger="sheppy.worker"):
        await queue.add([plain, flaky])
        await queue.wait_for([plain, flaky], timeout=5)
    records = [r for r in caplog.records if getattr(r, "task_id", None) in (str(plain.id), str(flaky.id))]
    seen = {(r.task_id, r.status, r.attempt, r.levelno) for r in records}  # type: ignore[attr-defined]
    assert seen == {
        (str(plain.id), "completed", 1, logging.INFO),
        (str(flaky.id), "retrying", 1, logging.WARNING),
        (str(flaky.id), "completed", 2, logging.INFO),
    }
    for record in records:
        assert record.queue == "q" and record.duration >= 0  # type: ignore[attr-defined]
        assert record.task in (plain.spec.func, flaky.spec.func)  # type: ignore[attr-defined]
        message = record.getMessage()
        assert message.startswith(f"task {record.task_id} (") and f"attempt {record.attempt}" in message  # type: ignore[attr-defined]


async def test_completions_are_not_logged_below_the_loggers_level(
    queue: Queue, start_worker: Callable[..., Worker], caplog: pytest.LogCaptureFixture
) -> None:
    start_worker()
    flaky = t.fails_once(f"k-{uuid.uuid4()}")
    with caplog.at_level(logging.WARNING, logger="sheppy.worker"):
        await queue.add(flaky)
        await queue.wait_for(flaky, timeout=5)
    mine = [r for r in caplog.records if getattr(r, "task_id", None) == str(flaky.id)]
    assert [r.status for r in mine] == ["retrying"]  # type: ignore[attr-defined]


async def test_a_redelivered_task_logs_the_attempt_it_really_is(
    queue: Queue,
    backend: MemoryBackend,
    start_worker: Callable[..., Worker],
    caplog: pytest.LogCaptureFixture,
) -> None:
    flaky = t.fails_once(f"relog-{uuid.uuid4()}")
    await queue.add(flaky)
    await backend.pop("q", worker_id="dead-worker", lease=0.05)  # attempt 1, lost with its worker
    await asyncio.sleep(0.1)
    with caplog.at_level(logging.INFO, logger="sheppy.worker"):
        start_worker()
        done = await queue.wait_for(flaky, timeout=5)
    assert done is not None and done.status == "completed" and done.retry_count == 2
    mine = [r for r in caplog.records if getattr(r, "task_id", None) == str(flaky.id)]
    assert [(r.status if hasattr(r, "status") else "redelivered", r.attempt) for r in mine] == [  # type: ignore[attr-defined]
        ("redelivered", 2),
        ("retrying", 2),
        ("completed", 3),
    ]


async def test_a_worker_takes_a_url_as_queue_and_router_do(tmp_path: Path) -> None:
    """``Worker("default", "sqlite:///jobs.db")`` as plugins/sheppy-sqlite/README.md shows; a bad URL
    is the same one-line ``ConfigurationError`` as for ``Queue``; a non-backend non-URL a TypeError."""
    from sheppy_core.exceptions import ConfigurationError

    url = f"sqlite:///{tmp_path}/jobs.db"
    queue = Queue(url, "default")
    job = t.add(2, 3)
    await queue.add(job)
    worker = Worker("default", url, enable_cron_manager=False)
    await asyncio.wait_for(worker.work(max_tasks=1, register_signal_handlers=False), 30)
    done = await queue.get_task(job)
    assert done is not None and done.status == "completed" and done.result == 5
    await queue.backend.disconnect()
    with pytest.raises(ConfigurationError, match="nosuch"):
        Worker("default", "nosuch://x")
    with pytest.raises(TypeError, match="Backend"):
        Worker("default", 42)  # type: ignore[arg-type]
