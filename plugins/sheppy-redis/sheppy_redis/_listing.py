"""``list_tasks`` on Redis (capability ``TASK_PAGES``): pages read from the listing index.

The index (``_common.lua``) is a set of sorted sets per queue whose members are ``<listing key as 16 hex
digits><id>``, all scored 0, so ``ZRANGE ... BYLEX REV`` walks them in listing order: listing key
descending, then id descending in code-point order (UTF-8 byte order is code-point order). ``ls`` holds
every record, ``ls:<status>`` those of one status, ``lf:<func>`` those of one ``spec.func``. append and
schedule write a record's entries; the scripts that change its status move it between status sets (in
the same step); delete, clear, delete_cron and the retention sweep remove them. ``since``/``until`` and
the cursor are bounds on the members, so a page reads about ``limit`` records whatever the store holds.
With both ``status`` and ``func`` the smaller of the two sets is walked and the other filter checked per
record (like one SQL index and a filter): that walk is bounded per script call and resumed from Python,
so Redis is never blocked for long.

Stores written before the index existed are indexed on their first listing (the queue's ``lsv`` key
says it is done): the ``ids`` set is walked with SSCAN and the records not yet indexed are read and
filed, in steps. Every writer of this version keeps the index up to date, so upgrade every client
first: records an older client writes afterwards are dropped from the listing as stale.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from sheppy_core.backend import DEFAULT_PAGE_SIZE, Listing, TaskPage, check_listing, page_of
from sheppy_redis._keys import QueueKeys
from sheppy_redis._records import index_fields, listed_status, listing_member_key, member_listing_key

__all__ = ["TaskListing"]

_EXAMINED_PER_CALL = 5000
"""Index members one ``list_tasks.lua`` call looks at, at most, before handing back where it stopped."""
_INDEX_STEP = 500
"""Ids per step when indexing a store written before the index."""


class TaskListing:
    """Mixin of :class:`RedisBackend` (which provides the plumbing declared here)."""

    async def _run(self, operation: str, name: str, keys: QueueKeys, args: list[Any]) -> Any:
        raise NotImplementedError

    def _keys(self, queue_name: str) -> QueueKeys:
        raise NotImplementedError

    async def _fetch(self, keys: QueueKeys, ids: list[str]) -> dict[str, dict[str, Any]]:
        raise NotImplementedError

    async def _read_records(
        self, keys: QueueKeys, pairs: Iterable[tuple[str, bytes | None]]
    ) -> dict[str, dict[str, Any]]:
        raise NotImplementedError

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
        listing = check_listing(
            status=status, func=func, since=since, until=until, cursor=cursor, limit=limit
        )
        keys = self._keys(queue_name)
        upper = b"+"
        if listing.until is not None:
            upper = b"(" + listing_member_key(listing.until).encode("ascii")
        if listing.after is not None:
            after_key, after_id = listing.after
            after_id_bytes = after_id.encode("utf-8", "surrogatepass")
            after = b"(" + listing_member_key(after_key).encode("ascii") + after_id_bytes
            upper = after if upper == b"+" else min(upper, after)
        want = listing.limit + 1  # one more tells whether a next page exists
        while True:
            if listing.status == "processing":
                found = await self._claimed_page(keys, listing, upper, want)
            else:
                found = await self._indexed_page(keys, listing, upper, want)
            if found is not None:
                return page_of(listing, found)
            await self._index_old_records(keys)

    async def _indexed_page(
        self, keys: QueueKeys, listing: Listing, upper: bytes, want: int
    ) -> list[tuple[int, dict[str, Any]]] | None:
        """Up to ``want`` records from the index sets, in listing order; None if not indexed yet."""
        lower = b"-" if listing.since is None else b"[" + listing_member_key(listing.since).encode("ascii")
        found: list[tuple[bytes, bytes]] = []
        while True:
            wanted = want - len(found)
            args = [listing.status or "", listing.func or "", upper, lower, wanted, _EXAMINED_PER_CALL]
            reply = await self._run("list_tasks", "list_tasks", keys, args)
            if reply is None:
                return None
            flat, resume = reply
            found.extend(zip(flat[0::2], flat[1::2], strict=True))
            if not resume or len(found) >= want:
                break
            upper = b"(" + resume
        ids = [member[16:].decode("utf-8", "surrogatepass") for member, _ in found]
        records = await self._read_records(keys, zip(ids, (text for _, text in found), strict=True))
        return [
            (member_listing_key(member), records[task_id])
            for (member, _), task_id in zip(found, ids, strict=True)
            if task_id in records
        ]

    async def _claimed_page(
        self, keys: QueueKeys, listing: Listing, upper: bytes, want: int
    ) -> list[tuple[int, dict[str, Any]]] | None:
        """Up to ``want`` processing records, in listing order, from the claims (as many as the tasks in
        flight: a claim writes nothing to the index) and the acknowledged ones; None if not indexed
        yet."""
        since = b"" if listing.since is None else listing_member_key(listing.since).encode("ascii")
        bounds = [upper, b"[" + since if since else b"-", want]
        members = await self._run("list_tasks", "list_claimed", keys, bounds)
        if members is None:
            return None
        lower = since
        below = None if upper == b"+" else upper[1:]
        chosen = sorted(
            (bytes(m) for m in members if m >= lower and (below is None or m < below)), reverse=True
        )
        found: list[tuple[int, dict[str, Any]]] = []
        for start in range(0, len(chosen), want):
            step = chosen[start : start + want]
            ids = [member[16:].decode("utf-8", "surrogatepass") for member in step]
            records = await self._fetch(keys, ids)
            for member, task_id in zip(step, ids, strict=True):
                key, stored = member_listing_key(member), records.get(task_id)
                if stored is not None and listing.admits(key, stored):
                    found.append((key, stored))
            if len(found) >= want:
                break
        return found[:want]

    async def _index_old_records(self, keys: QueueKeys) -> None:
        """File every record of a store written before the listing index (see the module docstring)."""
        position = b"0"
        while True:
            step = [position, _INDEX_STEP]
            position, missing = await self._run("list_tasks", "listing_unindexed", keys, step)
            ids = [i.decode("utf-8", "surrogatepass") for i in missing]
            records = await self._fetch(keys, ids) if ids else {}
            now = datetime.now(UTC)
            args: list[Any] = ["1" if position == b"0" else "0"]
            for task_id, stored in records.items():
                args += [task_id, *index_fields(stored, now), listed_status(stored)]
            await self._run("list_tasks", "listing_index", keys, args)
            if position == b"0":
                return
