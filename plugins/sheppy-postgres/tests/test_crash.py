"""A worker process SIGKILLed mid-task: its claims expire and another backend finishes the tasks."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import textwrap
import time

from sheppy_postgres import PostgresBackend

from .conftest import finished, task

_CLAIMER = textwrap.dedent(
    """
    import asyncio, sys
    from sheppy_postgres import PostgresBackend

    async def main(url, queue):
        backend = PostgresBackend.from_url(url)
        await backend.connect()
        claimed = await backend.pop(queue, 3, worker_id="doomed", lease=1.5)
        print(" ".join(t["id"] for t in claimed), flush=True)
        await asyncio.sleep(3600)  # "working" until killed

    asyncio.run(main(sys.argv[1], sys.argv[2]))
    """
)


async def test_sigkilled_worker_tasks_complete_elsewhere_after_the_lease(url: str, queue: str) -> None:
    async with PostgresBackend.from_url(url) as backend:
        await backend.append(queue, [task(f"c{i}") for i in range(10)])
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-c", _CLAIMER, url, queue, stdout=asyncio.subprocess.PIPE
        )
        try:
            assert proc.stdout is not None
            line = await asyncio.wait_for(proc.stdout.readline(), 30)
            doomed = line.decode().split()
            assert doomed == ["c0", "c1", "c2"]
            killed_at = time.monotonic()
            os.kill(proc.pid, signal.SIGKILL)
            assert await proc.wait() == -signal.SIGKILL
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()

        done: dict[str, dict[str, object]] = {}
        redelivered_at = None
        while len(done) < 10:
            batch = await backend.pop(queue, 5, timeout=5, worker_id="survivor", lease=30)
            assert batch, "the killed worker's tasks never came back"
            for record in batch:
                if record["id"] in doomed:
                    redelivered_at = redelivered_at or time.monotonic()
                    assert record["deliveries"] == 2
                else:
                    assert record["deliveries"] == 1
                assert record["id"] not in done
                assert await backend.store_result(queue, finished(record))
                done[str(record["id"])] = record
        assert redelivered_at is not None
        # Not before the 1.5 s lease ran out (measured from the kill, which came after the claim).
        assert redelivered_at - killed_at > 1.0
        stats = await backend.get_stats(queue)
        assert stats["completed"] == 10
        assert stats["processing"] == stats["pending"] == 0
