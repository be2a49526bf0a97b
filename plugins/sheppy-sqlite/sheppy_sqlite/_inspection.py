"""Operator inspection of :class:`~sheppy_sqlite.SQLiteBackend`: pages of records, capped counts, the
age of the queue's head, and the worker registry (capabilities ``TASK_PAGES`` and ``WORKER_REGISTRY``).

Every read here costs about what it returns, whatever the number of stored records: a page reads its
``limit + 1`` rows backwards through the index of its filter (``sql/migrations/0004``; with no filter,
the status index's streams merged, about ``limit`` + 10 rows), a count reads
at most ``cap + 1`` rows per status, and the head is one row of the claim index. The listing key and
``func`` are columns written when ``append``/``schedule`` store a row; a claim or an outcome only moves
the row in the status index, as it changes the status it already wrote.
"""

from __future__ import annotations

import math
import reprlib
import time
from collections.abc import Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sheppy_core.backend import (
    DEFAULT_COUNT_CAP,
    DEFAULT_PAGE_SIZE,
    STATS_KEYS,
    BackendInputError,
    Listing,
    TaskPage,
    check_count,
    check_listing,
    check_queue_name,
    check_task_id,
    decode_record,
    from_iso,
    page_of,
    record_from_json,
    utcnow,
)
from sheppy_sqlite._records import dumps

__all__ = ["Inspection", "count_params", "page_query"]

_KEY_MIN = -(2**63)
_KEY_MAX = 2**63 - 1
_INLINE_PAGE = 256  # larger pages are read off the event loop


def page_query(
    queue_name: str, listing: Listing, now: float, upper: tuple[int, str] | None = None
) -> tuple[str, dict[str, Any]]:
    """The named query and parameters that read the first ``listing.limit + 1`` rows of a page, strictly
    before ``upper`` (default: the listing's cursor, else its ``until``) in listing order."""
    if upper is None:
        upper = (listing.until, "") if listing.until is not None else (_KEY_MAX, "")
        if listing.after is not None and listing.after < upper:
            upper = listing.after
    params = {
        "queue": queue_name, "upper_key": upper[0], "upper_id": upper[1],
        "since": _KEY_MIN if listing.since is None else listing.since,
        "now": now, "limit": listing.limit + 1,
    }
    if listing.func is not None:
        return "list_tasks_by_func", {**params, "func": listing.func, "status": listing.status}
    if listing.status is not None:
        return "list_tasks_by_status", {**params, "status": listing.status}
    return "list_tasks", params


def count_params(queue_name: str, cap: int, now: float) -> dict[str, Any]:
    """The parameters of the ``count_by_status`` query: each count stops at ``cap + 1`` rows."""
    return {"queue": queue_name, "bound": cap + 1, "now": now}


def _ready_at(times: Mapping[str, object]) -> datetime:
    moments = []
    for value in times.values():
        if isinstance(value, str):
            try:
                moments.append(from_iso(value))
            except ValueError:
                continue
    return max(moments) if moments else utcnow()


class Inspection:
    """Mixed into ``SQLiteBackend``, which provides the statement plumbing declared here."""

    if TYPE_CHECKING:

        async def _rows(
            self, operation: str, name: str, params: dict[str, Any], *, inline: bool = True
        ) -> list[Any]: ...

    # -- pages -----------------------------------------------------------------------------------

    async def list_tasks(
        self,
        queue_name: str,
        *,
        status: str | None = None,
        func: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        cursor: str | None = None,
        limit: int = DEFAULT_PAGE_SIZE,
    ) -> TaskPage:
        """See ``Backend.list_tasks``. The columns say where a row belongs; each record read is checked
        again as decoded (``Listing.admits``), so a row whose data is not a task record is listed as
        its quarantine stand-in only where the stand-in belongs. Such rows are read past, one more query
        per page that met any."""
        check_queue_name(queue_name)
        listing = check_listing(status=status, func=func, since=since, until=until, cursor=cursor,
                                limit=limit)
        now = time.time()
        keyed: list[tuple[int, dict[str, Any]]] = []
        upper: tuple[int, str] | None = None
        while True:
            name, params = page_query(queue_name, listing, now, upper)
            rows = await self._rows("list_tasks", name, params, inline=listing.limit <= _INLINE_PAGE)
            for key, task_id, data in rows:
                record = decode_record(data, str(task_id))
                if listing.admits(int(key), record):
                    keyed.append((int(key), record))
            if len(keyed) > listing.limit or len(rows) < params["limit"]:
                return page_of(listing, keyed[: listing.limit + 1])
            upper = (int(rows[-1][0]), str(rows[-1][1]))

    # -- counts and the head ---------------------------------------------------------------------

    async def count_by_status(self, queue_name: str, *, cap: int = DEFAULT_COUNT_CAP) -> dict[str, int]:
        """See ``Backend.count_by_status``: one statement reading at most ``cap + 1`` rows per status."""
        check_queue_name(queue_name)
        cap = check_count(cap, "cap", "count_by_status")
        params = count_params(queue_name, cap, time.time())
        # Up to 8 * (cap + 1) index rows: off the event loop.
        rows = await self._rows("count_by_status", "count_by_status", params, inline=False)
        return {key: min(int(count), cap + 1) for key, count in zip(STATS_KEYS, rows[0], strict=True)}

    async def oldest_ready_at(self, queue_name: str) -> datetime | None:
        """See ``Backend.oldest_ready_at``: the three times of the head row, read from its data in SQL
        (the record itself is not decoded). A corrupt head counts as ready now."""
        check_queue_name(queue_name)
        rows = await self._rows("oldest_ready_at", "oldest_ready", {"queue": queue_name})
        if not rows:
            return None
        created, scheduled, retry, ok = rows[0]
        if not ok:
            return utcnow()
        return _ready_at({"created_at": created, "scheduled_at": scheduled, "next_retry_at": retry})

    # -- workers ---------------------------------------------------------------------------------

    async def register_worker(self, worker: dict[str, Any], *, ttl: float) -> None:
        """See ``Backend.register_worker``. Expired records of other workers are deleted here."""
        worker_id = worker.get("id") if isinstance(worker, Mapping) else None
        if not isinstance(worker_id, str) or not worker_id:
            raise BackendInputError(
                f"register_worker() worker must be a JSON object with a string id, got {reprlib.repr(worker)}"
            )
        if isinstance(ttl, bool) or not isinstance(ttl, int | float) or not 0 < ttl < math.inf:
            raise BackendInputError(f"register_worker() ttl must be a number of seconds > 0, got {ttl!r}")
        data = dumps(worker)
        await self._rows("register_worker", "purge_workers", {})
        await self._rows("register_worker", "register_worker", {"id": worker_id, "ttl": float(ttl),
                                                                "data": data})

    async def unregister_worker(self, worker_id: str) -> bool:
        """See ``Backend.unregister_worker``."""
        rows = await self._rows("unregister_worker", "unregister_worker", {"id": check_task_id(worker_id)})
        return bool(rows) and bool(rows[0][0])

    async def list_workers(self) -> list[dict[str, Any]]:
        """See ``Backend.list_workers``: the unexpired records, sorted by id (BINARY: code-point order)."""
        rows = await self._rows("list_workers", "list_workers", {}, inline=False)
        return [record_from_json(data) for (data,) in rows]
