"""The tasks of the quick start. A worker runs only functions decorated with @task."""

from __future__ import annotations

import asyncio
import random

from sheppy_core import task


@task
async def add(x: int, y: int) -> int:
    await asyncio.sleep(0.05)
    return x + y


@task(retry=3, retry_delay=[0.1, 0.5])
def flaky_download(url: str) -> str:
    if random.random() < 0.5:
        raise ConnectionError(f"{url} timed out")
    return f"<html from {url}>"
