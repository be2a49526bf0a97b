"""``sheppy task ...`` and ``sheppy experimental task ...``: inspect, enqueue, retry, cancel tasks."""

from __future__ import annotations

import re
import traceback
import uuid
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, NoReturn

import typer
from pydantic import ValidationError
from rich.table import Table

from sheppy_core._queue import FORCE_HINT, MAX_DELAY, Queue
from sheppy_core._resolve import build_task, resolve_task_name
from sheppy_core._store import readable_tasks
from sheppy_core.backend import QUARANTINED, Backend, is_quarantined
from sheppy_core.cli._common import (
    MIN_ID_PREFIX,
    Column,
    Drop,
    Format,
    FormatOption,
    QueueOption,
    Shrink,
    Step,
    UrlOption,
    WideOption,
    connected,
    console,
    cut_function,
    dropped_note,
    fail,
    flag,
    function_floor,
    is_id_prefix,
    one_line,
    parse_json_args,
    pick_by_prefix,
    print_columns,
    print_json,
    print_note,
    print_title,
    run,
    settings_from,
    short_id_length,
    validation_line,
)
from sheppy_core.exceptions import SheppyError
from sheppy_core.models import Task

__all__ = ["experimental_app", "task_app"]

task_app = typer.Typer(help="Inspect, enqueue, schedule, retry and test tasks.", no_args_is_help=True)
experimental_app = typer.Typer(help="Operations that may still change.", no_args_is_help=True)
experimental_task_app = typer.Typer(help="Cancel or delete tasks.", no_args_is_help=True)
experimental_app.add_typer(experimental_task_app, name="task")

# Every status a stored task can have, in lifecycle order (TaskStatus less "new", never stored, and
# "unknown", never set), and "quarantined" for records that are not tasks (the backend kit's
# quarantine_record); tests/test_cli.py checks it against the model.
STATUSES = (
    "all",
    "pending",
    "scheduled",
    "processing",
    "retrying",
    "completed",
    "failed",
    "cancelled",
    "crashed",
    QUARANTINED,
)

ArgsOption = Annotated[
    str | None, typer.Option("-a", "--args", help="Positional arguments as a JSON array, e.g. '[1, 2]'.")
]
KwargsOption = Annotated[
    str | None, typer.Option("-k", "--kwargs", help="Keyword arguments as a JSON object, e.g. '{\"x\": 1}'.")
]
FuncArgument = Annotated[str, typer.Argument(help="The @task function, as module:function.")]
IdArgument = Annotated[
    str,
    typer.Argument(help=f"Task id (UUID), or its start as 'task list' shows it ({MIN_ID_PREFIX}+ chars)."),
]


def _task_id(value: str) -> str:
    """A task id as given: a UUID in its canonical form, or the start of one (resolved by :func:`_resolve_id`
    once the backend is reached)."""
    try:
        return str(uuid.UUID(value))
    except ValueError:
        if is_id_prefix(value):
            return value.lower()
        fail(
            f"{value!r} is not a task id (expected a UUID such as 3f2b...-..., "
            f"or at least its first {MIN_ID_PREFIX} characters)"
        )


def _stored_id(value: str) -> str:
    """A task id as stored: a UUID in its canonical form, or — for records that are not tasks, which
    may carry any id — the text as given."""
    try:
        return str(uuid.UUID(value))
    except ValueError:
        if not value.strip():
            fail("a task id cannot be empty")
        return value


def _not_found(task_id: str, queue_name: str) -> NoReturn:
    try:
        uuid.UUID(task_id)
    except ValueError:
        fail(
            f"{task_id!r} is not a task id (expected a UUID such as 3f2b...-...), and no quarantined "
            f"record has that id in queue {queue_name!r}"
        )
    fail(f"task {task_id} not found in queue {queue_name!r}")


async def _stored_record(backend: Backend, queue_name: str, task_id: str) -> dict[str, Any] | None:
    return (await backend.get_tasks(queue_name, [task_id])).get(task_id)


