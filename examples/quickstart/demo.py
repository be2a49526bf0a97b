"""Quick start: a producer fills a queue, a Worker drains it, the producer reads the results.

python examples/quickstart/demo.py            # memory:// (one process)
SHEPPY_BACKEND_URL=sqlite:///jobs.db python examples/quickstart/demo.py
"""

from __future__ import annotations

import asyncio
import os
import sys
from datetime import timedelta

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from tasks import add, flaky_download

from sheppy_core import MemoryBackend, Queue, Worker, get_backend


async def main() -> None:
    url = os.environ.get("SHEPPY_BACKEND_URL")
    backend = get_backend(url) if url else MemoryBackend(instant_processing=False)
    queue = Queue(backend, "quickstart")
    jobs = [add(i, i) for i in range(5)] + [flaky_download("https://example.org")]
    await queue.add(jobs)
    later = add(100, 1)
    await queue.schedule(later, timedelta(seconds=1))
    print(f"queued {len(jobs)} tasks and scheduled one 1 s ahead on {backend!r}")

    worker = Worker("quickstart", backend, task_modules=["tasks"])
    running = asyncio.create_task(worker.work(register_signal_handlers=False))
    results = await queue.wait_for([*jobs, later], timeout=30)
    for job in [*jobs, later]:
        done = results[job.id]
        print(
            f"  {done.spec.func}{tuple(done.spec.args)} -> {done.status}: {done.result!r}"
            f" (retries: {done.retry_count})"
        )
    worker.stop()
    await running


if __name__ == "__main__":
    asyncio.run(main())
