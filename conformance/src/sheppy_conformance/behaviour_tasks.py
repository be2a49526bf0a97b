"""Task functions the behaviour clauses enqueue; a Worker in the test process runs them."""

from __future__ import annotations

import asyncio

from sheppy_core import task

__all__ = ["ATTEMPTS", "add", "flaky", "slow"]

ATTEMPTS: dict[str, int] = {}
"""Attempts per token, so a test can tell how often its task ran."""


@task
async def add(x: int, y: int) -> int:
    return x + y


@task(retry=2, retry_delay=0)
async def flaky(token: str, failures: int) -> str:
    """Fails ``failures`` times, then succeeds."""
    ATTEMPTS[token] = ATTEMPTS.get(token, 0) + 1
    if ATTEMPTS[token] <= failures:
        raise RuntimeError(f"attempt {ATTEMPTS[token]} fails on purpose")
    return f"done after {ATTEMPTS[token]}"


@task(timeout=0.2)
async def slow(seconds: float) -> float:
    await asyncio.sleep(seconds)
    return seconds