async def _resolve_id(backend: Backend, queue_name: str, value: str, *, quarantined: bool) -> str:
    """The stored id ``value`` names: a whole UUID as given; with ``quarantined``, also a record's own id
    (records that are not tasks may carry any id); otherwise the one id of the queue starting with it.
    A value that is neither comes back unchanged, for the caller's "not found"."""
    try:
        uuid.UUID(value)
        return value
    except ValueError:
        pass
    if quarantined and await _stored_record(backend, queue_name, value) is not None:
        return value
    if len(value) < MIN_ID_PREFIX:
        return value
    prefix = value.lower() if is_id_prefix(value) else value
    # Every id of the queue: the store has no lookup by prefix (see docs/cli.md).
    records = await backend.get_all_tasks(queue_name)
    ids = [str(r.get("id")) for r in records if quarantined or not is_quarantined(r)]
    if not is_id_prefix(value) and not any(i.startswith(prefix) for i in ids):
        return value
    return pick_by_prefix(prefix, ids, "task", queue_name)


_Row = tuple[str, "Task[Any] | dict[str, Any]"]


def _quarantine_cells(record: dict[str, Any]) -> tuple[str, str]:
    """(when, reason) of a quarantined record, for tables."""
    details = record.get("quarantine") or {}
    when = details.get("quarantined_at") or record.get("finished_at") or ""
    return str(when), str(details.get("reason", ""))


def _make_task(func: str, args: str | None, kwargs: str | None) -> Task[Any]:
    """Everything checked before any backend is touched: a bad name or argument enqueues nothing."""
    positional, keywords = parse_json_args(args, kwargs)
    try:
        definition = resolve_task_name(func)
        return build_task(definition.name, positional, keywords)
    except ValidationError as exc:
        fail(validation_line(exc))
    except SheppyError as exc:
        fail(str(exc))


def _when(value: datetime | None) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S") if value else ""


FINISHED = "finished (UTC)"
OUTCOME = "result/error"
DEFAULT_PAGE = 50


def _task_cells(task: Task[Any] | dict[str, Any]) -> tuple[str, str, str, str, str, str]:
    """(id, function, status, finished, retries, result or error) of one row of ``task list``."""
    if isinstance(task, dict):  # a quarantined record: not a task, shown with why
        when, reason = _quarantine_cells(task)
        return str(task.get("id")), "?", QUARANTINED, when[:19].replace("T", " "), "", one_line(reason)
    outcome = str(task.exception) if task.exception else ("" if task.result is None else str(task.result))
    return (
        str(task.id),
        task.spec.func,
        task.status,
        _when(task.finished_at),
        str(task.retry_count),
        one_line(outcome),
    )


def _task_columns(
    rows: list[_Row], *, show_queue: bool, id_length: int, wide: bool
) -> tuple[list[Column], list[Step]]:
    """The columns of ``task list`` and, most dispensable first, what gives way on a narrow terminal:
    the result, the retry count, then the module path of function names, then the date; headers, ids
    and status words are never cut."""
    cells = [_task_cells(task) for _, task in rows]
    ids, functions, statuses, finished, retries, outcomes = (list(c) for c in zip(*cells, strict=True))
    columns = [Column("queue", [name for name, _ in rows])] if show_queue else []
    columns += [
        Column("id", ids if wide else [ident[:id_length] for ident in ids]),
        Column("function", functions, cut=cut_function),
        Column("status", statuses),
        Column(FINISHED, finished),
        Column("retries", retries, justify="right"),
        Column(OUTCOME, outcomes),
    ]
    steps: list[Step] = [
        Shrink(OUTCOME),
        Drop("retries"),
        Drop(OUTCOME),
        Shrink("function", function_floor(functions)),
        Drop(FINISHED),
        Shrink("function"),
        Shrink("queue"),
    ]
    return columns, steps


def _nothing_listed(status: str, queues: list[str]) -> str:
    what = {"all": "tasks", QUARANTINED: "quarantined records"}.get(status, f"{status} tasks")
    where = f"queue {queues[0]!r}" if len(queues) == 1 else "queues " + ", ".join(map(repr, queues))
    return f"no {what} in {where}"


def _dump(task: Task[Any] | dict[str, Any], queue_name: str | None = None) -> dict[str, Any]:
    data = dict(task) if isinstance(task, dict) else task.model_dump(mode="json")
    if queue_name is not None:
        data["queue"] = queue_name
    return data


def _created(row: _Row) -> str:
    task = row[1]
    if isinstance(task, dict):
        return _quarantine_cells(task)[0]
    return task.created_at.astimezone(UTC).isoformat()


