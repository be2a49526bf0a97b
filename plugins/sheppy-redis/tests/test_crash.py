"""A process holding claims dies by SIGKILL: its tasks come back after the lease and nothing is lost."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime

from sheppy_redis import RedisBackend
from sheppy_redis_testing import REDIS_URL

LEASE = 1.0

CHILD = """
import asyncio, sys
from sheppy_redis import RedisBackend

async def main():
    backend = RedisBackend(sys.argv[1], prefix=sys.argv[2])
    await backend.connect()
    claimed = await backend.pop("crash", limit=2, worker_id="doomed", lease=float(sys.argv[3]))
    print(" ".join(r["id"] for r in claimed), flush=True)
    await asyncio.sleep(3600)  # "working" until killed

asyncio.run(main())
"""


async def test_sigkilled_worker_tasks_are_redelivered_after_the_lease(
    make_backend: Callable[..., RedisBackend], prefix: str
) -> None:
    producer = make_backend()
    survivor = make_backend()
    await producer.connect()
    await survivor.connect()
    ids = [f"job-{i}" for i in range(5)]
    records = [{"id": t, "status": "new", "spec": {"func": "m:f"}} for t in ids]
    assert all(await producer.append("crash", records))

    child = await asyncio.create_subprocess_exec(
        sys.executable, "-c", CHILD, REDIS_URL, prefix, str(LEASE), stdout=asyncio.subprocess.PIPE
    )
    try:
        assert child.stdout is not None
        line = await asyncio.wait_for(child.stdout.readline(), 30)
        doomed = line.decode().split()
        killed_at = time.monotonic()
        os.kill(child.pid, signal.SIGKILL)
    finally:
        if child.returncode is None:
            child.kill()
        await asyncio.wait_for(child.wait(), 10)
    assert child.returncode == -signal.SIGKILL
    assert doomed == ids[:2]
    assert (await survivor.get_stats("crash"))["processing"] == 2

    completed: list[str] = []
    deliveries: dict[str, int] = {}
    while len(completed) < len(ids):
        batch = await survivor.pop("crash", limit=5, timeout=5, worker_id="survivor")
        assert batch, "tasks were lost"
        for claim in batch:
            if claim["id"] in doomed:
                # Not before the dead worker's lease ran out.
                assert time.monotonic() - killed_at > LEASE * 0.5
            deliveries[claim["id"]] = claim["deliveries"]
            finished = {**claim, "status": "completed", "finished_at": datetime.now(UTC).isoformat()}
            assert await survivor.store_result("crash", finished)
            completed.append(claim["id"])

    assert sorted(completed) == sorted(ids)  # enqueued = completed, each once
    assert {t: deliveries[t] for t in doomed} == dict.fromkeys(doomed, 2)
    assert all(deliveries[t] == 1 for t in ids[2:])
    stats = await survivor.get_stats("crash")
    assert stats["completed"] == len(ids)
    assert stats["pending"] == stats["processing"] == stats["scheduled"] == 0
