"""The shared machinery of ``bench_*.py``: cases, the worker process, timing, tables, ratios and JSON.

One *case* is one system (ours or a peer) with one setting (its defaults, or its best documented
tuning). :func:`run_case` measures it the same way for every system, on the same server, in the same
run:

1. **enqueue**: ``n`` no-op tasks, either one call per task (``one``) or the system's batch call
   (``batch``), timed in this (driver) process; done ``--enqueue-rounds`` times (store emptied in
   between) and the best round reported, since one round on a shared machine mostly measures the
   neighbours. Drivers that can build a batch apart from adding it (``build_batch`` /
   ``enqueue_built``: the two sheppy systems) also get **add alone**: the batch call timed with its
   task objects built beforehand, so the call itself is compared and not the building;
2. **processing**: a fresh worker *process* (``worker.py``) starts, connects, prints ``ready`` and
   waits; the driver stamps the clock and says ``go``; the ``n``-th no-op task to run stamps the
   clock and prints ``done``. Where the store can tell cheaply (all but huey and taskiq)
   the driver then also waits until the store says every task is finished, so an outcome still in
   flight or buffered is never counted as done;
3. **pick-up latency**: the same worker, now idle; the driver stamps ``time.time()``, enqueues one
   probe task carrying the stamp, and the task prints ``now - stamp`` when it starts. Between two
   probes the driver pauses ``gap`` (±50 % jitter) so the worker is back in its idle wait. The probe
   loop, the percentile and the stopping of worker processes are ``sheppy_core._bench_probe``, the
   same code ``sheppy bench`` runs, so the project measures pick-up latency one way only.

Every asyncio worker runs on the standard library's loop (no uvloop, for anyone): the loop is the
harness's choice, not a system's setting.

Drivers (``sys_*.py``) implement :class:`Driver`; the same module holds the task functions and the
``run_worker`` entry of its worker process, so both sides import the tasks under the same name.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib
import importlib.metadata
import json
import os
import platform
import shutil
import signal
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from sheppy_core._bench_probe import percentile, pickup_latencies, stop_process

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
LOGS = RESULTS / "logs"


class Driver(Protocol):
    """The producer side of one case, in the driver process."""

    async def open(self) -> None: ...
    async def reset(self) -> None: ...
    async def close(self) -> None: ...
    async def enqueue_one(self) -> None: ...
    async def enqueue_batch(self, n: int) -> None: ...
    async def enqueue_probe(self, stamp: float) -> None: ...
    async def settled(self, n: int) -> bool | None:
        """Whether the store says all ``n`` no-op tasks are finished (outcome stored, nothing queued or
        running); None when the system offers no cheap way to ask (then the counter alone decides)."""
        ...


@dataclass
class Case:
    """One system at one setting."""

    system: str
    variant: str
    module: str
    config: dict[str, Any]
    ours: bool = False
    enqueue: str = "batch"
    """``one`` (one call per task) or ``batch`` (the system's batch call)."""
    peer_group: str = ""
    """Name used by targets that compare with one peer only (e.g. ``sheppy-0.0.7``)."""
    max_n: int | None = None
    """Cap on ``--n`` for a peer too slow to process 10,000 tasks within the time budget."""
    processes: int = 1
    """Worker processes started side by side for processing (ours: what ``sheppy work --processes N``
    starts). With more than one, the store's count decides when all are done, and there is no pick-up
    measurement (each process answers its own probes)."""


@dataclass
class CaseResult:
    """The numbers of one case (rates in tasks/s, latencies in ms), as written to the JSON file."""

    system: str
    variant: str
    ours: bool
    peer_group: str
    enqueue_mode: str
    n: int
    enqueue_per_s: float | None = None
    enqueue_rounds: list[float] = field(default_factory=list)
    add_alone_per_s: float | None = None
    """Batch call alone, task objects built beforehand (drivers with ``build_batch`` only)."""
    process_per_s: float | None = None
    process_counter_per_s: float | None = None
    store_checked: bool = False
    pickup_ms: list[float] = field(default_factory=list)
    pickup_p50_ms: float | None = None
    pickup_p99_ms: float | None = None
    load_before: float | None = None
    load_after: float | None = None
    error: str | None = None
    config: dict[str, Any] = field(default_factory=dict)
    capped: bool = False
    """``n`` was lowered for this case (``Case.max_n``)."""
    processes: int = 1
    server_cpu_ms_per_task: float | None = None
    """The server's CPU time during processing, per processed task (ms; = seconds per 1,000 tasks)."""
    server_cpu_enqueue_ms_per_task: float | None = None
    """The server's CPU time during the enqueue rounds, per enqueued task (ms)."""
    wal_bytes_per_task: float | None = None
    """PostgreSQL: WAL written during processing (the WAL position's advance), per processed task."""

    @property
    def label(self) -> str:
        return f"{self.system} [{self.variant}]" + (f" n={self.n}" if self.capped else "")


# -- the worker process --------------------------------------------------------------------------


class WorkerDied(RuntimeError):
    """The worker process exited before saying what the driver waited for (its log tail says why)."""


class WorkerProcess:
    """A worker subprocess speaking the ``BENCH <event> <value>`` line protocol (see ``_probe``)."""

    def __init__(self, proc: asyncio.subprocess.Process, log_path: Path) -> None:
        self.proc = proc
        self.log_path = log_path

    @classmethod
    async def start(
        cls,
        module: str,
        config: dict[str, Any],
        n: int,
        log_path: Path,
        profile_path: Path | None = None,
        tick: int = 0,
    ) -> WorkerProcess:
        log_path.parent.mkdir(parents=True, exist_ok=True)
        env = dict(os.environ)
        env.pop("BENCH_CPROFILE", None)
        env["BENCH_TICK"] = str(tick)
        if profile_path is not None:
            env["BENCH_CPROFILE"] = str(profile_path)
        with log_path.open("wb") as log:
            proc = await asyncio.create_subprocess_exec(
                sys.executable,
                str(HERE / "worker.py"),
                module,
                json.dumps(config),
                str(n),
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=log,
                cwd=str(HERE),
                env=env,
            )
        return cls(proc, log_path)

    def _tail(self) -> str:
        try:
            lines = self.log_path.read_text(errors="replace").splitlines()
        except OSError:
            return ""
        return "\n".join(lines[-15:])

    async def expect(self, event: str, timeout: float) -> str:
        """The value of the next ``event`` line; other output is skipped."""
        assert self.proc.stdout is not None
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"no {event!r} from the worker within {timeout:.0f} s")
            try:
                line = await asyncio.wait_for(self.proc.stdout.readline(), remaining)
            except TimeoutError:
                raise TimeoutError(f"no {event!r} from the worker within {timeout:.0f} s") from None
            if not line:
                await self.proc.wait()
                raise WorkerDied(f"worker exited ({self.proc.returncode}); log tail:\n{self._tail()}")
            parts = line.decode(errors="replace").strip().split(" ", 2)
            if len(parts) >= 2 and parts[0] == "BENCH" and parts[1] == event:
                return parts[2] if len(parts) > 2 else ""

    async def go(self) -> float:
        assert self.proc.stdin is not None
        stamp = time.time()
        self.proc.stdin.write(b"go\n")
        await self.proc.stdin.drain()
        return stamp

    async def stop(self) -> None:
        await stop_process(self.proc)