@task_app.command("list")
def list_tasks(
    queue: QueueOption = None,
    backend_url: UrlOption = None,
    status: Annotated[
        str, typer.Option("-s", "--status", help="Only tasks in this state: " + "|".join(STATUSES) + ".")
    ] = "all",
    fmt: FormatOption = Format.table,
    limit: Annotated[
        int | None,
        typer.Option(
            "--limit",
            min=0,
            show_default=False,
            help=f"Show at most N tasks, oldest first (0: all); default {DEFAULT_PAGE}, with -f json all.",
        ),
    ] = None,
    offset: Annotated[int, typer.Option("--offset", min=0, help="Skip the first N tasks.")] = 0,
    wide: WideOption = False,
) -> None:
    """List the tasks of one or more queues, optionally only those in one state.

    Records that cannot be read as tasks are listed as ``quarantined`` (``--status quarantined``
    shows only them; ``task info ID`` shows the stored text)."""
    if status not in STATUSES:
        fail(f"--status must be one of {', '.join(STATUSES)}, not {status!r}")
    settings = settings_from(backend_url, queue)
    known_ids: list[str] = []

    async def collect() -> list[_Row]:
        async with connected(settings.backend_url, create=False) as backend:
            found: list[_Row] = []
            for name in settings.queues:
                records = await backend.get_all_tasks(name)
                known_ids.extend(str(r.get("id")) for r in records)
                if status in ("all", QUARANTINED):
                    found += [(name, r) for r in records if is_quarantined(r)]
                if status != QUARANTINED:
                    usable = [r for r in records if not is_quarantined(r)]
                    tasks = readable_tasks(name, usable)
                    found += [(name, t) for t in tasks if status == "all" or t.status == status]
        found.sort(key=_created)
        return found

    rows = run(collect(), settings.backend_url)
    page_size = limit if limit is not None else (0 if fmt is Format.json else DEFAULT_PAGE)
    page = rows[offset : offset + page_size] if page_size else rows[offset:]
    if fmt is Format.json:
        print_json([_dump(task, name) for name, task in page])
        return
    if not rows:
        print_note(_nothing_listed(status, list(settings.queues)))
        return
    if not page:
        print_note(f"showing none of {len(rows)}: --offset {offset} is past the end")
        return
    where = ", ".join(settings.queues)
    print_title(f"Tasks in {where}" + ("" if status == "all" else f" ({status})"))
    # Short ids are told apart among every record of the queues, so any of them works in `task info`.
    columns, steps = _task_columns(
        page, show_queue=len(settings.queues) > 1, id_length=short_id_length(known_ids), wide=wide
    )
    dropped_note(print_columns(columns, steps, wide=wide))
    if len(page) < len(rows):
        last = offset + len(page)
        more = f"; next page: --offset {last}" if last < len(rows) else ""
        print_note(f"showing {offset + 1}-{last} of {len(rows)}{more}")


def _print_quarantined(record: dict[str, Any], queue_name: str) -> None:
    details = record.get("quarantine") or {}
    table = Table(title=f"Record {record.get('id')} (quarantined: not a task)", show_header=False)
    table.add_column("field", style="bold")
    table.add_column("value", overflow="fold")
    for name, value in (
        ("queue", queue_name),
        ("status", QUARANTINED),
        ("reason", details.get("reason")),
        ("quarantined", details.get("quarantined_at")),
        ("stored text", details.get("raw")),
    ):
        if value is not None:
            table.add_row(name, str(value))
    console.print(table, markup=False, highlight=False)
    console.print(
        f"fix and re-add it, or remove it: sheppy task delete {record.get('id')} -q {queue_name}",
        highlight=False,
        markup=False,
    )


