"""A corrupt record never stops a queue (issue "Nothing lost, nothing run twice", item 1).

What an operator sees with a real ``sheppy work`` process: a record whose stored text is not JSON
(``not json{``) and one that is JSON but not a task (``{"id": "bad1", ...}``) are written straight into
the store, behind the backend's back (as a bug or a manual edit would leave them), ahead of good tasks.
Every good task then runs exactly once, the worker keeps running and logs which record it set aside,
nothing is left ``processing``, ``sheppy task list`` still works, and both bad records end quarantined
(the stored text kept): ``sheppy task list --status quarantined`` and ``task info`` show them and
``task delete`` removes them by id. The not-JSON record is the backend's to set aside
(``[robust.corrupt_record]``); the JSON-but-not-a-task one is the worker's.

One parameter per backend, each with a writer that puts raw text into its store. A server that is down
fails the test; nothing skips.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
import tasks_for_tests as t
from _worker_processes import TESTS_DIR, read_events, stop_workers
from faults._raw_records import Store, jsonfile_store, postgres_store, redis_store, sqlite_store

from sheppy_core import Queue, get_backend

WAIT = 60.0
"""Seconds any expected state may take to appear (a loaded 2-core machine, a fresh worker process)."""
GOOD = 6
NOT_A_TASK_ID = "bad1"
NOT_A_TASK = '{"id": "bad1", "hello": "world"}'


STORES: dict[str, Callable[[Path], Awaitable[Store]]] = {
    "postgres": postgres_store,
    "redis": redis_store,
    "sqlite": sqlite_store,
    "jsonfile": jsonfile_store,
}


def _sheppy(*args: str, log: Path, stderr: Any = subprocess.PIPE) -> subprocess.Popen[bytes]:
    """The ``sheppy`` command in a process of its own, with the test task modules importable."""
    return subprocess.Popen(
        [sys.executable, "-m", "sheppy_core", *args],
        env={**os.environ, "SHEPPY_TEST_LOG": str(log), "PYTHONPATH": str(TESTS_DIR)},
        stdout=subprocess.PIPE,
        stderr=stderr,
    )


async def _run_sheppy(*args: str, log: Path) -> tuple[int, str, str]:
    def run() -> tuple[int, str, str]:
        process = _sheppy(*args, log=log)
        out, err = process.communicate(timeout=WAIT)
        return process.returncode, out.decode(), err.decode()

    return await asyncio.to_thread(run)


async def _until(check: Callable[[], Awaitable[bool]], what: Callable[[], Awaitable[str]]) -> None:
    """Poll ``check`` until it holds, for at most WAIT seconds; fail with ``what()`` otherwise."""
    deadline = time.monotonic() + WAIT
    while not await check():
        if time.monotonic() > deadline:
            pytest.fail(f"not within {WAIT} s: {await what()}")
        await asyncio.sleep(0.05)


@pytest.mark.timeout(240)
@pytest.mark.parametrize("store_name", list(STORES))
async def test_corrupt_records_never_stop_a_worker(store_name: str, tmp_path: Path) -> None:
    store = await STORES[store_name](tmp_path)
    queue = Queue(get_backend(store.url), f"corrupt-{uuid.uuid4().hex[:8]}")
    log, worker_err = tmp_path / "ran.log", tmp_path / "worker.err"
    log.touch()
    worker: subprocess.Popen[bytes] | None = None
    try:
        await queue.backend.connect()  # creates the store the raw writes go into
        not_json = str(uuid.uuid4())  # a UUID, so `sheppy task ...` can name it
        await store.write(queue.name, not_json, "not json{")
        await store.write(queue.name, NOT_A_TASK_ID, NOT_A_TASK)
        good = [t.logged_nap(0) for _ in range(GOOD)]
        await queue.add(good)
        good_ids = {str(task.id) for task in good}

        with worker_err.open("wb") as err:
            worker = _sheppy(
                "work", "-u", store.url, "-q", queue.name, "-i", "tasks_for_tests", "--disable-cron-manager",
                log=log, stderr=err,
            )

        def worker_said() -> str:
            return worker_err.read_text(errors="replace")[-3000:]

        async def state() -> str:
            exited = None if worker is None else worker.poll()
            ran = sorted(e[1] for e in read_events(log) if e[0] == "end")
            return (
                f"ran {ran}, stats {await queue.stats()}, worker exit code {exited}, "
                f"worker stderr: {worker_said()}"
            )

        async def good_ones_done() -> bool:
            stats = await queue.stats()
            ended = {e[1] for e in read_events(log) if e[0] == "end"}
            return good_ids <= ended and stats["completed"] == GOOD and stats["processing"] == 0

        async def both_quarantined() -> bool:
            found = await queue.backend.get_tasks(queue.name, [not_json, NOT_A_TASK_ID])
            return all(found.get(i, {}).get("status") == "quarantined" for i in (not_json, NOT_A_TASK_ID))

        await _until(good_ones_done, state)
        assert worker.poll() is None, f"the worker exited: {await state()}"
        starts = Counter(e[1] for e in read_events(log) if e[0] == "start")
        assert starts == dict.fromkeys(good_ids, 1), f"every good task runs exactly once, got {starts}"
        stats = await queue.stats()
        assert stats["pending"] == stats["processing"] == 0, stats

        # The backend set the not-JSON record aside, its stored text kept, and said so.
        stand_in = (await queue.backend.get_tasks(queue.name, [not_json])).get(not_json)
        assert stand_in is not None and stand_in["status"] == "quarantined", stand_in
        assert stand_in["quarantine"]["raw"] == "not json{"
        lines = [line for line in worker_said().splitlines() if not_json in line]
        assert any(queue.name in line and "WARNING" in line for line in lines), (
            f"the worker must log a warning naming queue {queue.name!r} and record {not_json!r}: "
            f"{worker_said()}"
        )

        # The worker set the JSON-but-not-a-task record aside too; both are counted as quarantined.
        await _until(both_quarantined, state)
        assert (await queue.stats())["quarantined"] == 2
        bad_ids = {not_json, NOT_A_TASK_ID}

        async def sheppy_json(*args: str) -> Any:
            where = ("-u", store.url, "-q", queue.name, "-f", "json")
            code, out, err = await _run_sheppy(*args, *where, log=log)
            assert code == 0, f"sheppy {' '.join(args)} failed ({code}): {out} {err}"
            return json.loads(out)

        # Listing works: the tasks as tasks, the bad records as quarantined, none fails the listing.
        listed = {row["id"]: row["status"] for row in await sheppy_json("task", "list")}
        assert listed == {**dict.fromkeys(good_ids, "completed"), **dict.fromkeys(bad_ids, "quarantined")}
        shown = await sheppy_json("task", "list", "--status", "quarantined")
        by_id = {row["id"]: row for row in shown}
        assert set(by_id) == bad_ids, shown
        assert by_id[not_json]["quarantine"]["raw"] == "not json{"  # the stored text, kept as it was
        assert json.loads(by_id[NOT_A_TASK_ID]["quarantine"]["raw"]) == json.loads(NOT_A_TASK)
        info = await sheppy_json("task", "info", not_json)
        assert (info["status"], info["quarantine"]["raw"]) == ("quarantined", "not json{"), info

        # An operator deletes them by id, and they are gone.
        for bad in sorted(bad_ids):
            deleted = {"id": bad, "task_id": bad, "queue": queue.name, "deleted": True}
            assert await sheppy_json("task", "delete", bad) == deleted
        assert await queue.backend.get_tasks(queue.name, sorted(bad_ids)) == {}
        assert (await queue.stats())["quarantined"] == 0
        assert worker.poll() is None, f"the worker exited: {await state()}"
    finally:
        if worker is not None:
            await asyncio.to_thread(stop_workers, [worker], 30)
        await queue.clear()
        await queue.backend.disconnect()
        await store.remove()
