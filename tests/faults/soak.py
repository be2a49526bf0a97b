"""Fault soak: nothing lost, nothing run twice, under kills, stops, outages and corrupt records.

    python tests/faults/soak.py --backend sqlite|redis|postgres|all --minutes N [--workers 3] [--seed S]
                                [--rate TASKS_PER_S] [--keep]

For each backend (one after the other): W real ``sheppy work`` processes (lease 3 s) run
``tasks_for_tests:soak_nap`` from one queue, a producer adds tasks at a bounded rate (a few of them fail
on purpose, a few nap longer than the lease), and a chaos loop does, at random intervals (the seed fixes
the plan, not the timing), one of: SIGKILL a worker, SIGTERM one (a graceful stop), an outage of the
store for a few seconds, or write a corrupt record straight into the store. A replacement worker starts
at once after a kill or a stop. Outages: SQLite, another connection holds ``BEGIN EXCLUSIVE`` on the
file; Redis, a ``redis-server`` of the soak's own (``appendfsync always``, never the shared one at
6379) is SIGKILLed or SIGTERMed and restarted; PostgreSQL, the server sessions of the workers and the
producer (their ``application_name``) are terminated again and again with ``pg_terminate_backend``.

At the end chaos and producer stop, the workers drain the queue (bounded), stop, and a table per
backend gives the counts, from the store and from the ``start``/``end`` lines the task appended to one
log. The exit code is 1 when a task was lost (added, acknowledged, and neither finished nor in flight),
a completed task never ran, one worker ran a task twice at once, a task ended ``crashed`` without a
run, the queue did not drain, or the quarantined records are not exactly the injected corrupt ones.

Not collected by pytest (the name does not start with ``test_``); ``nox -s soak`` runs it for all
three backends (``nox -s soak -- --minutes 10``). Needs PostgreSQL on 127.0.0.1:5432 and the
``redis-server`` binary.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import random
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

TESTS_DIR = Path(__file__).resolve().parents[1]
REDIS_TESTS_DIR = TESTS_DIR.parent / "plugins" / "sheppy-redis" / "tests"
sys.path[:0] = [str(TESTS_DIR), str(REDIS_TESTS_DIR)]

import asyncpg  # noqa: E402
import tasks_for_tests as t  # noqa: E402
from faults._raw_records import POSTGRES_SERVER, Store, postgres_store, redis_store, sqlite_store  # noqa: E402
from sheppy_redis_testing import RedisServer  # noqa: E402

from sheppy_core import Queue, get_backend  # noqa: E402
from sheppy_core.backend import Backend  # noqa: E402

BACKENDS = ("sqlite", "redis", "postgres")
LEASE = 3.0
CONCURRENCY = 4
RATE = 6.0
"""Tasks added per second, on average (the workers' capacity is several times more)."""
NAP = (0.01, 0.4)
"""Range of a task's nap, seconds."""
LONG_NAP = (1.0, 5.0)
"""Range of the nap of one task in LONG_SHARE: about the lease or more, so heartbeats must keep its claim
(and an outage may cost it)."""
LONG_SHARE = 0.1
RETRY = 5
"""``soak_nap``'s retries; a task whose first RETRY + 1 attempts fail on purpose ends ``failed``."""
CHAOS_EVERY = (2.0, 8.0)
"""Seconds between two chaos actions."""
OUTAGE = (2.0, 6.0)
"""Seconds an outage lasts (longer than the lease and than SQLite's 5 s busy timeout at times)."""
ADD_WAIT = 30.0
STOP_WAIT = 60.0
"""Seconds a SIGTERMed worker may take to stop (its tasks nap < 1 s) before it is killed and counted."""
DRAIN_WAIT = 120.0
"""Seconds the workers get to finish what is left, and to set the corrupt records aside, once chaos and
producer stop."""
PROGRESS_EVERY = 30.0
QUARANTINED = "quarantined"
IN_FLIGHT = frozenset({"pending", "processing", "scheduled", "retrying"})
FINAL = frozenset({"completed", "failed", "cancelled", "crashed"})
NOT_A_TASK = '{{"id": "{}", "hello": "world"}}'
UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def say(text: str) -> None:
    print(text, flush=True)


async def pause(stop: asyncio.Event, seconds: float) -> bool:
    """Wait ``seconds`` or until ``stop`` is set; True when it is."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)
    return stop.is_set()


def append_line(path: Path, line: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, (line + "\n").encode())
    finally:
        os.close(fd)


# -- the stores and their outages --------------------------------------------------------------------


@dataclass
class Target:
    """One backend under soak: the store (URL of workers and producer, raw writer), the URL the soak
    reads it through, an outage of ``seconds``, and what tears it all down."""

    name: str
    store: Store
    observer_url: str
    outage: Callable[[float, random.Random], Awaitable[str]]
    close: Callable[[], Awaitable[None]]


async def sqlite_target(directory: Path) -> Target:
    store = await sqlite_store(directory)
    path = store.url.removeprefix("sqlite:///")

    async def outage(seconds: float, rng: random.Random) -> str:
        conn = sqlite3.connect(path, timeout=30, isolation_level=None, check_same_thread=False)
        try:
            await asyncio.to_thread(conn.execute, "BEGIN EXCLUSIVE")
            await asyncio.sleep(seconds)  # the fault itself: the file stays locked this long
            await asyncio.to_thread(conn.execute, "ROLLBACK")
        finally:
            await asyncio.to_thread(conn.close)
        return f"file locked (BEGIN EXCLUSIVE) {seconds:.1f} s"

    return Target("sqlite", store, store.url, outage, store.remove)


async def redis_target(directory: Path) -> Target:
    server = RedisServer(directory / "redis")
    await asyncio.to_thread(server.start)
    store = await redis_store(directory, server=server.url)

    async def outage(seconds: float, rng: random.Random) -> str:
        how = rng.choice(["SIGKILL", "SIGTERM"])
        await asyncio.to_thread(server.kill if how == "SIGKILL" else server.stop)
        try:
            await asyncio.sleep(seconds)  # the fault itself: the server stays down this long
        finally:
            await asyncio.to_thread(server.start)  # same port, same data directory
        return f"redis-server {how}, down {seconds:.1f} s"

    async def close() -> None:
        with contextlib.suppress(Exception):
            await store.remove()
        await asyncio.to_thread(server.stop)

    return Target("redis", store, store.url, outage, close)


async def postgres_target(directory: Path) -> Target:
    application = f"sheppy-soak-{uuid.uuid4().hex[:8]}"
    store = await postgres_store(directory, application_name=application)
    observer_url = store.url.replace(f"application_name={application}", f"application_name={application}-o")

    async def outage(seconds: float, rng: random.Random) -> str:
        admin = await asyncpg.connect(POSTGRES_SERVER)
        terminated = 0
        try:
            deadline = time.monotonic() + seconds
            while True:  # the fault itself: every session that comes back is cut again for `seconds`
                terminated += int(await admin.fetchval(
                    "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) FROM pg_stat_activity "
                    "WHERE application_name = $1", application,
                ))  # fmt: skip
                if time.monotonic() >= deadline:
                    break
                await asyncio.sleep(0.1)
        finally:
            await admin.close()
        return f"{terminated} server sessions terminated over {seconds:.1f} s"

    return Target("postgres", store, observer_url, outage, store.remove)


TARGETS: dict[str, Callable[[Path], Awaitable[Target]]] = {
    "sqlite": sqlite_target,
    "redis": redis_target,
    "postgres": postgres_target,
}


# -- worker processes ------------------------------------------------------------------------------------


@dataclass
class Workers:
    """The ``sheppy work`` processes of one soak; each logs to its own file under ``directory``.

    ``events`` is the log the tasks append to; the soak adds ``killed <pid>`` and ``exited <pid>`` lines
    to it when a worker is gone, so a run it cut off is not taken as still running."""

    url: str
    queue: str
    events: Path
    directory: Path
    concurrency: int
    live: list[subprocess.Popen[bytes]] = field(default_factory=list)
    logs: dict[int, Path] = field(default_factory=dict)
    started: int = 0
    unasked: list[str] = field(default_factory=list)
    """Exit code and last log line of each worker that exited without being asked to."""
    stop_timeouts: int = 0
    stop_codes: Counter[int] = field(default_factory=Counter)

    def start(self) -> subprocess.Popen[bytes]:
        self.started += 1
        log = self.directory / f"worker-{self.started}.log"
        with log.open("ab") as out:
            process = subprocess.Popen(
                [sys.executable, "-m", "sheppy_core", "work", "-u", self.url, "-q", self.queue,
                 "-i", "tasks_for_tests", "--lease", str(LEASE), "-c", str(self.concurrency),
                 "--disable-cron-manager", "--shutdown-timeout", "20", "-l", "info"],
                env={**os.environ, "SHEPPY_TEST_LOG": str(self.events), "PYTHONPATH": str(TESTS_DIR)},
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
            )  # fmt: skip
        self.logs[process.pid] = log
        self.live.append(process)
        return process

    def pick(self, rng: random.Random) -> subprocess.Popen[bytes]:
        """Take a random live worker out of the pool (the caller signals it) and start its replacement."""
        victim = self.live.pop(rng.randrange(len(self.live)))
        self.start()
        return victim

    async def kill(self, victim: subprocess.Popen[bytes]) -> None:
        victim.kill()
        await asyncio.to_thread(victim.wait)
        append_line(self.events, f"killed {victim.pid}")

    async def stop(self, victim: subprocess.Popen[bytes]) -> None:
        victim.send_signal(signal.SIGTERM)
        try:
            code = await asyncio.to_thread(victim.wait, STOP_WAIT)
        except subprocess.TimeoutExpired:
            self.stop_timeouts += 1
            say(f"  ! worker {victim.pid} still running {STOP_WAIT:.0f} s after SIGTERM: killed")
            await self.kill(victim)
            return
        self.stop_codes[code] += 1
        append_line(self.events, f"exited {victim.pid}")

    def reap(self) -> None:
        """Replace a worker that exited without being asked to (and remember it)."""
        for process in list(self.live):
            code = process.poll()
            if code is None:
                continue
            self.live.remove(process)
            append_line(self.events, f"exited {process.pid}")
            last = (self.logs[process.pid].read_text(errors="replace").strip().splitlines() or [""])[-1]
            self.unasked.append(f"exit code {code}: {last}")
            say(f"  ! worker {process.pid} exited by itself (code {code}: {last[:200]}); starting another")
            self.start()

    async def stop_all(self) -> None:
        victims, self.live = self.live, []
        await asyncio.gather(*(self.stop(victim) for victim in victims))


# -- the soak of one backend ---------------------------------------------------------------------------


@dataclass
class Ledger:
    """What the producer and the chaos loop did."""

    added: set[str] = field(default_factory=set)
    uncertain: set[str] = field(default_factory=set)
    """Ids of adds that raised or timed out: stored or not, the store says."""
    doomed: set[str] = field(default_factory=set)
    """Ids of tasks that fail every attempt on purpose (they end ``failed``)."""
    add_errors: int = 0
    refused: int = 0
    not_json: list[str] = field(default_factory=list)
    not_a_task: list[str] = field(default_factory=list)
    actions: Counter[str] = field(default_factory=Counter)
    action_errors: list[str] = field(default_factory=list)

    @property
    def injected(self) -> list[str]:
        return self.not_json + self.not_a_task


async def produce(queue: Queue, rng: random.Random, rate: float, stop: asyncio.Event, ledger: Ledger) -> None:
    while not stop.is_set():
        batch = []
        for _ in range(rng.randint(1, 4)):
            roll = rng.random()
            failures = RETRY + 1 if roll < 0.02 else 1 if roll < 0.10 else 0
            nap = rng.uniform(*LONG_NAP) if rng.random() < LONG_SHARE else rng.uniform(*NAP)
            batch.append(t.soak_nap(round(nap, 3), failures))
            if failures > RETRY:
                ledger.doomed.add(str(batch[-1].id))
        try:
            stored = await asyncio.wait_for(queue.add(batch), ADD_WAIT)
        except Exception:  # an outage: the batch may or may not be stored
            ledger.add_errors += 1
            ledger.uncertain.update(str(task.id) for task in batch)
        else:
            for task, ok in zip(batch, stored, strict=True):
                if ok:
                    ledger.added.add(str(task.id))
                else:
                    ledger.refused += 1
        await pause(stop, len(batch) / rate)


async def corrupt(target: Target, queue_name: str, rng: random.Random, ledger: Ledger) -> str:
    if rng.random() < 0.5:
        task_id = str(uuid.uuid4())
        await target.store.write(queue_name, task_id, "not json{")
        ledger.not_json.append(task_id)
        return f"wrote 'not json{{' as {task_id}"
    task_id = f"bad{len(ledger.not_a_task) + 1}"
    await target.store.write(queue_name, task_id, NOT_A_TASK.format(task_id))
    ledger.not_a_task.append(task_id)
    return f"wrote a JSON record that is not a task as {task_id}"


async def chaos(
    target: Target, queue_name: str, workers: Workers, rng: random.Random, stop: asyncio.Event, ledger: Ledger
) -> None:
    started = time.monotonic()
    while not await pause(stop, rng.uniform(*CHAOS_EVERY)):
        action = rng.choice(["kill", "stop", "outage", "corrupt"])
        try:
            if action == "kill":
                victim = workers.pick(rng)
                await workers.kill(victim)
                what = f"SIGKILL worker {victim.pid}"
            elif action == "stop":
                victim = workers.pick(rng)
                await workers.stop(victim)
                what = f"SIGTERM worker {victim.pid} (exit code {victim.returncode})"
            elif action == "outage":
                what = await target.outage(rng.uniform(*OUTAGE), rng)
            else:
                what = await corrupt(target, queue_name, rng, ledger)
        except Exception as exc:
            ledger.action_errors.append(f"{action}: {type(exc).__name__}: {exc}")
            say(f"  ! chaos {action} failed: {type(exc).__name__}: {exc}")
            continue
        ledger.actions[action] += 1
        say(f"  {time.monotonic() - started:7.1f} s  {action:8} {what}")


async def read_records(
    backend: Backend, queue_name: str, ids: Iterable[str]
) -> tuple[dict[str, dict[str, Any]], list[str]]:
    """The stored records of ``ids`` (500 at a time, one by one where a batch fails), and the ids whose
    read raised."""
    wanted = sorted(set(ids))
    records: dict[str, dict[str, Any]] = {}
    unreadable: list[str] = []
    for i in range(0, len(wanted), 500):
        chunk = wanted[i : i + 500]
        try:
            records.update(await backend.get_tasks(queue_name, chunk))
        except Exception:
            for task_id in chunk:
                try:
                    records.update(await backend.get_tasks(queue_name, [task_id]))
                except Exception:
                    unreadable.append(task_id)
    return records, unreadable


async def until(check: Callable[[], Awaitable[bool]], seconds: float) -> bool:
    """Poll ``check`` until it holds or ``seconds`` pass; returns the last answer."""
    deadline = time.monotonic() + seconds
    while not await check():
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.5)
    return True


async def supervise(workers: Workers, stop: asyncio.Event) -> None:
    while not await pause(stop, 0.5):
        workers.reap()


async def progress(
    observer: Backend, queue_name: str, ledger: Ledger, stop: asyncio.Event, started: float
) -> None:
    while not await pause(stop, PROGRESS_EVERY):
        try:
            stats = await asyncio.wait_for(observer.get_stats(queue_name), 10)
            shown = " ".join(f"{k}={v}" for k, v in stats.items() if v)
        except Exception as exc:
            shown = f"(stats unavailable: {type(exc).__name__})"
        say(f"  {time.monotonic() - started:7.1f} s  progress added={len(ledger.added)} {shown}")


@dataclass
class Events:
    """What the ``start``/``end`` lines say."""

    starts: Counter[str] = field(default_factory=Counter)
    ends: Counter[str] = field(default_factory=Counter)
    twice_in_one_worker: set[str] = field(default_factory=set)
    at_once_in_two_workers: set[str] = field(default_factory=set)


def analyse(lines: list[list[str]]) -> Events:
    """Walk the log in order: a ``start`` of a task while the same pid runs it already is a run twice at
    once in one worker; while another pid runs it, at once in two workers. ``killed``/``exited`` end
    every run of that pid."""
    events = Events()
    open_runs: Counter[tuple[str, str]] = Counter()
    runs_of_pid: defaultdict[str, set[str]] = defaultdict(set)
    pids_of_task: defaultdict[str, set[str]] = defaultdict(set)
    for fields in lines:
        if fields[0] in ("killed", "exited") and len(fields) == 2:
            pid = fields[1]
            for task_id in runs_of_pid.pop(pid, set()):
                open_runs.pop((task_id, pid), None)
                pids_of_task[task_id].discard(pid)
            continue
        if len(fields) != 3:
            continue
        kind, task_id, pid = fields
        if kind == "start":
            events.starts[task_id] += 1
            if open_runs[(task_id, pid)] > 0:
                events.twice_in_one_worker.add(task_id)
            elif pids_of_task[task_id] - {pid}:
                events.at_once_in_two_workers.add(task_id)
            open_runs[(task_id, pid)] += 1
            runs_of_pid[pid].add(task_id)
            pids_of_task[task_id].add(pid)
        elif kind == "end":
            events.ends[task_id] += 1
            if open_runs[(task_id, pid)] > 0:
                open_runs[(task_id, pid)] -= 1
                if open_runs[(task_id, pid)] == 0:
                    runs_of_pid[pid].discard(task_id)
                    pids_of_task[task_id].discard(pid)
    return events


def blanked(message: str) -> str:
    """``message`` with task ids, worker ids and numbers blanked, to count messages by kind."""
    message = re.sub(r"worker-[\w.-]+", "worker-<w>", UUID.sub("<id>", message))
    message = re.sub(r"\w+://\S+", "<url>", message)
    return re.sub(r"\d+(\.\d+)?", "N", message)


def worker_errors(logs: Iterable[Path]) -> tuple[int, int, list[tuple[str, int]]]:
    """(ERROR lines, tracebacks, the most frequent ERROR messages with ids and numbers blanked); the
    attempts that fail on purpose are left out."""
    errors = tracebacks = 0
    kinds: Counter[str] = Counter()
    for log in logs:
        for line in log.read_text(errors="replace").splitlines():
            if line.startswith("Traceback"):
                tracebacks += 1
            if (" ERROR " in line or " CRITICAL " in line) and "fails on purpose" not in line:
                errors += 1
                kinds[blanked(line.split(": ", 1)[-1])[:160]] += 1
    return errors, tracebacks, kinds.most_common(6)


async def soak_one(
    name: str, minutes: float, workers_wanted: int, seed: int, rate: float, keep: bool
) -> dict[str, Any]:
    """Soak one backend; returns its counts (``failures`` lists what makes the run fail). Its files
    (worker logs, the task log, the store where it is a file) are removed unless it fails or ``keep``."""
    rng = random.Random(f"{seed}-{name}")
    directory = Path(tempfile.mkdtemp(prefix=f"sheppy-soak-{name}-"))
    (directory / "workers").mkdir()
    events_log = directory / "events.log"
    events_log.touch()
    say(f"== {name}: {minutes:g} min, {workers_wanted} workers, seed {seed}, files in {directory}")
    # What the producer's and the observer's backends log about the outages goes to a file, not here.
    own_log = logging.FileHandler(directory / "soak.log")
    own_log.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.getLogger().addHandler(own_log)
    target = await TARGETS[name](directory)
    queue_name = f"soak-{uuid.uuid4().hex[:8]}"
    producer_backend = get_backend(target.store.url)
    observer = get_backend(target.observer_url)
    queue = Queue(producer_backend, queue_name)
    workers = Workers(target.store.url, queue_name, events_log, directory / "workers", CONCURRENCY)
    ledger = Ledger()
    counts: dict[str, Any] = {}
    try:
        await observer.connect()  # creates the store the raw writes go into
        await producer_backend.connect()
        for _ in range(workers_wanted):
            workers.start()
        stop_producer, stop_chaos, stop_watch = asyncio.Event(), asyncio.Event(), asyncio.Event()
        started = time.monotonic()
        jobs = [
            asyncio.create_task(produce(queue, random.Random(rng.random()), rate, stop_producer, ledger)),
            asyncio.create_task(chaos(target, queue_name, workers, rng, stop_chaos, ledger)),
        ]
        watchers = [
            asyncio.create_task(supervise(workers, stop_watch)),
            asyncio.create_task(progress(observer, queue_name, ledger, stop_watch, started)),
        ]
        await asyncio.sleep(minutes * 60)  # the soak's duration, not a synchronisation
        stop_chaos.set()
        await jobs[1]  # the action under way finishes: server back, lock released
        stop_producer.set()
        await jobs[0]
        found, _ = await read_records(observer, queue_name, ledger.uncertain)
        ledger.added.update(found)
        say(f"  chaos and producer stopped after {time.monotonic() - started:.0f} s; draining")

        async def done() -> bool:
            records, _ = await read_records(observer, queue_name, ledger.added | set(ledger.injected))
            busy = [i for i in ledger.added if records.get(i, {}).get("status") in IN_FLIGHT]
            set_aside = [i for i in ledger.injected if records.get(i, {}).get("status") == QUARANTINED]
            return not busy and len(set_aside) == len(ledger.injected)

        settled = await until(done, DRAIN_WAIT)
        elapsed = time.monotonic() - started
        say(f"  {'settled' if settled else 'NOT settled'} after {elapsed:.0f} s; stopping the workers")
        stop_watch.set()
        await asyncio.gather(*watchers)
        workers.reap()
        await workers.stop_all()

        records, unreadable = await read_records(observer, queue_name, ledger.added)
        corrupt_records, corrupt_unreadable = await read_records(observer, queue_name, ledger.injected)
        try:
            stats: dict[str, int] | None = await observer.get_stats(queue_name)
        except Exception as exc:
            say(f"  ! get_stats failed: {type(exc).__name__}: {exc}")
            stats = None
        events = analyse([line.split() for line in events_log.read_text().splitlines() if line.strip()])
        status = {i: records[i].get("status") for i in records}
        by_status = Counter(status.values())
        missing = [i for i in ledger.added if i not in records and i not in unreadable]
        odd = [i for i, s in status.items() if s not in FINAL and s not in IN_FLIGHT]
        in_flight = [i for i, s in status.items() if s in IN_FLIGHT]
        lost = missing + odd + unreadable
        never_ran = [i for i, s in status.items() if s == "completed" and events.ends[i] == 0]
        crashed_unrun = [i for i, s in status.items() if s == "crashed" and events.starts[i] == 0]
        quarantined = [i for i in ledger.injected if corrupt_records.get(i, {}).get("status") == QUARANTINED]
        counted = None if stats is None else stats.get(QUARANTINED)
        errors, tracebacks, top_errors = worker_errors(workers.logs.values())
        counts = {
            "tasks added": len(ledger.added),
            "adds that raised (outage) / refused": f"{ledger.add_errors} / {ledger.refused}",
            "completed": by_status["completed"],
            "failed (meant to: doomed)": f"{by_status['failed']} ({len(ledger.doomed & ledger.added)})",
            "crashed": by_status["crashed"],
            "cancelled": by_status["cancelled"],
            "left pending": by_status["pending"],
            "left processing": by_status["processing"],
            "left scheduled/retrying": by_status["scheduled"] + by_status["retrying"],
            "LOST": len(lost),
            "  no record / odd status / unreadable": f"{len(missing)} / {len(odd)} / {len(unreadable)}",
            "COMPLETED WITHOUT A RUN": len(never_ran),
            "RAN TWICE AT ONCE IN ONE WORKER": len(events.twice_in_one_worker),
            "ran at once in two workers": len(events.at_once_in_two_workers),
            "started more than once": sum(n > 1 for n in events.starts.values()),
            "CRASHED WITHOUT RUNNING": len(crashed_unrun),
            "corrupt injected (not JSON / not a task)": (
                f"{len(ledger.injected)} ({len(ledger.not_json)} / {len(ledger.not_a_task)})"
            ),
            "QUARANTINED of the injected": len(quarantined),
            "quarantined in stats": "?" if counted is None else counted,
            "kills / stops / outages / corrupt writes": (
                f"{ledger.actions['kill']} / {ledger.actions['stop']} / {ledger.actions['outage']} / "
                f"{ledger.actions['corrupt']}"
            ),
            "chaos actions that failed": len(ledger.action_errors),
            "stops: timed out / exit codes": (
                f"{workers.stop_timeouts} / {dict(sorted(workers.stop_codes.items())) or '-'}"
            ),
            "workers started / exited unasked": f"{workers.started} / {len(workers.unasked)}",
            "worker log ERROR lines / tracebacks": f"{errors} / {tracebacks}",
            "drained (none left in flight)": not in_flight,
        }
        failures = []
        if lost:
            shown = {i: status.get(i, "no record") for i in sorted(lost)[:3]}
            failures.append(f"{len(lost)} lost, e.g. {shown}")
        if never_ran:
            failures.append(f"{len(never_ran)} completed without a run, e.g. {never_ran[:3]}")
        if events.twice_in_one_worker:
            failures.append(
                f"{len(events.twice_in_one_worker)} ran twice at once in one worker, "
                f"e.g. {sorted(events.twice_in_one_worker)[:3]}"
            )
        if crashed_unrun:
            failures.append(f"{len(crashed_unrun)} crashed without running, e.g. {crashed_unrun[:3]}")
        if len(quarantined) != len(ledger.injected) or counted != len(ledger.injected):
            not_set_aside = {
                i: "unreadable" if i in corrupt_unreadable else corrupt_records.get(i, {}).get("status")
                for i in ledger.injected
                if i not in quarantined
            }
            failures.append(
                f"quarantined {len(quarantined)} of {len(ledger.injected)} injected (stats: {counted}); "
                f"not quarantined: {not_set_aside}"
            )
        if in_flight:
            failures.append(f"{len(in_flight)} still in flight after {DRAIN_WAIT:.0f} s: {dict(by_status)}")
        counts["failures"] = failures
        exits = Counter(map(blanked, workers.unasked))
        counts["notes"] = [
            *(f"worker exited by itself x{n}, {exit}" for exit, n in exits.most_common()),
            *ledger.action_errors,
            *(f"worker ERROR x{n}: {message}" for message, n in top_errors),
        ]
        counts["directory"] = str(directory)
        return counts
    finally:
        for process in workers.live:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
        for process in workers.live:
            await asyncio.to_thread(process.wait)
        for backend in (producer_backend, observer):
            with contextlib.suppress(Exception):
                await backend.disconnect()
        with contextlib.suppress(Exception):
            await target.close()
        logging.getLogger().removeHandler(own_log)
        own_log.close()
        if counts.get("failures") == [] and not keep:
            shutil.rmtree(directory, ignore_errors=True)


def table(results: dict[str, dict[str, Any]]) -> str:
    names = list(results)
    rows = [key for key in next(iter(results.values())) if key not in ("failures", "notes", "directory")]
    width = max(map(len, rows))
    columns = [max(len(name), *(len(str(results[name].get(row, ""))) for row in rows)) for name in names]
    lines = [" " * width + "  " + "  ".join(n.rjust(c) for n, c in zip(names, columns, strict=True))]
    for row in rows:
        cells = [str(results[name].get(row, "")).rjust(c) for name, c in zip(names, columns, strict=True)]
        lines.append(row.ljust(width) + "  " + "  ".join(cells))
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backend", choices=[*BACKENDS, "all"], default="all")
    parser.add_argument("--minutes", type=float, default=10.0, help="per backend (default 10)")
    parser.add_argument("--workers", type=int, default=3)
    parser.add_argument("--seed", type=int, default=None, help="default: a random one, printed")
    parser.add_argument("--rate", type=float, default=RATE, help=f"tasks added per second (default {RATE:g})")
    parser.add_argument("--keep", action="store_true", help="keep the files of a run that passes too")
    options = parser.parse_args()
    if options.minutes <= 0 or options.workers < 1 or options.rate <= 0:
        parser.error("--minutes and --rate must be > 0 and --workers >= 1")
    seed = options.seed if options.seed is not None else random.randrange(10**6)
    names = list(BACKENDS) if options.backend == "all" else [options.backend]
    results: dict[str, dict[str, Any]] = {}
    for name in names:
        results[name] = asyncio.run(
            soak_one(name, options.minutes, options.workers, seed, options.rate, options.keep)
        )
    say(f"\nsoak: {options.minutes:g} min per backend, {options.workers} workers, seed {seed}\n")
    say(table(results))
    failed = False
    for name, counts in results.items():
        for note in counts["notes"]:
            say(f"{name}: note: {note}")
        for failure in counts["failures"]:
            say(f"{name}: FAIL: {failure}")
            failed = True
        if counts["failures"] or options.keep:
            say(f"{name}: files kept in {counts['directory']}")
    verdict = "FAILED" if failed else "OK (0 lost, 0 run twice at once in one worker, 0 crashed unrun)"
    say(f"\nsoak: {verdict}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
