"""The worker registry from an operator's point of view: a running ``Worker`` is listed by the backend
(``list_workers``) with its id, host, pid, queues and what it holds; it is gone once it stops cleanly,
and drops out within about one lease when SIGKILLed. ``sheppy worker list`` prints the workers alive in
80 columns; ``sheppy task info`` shows a task's earlier attempts.

Real ``sheppy work`` processes on SQLite (a real file), Redis and PostgreSQL; in-process Workers on
memory://; the CLI in-process through typer's ``CliRunner`` with ``COLUMNS`` set (as in
tests/test_cli_tables.py).
"""

from __future__ import annotations

import asyncio
import importlib
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import tasks_for_tests as t
from _worker_processes import SHARED_STORES, TESTS_DIR, stop_workers
from typer.testing import CliRunner, Result

from sheppy_core import Queue, Worker, __version__, get_backend, task
from sheppy_core.backend import WORKER_REGISTRY, Backend, MemoryBackend
from sheppy_core.cli.cli import app
from sheppy_core.models import Task

runner = CliRunner()
UNSET = {"SHEPPY_BACKEND_URL": None, "SHEPPY_QUEUE": None}
LEASE = 3.0
"""Registry refresh every max(1 s, lease / 3) = 1 s, ttl three beats = 3 s."""


def sheppy(*argv: str, columns: int = 80) -> Result:
    return runner.invoke(app, list(argv), env={**UNSET, "COLUMNS": str(columns)})


def ok(result: Result) -> str:
    assert result.exit_code == 0, (result.output, result.exception)
    return result.output


async def wait_for(check: Callable[[], Awaitable[bool]], seconds: float, what: str) -> float:
    """Poll ``check`` until true; fail naming ``what`` after ``seconds``. Returns the seconds waited."""
    started = time.monotonic()
    while not await check():
        assert time.monotonic() - started < seconds, f"not within {seconds} s: {what}"
        await asyncio.sleep(0.05)
    return time.monotonic() - started


class NoRegistry(MemoryBackend):
    """A backend that does not declare ``WORKER_REGISTRY`` (its methods raise NotSupportedError)."""

    capabilities = MemoryBackend.capabilities - {WORKER_REGISTRY}

    async def register_worker(self, worker: dict[str, Any], *, ttl: float) -> None:
        await Backend.register_worker(self, worker, ttl=ttl)


release_gate = asyncio.Event()


@task
async def waits_for_the_gate() -> str:
    await release_gate.wait()
    return "through"


# -- in-process workers -----------------------------------------------------------------------------


async def test_a_running_worker_is_listed_with_what_it_holds_and_gone_after_it_stops() -> None:
    backend = MemoryBackend(instant_processing=False)
    await backend.connect()
    queue = Queue(backend, "registry")
    release_gate.clear()
    held = waits_for_the_gate()
    await queue.add(held)
    worker = Worker(["registry", "other"], backend, max_concurrent_tasks=3, lease=LEASE,
                    enable_cron_manager=False)
    work = asyncio.create_task(worker.work(register_signal_handlers=False))
    try:
        async def holding() -> bool:
            records = await backend.list_workers()
            return bool(records) and records[0]["in_flight"] == 1

        await wait_for(holding, 20, "the worker listed holding its task")
        [record] = await backend.list_workers()
        assert record["id"] == worker.worker_id
        assert (record["host"], record["pid"]) == (socket.gethostname(), os.getpid())
        assert record["queues"] == ["registry", "other"] and record["concurrency"] == 3
        assert record["in_flight_ids"] == [str(held.id)]
        assert record["version"] == __version__
        assert (record["completed"], record["failed"]) == (0, 0)
        started = datetime.fromisoformat(record["started_at"])
        first_beat = datetime.fromisoformat(record["last_beat"])
        assert started <= first_beat <= datetime.now(UTC)

        release_gate.set()

        async def refreshed() -> bool:
            [now] = await backend.list_workers()
            return now["completed"] == 1 and now["in_flight"] == 0 and now["last_beat"] > record["last_beat"]

        await wait_for(refreshed, 20, "the record refreshed with the task completed")
    finally:
        worker.stop()
        await asyncio.wait_for(work, 30)
    assert await backend.list_workers() == []


