"""Cron bookkeeping and retention, on every store: memory, a SQLite file, Redis and PostgreSQL.

What an operator sees, with real ``Worker`` objects (in this process, on their own backend objects of the
same store). Time is moved by the cron expressions and by scheduling occurrences in the past, as a
worker that ran hours ago would have left them, never by sleeping through cron periods:

- ``delete_cron`` (API, ``sheppy cron delete``, the router's ``DELETE /{queue}/crons``) removes the
  occurrences already scheduled, also those a worker schedules while the cron is being deleted;
- a ``[[tool.sheppy.cron]]`` entry removed and put back resumes on its next slot;
- a worker that cannot import a declared cron's module warns and leaves that cron alone;
- after every worker was down for several periods, only the latest missed run runs (once), at once;
- finished records, failed ones included, are kept 30 days by default on every backend (the jsonfile
  example too), and the ``ttl``/``error_ttl`` URL options mean the same everywhere.

A server that is down fails these tests, never skips them (only the command-line test skips memory://,
which no other process can reach).
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import json
import logging
import sqlite3
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import asyncpg
import httpx
import pytest
import redis.asyncio as redis_asyncio
import tasks_for_tests as t
from fastapi import FastAPI
from typer.testing import CliRunner

from sheppy_core import MemoryBackend, Queue, Worker, get_backend
from sheppy_core.backend import DEFAULT_TTL_SECONDS, Backend
from sheppy_core.cli import app
from sheppy_core.fastapi import create_router
from sheppy_core.models import Task, TaskCron

REDIS_URL = "redis://127.0.0.1:6379/0"
POSTGRES_URL = "postgresql://postgres@127.0.0.1:5432/test"
HOURLY = "0 * * * *"
WAIT = 20.0
"""Seconds any expected state may take to appear (a loaded 2-core machine)."""

STORES = ["memory", "sqlite", "redis", "postgres"]


@dataclass
class Store:
    """One store under test: a connected client backend, a queue of the test's own, and a way to
    make more backend objects on the same store (one per worker)."""

    kind: str
    url: str
    backend: Backend
    queue: Queue
    made: list[Backend] = field(default_factory=list)

    def another(self) -> Backend:
        if self.kind == "memory":
            return self.backend  # a memory store is one object
        backend = get_backend(self.url)
        self.made.append(backend)
        return backend


@pytest.fixture(params=STORES)
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    """``request.param``: a store kind, or ``(kind, {URL option: value})``."""
    kind, options = (request.param, {}) if isinstance(request.param, str) else request.param
    tag = uuid.uuid4().hex[:10]
    url = {
        "memory": "memory://?instant_processing=false",
        "sqlite": f"sqlite:///{tmp_path}/crons.db",
        "redis": f"{REDIS_URL}?prefix=sheppy-faults-{tag}",
        "postgres": f"{POSTGRES_URL}?schema=sheppy_faults_{tag}",
        "jsonfile": f"jsonfile://{tmp_path}/crons.json",
    }[kind]
    if options:
        url += ("&" if "?" in url else "?") + urlencode(options)
    backend = get_backend(url)
    await backend.connect()
    made = Store(kind, url, backend, Queue(backend, f"crons-{tag}"))
    try:
        yield made
    finally:
        with contextlib.suppress(Exception):
            await made.queue.clear()
        for other in made.made:
            await other.disconnect()
        await backend.disconnect()
        if kind == "redis":
            client = redis_asyncio.Redis.from_url(REDIS_URL)
            keys = [key async for key in client.scan_iter(match=f"sheppy-faults-{tag}:*", count=1000)]
            if keys:
                await client.unlink(*keys)
            await client.aclose()
        elif kind == "postgres":
            conn = await asyncpg.connect(POSTGRES_URL)
            await conn.execute(f'DROP SCHEMA IF EXISTS "sheppy_faults_{tag}" CASCADE')
            await conn.close()


@pytest.fixture(autouse=True)
def no_project_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Workers read ``./pyproject.toml`` for declared crons: run them where only the test writes one."""
    workdir = tmp_path / "project"
    workdir.mkdir()
    monkeypatch.chdir(workdir)
    return workdir


@contextlib.asynccontextmanager
async def running_worker(backend: Backend, queue_name: str, **options: Any) -> AsyncIterator[Worker]:
    worker = Worker(queue_name, backend, **options)
    worker._cron_polling_interval = 0.05
    job = asyncio.create_task(worker.work(register_signal_handlers=False))
    try:
        yield worker
    finally:
        worker.stop()
        await asyncio.wait_for(job, 60)