@task_app.command("info")
def info(
    task_id: IdArgument,
    queue: QueueOption = None,
    backend_url: UrlOption = None,
    fmt: FormatOption = Format.table,
) -> None:
    """Show one task: arguments, status, result, error and traceback, retries, lease."""
    settings = settings_from(backend_url, queue)
    given = _stored_id(task_id)

    async def look_up() -> tuple[str, dict[str, Any] | None]:
        async with connected(settings.backend_url, create=False) as backend:
            found = await _resolve_id(backend, settings.queue, given, quarantined=True)
            return found, await _stored_record(backend, settings.queue, found)

    wanted, record = run(look_up(), settings.backend_url)
    if record is None:
        _not_found(wanted, settings.queue)
    if is_quarantined(record):
        if fmt is Format.json:
            print_json(_dump(record, settings.queue))
        else:
            _print_quarantined(record, settings.queue)
        return
    try:
        task: Task[Any] = Task.model_validate(record)
    except ValidationError as exc:
        fail(f"record {wanted} in queue {settings.queue!r} is not a task: {validation_line(exc)}")
    if fmt is Format.json:
        print_json(_dump(task, settings.queue))
        return
    table = Table(title=f"Task {task.id}", show_header=False)
    table.add_column("field", style="bold")
    table.add_column("value", overflow="fold")
    fields: list[tuple[str, Any]] = [
        ("queue", settings.queue),
        ("function", task.spec.func),
        ("args", list(task.spec.args)),
        ("kwargs", task.spec.kwargs),
        ("status", task.status),
        ("result", task.result),
        ("error", task.exception),
        ("created", task.created_at),
        ("scheduled", task.scheduled_at),
        ("finished", task.finished_at),
        ("retries", f"{task.retry_count} of {task.config.retry}"),
        # Only while a retry is coming: a finished task keeps the time of its last one.
        ("next retry", task.next_retry_at if task.status == "retrying" else None),
        ("claimed by", task.claimed_by),
        ("lease expires", task.lease_expires_at),
        ("deliveries", task.deliveries),
        ("cron", task.cron_id),
        ("workflow", task.workflow_id),
    ]
    for name, value in fields:
        if value is not None and value != "":
            table.add_row(name, str(value))
    console.print(table)
    if task.attempt_errors:
        print_title(f"earlier attempts ({len(task.attempt_errors)})")
        columns, steps = _attempt_columns(task)
        print_columns(columns, steps, wide=False)
    attempt, latest = _latest_traceback(task)
    if latest is not None:
        if attempt is not None:
            print_title(f"traceback of attempt {attempt}")
        console.print(latest, highlight=False, markup=False)


ERROR = "error"


def _attempt_columns(task: Task[Any]) -> tuple[list[Column], list[Step]]:
    """The earlier attempts of ``task info``: number, when it ended, status, the error on one line (cut
    first on a narrow terminal)."""
    attempts = task.attempt_errors
    columns = [
        Column("attempt", [str(a.attempt) for a in attempts], justify="right"),
        Column(FINISHED, [_when(a.finished_at) for a in attempts]),
        Column("status", [a.status for a in attempts]),
        Column(ERROR, [one_line(a.exception) if a.exception is not None else "" for a in attempts]),
    ]
    return columns, [Shrink(ERROR, 12), Drop(FINISHED), Shrink(ERROR)]


def _latest_traceback(task: Task[Any]) -> tuple[int | None, str | None]:
    """The traceback of the latest failure: the task's own error (attempt None: the current state),
    else the newest earlier attempt with one (a task that completed after failing keeps its failures
    only there), with its number."""
    if task.exception is not None and task.exception.traceback:
        return None, task.exception.traceback
    for attempt in reversed(task.attempt_errors):
        if attempt.exception is not None and attempt.exception.traceback:
            return attempt.attempt, attempt.exception.traceback
    return None, None


@task_app.command("retry")
def retry(
    task_id: Annotated[str | None, typer.Argument(help="Task id (UUID); omit with --all-failed.")] = None,
    queue: QueueOption = None,
    backend_url: UrlOption = None,
    force: Annotated[bool, flag("-f", "--force", help="Also re-run a completed task.")] = False,
    all_failed: Annotated[
        bool, flag("--all-failed", help="Retry every failed or crashed task of the queue(s).")
    ] = False,
) -> None:
    """Queue a finished task again (a completed one needs --force)."""
    if (task_id is None) == (not all_failed):
        fail("give either a task id or --all-failed (not both)")
    settings = settings_from(backend_url, queue)
    given = _task_id(task_id) if task_id is not None else None

    async def again() -> list[tuple[str, str]]:
        done: list[tuple[str, str]] = []
        async with connected(settings.backend_url, create=False) as backend:
            if given is not None:
                wanted = await _resolve_id(backend, settings.queue, given, quarantined=False)
                q = Queue(backend, settings.queue)
                try:
                    found = await q.retry(wanted, force=force)
                except ValueError as exc:
                    raise ValueError(str(exc).replace(FORCE_HINT, "add --force to run it again")) from None
                if not found:
                    raise ValueError(f"task {wanted} not found in queue {settings.queue!r}")
                return [(settings.queue, wanted)]
            for name in settings.queues:
                q = Queue(backend, name)
                for task in await q.get_all_tasks():
                    if task.status in ("failed", "crashed") and await q.retry(task):
                        done.append((name, str(task.id)))
        return done

    retried = run(again(), settings.backend_url)
    for name, ident in retried:
        console.print(f"task {ident} queued again in {name!r}", highlight=False)
    if all_failed:
        console.print(f"{len(retried)} task(s) queued again", highlight=False)


