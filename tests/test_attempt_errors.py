"""Earlier attempts (``Task.attempt_errors``), from a user's point of view: a task that fails, times out
or loses its worker keeps a record of each attempt that did not complete — number, when, status, the
worker that held it, the exception with its own traceback — run by a real ``Worker`` on memory:// and on
a real SQLite file; the list keeps the first and the latest ``MAX_ATTEMPT_ERRORS``.
"""

from __future__ import annotations

import asyncio
import importlib
import os
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import tasks_for_tests as t
from _worker_processes import TESTS_DIR, stop_workers

from sheppy_core import Queue, Worker, get_backend, task
from sheppy_core.models import MAX_ATTEMPT_ERRORS, Task

attempts_made: Counter[str] = Counter()


@task(retry=2, retry_delay=0.01)
async def fails_then_succeeds(key: str, failures: int) -> str:
    """Raises on its first ``failures`` attempts (each with a message naming the attempt)."""
    attempts_made[key] += 1
    if attempts_made[key] <= failures:
        raise RuntimeError(f"{key} attempt {attempts_made[key]} broke")
    return "finally"


@task(retry=MAX_ATTEMPT_ERRORS + 5, retry_delay=0)
async def never_works(key: str) -> None:
    attempts_made[key] += 1
    raise ValueError(f"{key} attempt {attempts_made[key]} broke")


@pytest.fixture(params=["memory", "sqlite"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "memory":
        return "memory://?instant_processing=false"  # run by the Worker, not inline by Queue.add
    importlib.import_module("sheppy_sqlite")
    return f"sqlite:///{tmp_path / 'attempts.db'}"


async def run_to_the_end(url: str, tasks: list[Task[Any]]) -> list[Task[Any]]:
    """Add ``tasks`` and let one real Worker drain the queue (retries included); the stored records."""
    backend = get_backend(url)
    queue = Queue(backend, f"attempts-{uuid.uuid4().hex[:8]}")
    await queue.add(tasks)
    worker = Worker(queue.name, backend, enable_cron_manager=False, lease=5)
    async with asyncio.timeout(60):
        await worker.work(oneshot=True, register_signal_handlers=False)
    stored = [await queue.get_task(one) for one in tasks]
    await backend.disconnect()
    assert all(s is not None for s in stored)
    return [s for s in stored if s is not None]


async def test_failing_twice_then_succeeding_keeps_both_failures(url: str) -> None:
    key = uuid.uuid4().hex
    [done] = await run_to_the_end(url, [fails_then_succeeds(key, 2)])
    assert done.status == "completed" and done.result == "finally"
    assert done.exception is None
    assert [(a.attempt, a.status) for a in done.attempt_errors] == [(1, "retrying"), (2, "retrying")]
    for number, attempt in enumerate(done.attempt_errors, start=1):
        assert attempt.exception is not None
        assert attempt.exception.type == "RuntimeError"
        assert attempt.exception.message == f"{key} attempt {number} broke"
        # Each attempt keeps its own traceback, pointing at the line that raised.
        assert attempt.exception.traceback is not None
        assert f"{key} attempt {number} broke" in attempt.exception.traceback
        assert "fails_then_succeeds" in attempt.exception.traceback
        assert attempt.worker is not None and attempt.worker.startswith("worker-")
    assert done.attempt_errors[0].finished_at <= done.attempt_errors[1].finished_at


async def test_a_final_failure_is_recorded_too(url: str) -> None:
    key = uuid.uuid4().hex
    [failed] = await run_to_the_end(url, [fails_then_succeeds(key, 5)])
    assert failed.status == "failed"
    assert [(a.attempt, a.status) for a in failed.attempt_errors] == [
        (1, "retrying"), (2, "retrying"), (3, "failed"),
    ]
    assert failed.exception is not None and failed.attempt_errors[-1].exception == failed.exception


async def test_a_timed_out_attempt_is_recorded(url: str) -> None:
    [timed_out] = await run_to_the_end(url, [t.slow_retried()])
    assert timed_out.status == "failed"
    assert [(a.attempt, a.status) for a in timed_out.attempt_errors] == [(1, "retrying"), (2, "failed")]
    assert all(
        a.exception is not None and a.exception.type == "TaskTimeoutError" for a in timed_out.attempt_errors
    )


async def test_only_the_first_and_the_latest_attempts_are_kept(url: str) -> None:
    key = uuid.uuid4().hex
    [failed] = await run_to_the_end(url, [never_works(key)])
    runs = MAX_ATTEMPT_ERRORS + 6
    assert failed.status == "failed" and attempts_made[key] == runs
    numbers = [a.attempt for a in failed.attempt_errors]
    assert len(numbers) == MAX_ATTEMPT_ERRORS
    assert numbers == [1, *range(runs - MAX_ATTEMPT_ERRORS + 2, runs + 1)]
    assert failed.attempt_errors[0].exception is not None
    assert failed.attempt_errors[0].exception.message == f"{key} attempt 1 broke"


LEASE = 2.0


def sheppy_work(url: str, queue_name: str, env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "sheppy_core", "work", "-u", url, "-q", queue_name, "-i", "tasks_for_tests",
         "--lease", str(LEASE), "--disable-cron-manager"],
        env={**os.environ, **env, "PYTHONPATH": str(TESTS_DIR)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


@pytest.mark.timeout(120)
async def test_an_attempt_lost_with_its_worker_is_recorded_as_crashed(tmp_path: Path) -> None:
    """A ``sheppy work`` process SIGKILLed mid-task: the task comes back after the lease, runs again on
    another worker and completes; its lost first run is kept as a ``crashed`` attempt."""
    importlib.import_module("sheppy_sqlite")
    url = f"sqlite:///{tmp_path / 'crash.db'}"
    log = tmp_path / "events.log"
    log.touch()
    env = {"SHEPPY_TEST_LOG": str(log)}
    queue = Queue(get_backend(url), "crash")
    victim = sheppy_work(url, queue.name, env)
    try:
        [lost] = [t.long_first_run(60)]
        await queue.add(lost)
        deadline = time.monotonic() + 60
        while (await queue.get_task(lost)).status != "processing":  # type: ignore[union-attr]
            assert time.monotonic() < deadline, "the worker never claimed the task"
            await asyncio.sleep(0.05)
        victim_id = (await queue.get_task(lost)).claimed_by  # type: ignore[union-attr]
        victim.send_signal(signal.SIGKILL)
        victim.wait()
        os.environ["SHEPPY_TEST_LOG"] = str(log)
        worker = Worker(queue.name, queue.backend, enable_cron_manager=False, lease=LEASE)
        async with asyncio.timeout(60):
            await worker.work(oneshot=True, register_signal_handlers=False)
        done = await queue.get_task(lost)
        assert done is not None and done.status == "completed"
        [crash] = done.attempt_errors
        assert (crash.attempt, crash.status) == (1, "crashed")
        assert crash.exception is not None and crash.exception.type == "WorkerCrashedError"
        assert victim_id is not None and victim_id != worker.worker_id
    finally:
        os.environ.pop("SHEPPY_TEST_LOG", None)
        stop_workers([victim], timeout=10)
        await queue.backend.disconnect()
