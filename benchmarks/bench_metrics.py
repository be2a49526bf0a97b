"""What metrics and traces cost the hot path: processing throughput with them off, on, and traced.

For each store (memory:// and SQLite) and each mode, in one process and one ``Worker`` at its defaults
(cron manager off): enqueue ``--tasks`` no-op tasks (5,000), then time the worker from start until the
last no-op has run (a counter in the task) and the store reports them all completed. Modes:

- ``off``: neither enabled (the hot path's one None check);
- ``metrics``: ``sheppy_core.prometheus.enable()``;
- ``tracing``: ``sheppy_core.tracing.enable()`` with the OpenTelemetry SDK and a span processor whose
  exporter drops every span (the cost of making spans, not of shipping them).

The modes are interleaved round by round (``--rounds``, 6; the order rotated each round) and the best
round of each kept, so a noisy neighbour hits every mode alike. Reported: tasks/s per mode, the ratio to
``off`` and the cost per task in microseconds; then the same from the process's CPU time per task (the
least of the rounds), which a busy machine's waits for a core do not blur. Target (issue #18): metrics on
>= 0.95 x off.

    .venv/bin/python benchmarks/bench_metrics.py [--tasks 5000] [--rounds 5] [--json PATH]

Wall and CPU time both move with a busy machine; instructions do not. ``--mode M`` runs one round of
one mode on memory:// and prints nothing else, for an instruction count (per task: the difference of
two task counts, so start-up cancels out):

    for m in off metrics; do for n in 1000 3000; do valgrind --tool=callgrind --callgrind-out-file=/dev/null \
      .venv/bin/python benchmarks/bench_metrics.py --mode $m --tasks $n 2>&1 | grep refs; done; done
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sheppy_core import MemoryBackend, Queue, Worker, get_backend, prometheus, task, tracing

MODES = ("off", "metrics", "tracing")
TARGET = 0.95


class _Countdown:
    """Counts no-op runs in this process; wakes the driver at the ``target``-th (polling the store
    instead would take the worker's loop from under it)."""

    def __init__(self) -> None:
        self.left = 0
        self.reached = asyncio.Event()

    def arm(self, target: int) -> None:
        self.left = target
        self.reached = asyncio.Event()


countdown = _Countdown()


@task
async def noop() -> None:
    countdown.left -= 1
    if countdown.left == 0:
        countdown.reached.set()


def _setup_tracing() -> None:
    from opentelemetry import trace
    from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult

    class Dropping(SpanExporter):
        def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
            return SpanExportResult.SUCCESS

    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(Dropping()))
    trace.set_tracer_provider(provider)


def _set_mode(mode: str) -> None:
    prometheus.disable()
    tracing.disable()
    if mode == "metrics":
        prometheus.enable()
    elif mode == "tracing":
        tracing.enable()


async def _one_round(url: str, queue_name: str, n: int, mode: str) -> tuple[float, float]:
    """Tasks per second of one worker draining ``n`` no-op tasks under ``mode``, and the process's CPU
    microseconds per task meanwhile."""
    # memory:// by URL runs tasks as they are added; the worker must do the work here.
    backend = MemoryBackend(instant_processing=False) if url == "memory://" else get_backend(url)
    queue = Queue(backend, queue_name)
    await queue.clear()
    _set_mode("off")  # enqueueing is not what is measured
    for start in range(0, n, 500):
        await queue.add([noop() for _ in range(min(500, n - start))])
    _set_mode(mode)
    countdown.arm(n)
    worker = Worker(queue_name, backend, enable_cron_manager=False)
    began, cpu_began = time.perf_counter(), time.process_time()
    job = asyncio.create_task(worker.work(register_signal_handlers=False))
    try:
        await asyncio.wait_for(countdown.reached.wait(), 600)
        # The last outcomes may still be on their way to the store: done is when it says so.
        while (await queue.stats())["completed"] < n:  # noqa: ASYNC110 (the store is the judge)
            await asyncio.sleep(0.001)
        finished, cpu_finished = time.perf_counter(), time.process_time()
    finally:
        worker.stop()
        await asyncio.wait_for(job, 30)
        _set_mode("off")
        await queue.clear()
        await backend.disconnect()
    return n / (finished - began), (cpu_finished - cpu_began) / n * 1e6


