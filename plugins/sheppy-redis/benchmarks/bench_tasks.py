"""The no-op task of the benchmarks (a module of its own so a worker process can import it)."""

from __future__ import annotations

from sheppy_core import task


@task
async def noop(i: int) -> None:
    return None