async def start_py_spy(pid: int, output: Path) -> asyncio.subprocess.Process:
    """Sample a worker with py-spy (all threads: aiosqlite and friends do their work in threads)."""
    output.parent.mkdir(parents=True, exist_ok=True)
    executable = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    command = [executable, "record", "--pid", str(pid), "--rate", "250", "--threads", "--nonblocking"]
    spy = await asyncio.create_subprocess_exec(
        *command,
        "--format",
        "raw",
        "--output",
        str(output),
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    await asyncio.sleep(0.5)  # let it attach before the clock starts
    return spy


async def stop_py_spy(spy: asyncio.subprocess.Process) -> None:
    with contextlib.suppress(ProcessLookupError):
        spy.send_signal(signal.SIGINT)  # py-spy writes its file on SIGINT
    try:
        await asyncio.wait_for(spy.wait(), 30)
    except TimeoutError:
        spy.kill()
        await spy.wait()


def worker_ready_and_wait() -> None:
    """Worker side: say ``ready``, block until the driver says ``go``, then start the clock/profiler."""
    from _probe import emit, start

    emit("ready")
    sys.stdin.readline()
    start()


TICK = 100
"""Tasks between two ``tick`` reports of a worker process, in cases with several."""


async def _ticks_reach(count: int, processes: Sequence[WorkerProcess], timeout: float) -> None:
    """Wait until the processes' ``tick`` reports add up to at least ``count`` tasks."""
    ticks = 0
    reached = asyncio.Event()

    async def follow(process: WorkerProcess) -> None:
        nonlocal ticks
        while ticks * TICK < count:
            await process.expect("tick", timeout)
            ticks += 1
        reached.set()

    followers = [asyncio.ensure_future(follow(p)) for p in processes]
    waiting = asyncio.ensure_future(reached.wait())
    try:
        if count > 0:
            # A follower that ends first failed (a worker died, or fell silent): its error is the answer.
            done, _ = await asyncio.wait([waiting, *followers], timeout=timeout,
                                         return_when=asyncio.FIRST_COMPLETED)
            if not done:
                raise TimeoutError(f"the worker processes ran fewer than {count} tasks in {timeout:.0f} s")
            for finished in done:
                if finished is not waiting:
                    finished.result()
    finally:
        waiting.cancel()
        for follower in followers:
            follower.cancel()
        await asyncio.gather(*followers, return_exceptions=True)


# -- the server's CPU time ------------------------------------------------------------------------

_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def postgres_server_cpu() -> float | None:
    """CPU seconds used so far by the PostgreSQL server on this machine: every live ``postgres`` process
    (user + system) plus what the postmaster's exited children used (its ``cutime``/``cstime``), so a
    connection's backend that has ended still counts. None where /proc cannot tell."""
    total, found = 0.0, False
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        name = text[text.find("(") + 1 : text.rfind(")")]
        if name != "postgres":
            continue
        fields = text[text.rfind(")") + 2 :].split()
        # fields[1] is the parent pid; utime, stime, cutime, cstime are fields 14-17 of stat (1-based).
        utime, stime, cutime, cstime = (int(x) for x in fields[11:15])
        total += utime + stime
        if _comm(int(fields[1])) != "postgres":  # the postmaster: it reaps every backend
            total += cutime + cstime
        found = True
    return total / _TICKS if found else None


def _comm(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


def redis_server_cpu(url: str) -> Callable[[], float | None]:
    """A reader of the CPU seconds the Redis server at ``url`` has used (``INFO cpu``, user + system,
    its forked children included)."""
    import redis

    client = redis.Redis.from_url(url)

    def read() -> float | None:
        info = client.info("cpu")
        return sum(float(info.get(k, 0.0)) for k in (
            "used_cpu_sys", "used_cpu_user", "used_cpu_sys_children", "used_cpu_user_children"
        ))

    return read


async def postgres_wal_bytes(dsn: str) -> float:
    """The WAL position of the PostgreSQL server in bytes (``pg_current_wal_lsn()``): the difference of
    two readings is the WAL written between them. Not ``pg_stat_wal``: its counters reach the view only
    when each backend flushes its statistics (about once a second), so a short phase reads as nothing."""
    import asyncpg

    connection = await asyncpg.connect(dsn)
    try:
        return float(await connection.fetchval("SELECT pg_current_wal_lsn() - '0/0'::pg_lsn"))
    finally:
        await connection.close()


async def _wal(args: argparse.Namespace) -> float | None:
    dsn: str | None = getattr(args, "wal_dsn", None)
    return None if dsn is None else await postgres_wal_bytes(dsn)


def _cpu(args: argparse.Namespace) -> float | None:
    reader: Callable[[], float | None] | None = getattr(args, "server_cpu", None)
    return None if reader is None else reader()


# -- measuring one case --------------------------------------------------------------------------


async def run_case(case: Case, args: argparse.Namespace, make_driver: Callable[[Case], Driver]) -> CaseResult:
    n = min(args.n, case.max_n) if case.max_n else args.n
    result = CaseResult(
        case.system, case.variant, case.ours, case.peer_group, case.enqueue, n, config=case.config
    )
    result.capped = n != args.n
    result.processes = case.processes
    result.load_before = os.getloadavg()[0]
    slug = f"{case.system}-{case.variant}".replace(" ", "_").replace("/", "_").replace("=", "")
    driver = make_driver(case)
    worker: WorkerProcess | None = None
    others: list[WorkerProcess] = []
    try:
        await driver.open()
        await driver.reset()

        # Enqueue is measured args.enqueue_rounds times (the store emptied in between) and the best
        # round is reported: on a shared machine a single round mostly measures the neighbours.
        enqueue_cpu: float | None = None
        for round_ in range(args.enqueue_rounds):
            if round_:
                await driver.reset()
            cpu_before = _cpu(args)
            started = time.perf_counter()
            if case.enqueue == "one":
                for _ in range(n):
                    await driver.enqueue_one()
            else:
                await driver.enqueue_batch(n)
            result.enqueue_rounds.append(n / (time.perf_counter() - started))
            cpu_after = _cpu(args)
            if cpu_before is not None and cpu_after is not None:
                enqueue_cpu = (enqueue_cpu or 0.0) + cpu_after - cpu_before
        result.enqueue_per_s = max(result.enqueue_rounds)
        if enqueue_cpu is not None:
            result.server_cpu_enqueue_ms_per_task = enqueue_cpu * 1000 / (n * args.enqueue_rounds)

        # Add alone comes after the enqueue rounds (which keep their measurement as it was, cold first
        # round included); its last round leaves the n no-op tasks that the worker then processes.
        build_batch = getattr(driver, "build_batch", None)
        if case.enqueue == "batch" and build_batch is not None:
            alone = []
            for _ in range(args.enqueue_rounds):
                await driver.reset()
                built = build_batch(n)
                started = time.perf_counter()
                await driver.enqueue_built(built)  # type: ignore[attr-defined]
                alone.append(n / (time.perf_counter() - started))
            result.add_alone_per_s = max(alone)

        profiling = args.profile if case.ours else None
        cprofile = RESULTS / f"profile-{slug}.prof" if profiling == "cprofile" else None
        # With several processes none knows when all n have run: each reports every TICK tasks, and
        # once the ticks say the last few are left the store's count decides (asking the store all
        # along would load the server this case measures).
        several = case.processes > 1
        target, tick = (10 * n + 1, TICK) if several else (n, 0)
        worker = await WorkerProcess.start(
            case.module, case.config, target, LOGS / f"{slug}.log", cprofile, tick=tick
        )
        for extra in range(1, case.processes):
            others.append(await WorkerProcess.start(
                case.module, case.config, target, LOGS / f"{slug}-{extra}.log", tick=tick
            ))
        for process in (worker, *others):
            await process.expect("ready", 60)
        spy = None
        if profiling == "py-spy":
            spy = await start_py_spy(worker.proc.pid, RESULTS / f"pyspy-{slug}.txt")
        wal_before = await _wal(args)
        cpu_before = _cpu(args)
        go = await worker.go()
        for process in others:
            await process.go()
        try:
            if several:
                if await driver.settled(n) is None:
                    raise RuntimeError("several worker processes need a store that counts finished tasks")
                await _ticks_reach(n - case.processes * TICK, [worker, *others], max(120.0, n / 50))
                done = go
            else:
                done = float(await worker.expect("done", max(120.0, n / 50)))
                result.process_counter_per_s = n / max(done - go, 1e-9)
            finished = done
            # Where the store can say so, count a task done only once its outcome is stored: the last
            # acknowledgements may still be in flight (or buffered) when the counter reaches n.
            settled = await driver.settled(n)
            if settled is not None:
                result.store_checked = True
                deadline = time.monotonic() + (max(120.0, n / 50) if others else 60)
                while not settled:
                    if time.monotonic() > deadline:
                        raise TimeoutError("the store never counted every task finished")
                    await asyncio.sleep(0.005)
                    settled = bool(await driver.settled(n))
                finished = max(done, time.time())
        finally:
            if spy is not None:
                await stop_py_spy(spy)
        result.process_per_s = n / max(finished - go, 1e-9)
        cpu_after = _cpu(args)  # before any worker stops: a live backend's CPU time is still counted
        if cpu_before is not None and cpu_after is not None:
            result.server_cpu_ms_per_task = (cpu_after - cpu_before) * 1000 / n
        wal_after = await _wal(args)
        if wal_before is not None and wal_after is not None:
            result.wal_bytes_per_task = (wal_after - wal_before) / n
        for process in others:
            await process.stop()
        if not several:  # pick-up: one idle worker answering its own probes
            async def probe(stamp: float, worker: WorkerProcess = worker) -> float:
                await driver.enqueue_probe(stamp)
                return float(await worker.expect("lat", 30))

            latencies = await pickup_latencies(probe, args.samples, args.gap_ms / 1000)
            result.pickup_ms = [seconds * 1000 for seconds in latencies]
            if result.pickup_ms:
                result.pickup_p50_ms = statistics.median(result.pickup_ms)
                result.pickup_p99_ms = percentile(result.pickup_ms, 99)
    except Exception as exc:  # a failing peer must not hide the other numbers of the run
        result.error = f"{type(exc).__name__}: {exc}"
    finally:
        for process in [worker, *others] if worker is not None else others:
            with contextlib.suppress(Exception):
                await process.stop()
        with contextlib.suppress(Exception):
            await driver.reset()
        with contextlib.suppress(Exception):
            await driver.close()
    result.load_after = os.getloadavg()[0]
    return result


# -- reporting -----------------------------------------------------------------------------------


@dataclass
class Target:
    """One goal of the issue, checked on the numbers of this run.

    ``kind`` is ``ratio`` (ours / best of ``against`` ≥ ``value``; for latency, where lower is better,
    ours / best ≤ ``value``) or ``max`` (ours ≤ ``value`` in the metric's unit).
    """

    metric: str
    kind: str
    value: float
    against: str = ""
    """Peer group the ratio is taken against; empty: the best of every peer."""
    text: str = ""


METRICS = {
    "enqueue_per_s": ("enqueue/s", True),
    "add_alone_per_s": ("add alone/s", True),
    "process_per_s": ("processed/s", True),
    "pickup_p50_ms": ("pick-up p50 ms", False),
    "pickup_p99_ms": ("pick-up p99 ms", False),
    "server_cpu_ms_per_task": ("server CPU s/1k", False),
    "wal_bytes_per_task": ("WAL B/task", False),
}


def _best(results: Sequence[CaseResult], metric: str) -> CaseResult | None:
    higher = METRICS[metric][1]
    valid = [r for r in results if getattr(r, metric) is not None]
    if not valid:
        return None
    return (max if higher else min)(valid, key=lambda r: getattr(r, metric))


def _fmt(value: float | None, metric: str) -> str:
    if value is None:
        return "-"
    if metric.startswith("server_cpu"):
        return f"{value:.3f}"
    if metric == "wal_bytes_per_task":
        return f"{value:,.0f}"
    return f"{value:,.0f}" if METRICS[metric][1] else f"{value:.2f}"


def evaluate(results: Sequence[CaseResult], targets: Sequence[Target]) -> list[dict[str, Any]]:
    """Each target with our defaults and our best case, the peer it was compared with, and the verdict."""
    # Targets are about one worker process; several processes are compared with one in ``PAIRS``.
    ours = [r for r in results if r.ours and not r.error and r.processes == 1]
    verdicts: list[dict[str, Any]] = []
    for target in targets:
        higher = METRICS[target.metric][1]
        peers = [r for r in results if not r.ours and (not target.against or r.peer_group == target.against)]
        peer = _best(peers, target.metric)
        defaults = next((r for r in ours if r.variant == "defaults"), None)
        best = _best(ours, target.metric)
        rows = []
        for which, mine in (("defaults", defaults), ("best", best)):
            value = None if mine is None else getattr(mine, target.metric)
            entry: dict[str, Any] = {
                "ours": which,
                "case": None if mine is None else mine.label,
                "value": value,
            }
            if target.kind == "ratio":
                reference = None if peer is None else getattr(peer, target.metric)
                ratio = None if (value is None or not reference) else value / reference
                entry["ratio"] = ratio
                if ratio is None:
                    entry["pass"] = None
                else:
                    entry["pass"] = ratio >= target.value if higher else ratio <= target.value
            else:
                entry["pass"] = None if value is None else value <= target.value
            rows.append(entry)
        verdicts.append(
            {
                "target": target.text,
                "metric": target.metric,
                "kind": target.kind,
                "value": target.value,
                "against": None if peer is None else peer.label,
                "against_value": None if peer is None else getattr(peer, target.metric),
                "ours": rows,
            }
        )
    return verdicts


def pair_ratios(results: Sequence[CaseResult], pairs: Sequence[tuple[str, str, str]]) -> list[dict[str, Any]]:
    """Like-for-like comparisons: (description, our case label, peer case label) -> ratio per metric."""
    by_label = {r.label: r for r in results if not r.error}
    found = []
    for text, mine, theirs in pairs:
        a, b = by_label.get(mine), by_label.get(theirs)
        if a is None or b is None:
            continue
        ratios = {}
        for m in METRICS:
            x, y = getattr(a, m), getattr(b, m)
            ratios[m] = None if (x is None or not y) else x / y
        found.append({"text": text, "ours": mine, "peer": theirs, "ratios": ratios})
    return found


def print_pairs(pairs: Sequence[dict[str, Any]]) -> None:
    if not pairs:
        return
    print("\nLike for like (ours / peer):")
    for p in pairs:
        cells = ", ".join(f"{METRICS[m][0]} {r:.2f}x" for m, r in p["ratios"].items() if r is not None)
        print(f"  {p['text']}: {p['ours']} / {p['peer']}: {cells}")


def print_report(title: str, results: Sequence[CaseResult], verdicts: Sequence[dict[str, Any]]) -> None:
    metrics = [m for m in METRICS if any(getattr(r, m) is not None for r in results)]
    header = ["case", *[METRICS[m][0] for m in metrics], "load"]
    rows: list[list[str]] = []
    for r in results:
        label = ("* " if r.ours else "  ") + r.label
        load = f"{r.load_before or 0:.1f}"
        if r.error:
            rows.append([label, *["-" for _ in metrics], load])
        else:
            rows.append([label, *[_fmt(getattr(r, m), m) for m in metrics], load])
    # ratio rows: each case against the best peer of the run
    ratio_row: list[list[str]] = []
    for r in results:
        if not r.ours or r.error:
            continue
        cells = []
        for m in metrics:
            peer = _best([p for p in results if not p.ours], m)
            mine, ref = getattr(r, m), None if peer is None else getattr(peer, m)
            cells.append("-" if (mine is None or not ref) else f"{mine / ref:.2f}x")
        ratio_row.append(["  ours/best peer: " + r.label, *cells, ""])
    widths = [max(len(row[i]) for row in [header, *rows, *ratio_row]) for i in range(len(header))]

    def line(row: Sequence[str]) -> str:
        cells = (cell.ljust(widths[0]) if i == 0 else cell.rjust(widths[i]) for i, cell in enumerate(row))
        return "  ".join(cells)

    print()
    print(title)
    print(line(header))
    print(line(["-" * w for w in widths]))
    for row in rows:
        print(line(row))
    print(line(["-" * w for w in widths]))
    for row in ratio_row:
        print(line(row))
    for r in results:
        if r.error:
            print(f"  ! {r.label}: {r.error}")
    print(
        "  * = ours. Throughput: higher is better, ratio > 1 wins. Latency: lower is better, ratio < 1 wins."
    )
    print("  load = 1-minute load average when the case started (2 cores, shared with other jobs).")
    print()
    print("Targets:")
    for v in verdicts:
        against = ""
        if v["kind"] == "ratio":
            against = f" vs {v['against']} = {_fmt(v['against_value'], v['metric'])}"
        print(f"  {v['target']}{against}")
        for o in v["ours"]:
            verdict = {True: "PASS", False: "MISS", None: "n/a"}[o["pass"]]
            ratio = f"  ratio {o['ratio']:.2f}" if o.get("ratio") is not None else ""
            print(f"    {verdict:4}  ours {o['ours']:8} {o['case']}: {_fmt(o['value'], v['metric'])}{ratio}")


def versions(distributions: Sequence[str]) -> dict[str, str]:
    found: dict[str, str] = {}
    for name in distributions:
        try:
            found[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            found[name] = "not installed"
    return found


def write_json(
    family: str,
    args: argparse.Namespace,
    results: Sequence[CaseResult],
    verdicts: Sequence[dict[str, Any]],
    extra: dict[str, Any],
) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    payload = {
        "family": family,
        "finished_at": stamp,
        "args": vars(args),
        "machine": {
            "cpus": os.cpu_count(),
            "loadavg": os.getloadavg(),
            "python": platform.python_version(),
            "platform": platform.platform(),
        },
        "results": [asdict(r) for r in results],
        "targets": list(verdicts),
        **extra,
    }
    path = RESULTS / f"{family}-{stamp}.json"
    text = json.dumps(payload, indent=2, default=str)
    path.write_text(text)
    (RESULTS / f"{family}-latest.json").write_text(text)
    return path


def common_arguments(description: str, samples: int, gap_ms: float) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--n", type=int, default=10_000, help="tasks to enqueue and process (default 10000)")
    parser.add_argument(
        "--samples", type=int, default=samples, help=f"pick-up latency samples per case (default {samples})"
    )
    parser.add_argument(
        "--gap-ms",
        type=float,
        default=gap_ms,
        help=f"idle pause between two latency probes, ±50%% jitter (default {gap_ms})",
    )
    parser.add_argument(
        "--only", action="append", default=[], help="run only cases whose label contains this (repeatable)"
    )
    parser.add_argument(
        "--enqueue-rounds", type=int, default=2, help="enqueue measurements per case; the best is reported"
    )
    parser.add_argument(
        "--profile",
        choices=["cprofile", "py-spy"],
        help="profile our worker processes during processing; files in benchmarks/results/ "
        "(summarise with profile_summary.py)",
    )
    return parser


def selected(cases: Sequence[Case], only: Sequence[str]) -> list[Case]:
    if not only:
        return list(cases)
    return [c for c in cases if any(o in f"{c.system} [{c.variant}]" for o in only)]


async def run_all(
    title: str, cases: Sequence[Case], args: argparse.Namespace, make_driver: Callable[[Case], Driver]
) -> list[CaseResult]:
    results = []
    for case in cases:
        print(f"  running {case.system} [{case.variant}] ...", flush=True)
        result = await run_case(case, args, make_driver)
        if result.error:
            print(f"    error: {result.error}", flush=True)
        else:
            print(
                f"    enqueue {_fmt(result.enqueue_per_s, 'enqueue_per_s')}/s, processed "
                f"{_fmt(result.process_per_s, 'process_per_s')}/s, pick-up p50 "
                f"{_fmt(result.pickup_p50_ms, 'pickup_p50_ms')} ms",
                flush=True,
            )
        results.append(result)
    return results


def load_driver(case: Case) -> Driver:
    module = importlib.import_module(case.module)
    driver: Driver = module.Driver(case.config)
    return driver
