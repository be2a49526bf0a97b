"""Graceful stops of a busy worker lose nothing and run nothing twice.

A ``Worker`` (in this process, on a real store) is started and stopped with ``Worker.stop()`` 100 times
while it runs short tasks, so stops land at every point of its claim loop: while a claim is on its way
to the store or its reply on the way back, while a blocking pop waits, while tasks run or wait for a
slot. After each stop nothing may be left claimed; at the end every task has run exactly once (each
``noted`` task appends its id to a list as it starts), ended ``completed``, with one delivery counted.

Runs against each shared-store backend plugin (an SQLite file, Redis, PostgreSQL); a server that is
down fails the test, never skips it. A few SIGTERM stops of real worker processes follow, on the same
stores.
"""

from __future__ import annotations

import asyncio
import random
import signal
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
import tasks_for_tests as t
from _worker_processes import SHARED_STORES, read_events, spawn_worker, stop_workers

from sheppy_core import Queue, Worker, get_backend
from sheppy_core.backend import Backend

STOPS = 100
TASKS_PER_STOP = 12
SLOTS = 4
LEASE = 60.0
"""Far longer than the test: a claim left behind by a stop shows as ``processing``, never redelivered."""



async def until(check: Callable[[], Awaitable[bool]], seconds: float) -> bool:
    """Poll ``check`` until it is true or ``seconds`` pass; returns the last answer."""
    deadline = time.monotonic() + seconds
    while not await check():
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.01)
    return True


async def stats_of(backend: Backend, queue_name: str) -> dict[str, int]:
    return await backend.get_stats(queue_name)


@pytest.mark.timeout(300)
@pytest.mark.parametrize("url_template", SHARED_STORES)
async def test_hundred_graceful_stops_of_a_busy_worker(url_template: str, tmp_path: Path) -> None:
    backend = get_backend(url_template.format(tmp=tmp_path))
    await backend.connect()
    queue = Queue(backend, f"stops-{uuid.uuid4().hex[:8]}")
    rng = random.Random(8)
    added: list[str] = []
    t.ran_ids.clear()
    try:
        for stop in range(STOPS):
            tasks = [t.noted(rng.uniform(0.002, 0.02)) for _ in range(TASKS_PER_STOP)]
            assert all(await queue.add(tasks))
            added.extend(str(task.id) for task in tasks)
            worker = Worker(queue.name, backend, max_concurrent_tasks=SLOTS, lease=LEASE,
                            enable_cron_manager=False)
            started = len(t.ran_ids)
            running = asyncio.create_task(worker.work(register_signal_handlers=False))

            async def busy(started: int = started) -> bool:
                return len(t.ran_ids) > started

            assert await until(busy, 20), f"stop {stop}: the worker ran nothing within 20 s"
            # Stop at a different moment of the claim loop each time (this is not a synchronisation).
            await asyncio.sleep(rng.uniform(0, 0.03))
            worker.stop()
            await asyncio.wait_for(running, 30)

            async def nothing_claimed() -> bool:
                return (await stats_of(backend, queue.name))["processing"] == 0

            # A backend may hand back a cancelled claim a moment after the stop.
            assert await until(nothing_claimed, 5), (
                f"stop {stop}: {(await stats_of(backend, queue.name))['processing']} task(s) left "
                "processing after a graceful stop"
            )

        # One last worker runs what is left.
        final = Worker(queue.name, backend, max_concurrent_tasks=SLOTS, lease=LEASE,
                       enable_cron_manager=False)
        running = asyncio.create_task(final.work(register_signal_handlers=False))

        async def all_done() -> bool:
            return (await stats_of(backend, queue.name))["completed"] == len(added)

        done = await until(all_done, 60)
        final.stop()
        await asyncio.wait_for(running, 30)
        stats = await stats_of(backend, queue.name)
        assert done, f"not every task completed: {stats}"
        assert stats["crashed"] == stats["failed"] == stats["processing"] == stats["pending"] == 0, stats

        runs = Counter(t.ran_ids)
        never = [i for i in added if runs[i] == 0]
        twice = [i for i, n in runs.items() if n > 1]
        assert not never, f"{len(never)} task(s) never ran"
        assert not twice, f"{len(twice)} task(s) ran more than once"
        assert sorted(runs) == sorted(added)
        records = await backend.get_tasks(queue.name, added)
        recounted = [i for i, r in records.items() if r.get("deliveries") != 1]
        assert not recounted, f"{len(recounted)} task(s) with a stop's claim counted as a delivery"
    finally:
        await backend.clear(queue.name)
        await backend.disconnect()


WORKER_SCRIPT = f"""
import asyncio, sys
from sheppy_core import Worker, get_backend

async def main() -> None:
    worker = Worker(sys.argv[2], get_backend(sys.argv[1]), max_concurrent_tasks={SLOTS}, lease={LEASE},
                    enable_cron_manager=False, task_modules=["tasks_for_tests"])
    print(worker.worker_id, flush=True)
    await worker.work()

asyncio.run(main())
"""

SIGTERMS = 3


@pytest.mark.timeout(300)
@pytest.mark.parametrize("url_template", SHARED_STORES)
async def test_sigterm_stops_of_busy_worker_processes(url_template: str, tmp_path: Path) -> None:
    url = url_template.format(tmp=tmp_path)
    backend = get_backend(url)
    await backend.connect()
    queue = Queue(backend, f"sigterm-{uuid.uuid4().hex[:8]}")
    log = tmp_path / "events.log"
    log.touch()
    rng = random.Random(15)
    tasks = [t.logged_nap(0.01) for _ in range(60 * SIGTERMS)]
    try:
        assert all(await queue.add(tasks))
        for stop in range(SIGTERMS + 1):
            worker = spawn_worker(WORKER_SCRIPT, url, queue.name, env={"SHEPPY_TEST_LOG": str(log)})
            try:
                assert worker.stdout is not None
                assert (await asyncio.to_thread(worker.stdout.readline)).startswith(b"worker-")
                seen = len(read_events(log))

                async def busy(seen: int = seen) -> bool:
                    return len(read_events(log)) > seen

                async def drained() -> bool:
                    return (await stats_of(backend, queue.name))["completed"] == len(tasks)

                if stop < SIGTERMS:
                    assert await until(busy, 30), f"SIGTERM {stop}: the worker ran nothing within 30 s"
                    await asyncio.sleep(rng.uniform(0, 0.05))
                    worker.send_signal(signal.SIGTERM)
                    assert await asyncio.to_thread(worker.wait, 30) == 0
                    processing = (await stats_of(backend, queue.name))["processing"]
                    assert processing == 0, f"SIGTERM {stop}: {processing} task(s) left processing"
                else:
                    assert await until(drained, 60), await stats_of(backend, queue.name)
            finally:
                await asyncio.to_thread(stop_workers, [worker], 30)
        stats = await stats_of(backend, queue.name)
        assert stats["crashed"] == stats["failed"] == stats["processing"] == stats["pending"] == 0, stats
        starts = Counter(event[1] for event in read_events(log) if event[0] == "start")
        assert sorted(starts) == sorted(str(task.id) for task in tasks)
        assert [i for i, n in starts.items() if n > 1] == [], "a task ran twice"
    finally:
        await backend.clear(queue.name)
        await backend.disconnect()
