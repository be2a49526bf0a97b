"""behaviour.*: Queue and Worker over the backend, judged as users see them (BEHAVIOUR LAYER).

Unlike the other clauses these do not call the backend directly: they enqueue with ``Queue``, run a
``Worker`` in the background, and check only what a user observes (results, statuses, timings).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest

from sheppy_conformance import behaviour_tasks as tasks
from sheppy_conformance._clause import clause
from sheppy_conformance._env import Env
from sheppy_core import Queue, Worker
from sheppy_core.backend import CRON, Backend
from sheppy_core.models import TaskCron

__all__ = ["BehaviourClauses"]

WAIT_SECONDS = 5.0


@contextlib.asynccontextmanager
async def running_worker(backend: Backend, queue_name: str, **options: Any) -> AsyncIterator[Worker]:
    """A Worker working ``queue_name`` in the background for the duration of the block."""
    worker = Worker(queue_name, backend, shutdown_timeout=2.0, lease=2.0, **options)
    job = asyncio.create_task(worker.work(register_signal_handlers=False))
    # Let work() begin: Worker.stop() before work() has started is ignored (sheppy-core 0.1.0), and a
    # backend that processes inline may finish the whole block without an await that yields.
    await asyncio.sleep(0)
    try:
        yield worker
    finally:
        worker.stop()
        done, _ = await asyncio.wait({job}, timeout=5)
        if not done:
            job.cancel()
            with contextlib.suppress(BaseException):
                await job
            pytest.fail("Worker did not stop within 5 s of stop()")
        job.result()


class BehaviourClauses:
    @clause("behaviour.runs", timeout=15)
    async def test_behaviour_runs(self, env: Env) -> None:
        queue = Queue(env.backend, env.queue("behaviour"))
        work = [tasks.add(i, i) for i in range(5)]
        assert await queue.add(work) == [True] * 5
        async with running_worker(await env.peer(), queue.name):
            done = await queue.wait_for(work, timeout=WAIT_SECONDS)
        assert {t.status for t in done.values()} == {"completed"}
        results: list[Any] = [t.result for t in done.values()]
        assert sorted(results) == [0, 2, 4, 6, 8]

    @clause("behaviour.retries", timeout=15)
    async def test_behaviour_retries(self, env: Env) -> None:
        queue = Queue(env.backend, env.queue("behaviour"))
        token = uuid.uuid4().hex
        succeeds, gives_up = tasks.flaky(token, 2), tasks.flaky(token + "-never", 5)
        await queue.add([succeeds, gives_up])
        async with running_worker(await env.peer(), queue.name):
            done = await queue.wait_for([succeeds, gives_up], timeout=WAIT_SECONDS)
        ok, failed = done[succeeds.id], done[gives_up.id]
        assert (ok.status, ok.result, ok.retry_count) == ("completed", "done after 3", 2)
        assert (failed.status, failed.retry_count) == ("failed", 2)
        assert tasks.ATTEMPTS[token + "-never"] == 3  # the first attempt and two retries, no more
        assert failed.exception is not None and failed.exception.type == "RuntimeError"

    @clause("behaviour.timeout", timeout=15)
    async def test_behaviour_timeout(self, env: Env) -> None:
        queue = Queue(env.backend, env.queue("behaviour"))
        too_slow, fast = tasks.slow(2.0), tasks.slow(0.01)
        await queue.add([too_slow, fast])
        started = time.monotonic()
        async with running_worker(await env.peer(), queue.name):
            done = await queue.wait_for([too_slow, fast], timeout=WAIT_SECONDS)
        assert time.monotonic() - started < 1.8, "the task was not cut off at its timeout"
        assert done[fast.id].status == "completed"
        assert done[too_slow.id].status == "failed"
        exception = done[too_slow.id].exception
        assert exception is not None and exception.type == "TaskTimeoutError"

    @clause("behaviour.schedule", timeout=15)
    async def test_behaviour_schedule(self, env: Env) -> None:
        queue = Queue(env.backend, env.queue("behaviour"))
        later = tasks.add(20, 22)
        started = time.monotonic()
        assert await queue.schedule(later, timedelta(seconds=0.6)) is True
        async with running_worker(await env.peer(), queue.name):
            done = await queue.wait_for(later, timeout=WAIT_SECONDS)
        assert done is not None and (done.status, done.result) == ("completed", 42)
        if getattr(env.backend, "instant_processing", False):
            return  # memory:// runs even scheduled tasks inside schedule(), by design (as sheppy does)
        assert done.finished_at is not None and done.scheduled_at is not None
        assert done.finished_at >= done.scheduled_at, "a scheduled task ran before its time"
        assert time.monotonic() - started >= 0.55

    @clause("behaviour.wait_for", timeout=15)
    async def test_behaviour_wait_for(self, env: Env) -> None:
        queue = Queue(env.backend, env.queue("behaviour"))
        job = tasks.add(1, 2)
        await queue.add(job)
        if (await queue.wait_for(job, timeout=-1)) is None:  # not processed inline by the backend
            with pytest.raises(TimeoutError):
                await queue.wait_for(job, timeout=0.3)
        waiter = asyncio.create_task(queue.wait_for(job, timeout=0))
        async with running_worker(await env.peer(), queue.name):
            done = await asyncio.wait_for(waiter, WAIT_SECONDS)
        assert done is not None and done.result == 3

    @clause("behaviour.cron", requires=CRON, timeout=15)
    async def test_behaviour_cron(self, env: Env) -> None:
        queue = Queue(env.backend, env.queue("behaviour"))
        template = tasks.add(1, 1)
        assert await queue.add_cron(template, "*/5 * * * *") is True
        assert await queue.add_cron(template, "*/5 * * * *") is False
        cron = TaskCron(expression="*/5 * * * *", spec=template.spec, config=template.config)
        # Two workers run the cron manager at once: each occurrence is scheduled exactly once.
        async with running_worker(await env.peer(), queue.name, enable_job_processing=False,
                                  enable_scheduler=False), \
                running_worker(await env.peer(), queue.name, enable_job_processing=False,
                               enable_scheduler=False):
            await asyncio.sleep(0.5)
        occurrences = [t for t in await queue.get_scheduled() if t.cron_id == cron.deterministic_id]
        assert occurrences, "the cron manager scheduled no occurrence"
        times = [t.scheduled_at for t in occurrences if t.scheduled_at is not None]
        assert len(times) == len(occurrences), "an occurrence has no scheduled_at"
        assert len(times) == len(set(times)), "an occurrence was scheduled twice"
        assert times == sorted(times) and times[0] == cron.next_run()
