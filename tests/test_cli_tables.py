"""The tables ``sheppy`` prints, read at 80 and 60 columns (issue #20): whole headers and status words,
short task ids whose prefixes every command accepts, paging, one-line messages for empty results,
``--wide``, and ``-f json`` unchanged.

Tasks are stored through ``Queue`` in a real SQLite file and finished by a real ``Worker``; the command
runs in-process through typer's ``CliRunner`` with ``COLUMNS`` set, as a terminal of that width would.
"""

from __future__ import annotations

import asyncio
import importlib
import json
import re
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, timedelta
from pathlib import Path
from typing import Any

import pytest
import tasks_for_tests as t
from typer.testing import CliRunner, Result

from sheppy_core import Queue, Worker
from sheppy_core.cli import app
from sheppy_core.models import Task, TaskSpec

runner = CliRunner()
UNSET = {"SHEPPY_BACKEND_URL": None, "SHEPPY_QUEUE": None}
LONG_FUNCTION = "reports.monthly.aggregation.jobs:generate_monthly_report"
FAILING = t.always_fails().spec.func
SHORT_ID = re.compile(r"^[0-9a-f]{8}\b")


@pytest.fixture
def url(tmp_path: Path) -> str:
    importlib.import_module("sheppy_sqlite")
    return f"sqlite:///{tmp_path / 'queue.db'}"


def sheppy(*argv: str, columns: int = 80) -> Result:
    return runner.invoke(app, list(argv), env={**UNSET, "COLUMNS": str(columns)})


def ok(result: Result) -> str:
    assert result.exit_code == 0, (result.output, result.exception)
    return result.output


def on_queue(url: str, operation: Callable[[Queue], Awaitable[Any]], name: str = "default") -> Any:
    async def go() -> Any:
        queue = Queue(url, name)
        try:
            return await operation(queue)
        finally:
            await queue.backend.disconnect()

    return asyncio.run(go())


async def run_worker(queue: Queue, count: int) -> None:
    worker = Worker(queue.name, queue.backend)
    worker._blocking_timeout = 0.01
    worker._scheduler_polling_interval = 0.01
    await asyncio.wait_for(worker.work(max_tasks=count, register_signal_handlers=False), 60)


def failing_task(task_id: uuid.UUID | None = None) -> Task[Any]:
    """``always_fails`` without retries: one run, then ``failed``."""
    return Task(id=task_id or uuid.uuid4(), spec=TaskSpec(func=FAILING))


def populate(url: str) -> dict[str, Task[Any]]:
    """A task in each of pending, scheduled, completed, failed, cancelled; one with a long function name."""
    tasks = {
        "completed": t.add(1, 2),
        "failed": failing_task(),
        "pending": t.add(3, 4),
        "long": Task(spec=TaskSpec(func=LONG_FUNCTION)),
        "scheduled": t.add(5, 6),
        "cancelled": t.add(7, 8),
    }

    async def go(queue: Queue) -> None:
        await queue.add([tasks["completed"], tasks["failed"]])
        await run_worker(queue, 2)
        await queue.add([tasks["pending"], tasks["long"]])
        await queue.schedule(tasks["scheduled"], timedelta(hours=1))
        await queue.schedule(tasks["cancelled"], timedelta(hours=1))
        await queue.cancel(tasks["cancelled"])

    on_queue(url, go)
    return tasks


def lines_of(output: str) -> list[str]:
    return [line.rstrip() for line in output.splitlines()]


def row_of(output: str, task_id: uuid.UUID) -> str:
    [row] = [line for line in lines_of(output) if str(task_id)[:8] in line]
    return row


def header_of(output: str, *words: str) -> str:
    [header] = [line for line in lines_of(output) if all(word in line.split() for word in words)]
    return header


@pytest.mark.parametrize("columns", [80, 60])
def test_task_list_cuts_no_header_status_or_function_name(url: str, columns: int) -> None:
    tasks = populate(url)
    shown = ok(sheppy("task", "list", "-u", url, columns=columns))
    assert max(len(line) for line in lines_of(shown)) <= columns, shown
    header = header_of(shown, "id", "function", "status")
    assert "…" not in header, header
    stored = {task.id: task for task in on_queue(url, lambda q: q.get_all_tasks())}
    for task in tasks.values():
        row = row_of(shown, task.id)
        assert stored[task.id].status in row.split(), row  # the whole word, never "proces…"
        name = task.spec.func.rpartition(":")[2]
        assert name in row, row  # a module path may be cut from the left, the function's name never
        assert str(task.id) not in row  # a short id: 8 characters, as git shows
    assert t.add(0, 0).spec.func in row_of(shown, tasks["pending"].id)
    if "finished" in header:  # dates are whole or not shown at all
        finished = stored[tasks["completed"].id].finished_at
        assert finished is not None
        assert finished.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S") in row_of(shown, tasks["completed"].id)
    assert "finished (UTC)" in ok(sheppy("task", "list", "-u", url, columns=80))  # the zone is stated


