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


async def main() -> list[str]:
    queue = Queue()
    jobs = [add(i, i) for i in range(5)] + [flaky_download("https://example.org")]
    later = add(100, 1)
    await queue.add(jobs)
    await queue.schedule(later, timedelta(seconds=1))
    print(f"queued {len(jobs)} tasks and scheduled one 1 s ahead on {queue!r}")
    return [str(job.id) for job in [*jobs, later]]


if __name__ == "__main__":
    Path("last_batch.json").write_text(json.dumps(asyncio.run(main())))
