"""The operator inspection API of :class:`~sheppy_postgres.PostgresBackend`: pages, capped counts, workers.

Capabilities ``TASK_PAGES`` and ``WORKER_REGISTRY``. ``append``/``schedule`` store each record's listing
key (``tasks.listed_at``) and ``spec.func`` (``tasks.func``, stored like a name); a page is one backward
scan of an index on ``(queue, [status | func,] listed_at, id COLLATE "C")`` that stops after
``limit + 1`` rows, whatever the number of records (migration 0005). Worker records live in table
``workers`` with an expiry on the server's clock.
"""

from __future__ import annotations

import math
import reprlib
from collections.abc import Mapping
from dataclasses import replace
from datetime import datetime
from typing import TYPE_CHECKING, Any, Final

from sheppy_core.backend import (
    DEFAULT_COUNT_CAP,
    DEFAULT_PAGE_SIZE,
    STATS_KEYS,
    Listing,
    TaskPage,
    check_count,
    check_listing,
    check_task_id,
    encode_cursor,
    page_of,
    record_from_json,
    record_to_json,
)
from sheppy_core.exceptions import BackendInputError
from sheppy_postgres._records import encode_name, escape_name, row_to_record

if TYPE_CHECKING:
    import asyncpg

__all__ = ["OperatorInspection", "stored_func"]

_NO_LOWER_BOUND: Final = -(2**63)
_NO_UPPER_BOUND: Final = (2**63 - 1, "")
"""``(listed_at, id) < this`` holds for every row: no key reaches 2**63 - 1 (year 292,277)."""


def stored_func(record: Mapping[str, Any]) -> str | None:
    """What ``tasks.func`` holds for a record: its ``spec.func`` in stored form (a name over 1000 bytes
    as its hash, as :func:`~sheppy_postgres._records.encode_name` stores ids), or None when it has none."""
    spec = record.get("spec")
    func = spec.get("func") if isinstance(spec, Mapping) else None
    return encode_name(func) if isinstance(func, str) else None


class OperatorInspection:
    """Mixed into ``PostgresBackend``, which provides the query plumbing declared here."""

    if TYPE_CHECKING:

        async def _fetch(
            self, name: str, *args: Any, conn: Any = None, retry: bool = False
        ) -> list[asyncpg.Record]: ...

        async def _fetchrow(
            self, name: str, *args: Any, conn: Any = None, retry: bool = False
        ) -> asyncpg.Record: ...

        @staticmethod
        def _queue(queue_name: str) -> str: ...

    # -- list_tasks ------------------------------------------------------------------------------

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
        """One page in listing order (see the contract), read through an index.

        The rows' columns decide the order and the filters; each record is then checked as read (a
        stored text that reads as a quarantine stand-in has no ``spec``, so no ``func`` finds it) and,
        should that drop some, the scan goes on from the last row read. Ids that hold a backslash or NUL,
        or are over 1000 bytes, tie in the order of their stored form (see ``_records.encode_name``).
        """
        listing = check_listing(
            status=status, func=func, since=since, until=until, cursor=cursor, limit=limit
        )
        queue = self._queue(queue_name)
        admits = replace(listing, after=None)  # the cursor is applied in SQL, on stored ids
        keyed: list[tuple[int, dict[str, Any], str]] = []
        upper: tuple[int, str] | None = None
        while True:
            name, args = self._listing_statement(queue, listing, upper)
            rows = await self._fetch(name, *args, retry=True)
            for row in rows:
                record = row_to_record(row)
                if admits.admits(row["listed_at"], record):
                    keyed.append((row["listed_at"], record, row["id"]))
            if len(keyed) > listing.limit or len(rows) <= listing.limit:
                break
            upper = (rows[-1]["listed_at"], rows[-1]["id"])
        page = page_of(listing, [(key, record) for key, record, _ in keyed])
        if page.next_cursor is None:
            return page
        # The cursor names the stored id, which the next page's SQL compares with.
        last_key, _, last_stored = keyed[listing.limit - 1]
        return TaskPage(records=page.records, next_cursor=encode_cursor(last_key, last_stored))

    def _listing_statement(
        self, queue: str, listing: Listing, upper: tuple[int, str] | None = None
    ) -> tuple[str, list[Any]]:
        """The named query and arguments that read up to ``limit + 1`` rows of ``listing`` for stored
        queue ``queue``, strictly before ``upper`` (a ``(listed_at, stored id)`` already read) if given."""
        bound = _NO_UPPER_BOUND if listing.until is None else (listing.until, "")  # "" precedes every id
        if listing.after is not None:
            key, after_id = listing.after
            key = max(key, _NO_LOWER_BOUND)  # a cursor is a string from outside: keep it a bigint
            # A cursor holds a stored id; one with NUL came from elsewhere (text cannot hold it).
            bound = min(bound, (key, escape_name(after_id) if "\x00" in after_id else after_id))
        if upper is not None:
            bound = min(bound, upper)
        since = _NO_LOWER_BOUND if listing.since is None else listing.since
        args: list[Any] = [queue, since, bound[0], bound[1], listing.limit + 1]
        stored = None if listing.func is None else encode_name(listing.func)
        if listing.status is not None and stored is not None:
            return "list_tasks_by_status_func", [*args, listing.status, stored]
        if listing.status is not None:
            return "list_tasks_by_status", [*args, listing.status]
        if stored is not None:
            return "list_tasks_by_func", [*args, stored]
        return "list_tasks", args

    # -- counts ----------------------------------------------------------------------------------

    async def count_by_status(self, queue_name: str, *, cap: int = DEFAULT_COUNT_CAP) -> dict[str, int]:
        """``get_stats``' counts, each from at most ``cap + 1`` index entries (one statement)."""
        cap = check_count(cap, "cap", "count_by_status")
        row = await self._fetchrow("count_by_status", self._queue(queue_name), cap + 1, retry=True)
        return {key: int(row[key]) for key in STATS_KEYS}

    # -- workers ---------------------------------------------------------------------------------

    async def register_worker(self, worker: dict[str, Any], *, ttl: float) -> None:
        worker_id = worker.get("id") if isinstance(worker, Mapping) else None
        if not isinstance(worker_id, str) or not worker_id:
            raise BackendInputError(
                f"register_worker() worker must be a JSON object with a string id, got {reprlib.repr(worker)}"
            )
        if isinstance(ttl, bool) or not isinstance(ttl, int | float) or not 0 < ttl < math.inf:
            raise BackendInputError(f"register_worker() ttl must be a number of seconds > 0, got {ttl!r}")
        await self._fetch("register_worker", encode_name(worker_id), record_to_json(worker), float(ttl))

    async def unregister_worker(self, worker_id: str) -> bool:
        row = await self._fetchrow("unregister_worker", encode_name(check_task_id(worker_id)))
        return bool(row["alive"])

    async def list_workers(self) -> list[dict[str, Any]]:
        """The live workers, sorted by id in code-point order (in Python: stored ids may be escaped or
        hashed). Deletes the expired ones on the way."""
        rows = await self._fetch("list_workers", retry=True)
        workers = [record_from_json(r["data"]) for r in rows]
        return sorted(workers, key=lambda w: str(w.get("id")))