def test_task_list_pages_50_at_a_time(url: str) -> None:
    on_queue(url, lambda q: q.add([t.add(i, i) for i in range(300)]))
    everything = json.loads(ok(sheppy("task", "list", "-u", url, "-f", "json")))
    assert len(everything) == 300  # json: every task unless --limit says otherwise

    first = ok(sheppy("task", "list", "-u", url))
    rows = [line for line in lines_of(first) if SHORT_ID.match(line)]
    assert [row[:8] for row in rows] == [record["id"][:8] for record in everything[:50]]
    assert lines_of(first)[-1] == "showing 1-50 of 300; next page: --offset 50"

    second = ok(sheppy("task", "list", "-u", url, "--offset", "50"))
    rows = [line for line in lines_of(second) if SHORT_ID.match(line)]
    assert [row[:8] for row in rows] == [record["id"][:8] for record in everything[50:100]]
    assert lines_of(second)[-1] == "showing 51-100 of 300; next page: --offset 100"

    last = ok(sheppy("task", "list", "-u", url, "--offset", "280", "--limit", "50"))
    assert len([line for line in lines_of(last) if SHORT_ID.match(line)]) == 20
    assert lines_of(last)[-1] == "showing 281-300 of 300"

    every = ok(sheppy("task", "list", "-u", url, "--limit", "0"))
    assert len([line for line in lines_of(every) if SHORT_ID.match(line)]) == 300
    assert "showing" not in every

    page = json.loads(ok(sheppy("task", "list", "-u", url, "-f", "json", "--limit", "10", "--offset", "5")))
    assert page == everything[5:15]
    past = ok(sheppy("task", "list", "-u", url, "--offset", "400"))
    assert "showing none of 300" in past and "--offset 400" in past


def test_short_id_prefixes_work_in_every_command(url: str) -> None:
    twin_a = failing_task(uuid.UUID("abcd1234-0000-4000-8000-000000000001"))
    twin_b = failing_task(uuid.UUID("abcd9876-0000-4000-8000-000000000002"))
    waiting = t.add(1, 1).model_copy(update={"id": uuid.UUID("12345678-0000-4000-8000-000000000003")})

    async def go(queue: Queue) -> None:
        await queue.add([twin_a, twin_b])
        await run_worker(queue, 2)
        await queue.add(waiting)

    on_queue(url, go)
    listed = ok(sheppy("task", "list", "-u", url))
    assert "abcd1234" in listed and "abcd9876" in listed and "12345678" in listed

    info = ok(sheppy("task", "info", "abcd1", "-u", url))
    assert str(twin_a.id) in info and "failed" in info
    assert json.loads(ok(sheppy("task", "info", "ABCD98", "-u", url, "-f", "json")))["id"] == str(twin_b.id)

    ambiguous = sheppy("task", "info", "abcd", "-u", url)
    assert ambiguous.exit_code == 1
    [message] = [line for line in ambiguous.output.splitlines() if line.strip()]
    assert "abcd1234" in message and "abcd9876" in message and "ambiguous" in message
    unknown = sheppy("task", "retry", "ffff0", "-u", url)
    assert unknown.exit_code == 1
    assert "no task with id starting ffff0 in queue 'default'" in " ".join(unknown.output.split())

    assert str(twin_a.id) in ok(sheppy("task", "retry", "abcd12", "-u", url))
    assert str(waiting.id) in ok(sheppy("experimental", "task", "cancel", "1234", "-u", url))
    assert str(twin_b.id) in ok(sheppy("task", "delete", "abcd98", "-u", url))
    assert str(waiting.id) in ok(sheppy("experimental", "task", "delete", "12345678-00", "-u", url))
    left = on_queue(url, lambda q: q.get_all_tasks())
    assert [(task.id, task.status) for task in left] == [(twin_a.id, "pending")]


def test_empty_results_are_one_line_and_json_stays_empty(url: str) -> None:
    on_queue(url, lambda q: q.add(t.add(1, 1)), name="other")
    nothing = ok(sheppy("task", "list", "-u", url, "-q", "default"))
    assert nothing.strip() == "no tasks in queue 'default'"
    no_failed = ok(sheppy("task", "list", "-u", url, "-q", "other", "-s", "failed"))
    assert no_failed.strip() == "no failed tasks in queue 'other'"
    assert json.loads(ok(sheppy("task", "list", "-u", url, "-s", "failed", "-f", "json"))) == []
    assert ok(sheppy("cron", "list", "-u", url)).strip() == "no crons in queue 'default'"
    assert json.loads(ok(sheppy("cron", "list", "-u", url, "-f", "json"))) == []

    importlib.import_module("sheppy_sqlite")
    empty_store = url.replace("queue.db", "empty.db")
    on_queue(empty_store, lambda q: q.clear(), name="default")  # a store that exists and holds nothing
    assert ok(sheppy("queue", "list", "-u", empty_store)).strip() == "no queues"
    assert json.loads(ok(sheppy("queue", "list", "-u", empty_store, "-f", "json"))) == {}


