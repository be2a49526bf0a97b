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
            assert all(await backend.append(queue, [{"id": t, "status": "new", "spec": {}} for t in ids]))
            child = await asyncio.create_subprocess_exec(
                sys.executable, "-c", _CLAIMER, url, queue, str(claimed), str(lease),
                stdout=asyncio.subprocess.PIPE,
            )
            try:
                assert child.stdout is not None
                line = await asyncio.wait_for(child.stdout.readline(), bound)
                doomed = line.decode().split()
                killed_at = time.monotonic()
                os.kill(child.pid, signal.SIGKILL)
                assert await asyncio.wait_for(child.wait(), bound) == -signal.SIGKILL
            finally:
                if child.returncode is None:
                    child.kill()
                    await child.wait()
            assert doomed == ids[:claimed], doomed
            assert (await backend.get_stats(queue))["processing"] == claimed

            done: dict[str, int] = {}
            redelivered_at: float | None = None
            while len(done) < tasks:
                batch = await backend.pop(queue, 5, timeout=5, worker_id="survivor", lease=bound)
                if not batch:
                    waited = time.monotonic() - killed_at
                    assert waited < lease + bound, "the killed worker's tasks never came back"
                    await asyncio.sleep(0.05)  # a backend without BLOCKING_POP answers [] at once
                    continue
                for record in batch:
                    task_id = str(record["id"])
                    assert task_id not in done, f"{task_id} was delivered again after it completed"
                    if task_id in doomed:
                        redelivered_at = redelivered_at or time.monotonic()
                    done[task_id] = int(record["deliveries"])
                    assert await backend.store_result(queue, _finished(record))
            assert redelivered_at is not None
            # Not before the lease ran out (measured from the kill, which came after the claim).
            assert redelivered_at - killed_at > lease * 0.66
            assert {t: done[t] for t in doomed} == dict.fromkeys(doomed, 2)
            assert all(done[t] == 1 for t in ids[claimed:])
            stats = await backend.get_stats(queue)
            assert stats["completed"] == tasks
            assert stats["pending"] == stats["processing"] == stats["scheduled"] == 0
        finally:
            await backend.clear(queue)
