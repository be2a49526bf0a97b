"""``sheppy worker list``: the workers alive, as the backend's worker registry (``WORKER_REGISTRY``)
knows them."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import typer

from sheppy_core.backend import WORKER_REGISTRY
from sheppy_core.cli._common import (
    Column,
    Drop,
    Format,
    FormatOption,
    Shrink,
    Step,
    UrlOption,
    WideOption,
    connected,
    dropped_note,
    print_columns,
    print_json,
    print_note,
    print_title,
    run,
    settings_from,
)

__all__ = ["worker_app"]

worker_app = typer.Typer(help="See the workers that are running.", no_args_is_help=True)

ID_PREFIX = "worker-"
IN_FLIGHT = "in flight"
LAST_BEAT = "last beat"


def short_worker_id(record: dict[str, Any]) -> str:
    """A worker id without what the host column already says: sheppy-core's ids are
    ``worker-HOST-RANDOM``, shown as ``RANDOM``; any other id is shown whole."""
    worker_id = str(record.get("id", ""))
    host = str(record.get("host", ""))
    lead = f"{ID_PREFIX}{host}-"
    return worker_id[len(lead) :] if host and worker_id.startswith(lead) and worker_id != lead else worker_id


def beat_age(record: dict[str, Any], now: datetime) -> str:
    """How long ago the worker last refreshed its record: ``3s ago``, ``2m ago``; ``?`` if unreadable."""
    try:
        beat = datetime.fromisoformat(str(record.get("last_beat")))
    except ValueError:
        return "?"
    if beat.tzinfo is None:
        beat = beat.replace(tzinfo=UTC)
    seconds = max(int((now - beat).total_seconds()), 0)
    if seconds < 120:
        return f"{seconds}s ago"
    if seconds < 7200:
        return f"{seconds // 60}m ago"
    return f"{seconds // 3600}h ago"


def _in_flight(record: dict[str, Any]) -> str:
    count = record.get("in_flight", "")
    concurrency = record.get("concurrency")
    return f"{count}/{concurrency}" if concurrency is not None else str(count)


def worker_columns(
    records: list[dict[str, Any]], *, now: datetime, wide: bool
) -> tuple[list[Column], list[Step]]:
    """The columns of ``worker list`` and what gives way first on a narrow terminal: the queue list,
    then the host (cut from the right), then the pid; ids, counts and ages are never cut."""
    queues = [", ".join(str(q) for q in record.get("queues") or []) for record in records]
    columns = [
        Column("id", [str(r.get("id", "")) if wide else short_worker_id(r) for r in records]),
        Column("host", [str(r.get("host", "")) for r in records]),
        Column("pid", [str(r.get("pid", "")) for r in records], justify="right"),
        Column("queues", queues),
        Column(IN_FLIGHT, [_in_flight(r) for r in records], justify="right"),
        Column(LAST_BEAT, [beat_age(r, now) for r in records], justify="right"),
    ]
    steps: list[Step] = [
        Shrink("queues", 12),
        Shrink("host", 12),
        Shrink("queues"),
        Shrink("host"),
        Drop("pid"),
        Shrink("id", 8),
    ]
    return columns, steps


@worker_app.command("list")
def list_workers(
    backend_url: UrlOption = None,
    fmt: FormatOption = Format.table,
    wide: WideOption = False,
) -> None:
    """List the workers alive (registered and refreshed within their ttl): id, host, pid, queues,
    tasks in flight out of their concurrency, and how long ago each last checked in."""
    settings = settings_from(backend_url, None)

    async def collect() -> list[dict[str, Any]] | None:
        async with connected(settings.backend_url, create=False) as backend:
            if WORKER_REGISTRY not in backend.capabilities:
                return None
            return await backend.list_workers()

    records = run(collect(), settings.backend_url)
    if records is None:
        # One line that fits 80 columns; `sheppy task list --status processing` shows the claims.
        print_note(f"the backend does not declare capability {WORKER_REGISTRY}: no worker list")
        return
    if fmt is Format.json:
        print_json(records)
        return
    if not records:
        print_note("no workers alive")
        return
    print_title(f"{len(records)} worker(s) alive")
    columns, steps = worker_columns(records, now=datetime.now(UTC), wide=wide)
    dropped_note(print_columns(columns, steps, wide=wide))

