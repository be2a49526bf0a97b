"""``sheppy queue ...`` and ``sheppy cron ...``."""

from __future__ import annotations

import difflib
import json
import uuid
from datetime import UTC, datetime
from typing import Annotated, Any

import typer

from sheppy_core._queue import Queue
from sheppy_core.backend import redact_url
from sheppy_core.cli._common import (
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
    fit,
    flag,
    function_floor,
    is_id_prefix,
    pick_by_prefix,
    print_columns,
    print_json,
    print_note,
    print_title,
    run,
    settings_from,
    short_id_length,
)
from sheppy_core.cli._tasks import ArgsOption, KwargsOption, _make_task
from sheppy_core.models import TaskCron, cron_expression_problem

__all__ = ["cron_app", "queue_app"]

queue_app = typer.Typer(help="Inspect and clear queues.", no_args_is_help=True)
cron_app = typer.Typer(help="List, add and delete cron jobs.", no_args_is_help=True)

COUNT_COLUMNS = ("pending", "scheduled", "processing", "completed", "failed", "cancelled", "crashed")


def _queue_columns(stats: dict[str, dict[str, int]], wide: bool) -> tuple[list[Column], list[Step]]:
    """The columns of ``queue list`` and what gives way to fit.

    A column per status when they fit; else the statuses that are 0 in every queue go; else each queue
    lists its counts one per line (``3 pending``), so no status word is ever cut."""
    names = list(stats)
    counts = [
        Column(status, [str(stats[n].get(status, 0)) for n in names], "right") for status in COUNT_COLUMNS
    ]
    columns = [Column("queue", names), *counts]
    if wide:
        return columns, []
    zero = [c.header for c in counts if not any(stats[n].get(c.header, 0) for n in names)]
    steps: list[Step] = [Drop(status) for status in zero]
    if fit(columns, console.width, steps)[1]:
        return columns, steps
    queue_cells: list[str] = []
    count_cells: list[str] = []
    for name in names:
        lines = [f"{stats[name][s]} {s}" for s in COUNT_COLUMNS if stats[name].get(s, 0)] or ["no tasks"]
        queue_cells += [name] + [""] * (len(lines) - 1)
        count_cells += lines
    return [Column("queue", queue_cells), Column("tasks", count_cells)], [Shrink("queue")]


@queue_app.command("list")
def list_queues(
    backend_url: UrlOption = None, fmt: FormatOption = Format.table, wide: WideOption = False
) -> None:
    """Every known queue with its pending / scheduled / processing / completed / failed counts."""
    settings = settings_from(backend_url)

    async def collect() -> dict[str, dict[str, int]]:
        async with connected(settings.backend_url, create=False) as backend:
            names = sorted(await backend.list_queues())
            return {name: await backend.get_stats(name) for name in names}

    stats = run(collect(), settings.backend_url)
    if fmt is Format.json:
        print_json(stats)
        return
    if not stats:
        print_note("no queues")
        return
    print_title("Queues")
    layout = print_columns(*_queue_columns(stats, wide), wide=wide)
    if layout.dropped:  # only counts that are 0 in every queue are ever left out
        print_note(f"0 in every queue: {', '.join(layout.dropped)}")


@queue_app.command("clear")
def clear(
    name: Annotated[str, typer.Argument(help="The queue to empty.")],
    backend_url: UrlOption = None,
    yes: Annotated[bool, flag("-y", "--yes", help="Do not ask for confirmation.")] = False,
) -> None:
    """Delete every task (in any state), schedule and cron of a queue."""
    settings = settings_from(backend_url)
    if not yes and not typer.confirm(
        f"Delete every task and cron of queue {name!r} at {redact_url(settings.backend_url)}?", default=False
    ):
        fail("nothing was deleted")

    async def clear_known() -> tuple[int, list[str]]:
        async with connected(settings.backend_url, create=False) as backend:
            known = sorted(await backend.list_queues())
            return await Queue(backend, name).clear(), known

    removed, known = run(clear_known(), settings.backend_url)
    if removed == 0 and name not in known:
        # A typo must not look like success ("cleared: 0"); nothing was deleted either way.
        nearest = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
        hint = f"; did you mean {nearest[0]!r}?" if nearest else ""
        listed = f"known queues: {', '.join(map(repr, known))}" if known else "no queues are known"
        fail(f"no queue {name!r} at {redact_url(settings.backend_url)}: nothing cleared ({listed}){hint}")
    console.print(f"queue {name!r} cleared: {removed} task(s) and cron(s) removed", highlight=False)


def _cron_row(cron: TaskCron) -> dict[str, Any]:
    return {
        "id": str(cron.deterministic_id),
        "expression": cron.expression,
        "function": cron.spec.func,
        "args": list(cron.spec.args),
        "kwargs": cron.spec.kwargs,
        "managed_by": cron.managed_by,
        "next_run": cron.next_run().isoformat(),
    }


ARGUMENTS = "arguments"
NEXT_RUN = "next run (UTC)"


def _arguments(row: dict[str, Any]) -> str:
    """A cron's arguments as a call's: ``3, "a", dry_run=false`` (JSON values)."""
    positional = [json.dumps(value, default=str) for value in row["args"]]
    keywords = [f"{key}={json.dumps(value, default=str)}" for key, value in row["kwargs"].items()]
    return ", ".join(positional + keywords)


def _next_run(iso: str) -> str:
    return datetime.fromisoformat(iso).astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")


