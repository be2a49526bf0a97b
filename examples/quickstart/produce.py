"""Fill the queue: run this, then `sheppy work --import tasks --burst`, then `python results.py`.

No URL configured, so everything goes to the default backend, ``sqlite:///sheppy.db`` (this folder).
"""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta
from pathlib import Path

from tasks import add, flaky_download

from sheppy_core import Queue


async def main() -> None:
    queue = Queue()
    jobs = [add(i, i) for i in range(5)] + [flaky_download("https://example.org")]
    later = add(100, 1)
    await queue.add(jobs)
    await queue.schedule(later, timedelta(seconds=1))
    ids = [str(job.id) for job in [*jobs, later]]
    Path("last_batch.json").write_text(json.dumps(ids))
    print(f"queued {len(jobs)} tasks and scheduled one 1 s ahead on {queue!r}")


if __name__ == "__main__":
    asyncio.run(main())