@task_app.command("add")
def add(
    func: FuncArgument,
    args: ArgsOption = None,
    kwargs: KwargsOption = None,
    queue: QueueOption = None,
    backend_url: UrlOption = None,
    wait: Annotated[bool, flag("-w", "--wait", help="Wait for the result and print it.")] = False,
    timeout: Annotated[
        float, typer.Option("-t", "--timeout", min=0, help="With --wait: give up after S seconds (0: never).")
    ] = 0.0,
    fmt: FormatOption = Format.table,
) -> None:
    """Enqueue a registered @task function by name."""
    task = _make_task(func, args, kwargs)
    settings = settings_from(backend_url, queue)

    async def enqueue() -> Task[Any] | None:
        async with connected(settings.backend_url) as backend:
            q = Queue(backend, settings.queue)
            if not await q.add(task):
                raise ValueError(f"task {task.id} already exists in queue {settings.queue!r}")
            if not wait:
                return None
            try:
                return await q.wait_for(task, timeout=timeout)
            except TimeoutError:
                raise TimeoutError(
                    f"task {task.id} was queued but did not finish within {timeout:g} s"
                ) from None

    finished = run(enqueue(), settings.backend_url)
    _report(task, finished, settings.queue, fmt)


def _report(task: Task[Any], finished: Task[Any] | None, queue_name: str, fmt: Format) -> None:
    shown = finished or task
    if fmt is Format.json:
        print_json(_dump(shown, queue_name))
    elif finished is None:
        console.print(f"task {task.id} queued in {queue_name!r} ({task.spec.func})", highlight=False)
    elif finished.status == "completed":
        console.print(f"task {task.id} completed: {finished.result!r}", highlight=False)
    else:
        console.print(f"task {task.id} {finished.status}: {finished.exception}", highlight=False)
    if finished is not None and finished.status != "completed":
        raise typer.Exit(1)


_DELAY = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*$")
_UNIT = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_delay(text: str) -> timedelta:
    """``30s``, ``5m``, ``2h``, ``1d`` or a plain number of seconds."""
    match = _DELAY.match(text.lower())
    if match is None:
        fail(f"--delay {text!r} is not a delay such as 30s, 5m, 2h or 1d")
    seconds = float(match.group(1)) * _UNIT[match.group(2)]
    if not seconds <= MAX_DELAY.total_seconds():
        fail(f"--delay {text!r}: too far in the future (max {MAX_DELAY.days}d, about 1000 years)", code=2)
    return timedelta(seconds=seconds)


def parse_at(text: str) -> datetime:
    """An ISO 8601 time; a naive one is taken as UTC."""
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        fail(f"--at {text!r} is not an ISO 8601 time such as 2030-01-01T12:00:00+00:00")
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


@task_app.command("schedule")
def schedule(
    func: FuncArgument,
    delay: Annotated[str | None, typer.Option("--delay", help="Run after 30s, 5m, 2h, 1d ...")] = None,
    at: Annotated[str | None, typer.Option("--at", help="Run at this ISO 8601 time (naive = UTC).")] = None,
    args: ArgsOption = None,
    kwargs: KwargsOption = None,
    queue: QueueOption = None,
    backend_url: UrlOption = None,
    fmt: FormatOption = Format.table,
) -> None:
    """Schedule a registered @task function to run later."""
    if (delay is None) == (at is None):
        fail("give exactly one of --delay or --at")
    when: datetime | timedelta = parse_delay(delay) if delay is not None else parse_at(at or "")
    task = _make_task(func, args, kwargs)
    settings = settings_from(backend_url, queue)

    async def store() -> None:
        async with connected(settings.backend_url) as backend:
            if not await Queue(backend, settings.queue).schedule(task, when):
                raise ValueError(f"task {task.id} already exists in queue {settings.queue!r}")

    run(store(), settings.backend_url)
    due = datetime.now(UTC) + when if isinstance(when, timedelta) else when
    if fmt is Format.json:
        print_json({**_dump(task, settings.queue), "due": due.isoformat()})
    else:
        console.print(
            f"task {task.id} scheduled in {settings.queue!r} for {due.isoformat()} ({task.spec.func})",
            highlight=False,
        )


