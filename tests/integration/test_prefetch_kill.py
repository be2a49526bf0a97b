"""Prefetching workers on a shared store, one SIGKILLed while it holds more claims than it runs.

Three worker processes (``max_concurrent_tasks=4, prefetch=8``, lease 3 s) drain 600 short tasks; once
the victim holds more claims than slots (prefetched tasks waiting under its lease), it is killed. The
tasks have one retry, which a lost claim uses (a redelivery cannot tell a prefetched task from a started
one). Every task must end ``completed``; nothing may stay pending or claimed; the victim's claims come
back exactly once each; and a task may have started twice only if the killed worker started it first.
Each task logs its start and end with the pid, so the test checks what ran where, not only what the
store says.

Runs against each shared-store backend plugin (SQLite, Redis, PostgreSQL); a server that is down fails
the test, never skips it.
"""

from __future__ import annotations

import asyncio
import signal
import subprocess
import time
import uuid
from collections import defaultdict
from pathlib import Path

import pytest
import tasks_for_tests as t
from _worker_processes import SHARED_STORES, read_events, spawn_worker, stop_workers

from sheppy_core import Queue, get_backend

TASKS = 600
NAP = 0.25
WORKERS = 3
SLOTS = 4
PREFETCH = 8
LEASE = 3.0
"""Long enough that a live worker starved of CPU on a busy 2-core machine (heartbeats every lease/3)
keeps its claims: only the killed one's come back."""


WORKER_SCRIPT = f"""
import asyncio, sys
from sheppy_core import Worker, get_backend

async def main() -> None:
    worker = Worker(sys.argv[2], get_backend(sys.argv[1]), max_concurrent_tasks={SLOTS},
                    prefetch={PREFETCH}, enable_cron_manager=False, lease={LEASE},
                    task_modules=["tasks_for_tests"])
    print(worker.worker_id, flush=True)
    await worker.work()

asyncio.run(main())
"""


def _spawn(url: str, queue_name: str, log: Path) -> subprocess.Popen[bytes]:
    return spawn_worker(WORKER_SCRIPT, url, queue_name, env={"SHEPPY_TEST_LOG": str(log)})


@pytest.mark.timeout(300)
@pytest.mark.parametrize("url_template", SHARED_STORES)
async def test_killed_prefetching_worker_loses_nothing(url_template: str, tmp_path: Path) -> None:
    url = url_template.format(tmp=tmp_path)
    queue = Queue(get_backend(url), f"prefetch-{uuid.uuid4().hex[:8]}")
    log = tmp_path / "events.log"
    log.touch()
    workers = [_spawn(url, queue.name, log) for _ in range(WORKERS)]
    try:
        ids = []
        for worker in workers:
            assert worker.stdout is not None
            ids.append((await asyncio.to_thread(worker.stdout.readline)).decode().strip())
        assert all(i.startswith("worker-") for i in ids)
        # Long enough that prefetched claims seen in the snapshot below are still waiting when the
        # kill lands, on a loaded machine too (at 0.05 s a slow snapshot let them all start first).
        tasks = [t.logged_nap(NAP) for _ in range(TASKS)]
        await queue.add(tasks)

        # Kill the first worker while it holds more claims than it has slots.
        victim, victim_id = workers[0], ids[0]
        deadline = time.monotonic() + 60
        while True:
            assert time.monotonic() < deadline, "the victim never held prefetched claims"
            held = [
                r for r in await queue.backend.get_all_tasks(queue.name)
                if r.get("status") == "processing" and r.get("claimed_by") == victim_id
            ]
            if len(held) > SLOTS:
                break
            await asyncio.sleep(0.005)
        victim.send_signal(signal.SIGKILL)
        victim.wait()
        killed_pid = str(victim.pid)

        done = await queue.wait_for(tasks, timeout=120)
        assert len(done) == TASKS
        assert {task.status for task in done.values()} == {"completed"}
        stats = await queue.stats()
        assert stats["completed"] == TASKS
        assert stats["pending"] == stats["processing"] == 0

        starts: dict[str, list[str]] = defaultdict(list)
        for event in read_events(log):
            if event[0] == "start":
                starts[event[1]].append(event[2])
        assert set(starts) == {str(task.id) for task in tasks}
        # A task started twice only where the killed worker had started it first.
        rerun = {task_id: pids for task_id, pids in starts.items() if len(pids) > 1}
        assert all(set(pids[:-1]) == {killed_pid} for pids in rerun.values()), rerun
        # The victim's prefetched claims that it never started came back: each ran exactly once,
        # elsewhere, charged one retry for the lost claim.
        never_started = {str(r["id"]) for r in held} - {i for i, pids in starts.items() if killed_pid in pids}
        assert never_started, "no prefetched claim was still waiting when the victim died"
        assert all(len(starts[i]) == 1 for i in never_started)
        assert all(done[uuid.UUID(i)].retry_count == 1 for i in never_started)
    finally:
        stop_workers(workers, timeout=30)
        await queue.clear()
        await queue.backend.disconnect()
