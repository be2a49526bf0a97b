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
from sheppy_conformance.records import brief, raises
from sheppy_core import Queue, Worker
from sheppy_core.backend import CRON, Backend
from sheppy_core.models import Task, TaskCron, TaskException

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


def _error(exception: TaskException | None) -> str:
    """A task's stored error as a user reads it: ``RuntimeError: attempt 3 fails on purpose``."""
    return "no error" if exception is None else f"{exception.type}: {brief(exception.message)}"


def _outcome(task: Task[Any] | None) -> str:
    """How a task ended, as a user sees it, for a message's summary line."""
    if task is None:
        return "not finished (None)"
    return f"status {task.status!r}, result {brief(task.result)}, {_error(task.exception)}"


class BehaviourClauses:
    @clause("behaviour.runs", timeout=15)
    async def test_behaviour_runs(self, env: Env) -> None:
        queue = Queue(env.backend, env.queue("behaviour"))
        work = [tasks.add(i, i) for i in range(5)]
        added = await queue.add(work)
        assert added == [True] * 5, (
            f"Queue.add of 5 new tasks returned {added}; [behaviour.runs]: each new task is stored and "
            f"queued (True)"
        )
        async with running_worker(await env.peer(), queue.name):
            done = await queue.wait_for(work, timeout=WAIT_SECONDS)
        assert {t.status for t in done.values()} == {"completed"}, (
            f"a Worker ran 5 add tasks and they ended with statuses "
            f"{sorted(t.status for t in done.values())}; [behaviour.runs]: a Worker over this backend runs "
            f"every queued task to 'completed'"
            + "".join(f"\n  {task_id}: {_outcome(t)}" for task_id, t in done.items())
        )
        results: list[Any] = [t.result for t in done.values()]
        assert sorted(results) == [0, 2, 4, 6, 8], (
            f"a Worker ran add(i, i) for i in 0..4 and the results are {brief(sorted(results))}; "
            f"[behaviour.runs]: each task's result is what its function returned, [0, 2, 4, 6, 8]"
        )

    @clause("behaviour.retries", timeout=15)
    async def test_behaviour_retries(self, env: Env) -> None:
        queue = Queue(env.backend, env.queue("behaviour"))
        token = uuid.uuid4().hex
        succeeds, gives_up = tasks.flaky(token, 2), tasks.flaky(token + "-never", 5)
        await queue.add([succeeds, gives_up])
        async with running_worker(await env.peer(), queue.name):
            done = await queue.wait_for([succeeds, gives_up], timeout=WAIT_SECONDS)
        ok, failed = done[succeeds.id], done[gives_up.id]
        assert (ok.status, ok.result, ok.retry_count) == ("completed", "done after 3", 2), (
            f"a task with retry=2 that fails twice ended with {_outcome(ok)}, retry_count {ok.retry_count}; "
            f"[behaviour.retries]: the Worker retries it and it completes on its third attempt ('completed', "
            f"'done after 3', retry_count 2)"
        )
        assert (failed.status, failed.retry_count) == ("failed", 2), (
            f"a task with retry=2 that always fails ended with {_outcome(failed)}, retry_count "
            f"{failed.retry_count}; [behaviour.retries]: after its 2 retries it is 'failed' with retry_count "
            f"2"
        )
        attempts = tasks.ATTEMPTS[token + "-never"]  # the first attempt and two retries, no more
        assert attempts == 3, (
            f"a task with retry=2 that always fails ran {attempts} times; [behaviour.retries]: it runs once "
            f"and is retried twice, 3 attempts and no more"
        )
        assert failed.exception is not None and failed.exception.type == "RuntimeError", (
            f"a task with retry=2 that always fails ended with {_error(failed.exception)}; "
            f"[behaviour.retries]: a failed task keeps the RuntimeError its last attempt raised"
        )

    @clause("behaviour.timeout", timeout=15)
    async def test_behaviour_timeout(self, env: Env) -> None:
        queue = Queue(env.backend, env.queue("behaviour"))
        too_slow, fast = tasks.slow(2.0), tasks.slow(0.01)
        await queue.add([too_slow, fast])
        started = time.monotonic()
        async with running_worker(await env.peer(), queue.name):
            done = await queue.wait_for([too_slow, fast], timeout=WAIT_SECONDS)
        elapsed = time.monotonic() - started
        assert elapsed < 1.8, (
            f"a Worker took {elapsed:.2f} s to finish a 2 s task with timeout=0.2 and a 0.01 s one; "
            f"[behaviour.timeout]: a task is cut off at its timeout, so both finish in under 1.8 s"
        )
        assert done[fast.id].status == "completed", (
            f"a 0.01 s task with timeout=0.2 ended with {_outcome(done[fast.id])}; [behaviour.timeout]: a "
            f"task that finishes within its timeout is 'completed'"
        )
        assert done[too_slow.id].status == "failed", (
            f"a 2 s task with timeout=0.2 ended with {_outcome(done[too_slow.id])}; [behaviour.timeout]: a "
            f"task cut off at its timeout is 'failed'"
        )
        exception = done[too_slow.id].exception
        assert exception is not None and exception.type == "TaskTimeoutError", (
            f"a 2 s task with timeout=0.2 failed with {_error(exception)}; [behaviour.timeout]: a task cut "
            f"off at its timeout fails with TaskTimeoutError"
        )

    @clause("behaviour.schedule", timeout=15)
    async def test_behaviour_schedule(self, env: Env) -> None:
        queue = Queue(env.backend, env.queue("behaviour"))
        later = tasks.add(20, 22)
        started = time.monotonic()
        scheduled = await queue.schedule(later, timedelta(seconds=0.6))
        assert scheduled is True, (
            f"Queue.schedule of a new task 0.6 s ahead returned {scheduled!r}; [behaviour.schedule]: a new "
            f"task is scheduled (True)"
        )
        async with running_worker(await env.peer(), queue.name):
            done = await queue.wait_for(later, timeout=WAIT_SECONDS)
        assert done is not None and (done.status, done.result) == ("completed", 42), (
            f"add(20, 22) scheduled 0.6 s ahead ended with {_outcome(done)}; [behaviour.schedule]: a Worker "
            f"runs it once it is due: 'completed', result 42"
        )
        if getattr(env.backend, "instant_processing", False):
            return  # memory:// runs even scheduled tasks inside schedule(), by design (as sheppy does)
        assert done.finished_at is not None and done.scheduled_at is not None, (
            f"a scheduled task that ran has finished_at {done.finished_at} and scheduled_at "
            f"{done.scheduled_at}; [behaviour.schedule]: it keeps the time it was scheduled for and records "
            f"when it finished"
        )
        assert done.finished_at >= done.scheduled_at, (
            f"a task scheduled for {done.scheduled_at.isoformat()} finished at "
            f"{done.finished_at.isoformat()}; [behaviour.schedule]: a scheduled task never runs before its "
            f"time"
        )
        elapsed = time.monotonic() - started
        assert elapsed >= 0.55, (
            f"a task scheduled 0.6 s ahead finished {elapsed:.2f} s after Queue.schedule; "
            f"[behaviour.schedule]: a scheduled task never runs before its time"
        )

    @clause("behaviour.wait_for", timeout=15)
    async def test_behaviour_wait_for(self, env: Env) -> None:
        queue = Queue(env.backend, env.queue("behaviour"))
        job = tasks.add(1, 2)
        await queue.add(job)
        if (await queue.wait_for(job, timeout=-1)) is None:  # not processed inline by the backend
            with raises(TimeoutError, "Queue.wait_for(task, timeout=0.3) while no Worker runs must raise "
                                      "TimeoutError [behaviour.wait_for]"):
                await queue.wait_for(job, timeout=0.3)
        waiter = asyncio.create_task(queue.wait_for(job, timeout=0))
        async with running_worker(await env.peer(), queue.name):
            done = await asyncio.wait_for(waiter, WAIT_SECONDS)
        assert done is not None and done.result == 3, (
            f"Queue.wait_for(task, timeout=0) of add(1, 2) returned {_outcome(done)} once a Worker ran it; "
            f"[behaviour.wait_for]: it waits until the task finished and returns it, result 3"
        )

    @clause("behaviour.cron", requires=CRON, timeout=15)
    async def test_behaviour_cron(self, env: Env) -> None:
        queue = Queue(env.backend, env.queue("behaviour"))
        template = tasks.add(1, 1)
        added = await queue.add_cron(template, "*/5 * * * *")
        assert added is True, (
            f"Queue.add_cron of a new cron returned {added!r}; [behaviour.cron]: a new cron is stored (True)"
        )
        added_again = await queue.add_cron(template, "*/5 * * * *")
        assert added_again is False, (
            f"Queue.add_cron of the same cron again returned {added_again!r}; [behaviour.cron]: a cron that "
            f"exists is not added twice (False); make the insert itself refuse an existing cron id"
        )
        cron = TaskCron(expression="*/5 * * * *", spec=template.spec, config=template.config)
        # The next run as the managers see it: the clock may pass a slot while they run.
        next_runs = {cron.next_run()}
        # Two workers run the cron manager at once: each occurrence is scheduled exactly once.
        async with running_worker(await env.peer(), queue.name, enable_job_processing=False,
                                  enable_scheduler=False), \
                running_worker(await env.peer(), queue.name, enable_job_processing=False,
                               enable_scheduler=False):
            await asyncio.sleep(0.5)
        next_runs.add(cron.next_run())
        occurrences = [t for t in await queue.get_scheduled() if t.cron_id == cron.deterministic_id]
        assert occurrences, (
            "two Workers ran their cron managers for 0.5 s and Queue.get_scheduled shows no occurrence of "
            "the cron; [behaviour.cron]: the cron manager schedules the cron's next run"
        )
        times = [t.scheduled_at for t in occurrences if t.scheduled_at is not None]
        assert len(times) == len(occurrences), (
            f"{len(occurrences) - len(times)} of {len(occurrences)} scheduled cron occurrences have no "
            f"scheduled_at; [behaviour.cron]: each occurrence is scheduled for its run time"
        )
        assert len(times) == len(set(times)), (
            f"two Workers' cron managers scheduled {len(times)} occurrences for {len(set(times))} run times; "
            f"[behaviour.cron]: each occurrence is scheduled exactly once across workers; a "
            f"check-then-insert races: make schedule itself refuse an id that exists"
        )
        expected = " or ".join(sorted(moment.isoformat() for moment in next_runs))
        assert times == sorted(times) and times[0] in next_runs, (
            f"the cron occurrences are scheduled for {brief([t.isoformat() for t in times])}; "
            f"[behaviour.cron]: in time order, the first at the cron's next run {expected}"
        )