@pytest.mark.parametrize("columns", [80, 60])
def test_queue_list_cuts_no_header_or_count(url: str, columns: int) -> None:
    populate(url)
    on_queue(url, lambda q: q.add([t.add(i, i) for i in range(3)]), name="maintenance-nightly")
    counts = json.loads(ok(sheppy("queue", "list", "-u", url, "-f", "json")))
    shown = ok(sheppy("queue", "list", "-u", url, columns=columns))
    assert "…" not in shown and max(len(line) for line in lines_of(shown)) <= columns, shown
    assert "default" in shown and "maintenance-nightly" in shown
    if columns == 80:  # a column per count, but those that are 0 everywhere give way, and are named
        header = header_of(shown, "queue", "pending")
        for status in ("pending", "scheduled", "processing", "completed", "failed", "cancelled", "crashed"):
            every_zero = not any(count[status] for count in counts.values())
            assert status in header.split() or (every_zero and status in lines_of(shown)[-1]), shown
        assert "processing" in lines_of(shown)[-1] and lines_of(shown)[-1].startswith("0 in every queue")
    else:  # too narrow for seven columns: each queue lists its counts
        for status, count in counts["default"].items():
            if count:
                assert f"{count} {status}" in shown, shown
        assert "3 pending" in shown


@pytest.mark.parametrize("columns", [80, 60])
def test_cron_list_cuts_no_header_expression_or_function(url: str, columns: int) -> None:
    on_queue(url, lambda q: q.add_cron(t.add(1, 2), "*/5 * * * *"))
    on_queue(url, lambda q: q.add_cron(t.add(3, 4), "0 3 * * 1-5"))
    [first, second] = json.loads(ok(sheppy("cron", "list", "-u", url, "-f", "json")))
    shown = ok(sheppy("cron", "list", "-u", url, columns=columns))
    assert max(len(line) for line in lines_of(shown)) <= columns, shown
    header = header_of(shown, "id", "expression", "function")
    assert "…" not in header
    for row in (first, second):
        line = row_of(shown, uuid.UUID(row["id"]))
        assert row["expression"] in line and row["id"] not in line
        assert row["function"].rpartition(":")[2] in line.split("  ")[2], line  # the module may be cut
    assert "*/5 * * * *" in shown and "0 3 * * 1-5" in shown
    by_prefix = ok(sheppy("cron", "delete", first["id"][:8], "-u", url))
    assert first["id"] in by_prefix
    assert [row["id"] for row in json.loads(ok(sheppy("cron", "list", "-u", url, "-f", "json")))] == [
        second["id"]
    ]
    unknown = sheppy("cron", "delete", "ffff0000", "-u", url)
    assert unknown.exit_code == 1 and "no cron with id starting ffff0000" in " ".join(unknown.output.split())


def test_wide_shows_full_ids_and_every_column_unabridged(url: str) -> None:
    tasks = populate(url)
    wide = ok(sheppy("task", "list", "-u", url, "--wide", columns=60))
    header = header_of(wide, "id", "function", "status")
    for column in ("retries", "result/error", "finished"):
        assert column in header, header
    for task in tasks.values():
        assert str(task.id) in wide
    assert LONG_FUNCTION in wide and "ValueError: broken" in wide and "…" not in wide
    narrow = ok(sheppy("task", "list", "-u", url, columns=60))
    assert "--wide" in narrow  # what the narrow table left out is said, with the way to see it


def test_json_output_is_every_record_in_full(url: str) -> None:
    populate(url)
    records = on_queue(url, lambda q: q.get_all_tasks())
    expected = sorted(
        ({**task.model_dump(mode="json"), "queue": "default"} for task in records),
        key=lambda row: row["created_at"],
    )
    listed = json.loads(ok(sheppy("task", "list", "-u", url, "-f", "json", columns=60)))
    assert listed == expected


@pytest.mark.parametrize("columns", [80, 60])
def test_backends_fit_the_terminal_with_every_name_whole(columns: int) -> None:
    # Was a six-column table folding "distribution" into "distrib/ution" and "blocking_pop" into
    # "blockin/g_pop" at 60 columns.
    listed = json.loads(ok(sheppy("backends", "-f", "json", columns=columns)))["backends"]
    output = ok(sheppy("backends", columns=columns))
    assert all(len(line) <= columns for line in output.splitlines()), output
    words = set(output.replace(",", " ").replace(":", " ").split())
    for row in listed:
        assert row["distribution"] in words, (row["distribution"], output)
        assert set(row["capabilities"]) <= words, (sorted(set(row["capabilities"]) - words), output)
        assert set(row["schemes"]) <= words, (row["schemes"], output)


def _every_command(group: Any, path: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    import typer.main

    command = typer.main.get_command(app) if group is None else group
    found = [path]
    for name, sub in getattr(command, "commands", {}).items():
        found += _every_command(sub, (*path, name))
    return found


@pytest.mark.parametrize("path", _every_command(None), ids=lambda p: " ".join(p) or "sheppy")
def test_help_shows_no_type_on_a_flag(path: tuple[str, ...]) -> None:
    # Flags (--help, --yes, --burst, ...) take no value: "--help <bool>" read as if it needed one.
    shown = ok(sheppy(*path, "--help", columns=120))
    assert "--help" in shown and "<bool>" not in shown, shown
