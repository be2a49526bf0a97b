"""What the benchmark tasks do inside a worker process: count, stamp, and report on stdout.

Every system's no-op task calls :func:`hit` and its latency probe calls :func:`latency`; both are a
few hundred nanoseconds, so the task bodies cost the same for every system. Reports are single lines
``BENCH <event> <value>`` written with one ``os.write`` (atomic on a pipe), read by
:class:`_harness.WorkerProcess` in the driver.
"""

from __future__ import annotations

import cProfile
import os
import time

PREFIX = "BENCH"

_target = 0
_count = 0
_tick = 0
_profiler: cProfile.Profile | None = None
_profile_path: str | None = None


def emit(event: str, value: object = "") -> None:
    """Write one protocol line to stdout, unbuffered."""
    os.write(1, f"{PREFIX} {event} {value}\n".encode())


def configure(target: int, profile_path: str | None = None, tick: int = 0) -> None:
    """Report ``done`` when the ``target``-th no-op task runs; optionally cProfile that window.
    ``tick``: also report ``tick`` after every that many (for a driver that sums several processes)."""
    global _target, _count, _profile_path, _tick
    _target, _count, _profile_path, _tick = target, 0, profile_path, tick


def start() -> None:
    """Called when the driver says ``go``: starts the profiler if one was asked for."""
    global _profiler
    if _profile_path:
        _profiler = cProfile.Profile()
        _profiler.enable()


def hit() -> None:
    """The whole body of the no-op task: count it; the last one stamps the wall clock."""
    global _count, _profiler
    _count += 1
    if _tick and _count % _tick == 0:
        emit("tick")
    if _count == _target:
        now = time.time()
        if _profiler is not None:
            _profiler.disable()
            _profiler.dump_stats(str(_profile_path))
            _profiler = None
        emit("done", repr(now))


def latency(enqueued_at: float) -> None:
    """The body of the pick-up probe: seconds from the driver's stamp (just before enqueue) to now."""
    emit("lat", repr(time.time() - enqueued_at))