CRON_ONLY: dict[str, Any] = {"enable_job_processing": False, "enable_scheduler": False}


async def wait_until(check: Callable[[], Awaitable[bool]], what: str, timeout: float = WAIT) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        assert time.monotonic() < deadline, f"not within {timeout} s: {what}"
        await asyncio.sleep(0.05)


def hourly_stamp() -> tuple[Task[Any], TaskCron]:
    job = t.stamp()
    return job, TaskCron(expression=HOURLY, spec=job.spec, config=job.config)


async def occurrences(queue: Queue, cron: TaskCron) -> list[Task[Any]]:
    return [s for s in await queue.get_scheduled() if s.cron_id == cron.deterministic_id]


async def schedule_three(store: Store, job: Task[Any]) -> TaskCron:
    """Add an hourly cron and let a worker's cron manager schedule its three look-ahead occurrences."""
    queue = store.queue
    assert await queue.add_cron(job, HOURLY)
    cron = TaskCron(expression=HOURLY, spec=job.spec, config=job.config)
    async with running_worker(store.another(), queue.name, **CRON_ONLY):
        await wait_until(lambda: _count_is(occurrences(queue, cron), 3), "three occurrences scheduled")
    return cron


async def _count_is(found: Awaitable[list[Any]], expected: int) -> bool:
    return len(await found) == expected


# -- delete -------------------------------------------------------------------------------------


async def test_delete_cron_removes_its_scheduled_occurrences(store: Store) -> None:
    queue = store.queue
    job, _ = hourly_stamp()
    unrelated = t.add(1, 2)
    await queue.schedule(unrelated, timedelta(hours=5))
    cron = await schedule_three(store, job)
    ids = [o.id for o in await occurrences(queue, cron)]

    assert await queue.delete_cron(job, HOURLY) is True
    assert await occurrences(queue, cron) == []
    assert await queue.get_task(ids) == {}, "the deleted cron's occurrences are still stored"
    assert [s.id for s in await queue.get_scheduled()] == [unrelated.id]
    assert (await queue.stats())["scheduled"] == 1


async def test_sheppy_cron_delete_removes_its_scheduled_occurrences(store: Store) -> None:
    if store.kind == "memory":
        pytest.skip("a memory:// store lives in one process; the command line cannot reach it")
    job, _ = hourly_stamp()
    cron = await schedule_three(store, job)
    result = await asyncio.to_thread(
        CliRunner().invoke, app, ["cron", "delete", str(cron.deterministic_id), "-u", store.url, "-q",
                                  store.queue.name],
    )
    assert result.exit_code == 0, result.output
    assert await occurrences(store.queue, cron) == []


async def test_router_delete_removes_its_scheduled_occurrences(store: Store) -> None:
    job, _ = hourly_stamp()
    cron = await schedule_three(store, job)
    web = FastAPI()
    web.include_router(create_router(store.another()))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=web), base_url="http://sheppy") as client:
        body = {"func": job.spec.func, "expression": HOURLY}
        response = await client.request("DELETE", f"/{store.queue.name}/crons", json=body)
    assert response.status_code == 200, response.text
    assert await occurrences(store.queue, cron) == []


