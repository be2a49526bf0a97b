"""Declarative cron: [[tool.sheppy.cron]] entries reconciled into the store by workers."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest
import tasks_for_tests as t

from sheppy_core import MemoryBackend, Queue, Worker
from sheppy_core._declarative_cron import (
    MANAGED_BY,
    DeclarativeCrons,
    read_declared_crons,
    reconcile,
)
from sheppy_core.models import TaskCron

ENTRY_STAMP = '[[tool.sheppy.cron]]\ntask = "tasks_for_tests:stamp"\nexpression = "*/5 * * * *"\n'
ENTRY_RETRY = (
    '[[tool.sheppy.cron]]\ntask = "tasks_for_tests:fails_once"\nexpression = "0 * * * *"\n'
    'args = ["nightly"]\nqueue = "other"\n'
)


def write(path: Path, *entries: str) -> Path:
    file = path / "pyproject.toml"
    file.write_text('[tool.sheppy]\nqueue = "q"\n\n' + "\n".join(entries))
    return file


async def crons(backend: MemoryBackend, queue: str) -> list[TaskCron]:
    return await Queue(backend, queue).get_crons()


async def test_declared_crons_are_added_with_the_task_options(tmp_path: Path, backend: MemoryBackend) -> None:
    declared = read_declared_crons(write(tmp_path, ENTRY_STAMP, ENTRY_RETRY), "q")
    assert declared is not None and [d.queue for d in declared] == ["q", "other"]
    counts = await reconcile(backend, declared, ["q"])
    assert counts == {"added": 2, "removed": 0, "kept": 0}
    (stamp_cron,) = await crons(backend, "q")
    (retry_cron,) = await crons(backend, "other")
    assert stamp_cron.managed_by == MANAGED_BY and stamp_cron.spec.func == "tasks_for_tests:stamp"
    # Built through the @task factory: the decorator's retry options are kept (sheppy drops them).
    assert retry_cron.config.retry == 2 and retry_cron.config.retry_delay == 0.05
    assert retry_cron.spec.args == ("nightly",)


async def test_many_workers_reconciling_at_once_store_each_cron_once(
    tmp_path: Path, backend: MemoryBackend
) -> None:
    declared = read_declared_crons(write(tmp_path, ENTRY_STAMP), "q")
    assert declared is not None
    results = await asyncio.gather(*(reconcile(backend, declared, ["q"]) for _ in range(8)))
    assert sum(r["added"] for r in results) == 1
    assert len(await crons(backend, "q")) == 1


async def test_changed_and_removed_entries_are_replaced_and_their_occurrences_deleted(
    tmp_path: Path, backend: MemoryBackend
) -> None:
    queue = Queue(backend, "q")
    programmatic = t.stamp()
    assert await queue.add_cron(programmatic, "* * * * *")
    declared = read_declared_crons(write(tmp_path, ENTRY_STAMP), "q")
    assert declared is not None
    await reconcile(backend, declared, ["q"])
    (managed,) = [c for c in await queue.get_crons() if c.managed_by == MANAGED_BY]
    occurrence = managed.create_task(managed.next_run())
    await queue.schedule(occurrence, managed.next_run())

    changed = read_declared_crons(write(tmp_path, ENTRY_STAMP.replace("*/5", "*/10")), "q")
    assert changed is not None
    counts = await reconcile(backend, changed, ["q"])
    assert counts == {"added": 1, "removed": 1, "kept": 0}
    left = await queue.get_crons()
    assert sorted(c.expression for c in left) == ["* * * * *", "*/10 * * * *"]
    # Deleted with its cron (not kept as cancelled), so an entry put back resumes on the same slots.
    assert await queue.get_task(occurrence) is None

    emptied = read_declared_crons(write(tmp_path), "q")
    assert emptied == []
    assert (await reconcile(backend, emptied, ["q"]))["removed"] == 1
    # The cron added by code is never touched.
    assert [c.expression for c in await queue.get_crons()] == ["* * * * *"]


def test_invalid_entries_are_skipped_with_a_log_line(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    bad = [
        '[[tool.sheppy.cron]]\ntask = "tasks_for_tests:stamp"\nexpression = "not cron"\n',
        '[[tool.sheppy.cron]]\ntask = "tasks_for_tests:plain_function"\nexpression = "* * * * *"\n',
        '[[tool.sheppy.cron]]\ntask = "no_such_module_xyz:f"\nexpression = "* * * * *"\n',
        '[[tool.sheppy.cron]]\ntask = "tasks_for_tests:add"\nexpression = "* * * * *"\nargs = ["x"]\n',
        '[[tool.sheppy.cron]]\ntask = "tasks_for_tests:stamp"\nexpression = "* * * * *"\nwhen = 1\n',
    ]
    with caplog.at_level(logging.ERROR, logger="sheppy.cron"):
        declared = read_declared_crons(write(tmp_path, *bad, ENTRY_STAMP), "q")
    assert declared is not None and [d.cron.spec.func for d in declared] == ["tasks_for_tests:stamp"]
    skipped = [r.getMessage() for r in caplog.records]
    assert len(skipped) == 5 and all("skipped" in m for m in skipped)
    assert "not a @task" in skipped[1] and "no_such_module_xyz" in skipped[2]


def test_missing_unreadable_or_unrelated_files_change_nothing(tmp_path: Path) -> None:
    assert read_declared_crons(tmp_path / "pyproject.toml", "q") is None
    (tmp_path / "pyproject.toml").write_text("[tool.sheppy\nbroken")
    assert read_declared_crons(tmp_path / "pyproject.toml", "q") is None
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "x"\n')
    assert read_declared_crons(tmp_path / "pyproject.toml", "q") is None


async def test_the_file_is_re_read_when_it_changes(tmp_path: Path, backend: MemoryBackend) -> None:
    file = write(tmp_path, ENTRY_STAMP)
    watcher = DeclarativeCrons(path=file, interval=3600)
    assert (await watcher.maybe_reconcile(backend, ["q"])) == {"added": 1, "removed": 0, "kept": 0}
    assert await watcher.maybe_reconcile(backend, ["q"]) is None  # unchanged, interval not passed
    write(tmp_path, ENTRY_STAMP.replace("*/5", "*/7") + "\n# grown\n")
    assert (await watcher.maybe_reconcile(backend, ["q"])) == {"added": 1, "removed": 1, "kept": 0}


async def test_a_running_worker_reconciles_and_schedules_declared_crons(
    tmp_path: Path, backend: MemoryBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    write(tmp_path, ENTRY_STAMP)
    monkeypatch.chdir(tmp_path)
    worker = Worker("q", backend, enable_job_processing=False, enable_scheduler=False)
    worker._cron_polling_interval = 0.05
    running = asyncio.create_task(worker.work(register_signal_handlers=False))
    try:
        for _ in range(100):
            scheduled = await Queue(backend, "q").get_scheduled()
            if len(scheduled) == 3:
                break
            await asyncio.sleep(0.02)
        (cron,) = await Queue(backend, "q").get_crons()
        assert cron.managed_by == MANAGED_BY
        assert {s.cron_id for s in scheduled} == {cron.deterministic_id} and len(scheduled) == 3
    finally:
        worker.stop()
        await running
