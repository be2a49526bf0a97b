"""The measuring pieces that ``sheppy bench`` and the benchmark harness (``benchmarks/_harness.py``)
share: the idle pick-up probe, the percentile, stopping a worker process.

Shipped in the wheel because ``sheppy bench`` runs from it; the harness in ``benchmarks/`` imports it
from the installed package, so each of these exists once. Standard library only: importing it costs
nothing and pulls in no part of the engine.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import random
import signal
import statistics
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

__all__ = ["latency_summary", "percentile", "pickup_latencies", "stop_process"]

Probe = Callable[[float], Awaitable[float | None]]
"""Enqueues one probe task stamped with the given ``time.time()`` (taken just before the enqueue, so
the enqueue's own round trip counts) and returns the seconds from that stamp until the task started in
the worker; None when the probe did not run (it is then not counted)."""


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile, ``q`` in 0..100."""
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


async def pickup_latencies(
    probe: Probe, samples: int, gap: float, *, budget: float | None = None
) -> list[float]:
    """Idle pick-up latency, in seconds, of up to ``samples`` probes sent one at a time.

    Before each probe the caller's worker is left alone for ``gap`` seconds ±50 % (random jitter, so
    the probes do not fall into step with a poll interval): it is back in its idle wait when the probe
    arrives, which is what the number is about. ``budget`` (seconds) stops sampling early.
    """
    deadline = None if budget is None else time.monotonic() + budget
    latencies: list[float] = []
    while len(latencies) < samples and (deadline is None or time.monotonic() < deadline):
        await asyncio.sleep(gap * random.uniform(0.5, 1.5))
        latency = await probe(time.time())
        if latency is not None:
            latencies.append(max(latency, 0.0))
    return latencies


def latency_summary(latencies: Sequence[float]) -> dict[str, Any]:
    """Sample count and p50/p99/max in milliseconds (only the count when there are no samples)."""
    summary: dict[str, Any] = {"samples": len(latencies)}
    if latencies:
        milliseconds = [value * 1000 for value in latencies]
        summary |= {
            "p50_ms": round(statistics.median(milliseconds), 2),
            "p99_ms": round(percentile(milliseconds, 99), 2),
            "max_ms": round(max(milliseconds), 2),
        }
    return summary


async def stop_process(process: asyncio.subprocess.Process, grace: float = 10.0) -> None:
    """SIGTERM (a worker's graceful shutdown), then SIGKILL if it is still running after ``grace``."""
    if process.returncode is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        process.send_signal(signal.SIGTERM)
    try:
        await asyncio.wait_for(process.wait(), grace)
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            process.kill()
        await process.wait()
