"""Process-level checks for ``SHARED_STORE`` backends, called from a plugin's own tests.

The clauses of the suite run inside one process. What only a real process death shows — claims made
by a worker that is SIGKILLed mid-task come back after their lease, each task completes exactly once —
is checked here, against any backend reachable by URL (the plugin must be installed, so that the
child process finds it through the ``sheppy`` entry point)::

    from sheppy_conformance.crash import check_killed_worker_claims_are_redelivered

    async def test_sigkilled_worker(url: str) -> None:
        await check_killed_worker_claims_are_redelivered(url, "crash-queue")
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import textwrap
import time
from datetime import UTC, datetime
from typing import Any

from sheppy_conformance.records import brief
from sheppy_core import get_backend

__all__ = ["check_killed_worker_claims_are_redelivered"]

_CLAIMER = textwrap.dedent(
    """
    import asyncio, sys
    from sheppy_core import get_backend

    async def main(url, queue, limit, lease):
        backend = get_backend(url)
        await backend.connect()
        claimed = await backend.pop(queue, limit, worker_id="doomed", lease=lease)
        print(" ".join(t["id"] for t in claimed), flush=True)
        await asyncio.sleep(3600)  # "working" until killed

    asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])))
    """
)


def _finished(record: dict[str, Any]) -> dict[str, Any]:
    return {**record, "status": "completed", "finished_at": datetime.now(UTC).isoformat()}


async def check_killed_worker_claims_are_redelivered(
    url: str, queue: str, *, tasks: int = 10, claimed: int = 3, lease: float = 1.5, bound: float = 30.0
) -> None:
    """A child process claims the first ``claimed`` of ``tasks`` tasks under ``lease`` seconds and is
    SIGKILLed. Asserts that this process then completes every task exactly once: the dead worker's
    tasks not before their lease ran out and with ``deliveries == 2``, the others with
    ``deliveries == 1``, and that the stats end with everything completed. Waits are bounded by
    ``bound`` seconds each, never fixed sleeps. The queue is cleared afterwards."""
    ids = [f"crash-{index}" for index in range(tasks)]
    backend = get_backend(url)
    async with backend:
        await backend.clear(queue)
        try:
            appended = await backend.append(queue, [{"id": t, "status": "new", "spec": {}} for t in ids])
            assert all(appended), (
                f"append of {tasks} new tasks to the cleared queue {queue!r} returned {brief(appended)}; "
                f"[append.unique]: a new id is stored and queued (True), so the crash check cannot start"
            )
            child = await asyncio.create_subprocess_exec(
                sys.executable, "-c", _CLAIMER, url, queue, str(claimed), str(lease),
                stdout=asyncio.subprocess.PIPE,
            )
            try:
                assert child.stdout is not None, "the claiming worker process was started with stdout=PIPE"
                line = await asyncio.wait_for(child.stdout.readline(), bound)
                doomed = line.decode().split()
                killed_at = time.monotonic()
                os.kill(child.pid, signal.SIGKILL)
                exit_code = await asyncio.wait_for(child.wait(), bound)
                assert exit_code == -signal.SIGKILL, (
                    f"the worker process that claimed {brief(doomed)} exited with {exit_code}, not killed by "
                    f"SIGKILL (-{int(signal.SIGKILL)}) mid-task: did it fail before claiming? (its stderr is "
                    "above)"
                )
            finally:
                if child.returncode is None:
                    child.kill()
                    await child.wait()
            assert doomed == ids[:claimed], (
                f"the worker process's pop(limit={claimed}) on {tasks} queued tasks claimed {brief(doomed)}; "
                f"[pop.fifo]: queued tasks are claimed in append order, so {brief(ids[:claimed])}"
            )
            processing = (await backend.get_stats(queue))["processing"]
            assert processing == claimed, (
                f"get_stats()['processing'] just after the worker holding {claimed} claims was SIGKILLed is "
                f"{processing}; [stats.counts]: its claims stay claimed until their {lease} s lease expires, "
                f"so {claimed}"
            )

            done: dict[str, int] = {}
            redelivered_at: float | None = None
            while len(done) < tasks:
                batch = await backend.pop(queue, 5, timeout=5, worker_id="survivor", lease=bound)
                if not batch:
                    waited = time.monotonic() - killed_at
                    assert waited < lease + bound, (
                        f"the killed worker's tasks never came back: pop still returned [] {waited:.1f} s "
                        f"after the kill, with {len(done)} of {tasks} tasks completed and a {lease} s lease; "
                        "[lease.expired_redelivered]: once a lease expires, a later pop returns the task "
                        "again"
                    )
                    await asyncio.sleep(0.05)  # a backend without BLOCKING_POP answers [] at once
                    continue
                for record in batch:
                    task_id = str(record["id"])
                    assert task_id not in done, (
                        f"{task_id} was delivered again (deliveries={brief(record['deliveries'])}) after "
                        "store_result completed it; [store_result.finished]: the task leaves the queue, "
                        "schedule and claims for good"
                    )
                    if task_id in doomed:
                        redelivered_at = redelivered_at or time.monotonic()
                    done[task_id] = int(record["deliveries"])
                    stored = await backend.store_result(queue, _finished(record))
                    assert stored, (
                        f"store_result of the completed {task_id} returned {brief(stored)}; "
                        f"[store_result.unknown]: True when a record with that id exists in the queue"
                    )
            assert redelivered_at is not None, (
                f"all {tasks} tasks completed, but none of the killed worker's {brief(doomed)} came back to "
                "a pop; [lease.expired_redelivered]: its tasks come back once their lease expires"
            )
            # Not before the lease ran out (measured from the kill, which came after the claim).
            came_back_after = redelivered_at - killed_at
            assert came_back_after > lease * 0.66, (
                f"the killed worker's tasks were redelivered {came_back_after:.2f} s after the kill, before "
                f"their {lease} s lease ran out; [pop.hidden]: a claimed task is not returned again until "
                "its lease expires"
            )
            doomed_deliveries = {t: done[t] for t in doomed}
            assert doomed_deliveries == dict.fromkeys(doomed, 2), (
                f"the killed worker's tasks were redelivered with deliveries {brief(doomed_deliveries)}; "
                f"[pop.claim]: each claim increments deliveries by one, so 2 for the claim after the kill"
            )
            recounted = {t: done[t] for t in ids[claimed:] if done[t] != 1}
            assert not recounted, (
                f"tasks the killed worker never claimed were delivered with deliveries {brief(recounted)}; "
                f"[pop.claim]: a first claim has deliveries=1"
            )
            stats = await backend.get_stats(queue)
            assert stats["completed"] == tasks, (
                f"get_stats()['completed'] after all {tasks} tasks completed once is {stats['completed']}; "
                f"[stats.counts]: finished records are counted by status, so {tasks}"
            )
            left = {k: stats[k] for k in ("pending", "processing", "scheduled")}
            assert stats["pending"] == stats["processing"] == stats["scheduled"] == 0, (
                f"get_stats() after all {tasks} tasks completed shows {left}; [stats.counts]: no task is "
                f"queued, claimed or scheduled any more, so all 0"
            )
        finally:
            await backend.clear(queue)
