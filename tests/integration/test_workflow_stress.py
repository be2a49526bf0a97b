"""Stress: 200 workflows (a fan-out of 10 steps, then a fan-in step) run by 3 worker processes on a
shared store, one of which is killed with SIGKILL mid-run.

Every workflow must end completed with the right result (2 * sum(range(10)) = 90), and the engine must
never have a step run twice except where the killed worker's lost claim explains it. Every step
execution is logged (``start``/``end`` with the pid) and every step submission (append) the workers
and the client make, so the test checks what really happened, not what the store says.

Runs against each shared-store backend plugin (SQLite, Redis, PostgreSQL). A missing plugin or a
server that is down fails the test (never a skip).
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import time
import uuid
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import pytest
import workflows_for_tests as wf
from _worker_processes import read_events, spawn_worker, stop_workers

from sheppy_core import Queue, get_backend

WORKFLOWS = 200
FAN_OUT = 10
WORKERS = 3
LEASE = 3.0
"""Long enough that a live worker starved of CPU on a busy 2-core machine (heartbeats every lease/3)
keeps its claims: at 1 s, about one run in eight under load saw a live worker lose leases, and its
steps run twice, before and after this session's worker changes alike."""
WATCH_INTERVAL = 2.0


def _backend(module: str, url: str) -> Any:
    # requirements-test.txt installs every plugin: a missing one fails the test, never skips it.
    return pytest.param(url, id=module)


BACKENDS = [
    _backend("sheppy_sqlite", "sqlite:///{tmp}/stress.db"),
    _backend("sheppy_redis", "redis://127.0.0.1:6379"),
    _backend("sheppy_postgres", "postgresql://postgres@127.0.0.1/test"),
]

WORKER_SCRIPT = """
import asyncio, os, sys
from sheppy_core import Worker, get_backend
import workflows_for_tests

url, queue_name, log = sys.argv[1], sys.argv[2], sys.argv[3]

async def main() -> None:
    backend = get_backend(url)
    append = backend.append

    def write(lines):
        if lines:
            fd = os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            os.write(fd, lines.encode())
            os.close(fd)

    async def logged_append(queue, tasks, unique=True, **kwargs):
        steps = [t for t in tasks if t.get("workflow_id")]
        write("".join(f"call {t['id']} {os.getpid()}\\n" for t in steps))
        results = await append(queue, tasks, unique, **kwargs)
        write("".join(
            f"submit {t['id']} {int(ok)} {os.getpid()}\\n"
            for t, ok in zip(tasks, results) if t.get("workflow_id")
        ))
        return results

    backend.append = logged_append
    worker = Worker(queue_name, backend, max_concurrent_tasks=10, enable_cron_manager=False, lease=LEASE)
    worker._scheduler_polling_interval = 0.2
    print("ready", flush=True)
    await worker.work()

asyncio.run(main())
""".replace("LEASE", repr(LEASE))


def _spawn(url: str, queue_name: str, log: Path) -> subprocess.Popen[bytes]:
    return spawn_worker(WORKER_SCRIPT, url, queue_name, str(log), env={"SHEPPY_STRESS_LOG": str(log)})


@pytest.mark.timeout(400)
@pytest.mark.parametrize("url_template", BACKENDS)
async def test_workflows_survive_a_killed_worker(url_template: str, tmp_path: Path) -> None:
    url = url_template.format(tmp=tmp_path)
    queue_name = f"wf-stress-{uuid.uuid4().hex[:8]}"
    log = tmp_path / "events.log"
    log.touch()
    os.environ["SHEPPY_STRESS_LOG"] = str(log)  # the client's own first-group submissions are logged too
    queue = Queue(get_backend(url), queue_name)
    workers = [_spawn(url, queue_name, log) for _ in range(WORKERS)]
    try:
        for worker in workers:
            assert worker.stdout is not None
            assert (await asyncio.to_thread(worker.stdout.readline)).strip() == b"ready"
        started_at = time.monotonic()
        ids = []
        for _ in range(WORKFLOWS):
            result = await queue.add_workflow(wf.stress(FAN_OUT), watch_interval=WATCH_INTERVAL)
            ids.append(result.workflow.id)
            for task in result.pending_tasks:
                wf._log(f"call {task.id}")
                wf._log(f"submit {task.id} 1")

        # Kill one worker once about a third of all steps have run.
        victim = workers[0]
        total_steps = WORKFLOWS * (FAN_OUT + 1)
        while sum(1 for e in read_events(log) if e[0] == "end") < total_steps // 3:
            assert time.monotonic() - started_at < 120, "workers made no progress"
            await asyncio.sleep(0.05)
        victim.send_signal(signal.SIGKILL)
        victim.wait()
        killed_pid = str(victim.pid)

        finished = await queue.wait_for_workflow(ids, timeout=300)
        elapsed = time.monotonic() - started_at
        assert len(finished) == WORKFLOWS
        wrong = {k: (w.completed, w.final_result, w.exception) for k, w in finished.items()
                 if not (w.completed and w.final_result == 2 * sum(range(FAN_OUT)))}
        assert wrong == {}

        events = read_events(log)
        steps = {s for w in finished.values() for s in w.task_order}
        assert len(steps) == total_steps
        stored = Counter(e[1] for e in events if e[0] == "submit" and e[2] == "1")
        calls = Counter(e[1] for e in events if e[0] == "call")
        answered = Counter(e[1] for e in events if e[0] == "submit")
        assert all(stored[s] <= 1 for s in steps), "a step was stored twice"
        # A step whose successful append was never logged was appended by the killed worker, which died
        # before it could write the line: its call is logged, its answer is not.
        unlogged = {s for s in steps if stored[s] == 0}
        assert all(calls[s] > answered[s] for s in unlogged), unlogged
        runs: dict[str, list[str]] = defaultdict(list)
        for event in events:
            if event[0] == "start":
                runs[event[1]].append(event[2])
        assert set(runs) == steps
        # A step ran again only after the killed worker lost it.
        rerun = {s: pids for s, pids in runs.items() if len(pids) > 1}
        assert all(set(pids[:-1]) == {killed_pid} for pids in rerun.values()), rerun
        index = {s: i for w in finished.values() for i, s in enumerate(w.task_order)}
        callers: dict[str, list[str]] = defaultdict(list)
        for event in events:
            if event[0] == "call":
                callers[event[1]].append(event[2] if len(event) > 2 else "client")
        repeats = {s: (index[s], pids) for s, pids in callers.items() if len(pids) > 1}
        # The engine appended a step more than once only to recover from the kill.
        assert all(killed_pid in pids for _, pids in repeats.values()), repeats
        print(
            f"\n{url.split(':')[0]}: {WORKFLOWS} workflows x {FAN_OUT + 1} steps in {elapsed:.1f} s; "
            f"killed pid {killed_pid}; steps re-run after the kill: {len(rerun)}; "
            f"append calls for steps: {sum(calls.values())} ({sum(calls.values()) - len(calls)} repeats, "
            f"refused by unique ids); steps appended by the killed worker: {len(unlogged)}"
        )
        if repeats:
            print(f"repeated appends (step index, callers): {list(repeats.values())[:5]}")
    finally:
        stop_workers(workers, timeout=20)
        os.environ.pop("SHEPPY_STRESS_LOG", None)
        try:
            await queue.clear()
        finally:
            await queue.backend.disconnect()