async def test_the_worker_is_registered_before_its_first_claim() -> None:
    seen: list[list[dict[str, Any]]] = []

    class Watching(MemoryBackend):
        async def pop(self, *args: Any, **kwargs: Any) -> list[dict[str, Any]]:
            seen.append(await self.list_workers())
            return await super().pop(*args, **kwargs)

    backend = Watching(instant_processing=False)
    await backend.connect()
    await Queue(backend, "first").add(t.add(1, 2))
    worker = Worker("first", backend, lease=LEASE, enable_cron_manager=False)
    await asyncio.wait_for(worker.work(oneshot=True, register_signal_handlers=False), 30)
    assert seen and [w["id"] for w in seen[0]] == [worker.worker_id]
    assert await backend.list_workers() == [], "a burst worker unregisters when it ends"


async def test_a_backend_without_the_capability_runs_unregistered_quietly(
    caplog: pytest.LogCaptureFixture,
) -> None:
    backend = NoRegistry(instant_processing=False)
    await backend.connect()
    queue = Queue(backend, "plain")
    added = t.add(2, 3)
    await queue.add(added)
    caplog.set_level(logging.DEBUG, logger="sheppy")
    worker = Worker("plain", backend, lease=LEASE, enable_cron_manager=False)
    await asyncio.wait_for(worker.work(oneshot=True, register_signal_handlers=False), 30)
    done = await queue.get_task(added)
    assert done is not None and done.status == "completed"
    about_registry = [r for r in caplog.records if WORKER_REGISTRY in r.getMessage()]
    assert [r.levelno for r in about_registry] == [logging.DEBUG]
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


# -- real worker processes on shared stores ---------------------------------------------------------


