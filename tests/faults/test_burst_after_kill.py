"""``sheppy work --burst`` after a worker was killed waits for the dead worker's tasks (item 11).

A worker SIGKILLed mid-task leaves its claims ``processing`` until their lease runs out. A burst
worker started then must not report the queue drained while they are in flight: it waits, runs them
when they come back, and exits 0 with every task completed and none left ``processing``.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
import tasks_for_tests as t
from _worker_processes import SHARED_STORES, TESTS_DIR, spawn_worker, stop_workers

from sheppy_core import Queue, get_backend

LEASE = 6.0

VICTIM = f"""
import asyncio, sys
from sheppy_core import Worker, get_backend

async def main() -> None:
    worker = Worker(sys.argv[2], get_backend(sys.argv[1]), max_concurrent_tasks=4, lease={LEASE},
                    enable_cron_manager=False, task_modules=["tasks_for_tests"])
    print(worker.worker_id, flush=True)
    await worker.work()

asyncio.run(main())
"""


@pytest.mark.timeout(180)
@pytest.mark.parametrize("url_template", SHARED_STORES)
async def test_burst_after_a_kill_waits_for_the_dead_workers_tasks(url_template: str, tmp_path: Path) -> None:
    url = url_template.format(tmp=tmp_path)
    queue = Queue(get_backend(url), f"burst-{uuid.uuid4().hex[:8]}")
    log = tmp_path / "events.log"
    log.touch()
    env = {"SHEPPY_TEST_LOG": str(log)}
    victim = spawn_worker(VICTIM, url, queue.name, env=env)
    try:
        assert victim.stdout is not None
        victim_id = (await asyncio.to_thread(victim.stdout.readline)).decode().strip()
        tasks = [t.long_first_run(60) for _ in range(4)]
        await queue.add(tasks)
        deadline = time.monotonic() + 60
        async def claimed_by_victim() -> int:
            records = await queue.backend.get_all_tasks(queue.name)
            return sum(r.get("claimed_by") == victim_id for r in records)

        while await claimed_by_victim() < 4:
            assert time.monotonic() < deadline, "the victim never claimed the tasks"
            await asyncio.sleep(0.05)
        victim.send_signal(signal.SIGKILL)
        victim.wait()
        # The burst worker runs what comes back after the lease (a retry: a short nap).
        burst = await asyncio.to_thread(
            subprocess.run,
            [sys.executable, "-m", "sheppy_core", "work", "--burst", "-u", url, "-q", queue.name,
             "-i", "tasks_for_tests", "--lease", str(LEASE), "--disable-cron-manager"],
            env={**os.environ, **env, "PYTHONPATH": str(TESTS_DIR)},
            capture_output=True,
            text=True,
            timeout=150,
        )
        assert burst.returncode == 0, burst.stderr[-3000:]
        stats = await queue.stats()
        assert stats["processing"] == 0 and stats["pending"] == 0, (stats, burst.stderr[-3000:])
        assert stats["completed"] == 4, (stats, burst.stderr[-3000:])
    finally:
        stop_workers([victim], timeout=10)
        await queue.clear()