@task_app.command("test")
def try_task(
    func: FuncArgument,
    args: ArgsOption = None,
    kwargs: KwargsOption = None,
    trace: Annotated[bool, flag("-t", "--trace", help="Show the traceback of a failure.")] = False,
    fmt: FormatOption = Format.table,
) -> None:
    """Run a registered @task function once, in this process, without a backend."""
    from sheppy_core._testqueue import TestQueue

    task = _make_task(func, args, kwargs)
    test_queue = TestQueue()
    test_queue.add(task)
    try:
        test_queue.process_all()
    except Exception:  # the runner records task failures; anything else is a bug worth showing
        traceback.print_exc()
        raise typer.Exit(1) from None
    finished = test_queue.get_task(task.id)
    if finished is None:
        fail(f"task {task.id} vanished from the test queue")
    _report_test(finished, trace, fmt)


def _report_test(finished: Task[Any], trace: bool, fmt: Format) -> None:
    if fmt is Format.json:
        print_json(_dump(finished))
    elif finished.status == "completed":
        console.print(f"{finished.spec.func} completed: {finished.result!r}", highlight=False)
    else:
        console.print(f"{finished.spec.func} {finished.status}: {finished.exception}", highlight=False)
        if trace and finished.exception is not None and finished.exception.traceback:
            console.print(finished.exception.traceback, highlight=False, markup=False)
    if finished.status != "completed":
        raise typer.Exit(1)


@experimental_task_app.command("cancel")
def cancel(
    task_id: IdArgument,
    queue: QueueOption = None,
    backend_url: UrlOption = None,
    fmt: FormatOption = Format.table,
) -> None:
    """Cancel a task that is still waiting (queued, scheduled or waiting for a retry)."""
    settings = settings_from(backend_url, queue)
    given = _task_id(task_id)

    async def cancel_it() -> tuple[str, Task[Any]]:
        async with connected(settings.backend_url, create=False) as backend:
            found = await _resolve_id(backend, settings.queue, given, quarantined=False)
            return found, await Queue(backend, settings.queue).cancel(found)

    wanted, cancelled = run(cancel_it(), settings.backend_url)
    if fmt is Format.json:
        # sheppy's keys: the record, its queue, queue_status and cancelled.
        print_json({**_dump(cancelled, settings.queue), "queue_status": cancelled.status, "cancelled": True})
    else:
        console.print(f"task {wanted} cancelled", highlight=False)


@task_app.command("delete")
@experimental_task_app.command("delete")
def delete(
    task_id: IdArgument,
    queue: QueueOption = None,
    backend_url: UrlOption = None,
    fmt: FormatOption = Format.table,
) -> None:
    """Delete a finished (or quarantined) task record."""
    settings = settings_from(backend_url, queue)
    given = _stored_id(task_id)

    async def remove() -> tuple[str, bool]:
        async with connected(settings.backend_url, create=False) as backend:
            found = await _resolve_id(backend, settings.queue, given, quarantined=True)
            try:
                uuid.UUID(found)
            except ValueError:  # a quarantined record may carry any id: straight to the store
                return found, await backend.delete_task(settings.queue, found)
            # A task id: through Queue.delete, so its refusal reads as sheppy's.
            return found, await Queue(backend, settings.queue).delete(found)

    wanted, deleted = run(remove(), settings.backend_url)
    if not deleted:
        _not_found(wanted, settings.queue)
    if fmt is Format.json:
        # sheppy's keys (task_id, queue, deleted), and id as in every other record this command prints.
        print_json({"task_id": wanted, "id": wanted, "queue": settings.queue, "deleted": True})
    else:
        console.print(f"task {wanted} deleted", highlight=False)