async def test_cron_deleted_while_a_worker_schedules_it_leaves_no_occurrence(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    queue = store.queue
    job, cron = hourly_stamp()
    assert await queue.add_cron(job, HOURLY)
    worker_backend = store.another()
    schedule, get_crons = worker_backend.schedule, worker_backend.get_crons
    calls = {"schedule": 0, "get_crons_after": 0}

    async def schedule_racing_a_delete(
        queue_name: str, task_data: dict[str, Any], at: datetime, unique: bool = True
    ) -> bool:
        if task_data.get("cron_id") is not None:
            calls["schedule"] += 1
            if calls["schedule"] == 1:
                # An operator deletes the cron after this worker read it, before it stores an occurrence.
                await store.backend.delete_cron(queue_name, str(cron.deterministic_id))
        return await schedule(queue_name, task_data, at, unique)

    async def counting_get_crons(queue_name: str) -> list[dict[str, Any]]:
        if calls["schedule"] >= 3:
            calls["get_crons_after"] += 1
        return await get_crons(queue_name)

    monkeypatch.setattr(worker_backend, "schedule", schedule_racing_a_delete)
    monkeypatch.setattr(worker_backend, "get_crons", counting_get_crons)
    async with running_worker(worker_backend, queue.name, **CRON_ONLY):
        # The pass that raced the delete is over once a later pass has read the crons again.
        await wait_until(lambda: _true(calls["get_crons_after"] >= 2), "a cron pass after the race")
    assert await queue.get_crons() == []
    assert await occurrences(queue, cron) == [], "a deleted cron still has occurrences waiting to run"


async def _true(value: bool) -> bool:
    return value


# -- declarative crons -----------------------------------------------------------------------------


def declare(workdir: Path, *entries: str, note: str = "") -> None:
    (workdir / "pyproject.toml").write_text("[tool.sheppy]\n\n" + "\n".join(entries) + note)


def entry(task: str, expression: str = HOURLY) -> str:
    return f'[[tool.sheppy.cron]]\ntask = "{task}"\nexpression = "{expression}"\n'


async def test_declared_cron_removed_and_restored_resumes_on_its_next_slot(
    store: Store, no_project_file: Path
) -> None:
    queue = store.queue
    _, cron = hourly_stamp()
    declare(no_project_file, entry("tasks_for_tests:stamp"))
    async with running_worker(store.another(), queue.name, **CRON_ONLY):
        await wait_until(lambda: _count_is(occurrences(queue, cron), 3), "the declared cron scheduled")
        declare(no_project_file)
        await wait_until(lambda: _count_is(queue.get_crons(), 0), "the removed entry's cron deleted")
        declare(no_project_file, entry("tasks_for_tests:stamp"), note="# restored\n")

        async def resumed() -> bool:
            due = {o.id for o in await occurrences(queue, cron)}
            return {cron.create_task(moment).id for moment in cron.next_runs(3)} <= due

        await wait_until(resumed, "the restored cron's next three slots scheduled")
    assert len(await occurrences(queue, cron)) == 3


async def test_worker_that_cannot_import_a_declared_cron_leaves_it_alone(
    store: Store, no_project_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    queue = store.queue
    module = f"cron_jobs_{uuid.uuid4().hex[:8]}"
    modules = tmp_path / "modules"
    modules.mkdir()
    source = modules / f"{module}.py"
    source.write_text("from sheppy_core import task\n\n\n@task\ndef job() -> str:\n    return 'ok'\n")
    monkeypatch.syspath_prepend(str(modules))
    declare(no_project_file, entry(f"{module}:job"))

    async with running_worker(store.another(), queue.name, **CRON_ONLY):
        await wait_until(lambda: _count_is(queue.get_crons(), 1), "the declared cron stored")
        (stored,) = await queue.get_crons()
        await wait_until(lambda: _count_is(occurrences(queue, stored), 3), "its occurrences scheduled")
    assert stored.spec.func == f"{module}:job" and stored.managed_by == "pyproject"

    # Another worker (another deploy) reads the same declaration but cannot import the module.
    source.unlink()
    sys.modules.pop(module, None)
    importlib.invalidate_caches()
    with caplog.at_level(logging.WARNING, logger="sheppy.cron"):
        async with running_worker(store.another(), queue.name, **CRON_ONLY):

            async def decided() -> bool:
                warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
                warned = any(module in message for message in warnings)
                return warned or not await queue.get_crons()

            await wait_until(decided, "the second worker reconciled the declared crons")
    assert [c.deterministic_id for c in await queue.get_crons()] == [stored.deterministic_id], (
        "a worker that cannot import a declared cron's module deleted it for every worker"
    )
    assert len(await occurrences(queue, stored)) == 3
    warning = next(r.getMessage() for r in caplog.records if r.levelno == logging.WARNING)
    assert module in warning and "left as it is" in warning


# -- missed runs -----------------------------------------------------------------------------------


async def test_missed_runs_after_downtime_run_only_the_latest_once(store: Store) -> None:
    """Every worker was down for four hours: the three hourly occurrences scheduled before that are
    overdue. The restarted worker runs the latest missed slot once, at once, and skips the rest."""
    queue, backend = store.queue, store.backend
    job, cron = hourly_stamp()
    assert await queue.add_cron(job, HOURLY)
    before = datetime.now(UTC) - timedelta(hours=4)
    stale = [cron.create_task(moment) for moment in cron.next_runs(3, before)]
    for occurrence, moment in zip(stale, cron.next_runs(3, before), strict=True):
        assert await backend.schedule(queue.name, occurrence.model_dump(mode="json"), moment)
    restarted = datetime.now(UTC)

    async def past_runs() -> list[Task[Any]]:
        return [
            r for r in await queue.get_all_tasks()
            if r.cron_id == cron.deterministic_id and r.scheduled_at is not None
            and r.scheduled_at <= restarted
        ]

    async def settled() -> bool:
        runs = await past_runs()
        waiting = [r for r in runs if r.status in ("scheduled", "pending", "processing", "retrying")]
        return not waiting and any(r.status == "completed" for r in runs)

    async with running_worker(store.another(), queue.name, task_modules=["tasks_for_tests"]):
        await wait_until(settled, "the overdue occurrences dealt with")
        await wait_until(lambda: _count_is(occurrences(queue, cron), 3), "the next three slots scheduled")
    runs = await past_runs()
    completed = [r for r in runs if r.status == "completed"]
    assert len(completed) == 1, f"{len(completed)} missed runs ran after the downtime, not one"
    latest = {cron.previous_run(restarted), cron.previous_run(datetime.now(UTC))}
    assert completed[0].scheduled_at in latest, "the run was not the latest missed slot"
    assert {r.status for r in runs if r.id in {s.id for s in stale}} == {"cancelled"}


# -- retention -------------------------------------------------------------------------------------


async def stored_retention(store: Store, task_id: str) -> float | None:
    """Seconds from now until the store drops the finished record ``task_id`` (None: never)."""
    name = store.queue.name
    if store.kind == "memory":
        assert isinstance(store.backend, MemoryBackend)
        at = store.backend._queues[name].expires.get(task_id)
        return None if at is None else at - time.time()
    if store.kind == "sqlite":
        path = store.url.removeprefix("sqlite:///").partition("?")[0]
        with contextlib.closing(sqlite3.connect(path)) as db:
            (at,) = db.execute("SELECT expires_at FROM tasks WHERE id = ?", (task_id,)).fetchone()
        return None if at is None else float(at) - time.time()
    if store.kind == "jsonfile":
        file = Path(store.url.removeprefix("jsonfile://").partition("?")[0])
        document = json.loads(await asyncio.to_thread(file.read_text))
        at = document["queues"][name].get("expires", {}).get(task_id)
        return None if at is None else float(at) - time.time()
    if store.kind == "redis":
        from sheppy_redis._keys import QueueKeys

        prefix = store.url.partition("prefix=")[2].partition("&")[0]
        client = redis_asyncio.Redis.from_url(REDIS_URL)
        try:
            ms = await client.pttl(QueueKeys.for_queue(prefix, name).base + "t:" + task_id)
        finally:
            await client.aclose()
        return None if ms == -1 else ms / 1000
    schema = store.url.partition("schema=")[2].partition("&")[0]
    conn = await asyncpg.connect(POSTGRES_URL)
    try:
        left = await conn.fetchval(
            f'SELECT extract(epoch FROM expires_at - now()) FROM "{schema}".tasks WHERE id = $1', task_id
        )
    finally:
        await conn.close()
    return None if left is None else float(left)


async def run_one_done_one_failed(store: Store) -> tuple[str, str]:
    queue = store.queue
    done, failed = t.add(1, 2), t.always_fails()
    await queue.add([done, failed])
    async with running_worker(store.another(), queue.name, task_modules=["tasks_for_tests"]):
        finished = await queue.wait_for([done, failed], timeout=WAIT)
    assert [finished[done.id].status, finished[failed.id].status] == ["completed", "failed"]
    return str(done.id), str(failed.id)


@pytest.mark.parametrize("store", [*STORES, "jsonfile"], indirect=True)
async def test_finished_records_are_kept_30_days_by_default_on_every_backend(store: Store) -> None:
    for task_id in await run_one_done_one_failed(store):
        left = await stored_retention(store, task_id)
        assert left is not None, f"{store.kind} keeps a finished record for ever by default"
        assert DEFAULT_TTL_SECONDS - 120 < left <= DEFAULT_TTL_SECONDS, (store.kind, left)
    assert DEFAULT_TTL_SECONDS == 30 * 24 * 3600


@pytest.mark.parametrize(
    "store", [(kind, {"ttl": "60", "error_ttl": "none"}) for kind in (*STORES, "jsonfile")],
    indirect=True, ids=[*STORES, "jsonfile"],
)
async def test_ttl_and_error_ttl_url_options_mean_the_same_on_every_backend(store: Store) -> None:
    done, failed = await run_one_done_one_failed(store)
    left = await stored_retention(store, done)
    assert left is not None and 0 < left <= 60, (store.kind, left)
    assert await stored_retention(store, failed) is None, f"{store.kind}: error_ttl=none did not keep it"
