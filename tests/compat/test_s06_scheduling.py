"""§6 of sheppy-api.md: one-off scheduling through a worker's scheduler, cron registration, the cron
manager's deterministic occurrences (also with two workers on one store), the ``TaskCron`` model and
declarative cron (``[[tool.sheppy.cron]]`` in ``./pyproject.toml``), on every store.

Already covered elsewhere and not repeated here: the ``schedule``/``get_scheduled`` argument forms and
duplicate ids (test_s05_queue.py), ``add_cron``/``delete_cron`` identity rules and the expression
validation of ``TaskCron`` (test_s04_records.py, test_s05_queue.py), ``TestQueue.process_scheduled``
(test_s13_testqueue.py).

The cron tests use an every-minute expression and look at what the cron manager stored; none waits
for a minute to pass. Their workers run only the cron manager, so occurrences stay ``scheduled`` even
when a minute boundary passes during the test. Where a status differs from sheppy's, sheppy-core's is
asserted (§18.13: ``pending`` once queued). Declared crons keep the ``@task`` options (§18.9).
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from compat import tasks_timing as t
from compat.support import QUEUE_NAME, STATE_BOUND, WORK_BOUND, Store, fast, until, work
from pydantic import ValidationError

from sheppy_core import Queue, Task, Worker
from sheppy_core.backend import Backend
from sheppy_core.models import TaskConfig, TaskCron, TaskSpec

EVERY_MINUTE = "* * * * *"
LOOKAHEAD = 3
"""§6: the cron manager schedules the next three occurrences of every cron."""

OTHER_QUEUE = "pytest-maintenance"


def new_label() -> str:
    return f"s06-{uuid.uuid4().hex[:10]}"


def cron_only(worker: Worker) -> Worker:
    """Only the cron manager: occurrences are stored and stay ``scheduled`` (nothing moves or runs them)."""
    worker.enable_job_processing = False
    worker.enable_scheduler = False
    return worker


async def stop(worker: Worker, job: asyncio.Task[None]) -> None:
    worker.stop()
    await asyncio.wait_for(job, WORK_BOUND)


async def occurrences_of(queue: Queue, cron: TaskCron) -> list[Task[Any]]:
    return [s for s in await queue.get_scheduled() if s.cron_id == cron.deterministic_id]


async def has_occurrences(queue: Queue, cron: TaskCron, count: int = LOOKAHEAD) -> bool:
    return len(await occurrences_of(queue, cron)) >= count


async def has_status(queue: Queue, task: Task[Any], status: str) -> bool:
    stored = await queue.get_task(task)
    return stored is not None and stored.status == status


async def all_of(*checks: Any) -> bool:
    return all([await check for check in checks])


async def run_until(worker: Worker, condition: Callable[[], Any]) -> None:
    """Run ``worker`` until ``condition()`` holds (bounded), then stop it."""
    job = asyncio.create_task(work(worker))
    try:
        await until(condition)
    finally:
        await stop(worker, job)


def cron_of(task: Task[Any], expression: str) -> TaskCron:
    """The cron ``queue.add_cron(task, expression)`` stores (compared by ``deterministic_id``)."""
    return TaskCron(expression=expression, spec=task.spec, config=task.config)


# -- one-off scheduling ---------------------------------------------------------------------------


async def test_a_due_task_is_moved_to_the_queue_as_pending_then_run(
    queue: Queue, make_worker: Callable[..., Worker]
) -> None:
    label = new_label()
    task = t.stamp(label)
    at = datetime.now(UTC) - timedelta(seconds=1)
    assert await queue.schedule(task, at) is True
    assert task.status == "scheduled" and task.scheduled_at == at
    assert [s.id for s in await queue.get_scheduled()] == [task.id]
    assert await queue.size() == 0

    # A scheduler alone moves it into the queue and runs nothing.
    mover = make_worker(enable_job_processing=False, enable_cron_manager=False)
    await run_until(mover, lambda: queue.size())
    moved = await queue.get_task(task)
    assert moved is not None and moved.status == "pending"
    assert moved.scheduled_at == at and moved.finished_at is None
    assert await queue.get_scheduled() == []
    assert label not in t.STARTS

    runner = make_worker(enable_scheduler=False, enable_cron_manager=False)
    await work(runner, max_tasks=1)
    done = await queue.wait_for(task, timeout=STATE_BOUND)
    assert done is not None and done.status == "completed" and done.result == t.STARTS[label][0]
    assert done.scheduled_at == at


async def test_a_scheduled_task_runs_when_due_and_not_before(queue: Queue, worker: Worker) -> None:
    label = new_label()
    task = t.stamp(label)
    await queue.add(t.stamp(new_label()))  # something to run right away, while the other waits
    at = datetime.now(UTC) + timedelta(milliseconds=400)
    assert await queue.schedule(task, at) is True
    job = asyncio.create_task(work(worker))
    try:
        done = await queue.wait_for(task, timeout=STATE_BOUND)
    finally:
        await stop(worker, job)
    assert done is not None and done.status == "completed" and done.finished_at is not None
    assert done.scheduled_at == at
    [started] = t.STARTS[label]
    assert started >= at.timestamp() - 0.001, (started, at.timestamp())
    # Scheduling the same task again is refused: its id exists (even finished), nothing runs again.
    assert await queue.schedule(task, timedelta(0)) is False
    assert await queue.get_scheduled() == []
    again = await queue.get_task(task)
    assert again is not None and again.status == "completed" and t.STARTS[label] == [started]


async def test_a_task_far_in_the_future_is_not_run(queue: Queue, worker: Worker) -> None:
    later_label, now_label = new_label(), new_label()
    later, now = t.stamp(later_label), t.stamp(now_label)
    assert await queue.schedule(later, timedelta(hours=1)) is True
    await queue.add(now)
    await work(worker, max_tasks=1)
    ran = await queue.get_task(now)
    assert ran is not None and ran.status == "completed"
    waiting = await queue.get_task(later)
    assert waiting is not None and waiting.status == "scheduled" and waiting.finished_at is None
    assert [s.id for s in await queue.get_scheduled()] == [later.id]
    assert later_label not in t.STARTS and await queue.size() == 0


# -- cron: registration and the cron manager ------------------------------------------------------


async def test_registering_a_cron_stores_it_and_runs_nothing(queue: Queue) -> None:
    task = t.add(1, 2)
    assert await queue.add_cron(task, "*/5 * * * *") is True
    assert await queue.add_cron(t.add(1, 2), "*/5 * * * *") is False  # the same deterministic id
    [cron] = await queue.get_crons()
    assert isinstance(cron, TaskCron)
    assert cron.expression == "*/5 * * * *" and cron.spec == task.spec and cron.config == task.config
    assert cron.managed_by is None
    assert cron.deterministic_id == cron_of(task, "*/5 * * * *").deterministic_id
    # Registration alone runs nothing: no task appears until a worker's cron manager runs.
    assert await queue.get_all_tasks() == [] and await queue.get_scheduled() == []
    assert await queue.size() == 0
    for invalid in ("doggo", "* * * *", "61 * * * *"):
        with pytest.raises(ValidationError):
            await queue.add_cron(t.add(3, 4), invalid)
    assert [c.deterministic_id for c in await queue.get_crons()] == [cron.deterministic_id]
    assert await queue.delete_cron(t.add(1, 2), "*/5 * * * *") is True
    assert await queue.get_crons() == []


def assert_occurrences(
    found: Iterable[Task[Any]], cron: TaskCron, before: datetime, after: datetime, *, moved: bool = False
) -> None:
    """``found`` are the cron's next occurrences seen between ``before`` and ``after``: each once, with
    its deterministic id, waiting for its slot (``moved``: a worker's scheduler may have queued one
    whose slot came during the test)."""
    found = list(found)
    slots = [o.scheduled_at for o in found]
    assert len(slots) == len(set(slots)), "an occurrence was scheduled twice"
    runs_before, runs_after = cron.next_runs(LOOKAHEAD, before), cron.next_runs(LOOKAHEAD, after)
    # Equal unless a minute boundary passed during the test; then one more slot may be there.
    assert set(runs_after) <= set(slots) <= set(runs_before) | set(runs_after), (slots, runs_before)
    for occurrence in found:
        assert occurrence.scheduled_at is not None
        assert occurrence.id == cron.create_task(occurrence.scheduled_at).id
        assert occurrence.cron_id == cron.deterministic_id
        due_and_moved = moved and occurrence.status == "pending" and occurrence.scheduled_at <= after
        assert occurrence.status == "scheduled" or due_and_moved, occurrence
        assert occurrence.finished_at is None
        assert occurrence.spec == cron.spec and occurrence.config == cron.config


async def test_the_cron_manager_schedules_the_next_occurrences_with_deterministic_ids(
    queue: Queue, worker: Worker
) -> None:
    assert await queue.add_cron(t.add(1, 2), EVERY_MINUTE) is True
    [cron] = await queue.get_crons()
    before = datetime.now(UTC)
    await run_until(cron_only(worker), lambda: has_occurrences(queue, cron))
    after = datetime.now(UTC)
    everything = await queue.get_all_tasks()
    assert {o.id for o in everything} == {o.id for o in await occurrences_of(queue, cron)}
    assert_occurrences(everything, cron, before, after)
    assert await queue.size() == 0


async def test_two_workers_schedule_each_occurrence_once(
    store: Store, queue: Queue, worker_backend: Backend
) -> None:
    assert await queue.add_cron(t.add(1, 2), EVERY_MINUTE) is True
    [cron] = await queue.get_crons()
    # Only the second worker has a scheduler, and a worker's scheduler waits for that worker's first
    # cron pass: the due task below reaching the queue shows the second worker's cron manager ran.
    due = t.add(5, 5)
    await queue.schedule(due, datetime.now(UTC) - timedelta(seconds=1))
    first = cron_only(fast(Worker(QUEUE_NAME, worker_backend)))
    second = fast(Worker(QUEUE_NAME, store.new_backend(), enable_job_processing=False))
    before = datetime.now(UTC)
    first_job = asyncio.create_task(work(first))
    second_job: asyncio.Task[None] | None = None
    try:
        await until(lambda: has_occurrences(queue, cron))  # the first worker's pass
        # The second starts while the first keeps passing every few milliseconds: both store the
        # same occurrences at the same time.
        second_job = asyncio.create_task(work(second))
        await until(lambda: has_status(queue, due, "pending"))
    finally:
        if second_job is not None:
            await stop(second, second_job)
        await stop(first, first_job)
    after = datetime.now(UTC)
    everything = [o for o in await queue.get_all_tasks() if o.id != due.id]
    assert_occurrences(everything, cron, before, after, moved=True)


async def test_a_deleted_cron_gets_no_more_occurrences(queue: Queue, worker: Worker) -> None:
    await queue.add_cron(t.add(1, 2), EVERY_MINUTE)
    await queue.add_cron(t.add(3, 4), EVERY_MINUTE)
    assert await queue.delete_cron(t.add(1, 2), EVERY_MINUTE) is True
    deleted, kept = cron_of(t.add(1, 2), EVERY_MINUTE), cron_of(t.add(3, 4), EVERY_MINUTE)
    # The kept cron's occurrences show the cron manager made its pass over this queue.
    await run_until(cron_only(worker), lambda: has_occurrences(queue, kept))
    assert await occurrences_of(queue, deleted) == []
    assert all(o.cron_id == kept.deterministic_id for o in await queue.get_all_tasks())


# -- TaskCron -------------------------------------------------------------------------------------


def test_deterministic_id_is_the_identity_of_spec_config_and_expression() -> None:
    kwargs = {"k": "v"}
    spec, config = TaskSpec(func="m:f", args=(1,), kwargs=kwargs), TaskConfig(retry=2)
    one = TaskCron(expression="0 * * * *", spec=spec, config=config)
    twin = TaskCron(expression="0 * * * *", spec=spec, config=config, managed_by="pyproject")
    assert one.id != twin.id  # the random id
    assert isinstance(one.deterministic_id, uuid.UUID) and one.deterministic_id.version == 5
    assert one.deterministic_id == twin.deterministic_id
    others = [
        TaskCron(expression="0 */2 * * *", spec=spec, config=config),
        TaskCron(expression="0 * * * *", spec=TaskSpec(func="m:f", args=(2,), kwargs=kwargs), config=config),
        TaskCron(expression="0 * * * *", spec=TaskSpec(func="m:f", args=(1,)), config=config),
        TaskCron(expression="0 * * * *", spec=TaskSpec(func="m:g", args=(1,), kwargs=kwargs), config=config),
        TaskCron(expression="0 * * * *", spec=spec, config=TaskConfig(retry=3)),
    ]
    ids = {one.deterministic_id, *(other.deterministic_id for other in others)}
    assert len(ids) == 1 + len(others)


@pytest.mark.parametrize(
    ("expression", "start", "expected"),
    [
        ("*/5 * * * *", datetime(2026, 3, 4, 10, 7, 30, tzinfo=UTC),
         datetime(2026, 3, 4, 10, 10, tzinfo=UTC)),
        # On a slot: the next one, strictly after.
        ("*/5 * * * *", datetime(2026, 3, 4, 10, 10, tzinfo=UTC), datetime(2026, 3, 4, 10, 15, tzinfo=UTC)),
        ("@hourly", datetime(2026, 12, 31, 23, 59, 59, tzinfo=UTC), datetime(2027, 1, 1, tzinfo=UTC)),
        # Friday 10:00 -> Monday 09:00.
        ("0 9 * * 1-5", datetime(2026, 3, 6, 10, 0, tzinfo=UTC), datetime(2026, 3, 9, 9, 0, tzinfo=UTC)),
        # Cron times are UTC: 12:07 at +02:00 is 10:07 UTC.
        ("*/5 * * * *", datetime(2026, 3, 4, 12, 7, tzinfo=timezone(timedelta(hours=2))),
         datetime(2026, 3, 4, 10, 10, tzinfo=UTC)),
        # 08:00 at -05:00 is 13:00 UTC, past today's 12:00 UTC slot.
        ("0 12 * * *", datetime(2026, 3, 4, 8, 0, tzinfo=timezone(timedelta(hours=-5))),
         datetime(2026, 3, 5, 12, 0, tzinfo=UTC)),
    ],
)
def test_next_run_is_the_next_matching_utc_time_after_start(
    expression: str, start: datetime, expected: datetime
) -> None:
    cron = TaskCron(expression=expression, spec=TaskSpec(func="m:f"))
    found = cron.next_run(start)
    assert found == expected and found.utcoffset() == timedelta(0)


def test_next_run_without_a_start_is_after_now() -> None:
    cron = TaskCron(expression=EVERY_MINUTE, spec=TaskSpec(func="m:f"))
    before = datetime.now(UTC)
    found = cron.next_run()
    after = datetime.now(UTC)
    assert found.utcoffset() == timedelta(0)
    assert before < found <= after + timedelta(minutes=1) and found.second == found.microsecond == 0


def test_create_task_gives_the_occurrence_with_its_deterministic_id() -> None:
    cron = TaskCron(expression=EVERY_MINUTE, spec=TaskSpec(func="m:f", args=(1,)), config=TaskConfig(retry=2))
    start = datetime(2026, 3, 4, 10, 10, tzinfo=UTC)
    occurrence = cron.create_task(start)
    assert isinstance(occurrence, Task)
    assert occurrence.spec == cron.spec and occurrence.config == cron.config
    assert occurrence.cron_id == cron.deterministic_id and occurrence.status == "new"
    assert cron.create_task(start).id == occurrence.id
    # The same instant written in another zone is the same occurrence (workers may differ in zone).
    assert cron.create_task(start.astimezone(timezone(timedelta(hours=9)))).id == occurrence.id
    assert cron.create_task(start + timedelta(minutes=1)).id != occurrence.id
    other_cron = TaskCron(expression=EVERY_MINUTE, spec=TaskSpec(func="m:f", args=(2,)))
    assert other_cron.create_task(start).id != occurrence.id


# -- declarative cron -----------------------------------------------------------------------------


def toml_entry(task_name: str | None, expression: str | None, **extra: str) -> str:
    lines = ["[[tool.sheppy.cron]]"]
    if task_name is not None:
        lines.append(f'task = "{task_name}"')
    if expression is not None:
        lines.append(f'expression = "{expression}"')
    lines += [f"{key} = {value}" for key, value in extra.items()]
    return "\n".join(lines) + "\n"


def write_pyproject(directory: Path, *entries: str) -> Path:
    path = directory / "pyproject.toml"
    path.write_text('[project]\nname = "s06-app"\n\n' + "\n".join(entries), encoding="utf-8")
    return path


ADD = t.add(0, 0).spec.func
HOUSEKEEPING = t.housekeeping(1).spec.func


def declared_worker(worker_backend: Backend) -> Worker:
    """A cron-only worker of two queues: a declared cron without ``queue`` goes to the first."""
    return cron_only(fast(Worker([QUEUE_NAME, OTHER_QUEUE], worker_backend)))


async def has_crons(queue: Queue, *crons: TaskCron) -> bool:
    stored = {c.deterministic_id for c in await queue.get_crons()}
    return all(c.deterministic_id in stored for c in crons)


async def test_a_worker_adds_the_declared_crons(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, queue: Queue, backend: Backend, worker_backend: Backend
) -> None:
    monkeypatch.chdir(tmp_path)
    write_pyproject(
        tmp_path,
        toml_entry(ADD, "*/5 * * * *", args="[1, 2]"),
        toml_entry(
            HOUSEKEEPING, "0 3 * * *", kwargs="{ days = 7, dry_run = true }", queue=f'"{OTHER_QUEUE}"'
        ),
    )
    other = Queue(backend, OTHER_QUEUE)
    added = cron_of(t.add(1, 2), "*/5 * * * *")
    # The decorator's options (retry=2, timeout=30) are kept (§18.9: sheppy dropped them).
    housekeeping = cron_of(t.housekeeping(days=7, dry_run=True), "0 3 * * *")
    assert housekeeping.config.retry == 2 and housekeeping.config.timeout == 30
    worker = declared_worker(worker_backend)
    await run_until(
        worker, lambda: all_of(has_crons(queue, added), has_crons(other, housekeeping))
    )
    [stored] = await queue.get_crons()
    assert stored.deterministic_id == added.deterministic_id and stored.managed_by == "pyproject"
    assert stored.spec == t.add(1, 2).spec and stored.expression == "*/5 * * * *"
    [stored_other] = await other.get_crons()
    assert stored_other.managed_by == "pyproject" and stored_other.config == housekeeping.config
    assert stored_other.spec == t.housekeeping(days=7, dry_run=True).spec
    # The same task and expression added by code name the declared cron.
    assert await queue.add_cron(t.add(1, 2), "*/5 * * * *") is False


async def test_invalid_declared_entries_are_skipped(
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    queue: Queue,
    worker_backend: Backend,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.chdir(tmp_path)
    invalid = {
        "bad expression": toml_entry(ADD, "doggo", args="[1, 1]"),
        "no expression": toml_entry(ADD, None, args="[1, 2]"),
        "not a @task": toml_entry(f"{t.__name__}:record_start", "*/5 * * * *", args='["x"]'),
        "no such module": toml_entry("s06_no_such_module:job", "*/5 * * * *"),
        "arguments that do not fit": toml_entry(ADD, "*/10 * * * *", args='["one", "two", "three"]'),
        "unknown key": toml_entry(ADD, "*/15 * * * *", args="[1, 3]", when='"always"'),
    }
    # The valid entry comes last: once it is stored, every entry before it has been looked at.
    valid = cron_of(t.add(2, 3), "*/20 * * * *")
    write_pyproject(tmp_path, *invalid.values(), toml_entry(ADD, "*/20 * * * *", args="[2, 3]"))
    with caplog.at_level(logging.WARNING):
        await run_until(declared_worker(worker_backend), lambda: has_crons(queue, valid))
    assert [c.deterministic_id for c in await queue.get_crons()] == [valid.deterministic_id]
    # Each skipped entry is reported with a log line naming its task.
    problems = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(problems) >= len(invalid), problems
    assert any("s06_no_such_module:job" in p for p in problems)
    assert any("record_start" in p for p in problems)


async def test_reconciliation_removes_undeclared_file_crons_and_keeps_programmatic_ones(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, queue: Queue, worker_backend: Backend
) -> None:
    monkeypatch.chdir(tmp_path)
    programmatic = cron_of(t.add(5, 5), "0 12 * * *")
    assert await queue.add_cron(t.add(5, 5), "0 12 * * *") is True
    # Added by code and also declared: it stays the programmatic cron it is.
    twin = cron_of(t.add(1, 2), EVERY_MINUTE)
    assert await queue.add_cron(t.add(1, 2), EVERY_MINUTE) is True
    dropped = cron_of(t.housekeeping(3), EVERY_MINUTE)
    write_pyproject(
        tmp_path,
        toml_entry(ADD, EVERY_MINUTE, args="[1, 2]"),
        toml_entry(HOUSEKEEPING, EVERY_MINUTE, args="[3]"),
    )
    # One cron pass schedules the crons one after another: wait for both, not the first seen.
    async def both_scheduled() -> bool:
        return await has_occurrences(queue, dropped) and await has_occurrences(queue, twin)

    await run_until(declared_worker(worker_backend), both_scheduled)
    by_id = {c.deterministic_id: c for c in await queue.get_crons()}
    assert set(by_id) == {programmatic.deterministic_id, twin.deterministic_id, dropped.deterministic_id}
    assert by_id[twin.deterministic_id].managed_by is None
    assert by_id[dropped.deterministic_id].managed_by == "pyproject"
    dropped_occurrences = await occurrences_of(queue, dropped)
    twin_occurrences = {o.id for o in await occurrences_of(queue, twin)}
    assert len(twin_occurrences) >= LOOKAHEAD

    # The file changes: the housekeeping and the add entries go, another comes.
    write_pyproject(tmp_path, toml_entry(ADD, "0 6 * * *", args="[3, 4]"))
    replacement = cron_of(t.add(3, 4), "0 6 * * *")

    async def reconciled() -> bool:
        stored = {c.deterministic_id for c in await queue.get_crons()}
        return replacement.deterministic_id in stored and dropped.deterministic_id not in stored

    await run_until(declared_worker(worker_backend), reconciled)
    by_id = {c.deterministic_id: c for c in await queue.get_crons()}
    assert set(by_id) == {programmatic.deterministic_id, twin.deterministic_id, replacement.deterministic_id}
    assert by_id[programmatic.deterministic_id].managed_by is None
    assert by_id[twin.deterministic_id].managed_by is None
    assert by_id[replacement.deterministic_id].managed_by == "pyproject"
    # The removed cron's waiting occurrences went with it; the programmatic twin's are still waiting.
    assert await occurrences_of(queue, dropped) == []
    for occurrence in dropped_occurrences:
        left = await queue.get_task(occurrence)
        assert left is None or left.status == "cancelled", left
    assert twin_occurrences <= {o.id for o in await occurrences_of(queue, twin)}


@pytest.mark.parametrize("change", ["missing", "unreadable"])
async def test_a_missing_or_unreadable_file_changes_nothing(
    change: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, queue: Queue, worker_backend: Backend
) -> None:
    monkeypatch.chdir(tmp_path)
    declared = cron_of(t.add(1, 2), "0 4 * * *")
    path = write_pyproject(tmp_path, toml_entry(ADD, "0 4 * * *", args="[1, 2]"))
    await run_until(declared_worker(worker_backend), lambda: has_crons(queue, declared))
    if change == "missing":
        path.unlink()
    else:
        path.write_text("[tool.sheppy\ncron = [", encoding="utf-8")
    # Added now, its occurrences show the next worker made a cron pass (reconciling comes first).
    programmatic = cron_of(t.add(7, 7), EVERY_MINUTE)
    await queue.add_cron(t.add(7, 7), EVERY_MINUTE)
    await run_until(
        declared_worker(worker_backend), lambda: has_occurrences(queue, programmatic)
    )
    by_id = {c.deterministic_id: c for c in await queue.get_crons()}
    assert set(by_id) == {declared.deterministic_id, programmatic.deterministic_id}
    assert by_id[declared.deterministic_id].managed_by == "pyproject"