def start_worker(url: str, queue_name: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "sheppy_core", "work", "-u", url, "-q", queue_name, "-q", f"{queue_name}-b",
         "-i", "tasks_for_tests", "--lease", str(LEASE), "--disable-cron-manager"],
        env={**os.environ, "PYTHONPATH": str(TESTS_DIR)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


@pytest.mark.timeout(120)
@pytest.mark.parametrize("url_template", SHARED_STORES)
async def test_real_workers_appear_and_leave_killed_or_stopped(url_template: str, tmp_path: Path) -> None:
    url = url_template.format(tmp=tmp_path)
    backend = get_backend(url)
    await backend.connect()
    name = f"reg-{uuid.uuid4().hex[:8]}"
    killed, stopped = start_worker(url, name), start_worker(url, name)
    try:
        async def listed(pid: int) -> dict[str, Any] | None:
            return next((w for w in await backend.list_workers() if w.get("pid") == pid), None)

        async def both_listed() -> bool:
            return await listed(killed.pid) is not None and await listed(stopped.pid) is not None

        await wait_for(both_listed, 60, "both workers listed")
        record = await listed(killed.pid)
        assert record is not None
        assert record["queues"] == [name, f"{name}-b"] and record["host"] == socket.gethostname()

        shown = ok(await asyncio.to_thread(sheppy, "worker", "list", "-u", url))
        assert max(len(line.rstrip()) for line in shown.splitlines()) <= 80, shown
        for pid in (killed.pid, stopped.pid):
            [row] = [line for line in shown.splitlines() if f" {pid} " in line]
            assert socket.gethostname()[:8] in row

        killed.send_signal(signal.SIGKILL)
        killed.wait()

        async def gone(pid: int) -> bool:
            return await listed(pid) is None

        waited = await wait_for(lambda: gone(killed.pid), 3 * LEASE + 5, "the killed worker dropping out")
        assert waited <= LEASE + 2, f"a killed worker dropped out after {waited:.1f} s, ttl is {LEASE} s"

        stopped.send_signal(signal.SIGTERM)
        assert await asyncio.to_thread(stopped.wait, 30) == 0
        assert await gone(stopped.pid), "a worker stopped by SIGTERM is unregistered as it exits"
    finally:
        stop_workers([killed, stopped], timeout=10)
        await backend.disconnect()


# -- sheppy worker list ----------------------------------------------------------------------------


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    importlib.import_module("sheppy_sqlite")
    return f"sqlite:///{tmp_path / 'queue.db'}"


def register(url: str, records: list[dict[str, Any]]) -> None:
    async def go() -> None:
        backend = get_backend(url)
        await backend.connect()
        try:
            for record in records:
                await backend.register_worker(record, ttl=60)
        finally:
            await backend.disconnect()

    asyncio.run(go())


def worker_record(host: str, pid: int, queues: list[str], beat_ago: float, in_flight: int) -> dict[str, Any]:
    """A record shaped like the one ``Worker`` registers (built by a real Worker, not started)."""
    worker = Worker(queues, MemoryBackend(), max_concurrent_tasks=10)
    record = worker.registry_record()
    beat = datetime.now(UTC) - timedelta(seconds=beat_ago)
    lead = f"worker-{socket.gethostname()}-"
    return {
        **record,
        "id": f"worker-{host}-{record['id'].removeprefix(lead)}",
        "host": host,
        "pid": pid,
        "in_flight": in_flight,
        "last_beat": beat.isoformat(),
    }


def test_worker_list_says_when_no_worker_is_alive(sqlite_url: str) -> None:
    register(sqlite_url, [])  # the store exists (worker list creates none) and holds no worker
    assert ok(sheppy("worker", "list", "-u", sqlite_url)).strip() == "no workers alive"


@pytest.mark.parametrize("columns", [80, 60])
def test_worker_list_fits_the_terminal(sqlite_url: str, columns: int) -> None:
    records = [
        worker_record("ip-10-0-12-34.eu-west-1.compute.internal", 4242, ["default"], 2, 3),
        worker_record("build-box", 77, ["emails", "reports-monthly", "thumbnails", "billing"], 125, 0),
    ]
    register(sqlite_url, records)
    shown = ok(sheppy("worker", "list", "-u", sqlite_url, columns=columns))
    lines = [line.rstrip() for line in shown.splitlines()]
    assert max(len(line) for line in lines) <= columns, shown
    assert "2 worker(s) alive" in lines[0]
    [header] = [line for line in lines if line.split()[:2] == ["id", "host"]]
    assert "in flight" in header and "last beat" in header
    for record, age in zip(records, ["2s ago", "2m ago"], strict=True):
        short = record["id"].rsplit("-", 1)[1]
        [row] = [line for line in lines if line.startswith(short)]
        assert f"{record['in_flight']}/10" in row and age in row, row
    assert any(" 4242 " in line for line in lines), "the pid still fits"


def test_worker_list_wide_and_json_show_everything(sqlite_url: str) -> None:
    record = worker_record("box", 9, ["default"], 0, 1)
    register(sqlite_url, [record])
    assert record["id"] in ok(sheppy("worker", "list", "-u", sqlite_url, "--wide"))
    [listed] = json.loads(ok(sheppy("worker", "list", "-u", sqlite_url, "-f", "json")))
    assert listed == record


def test_worker_list_on_a_backend_without_the_capability(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("sheppy_core.cli._common.make_backend", lambda url: NoRegistry())
    shown = ok(sheppy("worker", "list", "-u", "memory://"))
    assert shown.strip().splitlines() == [
        "the backend does not declare capability worker_registry: no worker list"
    ]


# -- sheppy task info ------------------------------------------------------------------------------

flaky_calls: dict[str, int] = {}


@task(retry=2, retry_delay=0.01)
async def flaky_twice(key: str) -> str:
    flaky_calls[key] = flaky_calls.get(key, 0) + 1
    if flaky_calls[key] <= 2:
        raise LookupError(f"lookup {flaky_calls[key]} missed")
    return "found"


def test_task_info_lists_the_earlier_attempts_and_the_latest_traceback(sqlite_url: str) -> None:
    flaky = flaky_twice(uuid.uuid4().hex)

    async def go() -> Task[Any] | None:
        queue = Queue(sqlite_url, "default")
        await queue.add(flaky)
        await Worker("default", queue.backend, lease=LEASE, enable_cron_manager=False).work(
            oneshot=True, register_signal_handlers=False
        )
        try:
            return await queue.get_task(flaky)
        finally:
            await queue.backend.disconnect()

    done = asyncio.run(go())
    assert done is not None and done.status == "completed"
    shown = ok(sheppy("task", "info", str(flaky.id), "-u", sqlite_url))
    lines = [line.rstrip() for line in shown.splitlines()]
    assert max(len(line) for line in lines) <= 80, shown
    assert any("earlier attempts (2)" in line for line in lines), shown
    for number, attempt in enumerate(done.attempt_errors, start=1):
        [row] = [line for line in lines if line.split()[:1] == [str(number)] and "retrying" in line]
        assert attempt.finished_at.strftime("%Y-%m-%d %H:%M:%S") in row
        assert f"lookup {number} missed" in row, row
    # The latest failure's traceback (attempt 2), not the first one's.
    traceback = shown[shown.index("traceback of attempt 2"):]
    assert "Traceback (most recent call last)" in traceback
    assert "LookupError: lookup 2 missed" in traceback and "lookup 1 missed" not in traceback
