"""The read layer of the operator dashboard: pages, counts, ages, workers and failure groups of a queue.

Every function works on any backend: it uses the cheap operator queries (``list_tasks``,
``list_workers``) when the backend declares ``TASK_PAGES`` / ``WORKER_REGISTRY``, and falls back on
reading the queue's records otherwise (fine for the memory backend and small stores, which is where
backends without those capabilities live). Reads are capped so a page never walks millions of rows.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Final

from sheppy_core.backend._base import Backend
from sheppy_core.backend._capabilities import TASK_PAGES, WORKER_REGISTRY
from sheppy_core.backend._pages import (
    DEFAULT_PAGE_SIZE,
    MAX_PAGE_SIZE,
    TaskPage,
    check_listing,
    listing_key,
    page_of,
)
from sheppy_core.backend._records import from_iso, utcnow

__all__ = [
    "FAILURE_SCAN_CAP",
    "THROUGHPUT_SCAN_CAP",
    "FailureGroup",
    "Throughput",
    "failure_groups",
    "iter_listing",
    "list_page",
    "oldest_ready_age",
    "throughput",
    "workers",
]

FAILURE_SCAN_CAP: Final = 2_000
"""How many of the newest failed + crashed records the failures page groups."""
THROUGHPUT_SCAN_CAP: Final = 10_000
"""How many finished records of the last hour the throughput figures read, per status."""
FAILED_STATUSES: Final = ("failed", "crashed")


async def list_page(
    backend: Backend,
    queue: str,
    *,
    status: str | None = None,
    func: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    cursor: str | None = None,
    limit: int = DEFAULT_PAGE_SIZE,
) -> TaskPage:
    """``list_tasks`` through the backend when it declares ``TASK_PAGES``, else the same page built from
    ``get_all_tasks``. Bad arguments raise ``BackendInputError`` either way."""
    if TASK_PAGES in backend.capabilities:
        return await backend.list_tasks(
            queue, status=status, func=func, since=since, until=until, cursor=cursor, limit=limit
        )
    listing = check_listing(status=status, func=func, since=since, until=until, cursor=cursor, limit=limit)
    now = utcnow()
    keyed = [(listing_key(record, now), record) for record in await backend.get_all_tasks(queue)]
    admitted = [(key, record) for key, record in keyed if listing.admits(key, record)]
    admitted.sort(key=lambda pair: (pair[0], str(pair[1].get("id"))), reverse=True)
    return page_of(listing, admitted[: listing.limit + 1])


async def iter_listing(
    backend: Backend,
    queue: str,
    *,
    cap: int,
    status: str | None = None,
    func: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> list[dict[str, Any]]:
    """Up to ``cap`` matching records, newest first, read page by page."""
    found: list[dict[str, Any]] = []
    cursor: str | None = None
    while len(found) < cap:
        page = await list_page(
            backend, queue, status=status, func=func, since=since, until=until, cursor=cursor,
            limit=min(MAX_PAGE_SIZE, cap - len(found)),
        )
        found.extend(page.records)
        cursor = page.next_cursor
        if cursor is None:
            break
    return found[:cap]


async def oldest_ready_age(backend: Backend, queue: str) -> timedelta | None:
    """How long the head of the queue has been ready to run, or None when nothing is queued."""
    ready_at = await backend.oldest_ready_at(queue)
    return None if ready_at is None else max(timedelta(0), utcnow() - ready_at)


async def workers(backend: Backend) -> list[dict[str, Any]]:
    """The workers alive: ``list_workers`` with ``WORKER_REGISTRY``, else one row per distinct
    ``claimed_by`` of the processing records of the known queues (``derived: True``)."""
    if WORKER_REGISTRY in backend.capabilities:
        return await backend.list_workers()
    claims: dict[str, dict[str, Any]] = {}
    for queue in await backend.list_queues():
        for record in await iter_listing(backend, queue, cap=MAX_PAGE_SIZE, status="processing"):
            owner = record.get("claimed_by")
            if not isinstance(owner, str) or not owner:
                continue
            row = claims.setdefault(owner, {"id": owner, "queues": [], "in_flight": 0, "derived": True})
            if queue not in row["queues"]:
                row["queues"].append(queue)
            row["in_flight"] += 1
    return [claims[key] for key in sorted(claims)]


def workers_on(rows: list[dict[str, Any]], queue: str) -> int:
    """How many of the worker rows serve ``queue`` (a row without a ``queues`` list serves all)."""
    return sum(1 for row in rows if not isinstance(row.get("queues"), list) or queue in row["queues"])


@dataclass
class FailureGroup:
    """The failed and crashed records of one exception type, newest first."""

    exception: str
    records: list[dict[str, Any]] = field(default_factory=list)

    @property
    def count(self) -> int:
        return len(self.records)

    @property
    def latest_message(self) -> str:
        exc = self.records[0].get("exception") if self.records else None
        return str(exc.get("message", "")) if isinstance(exc, Mapping) else ""


def exception_type(record: Mapping[str, Any]) -> str:
    """The exception type a failed record is grouped by (``module.Type``; the status when none)."""
    exc = record.get("exception")
    if not isinstance(exc, Mapping) or not exc.get("type"):
        return str(record.get("status", "unknown"))
    module = str(exc.get("module") or "builtins")
    name = str(exc["type"])
    return name if module == "builtins" else f"{module}.{name}"


async def failure_groups(backend: Backend, queue: str, *, cap: int = FAILURE_SCAN_CAP) -> list[FailureGroup]:
    """The newest ``cap`` failed + crashed records grouped by exception type; the group with the most
    recent failure first."""
    records: list[tuple[int, dict[str, Any]]] = []
    now = utcnow()
    for status in FAILED_STATUSES:
        for record in await iter_listing(backend, queue, cap=cap, status=status):
            records.append((_finished_key(record, now), record))
    records.sort(key=lambda pair: pair[0], reverse=True)
    groups: dict[str, FailureGroup] = {}
    for _, record in records[:cap]:
        kind = exception_type(record)
        groups.setdefault(kind, FailureGroup(kind)).records.append(record)
    return list(groups.values())


def _finished_key(record: Mapping[str, Any], now: datetime) -> int:
    finished = record.get("finished_at")
    if isinstance(finished, str):
        try:
            return int(from_iso(finished).timestamp() * 1_000_000)
        except ValueError:
            pass
    return listing_key(record, now)


@dataclass
class Throughput:
    """Finished tasks of the last hour: per-minute counts (oldest minute first) and run-time quantiles."""

    minutes: list[int]
    """Start of each minute, seconds since the epoch."""
    done: list[int]
    failed: list[int]
    p50: float | None
    p95: float | None

    @property
    def done_per_minute(self) -> float:
        return sum(self.done) / len(self.done) if self.done else 0.0

    @property
    def failed_per_minute(self) -> float:
        return sum(self.failed) / len(self.failed) if self.failed else 0.0


def run_seconds(record: Mapping[str, Any]) -> float | None:
    """How long the last attempt ran: ``finished_at`` minus the later of created / scheduled / retried."""
    finished = record.get("finished_at")
    if not isinstance(finished, str):
        return None
    starts = [record.get(name) for name in ("created_at", "scheduled_at", "last_retry_at")]
    try:
        end = from_iso(finished)
        start = max(from_iso(value) for value in starts if isinstance(value, str))
    except ValueError:
        return None
    return max(0.0, (end - start).total_seconds())


def _quantile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def throughput(
    backend: Backend, queue: str, *, window: timedelta = timedelta(hours=1), cap: int = THROUGHPUT_SCAN_CAP
) -> Throughput:
    """Done/failed per minute over ``window`` by ``finished_at``, and p50/p95 run time of the done ones.

    Records are found with ``list_tasks(status=..., since=now - window)`` (created in the window), at
    most ``cap`` per status.
    """
    now = utcnow()
    start = now - window
    first_minute = int(start.timestamp()) // 60 * 60
    count = int(window.total_seconds()) // 60 + 1
    minutes = [first_minute + 60 * i for i in range(count)]
    buckets = {"completed": [0] * count, "failed": [0] * count}
    durations: list[float] = []
    for status, bucket in (("completed", "completed"), ("failed", "failed"), ("crashed", "failed")):
        for record in await iter_listing(backend, queue, cap=cap, status=status, since=start):
            finished = record.get("finished_at")
            if not isinstance(finished, str):
                continue
            try:
                at = from_iso(finished).timestamp()
            except ValueError:
                continue
            index = (int(at) - first_minute) // 60
            if 0 <= index < count:
                buckets[bucket][index] += 1
            if status == "completed":
                seconds = run_seconds(record)
                if seconds is not None:
                    durations.append(seconds)
    return Throughput(
        minutes=minutes, done=buckets["completed"], failed=buckets["failed"],
        p50=_quantile(durations, 0.5), p95=_quantile(durations, 0.95),
    )
