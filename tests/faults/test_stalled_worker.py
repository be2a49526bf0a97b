"""A worker never runs two copies of one task (issue "Nothing lost, nothing run twice", item 3).

A task that blocks its worker's event loop for longer than the lease (``time.sleep`` in an
``async def``) lets the lease lapse while the worker is alive. When the loop runs again, the worker's
own claim loop may take the task back before any heartbeat renews it. That claim is the worker's own:
the job already running it goes on and no second copy starts. The worker also warns that its loop was
blocked, and it renews its leases before claiming again.

Real ``sheppy work``-like processes on each shared-store backend; every task logs its start and end, so
the test counts what ran, not what the store says. A server that is down fails the test.
"""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from pathlib import Path

import pytest
import tasks_for_tests as t
from _worker_processes import SHARED_STORES, read_events, spawn_worker, stop_workers

from sheppy_core import Queue, get_backend

LEASE = 1.0
BLOCK = 3.5
"""Each task holds the loop this long: more than three leases."""
TASKS = 3


WORKER = f"""
import asyncio, logging, sys
from sheppy_core import Worker, get_backend

logging.basicConfig(level=logging.WARNING, stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s")

async def main() -> None:
    worker = Worker(sys.argv[2], get_backend(sys.argv[1]), max_concurrent_tasks=2, lease={LEASE},
                    enable_cron_manager=False, task_modules=["tasks_for_tests"])
    print(worker.worker_id, flush=True)
    await worker.work()

asyncio.run(main())
"""


@pytest.mark.timeout(240)
@pytest.mark.parametrize("url_template", SHARED_STORES)
async def test_a_worker_whose_loop_was_blocked_past_its_lease_runs_each_task_once(
    url_template: str, tmp_path: Path
) -> None:
    url = url_template.format(tmp=tmp_path)
    queue = Queue(get_backend(url), f"stall-{uuid.uuid4().hex[:8]}")
    log, stderr_path = tmp_path / "events.log", tmp_path / "worker.err"
    log.touch()
    worker = spawn_worker(WORKER, url, queue.name, env={"SHEPPY_TEST_LOG": str(log)}, stderr=stderr_path)
    try:
        assert worker.stdout is not None
        worker_id = (await asyncio.to_thread(worker.stdout.readline)).decode().strip()
        assert worker_id.startswith("worker-")
        tasks = [t.blocks_the_loop(BLOCK) for _ in range(TASKS)]
        await queue.add(tasks)
        done = await queue.wait_for(tasks, timeout=120)
        assert {task.status for task in done.values()} == {"completed"}, (
            f"{done}\nworker log:\n{stderr_path.read_text()[-3000:]}"
        )
        stats = await queue.stats()
        assert stats["processing"] == stats["pending"] == 0, stats

        starts = Counter(event[1] for event in read_events(log) if event[0] == "start")
        assert starts == Counter({str(task.id): 1 for task in tasks}), (
            f"every task must start exactly once in its one worker; starts: {dict(starts)}"
        )
        # The redelivery counts are the store's view: re-claims by the same worker happened (the
        # leases did lapse), yet nothing ran twice and no retry was charged.
        assert all(task.retry_count == 0 for task in done.values())
    finally:
        stop_workers([worker], timeout=30)
        await queue.clear()
    messages = stderr_path.read_text()
    assert "was blocked for" in messages, messages[-3000:]


async def test_a_claim_that_raced_the_previous_holders_outcome_never_overwrites_it() -> None:
    """Worker A's lease lapses while it stores its outcome; B's (or A's own) claim lands first, A's
    completed record second. Processing the stale claim must neither run the task again nor store a
    crash over the real outcome (it did: a completed task ended ``crashed``)."""
    from sheppy_core import MemoryBackend, TaskProcessor
    from sheppy_core._processing import StaleClaimError
    from sheppy_core._runner import released

    backend = MemoryBackend(instant_processing=False)
    queue = Queue(backend, "q")
    job = t.add(1, 2)  # no retries: a redelivery would end it crashed
    await queue.add(job)
    (first,) = await backend.pop("q", lease=0.01, worker_id="A")
    deadline = asyncio.get_running_loop().time() + 10
    while not (second := await backend.pop("q", lease=30, worker_id="B")):
        assert asyncio.get_running_loop().time() < deadline
        await asyncio.sleep(0.01)
    done = released(
        type(job).model_validate(first), status="completed", result=3, finished_at=job.created_at
    )
    await backend.store_result("q", done.model_dump(mode="json"))
    before = t.calls["add"]
    with pytest.raises(StaleClaimError):
        await TaskProcessor().process(queue, second[0])
    stored = await queue.get_task(job)
    assert stored is not None and stored.status == "completed" and stored.result == 3
    assert t.calls["add"] == before
