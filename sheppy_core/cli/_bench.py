"""``sheppy bench [URL]``: how fast is this backend, with real worker processes?

In the spirit of ``river bench``. Against any installed backend whose store is shared between
processes (capability ``shared_store``), on a fresh queue that is cleared afterwards:

burn-down
    enqueue N no-op tasks, then drain them with W worker processes (``sheppy work --burst``); the
    throughput counts from the first task start to the last finish (process start-up excluded).
steady state
    W workers running while the producer keeps a backlog; tasks completed per second over ``--duration``.
latency
    enqueue one task at a time to idle workers: time from just before ``add`` to the task starting,
    p50/p99 (the probe of ``sheppy_core._bench_probe``, the one the benchmark harness uses too).
crash recovery
    a worker (lease ``--lease``) is killed with SIGKILL while running a task; seconds until that task
    completes on another worker.

Every phase is bounded by ``--timeout``; worker processes are always stopped and the queue cleared.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from typing import IO, Annotated, Any, cast

import typer
from rich.table import Table

from sheppy_core._bench_probe import latency_summary, pickup_latencies, stop_process
from sheppy_core._queue import Queue
from sheppy_core.backend import SHARED_STORE, Backend, redact_url
from sheppy_core.cli._common import (
    Format,
    FormatOption,
    connected,
    console,
    errors,
    fail,
    flag,
    print_json,
    run,
    settings_from,
)
from sheppy_core.exceptions import SheppyError

__all__ = ["bench"]

BATCH = 500
BENCH_MODULE = "sheppy_core._bench_tasks"


@dataclass
class _Spawned:
    process: asyncio.subprocess.Process
    log: IO[bytes]


@dataclass
class _Fleet:
    """The worker processes a bench started; all are stopped at the end, whatever happens."""

    url: str
    queue: str
    spawned: list[_Spawned] = field(default_factory=list)

    async def start(
        self, *, burst: bool = False, concurrency: int = 10, lease: float | None = None
    ) -> _Spawned:
        command = [
            sys.executable,
            "-m",
            "sheppy_core",
            "work",
            "-q",
            self.queue,
            "--import",
            BENCH_MODULE,
            "-c",
            str(concurrency),
            "-l",
            "warning",
            "--disable-cron-manager",
        ]
        if burst:
            command.append("--burst")
        if lease is not None:
            command += ["--lease", str(lease)]
        log = tempfile.TemporaryFile()  # noqa: SIM115 - closed by stop_all()
        # The URL goes through the environment, never the command line: argv is visible to anyone (ps).
        environment = {**os.environ, "SHEPPY_BACKEND_URL": self.url}
        process = await asyncio.create_subprocess_exec(
            *command,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=log,
            env=environment,
        )
        spawned = _Spawned(process, log)
        self.spawned.append(spawned)
        return spawned

    @staticmethod
    def output(spawned: _Spawned) -> str:
        spawned.log.seek(0)
        return spawned.log.read().decode(errors="replace").strip()

    async def stop_all(self) -> None:
        await asyncio.gather(*(stop_process(s.process) for s in self.spawned), return_exceptions=True)
        for spawned in self.spawned:
            spawned.log.close()
        self.spawned.clear()


async def _enqueue(queue: Queue, count: int) -> None:
    from sheppy_core._bench_tasks import stamp

    for start in range(0, count, BATCH):
        await queue.add([stamp() for _ in range(min(BATCH, count - start))])


async def _burn_down(
    backend: Backend, fleet: _Fleet, tasks: int, workers: int, concurrency: int, timeout: float
) -> dict[str, Any]:
    queue = Queue(backend, fleet.queue)
    began = time.perf_counter()
    await _enqueue(queue, tasks)
    enqueue_seconds = time.perf_counter() - began
    wall = time.perf_counter()
    drainers = [await fleet.start(burst=True, concurrency=concurrency) for _ in range(workers)]
    try:
        await asyncio.wait_for(asyncio.gather(*(d.process.wait() for d in drainers)), timeout)
    except TimeoutError:
        raise SheppyError(f"burn-down did not finish within --timeout {timeout:g} s") from None
    wall_seconds = time.perf_counter() - wall
    for drainer in drainers:
        if drainer.process.returncode != 0:
            raise SheppyError(
                f"a bench worker exited with {drainer.process.returncode}: "
                f"{fleet.output(drainer).splitlines()[-1:] or ['no output']}"
            )
    finished = [t for t in await queue.get_all_tasks() if t.status == "completed"]
    if not finished:
        raise SheppyError("no bench task completed during burn-down")
    first_start = min(float(cast(float, t.result)) for t in finished)
    last_finish = max(t.finished_at.timestamp() for t in finished if t.finished_at is not None)
    span = max(last_finish - first_start, 1e-9)
    await fleet.stop_all()
    await queue.clear()
    return {
        "tasks": tasks,
        "completed": len(finished),
        "enqueue_per_second": round(tasks / enqueue_seconds, 1) if enqueue_seconds else None,
        "drain_seconds": round(span, 3),
        "throughput_per_second": round(len(finished) / span, 1),
        "wall_seconds_with_startup": round(wall_seconds, 3),
    }


async def _ready(queue: Queue, timeout: float) -> None:
    """Wait until a worker answers: one task round trip."""
    from sheppy_core._bench_tasks import stamp

    probe = stamp()
    await queue.add(probe)
    try:
        await queue.wait_for(probe, timeout=timeout)
    except TimeoutError:
        raise SheppyError(f"bench workers did not start within {timeout:g} s") from None


async def _steady_and_latency(
    backend: Backend,
    fleet: _Fleet,
    workers: int,
    concurrency: int,
    duration: float,
    samples: int,
    timeout: float,
) -> dict[str, Any]:
    from sheppy_core._bench_tasks import stamp

    queue = Queue(backend, fleet.queue)
    for _ in range(workers):
        await fleet.start(concurrency=concurrency)
    await _ready(queue, timeout)
    backlog = max(workers * concurrency * 4, 50)
    before = (await backend.get_stats(fleet.queue))["completed"]
    began = time.perf_counter()
    while time.perf_counter() - began < duration:
        waiting = await queue.size()
        if waiting < backlog:
            await _enqueue(queue, backlog - waiting)
        await asyncio.sleep(0.01)
    elapsed = time.perf_counter() - began
    after = (await backend.get_stats(fleet.queue))["completed"]
    steady = {
        "seconds": round(elapsed, 3),
        "completed": after - before,
        "throughput_per_second": round((after - before) / elapsed, 1),
    }

    # Let the backlog drain so the workers are idle, then time single tasks.
    drain_deadline = time.perf_counter() + timeout
    while time.perf_counter() < drain_deadline:
        stats = await backend.get_stats(fleet.queue)
        if stats["pending"] == 0 and stats["processing"] == 0:
            break
        await asyncio.sleep(0.05)

    async def probe(enqueued_at: float) -> float | None:
        task = stamp()  # the task returns the wall-clock time it started
        await queue.add(task)
        done = await queue.wait_for(task, timeout=timeout)
        if done is None or done.status != "completed":
            return None
        return float(cast(float, done.result)) - enqueued_at

    latencies = await pickup_latencies(probe, samples, gap=0.02, budget=max(duration, 1.0) * 2)
    await fleet.stop_all()
    return {"steady_state": steady, "latency": latency_summary(latencies)}


async def _crash_recovery(backend: Backend, fleet: _Fleet, lease: float, timeout: float) -> dict[str, Any]:
    from sheppy_core._bench_tasks import hold

    queue = Queue(backend, fleet.queue)
    victim = await fleet.start(concurrency=1, lease=lease)
    held = hold(timeout * 10)
    await queue.add(held)
    deadline = time.perf_counter() + timeout
    while True:
        current = await queue.get_task(held)
        if current is not None and current.status == "processing":
            break
        if time.perf_counter() > deadline:
            raise SheppyError(f"no bench worker claimed the crash task within {timeout:g} s")
        await asyncio.sleep(0.02)
    await fleet.start(concurrency=1, lease=lease)
    await _ready(queue, timeout)  # the survivor is up (the victim is busy, so the probe ran there)
    killed_at = time.time()
    victim.process.kill()
    await victim.process.wait()
    try:
        done = await queue.wait_for(held, timeout=timeout + lease * 3)
    except TimeoutError:
        raise SheppyError("the killed worker's task did not complete elsewhere in time") from None
    await fleet.stop_all()
    if done is None or done.finished_at is None or done.status != "completed":
        status = done.status if done is not None else "missing"
        raise SheppyError(f"the killed worker's task ended {status}, not completed")
    return {
        "lease_seconds": lease,
        "recovery_seconds": round(done.finished_at.timestamp() - killed_at, 3),
        "deliveries": done.deliveries,
    }


async def _bench(
    url: str,
    tasks: int,
    workers: int,
    concurrency: int,
    duration: float,
    samples: int,
    lease: float,
    timeout: float,
    crash: bool,
) -> dict[str, Any]:
    from sheppy_core._plugins import plugin_for_url

    plugin = plugin_for_url(url)
    fleet = _Fleet(url, f"sheppy-bench-{uuid.uuid4().hex[:8]}")
    report: dict[str, Any] = {
        "backend": f"{plugin.distribution} {plugin.version}",
        "url": redact_url(url),
        "queue": fleet.queue,
        "workers": workers,
        "concurrency": concurrency,
    }
    async with connected(url) as backend:
        try:
            report["burn_down"] = await _burn_down(backend, fleet, tasks, workers, concurrency, timeout)
            report |= await _steady_and_latency(
                backend, fleet, workers, concurrency, duration, samples, timeout
            )
            if crash:
                report["crash_recovery"] = await _crash_recovery(backend, fleet, lease, timeout)
        finally:
            await fleet.stop_all()
            with contextlib.suppress(Exception):
                await Queue(backend, fleet.queue).clear()
    return report


def _require_shared_store(url: str) -> None:
    """Refuse, before anything starts, a backend whose store worker processes could not share."""
    from sheppy_core._plugins import plugin_for_url

    try:
        plugin = plugin_for_url(url)
    except SheppyError as exc:
        fail(str(exc), url)
    if SHARED_STORE not in plugin.capabilities:
        fail(
            f"bench needs a backend whose store is shared between processes (capability 'shared_store'); "
            f"{plugin.backend_class.__name__} ({plugin.distribution}) for {redact_url(url)} "
            f"does not declare it"
        )


def bench(
    url: Annotated[
        str | None,
        typer.Argument(
            help="Backend URL (default: SHEPPY_BACKEND_URL, [tool.sheppy] backend).", show_default=False
        ),
    ] = None,
    tasks: Annotated[int, typer.Option("-n", "--tasks", min=1, help="Tasks in the burn-down.")] = 1000,
    workers: Annotated[int, typer.Option("-w", "--workers", min=1, max=64, help="Worker processes.")] = 2,
    concurrency: Annotated[int, typer.Option("-c", "--concurrency", min=1, help="Tasks per worker.")] = 10,
    duration: Annotated[
        float, typer.Option("--duration", min=0.1, help="Seconds of steady-state measurement.")
    ] = 3.0,
    samples: Annotated[
        int, typer.Option("--latency-samples", min=1, help="Single-task latency samples.")
    ] = 50,
    lease: Annotated[
        float, typer.Option("--lease", min=0.2, help="Lease for the crash-recovery test.")
    ] = 1.0,
    timeout: Annotated[
        float, typer.Option("--timeout", min=1, help="Upper bound of each phase, seconds.")
    ] = 60.0,
    crash: Annotated[bool, flag("--crash/--no-crash", help="Run the crash-recovery test.")] = True,
    fmt: FormatOption = Format.table,
) -> None:
    """Measure a backend with real worker processes: burn-down, steady state, latency, crash recovery."""
    settings = settings_from(url)
    _require_shared_store(settings.backend_url)
    if fmt is Format.table:
        errors.print(
            f"benchmarking {redact_url(settings.backend_url)} with {workers} worker process(es)…",
            highlight=False,
            soft_wrap=True,
        )
    report = run(
        _bench(settings.backend_url, tasks, workers, concurrency, duration, samples, lease, timeout, crash),
        settings.backend_url,
    )
    if fmt is Format.json:
        print_json(report)
        return
    table = Table(title=f"sheppy bench: {report['backend']} at {report['url']}")
    table.add_column("measure")
    table.add_column("value", justify="right")
    table.add_column("detail")
    burn = report["burn_down"]
    table.add_row(
        "burn-down throughput",
        f"{burn['throughput_per_second']} tasks/s",
        f"{burn['completed']}/{burn['tasks']} tasks in {burn['drain_seconds']} s, "
        f"{workers} x {concurrency}; enqueue {burn['enqueue_per_second']}/s",
    )
    steady = report["steady_state"]
    table.add_row(
        "steady-state throughput",
        f"{steady['throughput_per_second']} tasks/s",
        f"{steady['completed']} tasks in {steady['seconds']} s",
    )
    latency = report["latency"]
    if latency["samples"]:
        table.add_row(
            "enqueue→start p50", f"{latency['p50_ms']} ms", f"{latency['samples']} samples, idle workers"
        )
        table.add_row("enqueue→start p99", f"{latency['p99_ms']} ms", f"max {latency['max_ms']} ms")
    if "crash_recovery" in report:
        crash_report = report["crash_recovery"]
        table.add_row(
            "crash recovery",
            f"{crash_report['recovery_seconds']} s",
            f"SIGKILL mid-task, lease {crash_report['lease_seconds']} s",
        )
    console.print(table)