async def _measure(
    stores: dict[str, str], n: int, rounds: int
) -> tuple[dict[str, dict[str, float]], dict[str, dict[str, float]]]:
    """The best tasks/s and the least CPU microseconds per task of each store and mode."""
    best: dict[str, dict[str, float]] = {store: dict.fromkeys(MODES, 0.0) for store in stores}
    least_cpu: dict[str, dict[str, float]] = {store: dict.fromkeys(MODES, float("inf")) for store in stores}
    for number in range(rounds):
        for store, url in stores.items():
            # Rotated each round: a store that slows as it ages must not always hit the same mode.
            for mode in MODES[number % len(MODES):] + MODES[:number % len(MODES)]:
                rate, cpu = await _one_round(url, f"bench-metrics-{number}", n, mode)
                best[store][mode] = max(best[store][mode], rate)
                least_cpu[store][mode] = min(least_cpu[store][mode], cpu)
                line = f"round {number + 1}/{rounds} {store:<7} {mode:<8} {rate:9.0f} tasks/s"
                print(f"{line} {cpu:6.1f} us CPU", file=sys.stderr)
    return best, least_cpu


def _report(
    best: dict[str, dict[str, float]], least_cpu: dict[str, dict[str, float]], n: int
) -> list[dict[str, Any]]:
    rows = []
    print(f"\nprocessing {n} no-op tasks, one worker, best round per mode (CPU: the least per task)\n")
    print(f"{'store':<8}{'mode':<9}{'tasks/s':>10}{'x off':>8}{'us/task':>9}", end="")
    print(f"{'CPU us':>9}{'x off':>8}{'+us':>7}")
    for store, rates in best.items():
        off, cpu = rates["off"], least_cpu[store]
        for mode in MODES:
            ratio = rates[mode] / off
            cost = (1 / rates[mode] - 1 / off) * 1e6
            cpu_ratio, cpu_cost = cpu["off"] / cpu[mode], cpu[mode] - cpu["off"]
            rows.append(
                {"store": store, "mode": mode, "tasks_per_s": rates[mode], "ratio": ratio,
                 "us_per_task": cost, "cpu_us_per_task": cpu[mode], "cpu_ratio": cpu_ratio,
                 "cpu_us_over_off": cpu_cost}
            )
            mark = "" if mode != "metrics" else ("  ok" if ratio >= TARGET else f"  BELOW {TARGET}")
            print(
                f"{store:<8}{mode:<9}{rates[mode]:>10.0f}{ratio:>8.3f}{cost:>9.1f}"
                f"{cpu[mode]:>9.1f}{cpu_ratio:>8.3f}{cpu_cost:>7.1f}{mark}"
            )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--tasks", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--json", type=Path, default=None, help="also write the rows here")
    parser.add_argument("--mode", choices=MODES, default=None,
                        help="only one round of this mode on memory:// (for an instruction count)")
    args = parser.parse_args()
    _setup_tracing()
    if args.mode is not None:
        prometheus.enable()  # prometheus-client imported in every mode alike
        prometheus.disable()
        asyncio.run(_one_round("memory://", f"count-{args.mode}", args.tasks, args.mode))
        return
    with tempfile.TemporaryDirectory(prefix="bench-metrics-") as tmp:
        stores = {"memory": "memory://", "sqlite": f"sqlite:///{tmp}/bench.db"}
        best, least_cpu = asyncio.run(_measure(stores, args.tasks, args.rounds))
    rows = _report(best, least_cpu, args.tasks)
    if args.json is not None:
        args.json.write_text(json.dumps({"tasks": args.tasks, "rounds": args.rounds, "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