def _cron_columns(
    rows: list[dict[str, Any]], *, show_queue: bool, wide: bool
) -> tuple[list[Column], list[Step]]:
    """The columns of ``cron list`` and, most dispensable first, what gives way on a narrow terminal:
    the arguments, who manages the cron, the module path of function names, then the next run."""
    if wide:
        keys = ("queue", "id", "expression", "function", "args", "kwargs", "managed_by", "next_run")
        return [Column(key.replace("_", " "), [str(row[key] or "") for row in rows]) for key in keys], []
    ids = [row["id"] for row in rows]
    length = short_id_length(ids)
    functions = [row["function"] for row in rows]
    columns = [Column("queue", [row["queue"] for row in rows])] if show_queue else []
    columns += [
        Column("id", [ident[:length] for ident in ids]),
        Column("expression", [row["expression"] for row in rows]),
        Column("function", functions, cut=cut_function),
        Column(ARGUMENTS, [_arguments(row) for row in rows]),
        Column("managed by", [row["managed_by"] or "" for row in rows]),
        Column(NEXT_RUN, [_next_run(row["next_run"]) for row in rows]),
    ]
    steps: list[Step] = [
        Shrink(ARGUMENTS, 12),
        Drop("managed by"),
        Shrink(ARGUMENTS),
        Drop(ARGUMENTS),
        Shrink("function", function_floor(functions)),
        Drop(NEXT_RUN),
        Shrink("function"),
        Shrink("queue"),
    ]
    return columns, steps


@cron_app.command("list")
def list_crons(
    queue: QueueOption = None,
    backend_url: UrlOption = None,
    fmt: FormatOption = Format.table,
    wide: WideOption = False,
) -> None:
    """Registered cron jobs of the queue(s)."""
    settings = settings_from(backend_url, queue)

    async def collect() -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = []
        async with connected(settings.backend_url, create=False) as backend:
            for name in settings.queues:
                rows += [{"queue": name, **_cron_row(c)} for c in await Queue(backend, name).get_crons()]
        return rows

    rows = run(collect(), settings.backend_url)
    if fmt is Format.json:
        print_json(rows)
        return
    if not rows:
        many = len(settings.queues) > 1
        print_note(f"no crons in {'queues' if many else 'queue'} {', '.join(map(repr, settings.queues))}")
        return
    print_title(f"Cron jobs in {', '.join(settings.queues)}")
    columns, steps = _cron_columns(rows, show_queue=len(settings.queues) > 1, wide=wide)
    dropped_note(print_columns(columns, steps, wide=wide))


ExpressionArgument = Annotated[str, typer.Argument(help="Five-field cron expression, e.g. '*/5 * * * *'.")]


def _cron_for(func: str, expression: str, args: str | None, kwargs: str | None) -> TaskCron:
    problem = cron_expression_problem(expression)
    if problem:
        fail(f"invalid cron expression {expression!r}: {problem}")
    task = _make_task(func, args, kwargs)
    try:
        return TaskCron(expression=expression, spec=task.spec, config=task.config)
    except ValueError as exc:
        fail(str(exc))


@cron_app.command("add")
def add_cron(
    func: Annotated[str, typer.Argument(help="The @task function, as module:function.")],
    expression: ExpressionArgument,
    args: ArgsOption = None,
    kwargs: KwargsOption = None,
    queue: QueueOption = None,
    backend_url: UrlOption = None,
) -> None:
    """Register a recurring task (workers schedule its occurrences)."""
    cron = _cron_for(func, expression, args, kwargs)
    settings = settings_from(backend_url, queue)

    async def store() -> bool:
        async with connected(settings.backend_url) as backend:
            return await backend.add_cron(
                settings.queue, str(cron.deterministic_id), cron.model_dump(mode="json")
            )

    if not run(store(), settings.backend_url):
        fail(f"an identical cron already exists in queue {settings.queue!r} (id {cron.deterministic_id})")
    console.print(
        f"cron {cron.deterministic_id} added to {settings.queue!r}: {expression} {cron.spec.func}",
        highlight=False,
    )


@cron_app.command("delete")
def delete_cron(
    func_or_id: Annotated[
        str, typer.Argument(help="The cron id (or its start, from 'cron list'), or module:function.")
    ],
    expression: Annotated[
        str | None, typer.Argument(help="The cron expression (with module:function).")
    ] = None,
    args: ArgsOption = None,
    kwargs: KwargsOption = None,
    queue: QueueOption = None,
    backend_url: UrlOption = None,
) -> None:
    """Remove a cron job, by id or by the same function, arguments and expression it was added with."""
    cron_id = ""  # empty: func_or_id is the start of an id, resolved among the queue's crons
    try:
        cron_id = str(uuid.UUID(func_or_id))
    except ValueError:
        if expression is not None:
            cron_id = str(_cron_for(func_or_id, expression, args, kwargs).deterministic_id)
        elif not is_id_prefix(func_or_id):
            fail("give a cron id, or module:function and its expression")
    settings = settings_from(backend_url, queue)

    async def remove() -> tuple[str, bool]:
        async with connected(settings.backend_url, create=False) as backend:
            found = cron_id
            if not found:
                crons = await Queue(backend, settings.queue).get_crons()
                ids = [str(cron.deterministic_id) for cron in crons]
                found = pick_by_prefix(func_or_id.lower(), ids, "cron", settings.queue)
            return found, await backend.delete_cron(settings.queue, found)

    cron_id, removed = run(remove(), settings.backend_url)
    if not removed:
        fail(f"no cron {cron_id} in queue {settings.queue!r}")
    console.print(f"cron {cron_id} deleted from {settings.queue!r}", highlight=False)
