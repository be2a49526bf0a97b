"""``sheppy queue ...`` and ``sheppy cron ...``."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

import typer
from rich.table import Table

from sheppy_core._queue import Queue
from sheppy_core.backend import redact_url
from sheppy_core.cli._common import (
    Format,
    FormatOption,
    QueueOption,
    UrlOption,
    connected,
    console,
    fail,
    flag,
    on_queue,
    print_json,
    run,
    settings_from,
)
from sheppy_core.cli._tasks import ArgsOption, KwargsOption, _make_task
from sheppy_core.models import TaskCron

__all__ = ["cron_app", "queue_app"]

queue_app = typer.Typer(help="Inspect and clear queues.", no_args_is_help=True)
cron_app = typer.Typer(help="List, add and delete cron jobs.", no_args_is_help=True)

COUNT_COLUMNS = ("pending", "scheduled", "processing", "completed", "failed", "cancelled", "crashed")


@queue_app.command("list")
def list_queues(backend_url: UrlOption = None, fmt: FormatOption = Format.table) -> None:
    """Every known queue with its pending / scheduled / processing / completed / failed counts."""
    settings = settings_from(backend_url)

    async def collect() -> dict[str, dict[str, int]]:
        async with connected(settings.backend_url) as backend:
            names = sorted(await backend.list_queues())
            return {name: await backend.get_stats(name) for name in names}

    stats = run(collect(), settings.backend_url)
    if fmt is Format.json:
        print_json(stats)
        return
    table = Table(title="Queues")
    table.add_column("queue", overflow="fold")
    for column in COUNT_COLUMNS:
        table.add_column(column, justify="right")
    for name, counts in stats.items():
        table.add_row(name, *(str(counts.get(c, 0)) for c in COUNT_COLUMNS))
    console.print(table)
    if not stats:
        console.print("no queues yet", highlight=False)


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
    removed = on_queue(settings.backend_url, name, lambda q: q.clear())
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


@cron_app.command("list")
def list_crons(
    queue: QueueOption = None, backend_url: UrlOption = None, fmt: FormatOption = Format.table
) -> None:
    """Registered cron jobs of the queue(s)."""
    settings = settings_from(backend_url, queue)

    async def collect() -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = []
        async with connected(settings.backend_url) as backend:
            for name in settings.queues:
                rows += [{"queue": name, **_cron_row(c)} for c in await Queue(backend, name).get_crons()]
        return rows

    rows = run(collect(), settings.backend_url)
    if fmt is Format.json:
        print_json(rows)
        return
    table = Table(title="Cron jobs")
    for column in ("queue", "id", "expression", "function", "args", "kwargs", "managed by", "next run"):
        table.add_column(column)
    for row in rows:
        table.add_row(
            row["queue"],
            row["id"],
            row["expression"],
            row["function"],
            str(row["args"]),
            str(row["kwargs"]),
            row["managed_by"] or "",
            row["next_run"],
        )
    console.print(table)


ExpressionArgument = Annotated[str, typer.Argument(help="Five-field cron expression, e.g. '*/5 * * * *'.")]


def _cron_for(func: str, expression: str, args: str | None, kwargs: str | None) -> TaskCron:
    task = _make_task(func, args, kwargs)
    try:
        return TaskCron(expression=expression, spec=task.spec, config=task.config)
    except ValueError as exc:
        fail(
            f"invalid cron expression {expression!r}: expected five fields like '*/5 * * * *'"
            if "expression" in str(exc)
            else str(exc)
        )


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
    func_or_id: Annotated[str, typer.Argument(help="The cron id (from 'cron list'), or module:function.")],
    expression: Annotated[
        str | None, typer.Argument(help="The cron expression (with module:function).")
    ] = None,
    args: ArgsOption = None,
    kwargs: KwargsOption = None,
    queue: QueueOption = None,
    backend_url: UrlOption = None,
) -> None:
    """Remove a cron job, by id or by the same function, arguments and expression it was added with."""
    try:
        cron_id = str(uuid.UUID(func_or_id))
    except ValueError:
        if expression is None:
            fail("give a cron id, or module:function and its expression")
        cron_id = str(_cron_for(func_or_id, expression, args, kwargs).deterministic_id)
    settings = settings_from(backend_url, queue)

    async def remove() -> bool:
        async with connected(settings.backend_url) as backend:
            return await backend.delete_cron(settings.queue, cron_id)

    if not run(remove(), settings.backend_url):
        fail(f"no cron {cron_id} in queue {settings.queue!r}")
    console.print(f"cron {cron_id} deleted from {settings.queue!r}", highlight=False)
