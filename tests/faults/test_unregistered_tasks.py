"""A worker that lacks a task's module hands it back instead of failing it (item 6).

One misconfigured deploy (a worker started without the right ``--import``, or an old version in a
rolling deploy) must not destroy a queue: such a worker hands every task it cannot run back, unrun,
delayed and without using a retry, so a worker that has it registered runs it. Only after a bound (by
default about an hour and 20 hand-backs) does the task end failed, with the reason; a message naming a
function that is no task at all (``os:system``) never runs.
"""

from __future__ import annotations

import asyncio
import subprocess
import time
import uuid
from pathlib import Path

import pytest
import tasks_for_tests as t
from _worker_processes import SHARED_STORES, spawn_worker, stop_workers

from sheppy_core import HandBackPolicy, MemoryBackend, Queue, Task, TaskSpec, Worker, get_backend

WORKER = """
import asyncio, sys
from sheppy_core import HandBackPolicy, Worker, get_backend

async def main() -> None:
    worker = Worker(sys.argv[2], get_backend(sys.argv[1]), enable_cron_manager=False, lease=5,
                    task_modules=[sys.argv[3]], unregistered=HandBackPolicy(delay=0.2, max_delay=0.5))
    print(worker.worker_id, flush=True)
    await worker.work()

asyncio.run(main())
"""


async def _until(predicate_coro: object, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not await predicate_coro():  # type: ignore[operator]
        assert time.monotonic() < deadline, "state not reached in time"
        await asyncio.sleep(0.05)


@pytest.mark.timeout(180)
@pytest.mark.parametrize("url_template", SHARED_STORES)
async def test_a_worker_without_the_task_hands_it_to_one_that_has_it(
    url_template: str, tmp_path: Path
) -> None:
    url = url_template.format(tmp=tmp_path)
    queue = Queue(get_backend(url), f"unregistered-{uuid.uuid4().hex[:8]}")
    workers: list[subprocess.Popen[bytes]] = []
    try:
        # A worker of the "wrong deploy": it imports a module, but not the one defining the task.
        wrong = spawn_worker(WORKER, url, queue.name, "workflows_for_tests", env={})
        workers.append(wrong)
        assert wrong.stdout is not None
        await asyncio.to_thread(wrong.stdout.readline)
        tasks = [t.add(i, 1) for i in range(5)]
        await queue.add(tasks)

        async def all_handed_back() -> bool:
            found = await queue.get_task(tasks)
            return len(found) == 5 and all(task.handed_back >= 2 for task in found.values())

        await _until(all_handed_back)
        found = await queue.get_task(tasks)
        assert all(task.status in ("scheduled", "pending", "processing") for task in found.values())
        assert all(task.retry_count == 0 and task.exception is None for task in found.values())

        right = spawn_worker(WORKER, url, queue.name, "tasks_for_tests", env={})
        workers.append(right)
        done = await queue.wait_for(tasks, timeout=90)
        assert {task.status for task in done.values()} == {"completed"}
        assert sorted(task.result for task in done.values()) == [1, 2, 3, 4, 5]
        assert all(task.retry_count == 0 for task in done.values()), "a hand-back must use no retry"
    finally:
        stop_workers(workers, timeout=30)
        await queue.clear()


async def test_past_the_bound_it_fails_with_the_reason_and_os_system_never_runs(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    backend = MemoryBackend(instant_processing=False)
    queue = Queue(backend, "q")
    hostile = Task(spec=TaskSpec(func="os:system", args=(f"touch {marker}",)))
    missing = Task(spec=TaskSpec(func="nowhere.module:job"))
    await queue.add([hostile, missing])
    worker = Worker(
        "q", backend, enable_cron_manager=False,
        unregistered=HandBackPolicy(limit=3, min_age=0, delay=0.01, max_delay=0.02),
    )
    job = asyncio.create_task(worker.work(register_signal_handlers=False))
    try:
        done = await queue.wait_for([hostile, missing], timeout=30)
    finally:
        worker.stop()
        await job
    for task in done.values():
        assert task.status == "failed" and task.handed_back == 3 and task.retry_count == 0
        assert task.exception is not None and task.exception.type.endswith("TaskNotRegisteredError")
        assert "handed back 3 time(s)" in task.exception.message
    assert not marker.exists()
    assert worker.stats.handed_back == 6 and worker.stats.failed == 2


async def test_without_a_policy_an_unregistered_task_fails_at_once() -> None:
    backend = MemoryBackend(instant_processing=False)
    queue = Queue(backend, "q")
    missing = Task(spec=TaskSpec(func="nowhere.module:job"))
    await queue.add(missing)
    worker = Worker("q", backend, enable_cron_manager=False, unregistered=None)
    await worker.work(oneshot=True, register_signal_handlers=False)
    done = await queue.get_task(missing)
    assert done is not None and done.status == "failed" and done.handed_back == 0


def test_a_burst_worker_hands_back_what_it_cannot_run_and_exits(tmp_path: Path) -> None:
    import os
    import sys

    from _worker_processes import TESTS_DIR

    url = f"sqlite:///{tmp_path}/burst.db"

    async def add() -> tuple[Task, Task]:
        queue = Queue(get_backend(url), "default")
        foreign, ours = Task(spec=TaskSpec(func="other_deploy.tasks:job")), t.add(1, 2)
        await queue.add([foreign, ours])
        await queue.backend.disconnect()
        return foreign, ours

    foreign, ours = asyncio.run(add())
    burst = subprocess.run(
        [sys.executable, "-m", "sheppy_core", "work", "--burst", "-u", url, "-i", "tasks_for_tests"],
        env={**os.environ, "PYTHONPATH": str(TESTS_DIR)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert burst.returncode == 0, burst.stderr[-2000:]
    assert ": 1 completed, " in burst.stderr and "1 handed back unrun" in burst.stderr, burst.stderr[-2000:]

    async def read() -> dict[str, Task]:
        queue = Queue(get_backend(url), "default")
        found = await queue.get_task([foreign, ours])
        await queue.backend.disconnect()
        return {str(k): v for k, v in found.items()}

    found = asyncio.run(read())
    assert found[str(ours.id)].status == "completed"
    waiting = found[str(foreign.id)]
    assert waiting.status == "scheduled" and waiting.handed_back == 1 and waiting.retry_count == 0


def test_a_task_processor_given_without_a_policy_keeps_its_own() -> None:
    from sheppy_core import TaskProcessor

    backend = MemoryBackend(instant_processing=False)
    own = TaskProcessor(unregistered=None)
    assert Worker("q", backend, task_processor=own).processor.unregistered is None
    assert Worker("q", backend).processor.unregistered == HandBackPolicy()
    strict = HandBackPolicy(limit=1, delay=0.5)
    assert Worker("q", backend, task_processor=own, unregistered=strict).processor.unregistered is strict
    with pytest.raises(ValueError, match="hand-back"):
        HandBackPolicy(delay=0)
