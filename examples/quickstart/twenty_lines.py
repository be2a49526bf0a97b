"""A plain task, a retry, a task scheduled 1 s ahead and a cron task, on one Worker (runs ≤ 60 s)."""

import asyncio
from datetime import UTC, datetime, timedelta

from sheppy_core import MemoryBackend, Queue, Worker, task

runs: dict[str, int] = {}
cron_ran = asyncio.Event()


@task(retry=1, retry_delay=0.1)
async def job(name: str) -> str:
    runs[name] = runs.get(name, 0) + 1
    if name == "flaky" and runs[name] == 1:
        raise RuntimeError("first attempt fails")
    if name == "cron":
        cron_ran.set()
    return f"{name} at {datetime.now(UTC):%H:%M:%S.%f}"


async def main() -> None:
    queue, start = Queue(backend := MemoryBackend(instant_processing=False)), datetime.now(UTC)
    worker = asyncio.create_task(Worker("default", backend).work(register_signal_handlers=False))
    await queue.add([plain := job("plain"), flaky := job("flaky")])
    await queue.schedule(later := job("later"), timedelta(seconds=1))
    await queue.add_cron(job("cron"), "* * * * *")
    for t in (plain, flaky, later):
        done = await queue.wait_for(t, timeout=10)
        print(done.result, done.status, "retries:", done.retry_count, "after", done.finished_at - start)
    await asyncio.wait_for(cron_ran.wait(), 61)  # the cron fires at the next minute boundary
    print("cron ran at", datetime.now(UTC).time(), "; runs:", runs)
    worker.cancel()


asyncio.run(main())
