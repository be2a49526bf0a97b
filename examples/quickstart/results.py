"""Print what the worker did with the batch that produce.py queued."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from sheppy_core import Queue


async def main(ids: list[str]) -> None:
    queue = Queue()
    for task in (await queue.wait_for(ids, timeout=30)).values():
        print(
            f"  {task.spec.func}{tuple(task.spec.args)} -> {task.status}: {task.result!r}"
            f" (retries: {task.retry_count})"
        )
    print(await queue.stats())


if __name__ == "__main__":
    asyncio.run(main(json.loads(Path("last_batch.json").read_text())))
