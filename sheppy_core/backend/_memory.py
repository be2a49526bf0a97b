"""``MemoryBackend``: the reference implementation of every clause of the contract, in one process.

It is what the contract means, written as plainly as possible: each queue is a handful of dicts, and
every method runs without an ``await`` between reading and writing, which makes it atomic on one event
loop. The store belongs to the backend object (no ``SHARED_STORE``): two ``MemoryBackend()`` objects
are two stores.

``instant_processing=True`` (the default, and what ``memory://`` gives, as in sheppy) is read by
``Queue``: ``add()``/``schedule()`` then run the task inside the caller. The backend itself always
behaves as a plain store, so the conformance suite judges it like any other.
"""

from __future__ import annotations

import asyncio
import heapq
import json
import logging
import math
import reprlib
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, ClassVar, Self
from urllib.parse import parse_qsl, urlsplit

from sheppy_core.backend._base import CONTRACT_VERSION, Backend
from sheppy_core.backend._capabilities import (
    BLOCKING_POP,
    CHANGE_FEED,
    CRON,
    RATE_LIMIT,
    RESULT_NOTIFY,
    TASK_PAGES,
    TTL,
    WORKER_REGISTRY,
    WORKFLOWS,
    check_no_connection,
)
from sheppy_core.backend._checks import (
    check_aware,
    check_count,
    check_queue_name,
    check_rate_limit,
    check_seconds,
    check_task_id,
    check_task_ids,
    unfinished_delete_error,
)
from sheppy_core.backend._pages import DEFAULT_PAGE_SIZE, TaskPage, check_listing, listing_key, page_of
from sheppy_core.backend._rate_limits import FixedWindow, take_fixed_window, take_sliding_window
from sheppy_core.backend._records import (
    DEFAULT_TTL_SECONDS,
    STATS_KEYS,
    decode_record,
    due_at,
    is_finished,
    is_quarantined,
    retention_seconds,
    task_id_of,
    to_iso,
    utcnow,
)
from sheppy_core.backend._url import redact_url
from sheppy_core.backend._url_options import COMMON_URL_OPTIONS, parse_common_options
from sheppy_core.exceptions import (
    BackendConnectionError,
    BackendInputError,
    ConfigurationError,
    CorruptRecordError,
)

__all__ = ["MemoryBackend"]

logger = logging.getLogger("sheppy.backend")


@dataclass
class _Queue:
    """Everything one queue holds. A task id is in at most one of ``queued``/``claimed``/``scheduled``."""

    records: dict[str, dict[str, Any]] = field(default_factory=dict)
    # id -> listing key, fixed when append/schedule stores the record (list_tasks' order and times).
    listing: dict[str, int] = field(default_factory=dict)
    queued: dict[str, None] = field(default_factory=dict)  # insertion order is claim order
    claimed: dict[str, datetime] = field(default_factory=dict)  # id -> lease expiry
    scheduled: dict[str, datetime] = field(default_factory=dict)  # id -> due time
    expires: dict[str, float] = field(default_factory=dict)  # id -> time.time() of expiry
    # (expiry, id) for every expiry set, soonest first: a purge looks at the due ones only. Entries
    # whose id was stored again or deleted since no longer match ``expires`` and are dropped unseen.
    expiry_order: list[tuple[float, str]] = field(default_factory=list)
    crons: dict[str, dict[str, Any]] = field(default_factory=dict)
    sliding: dict[str, dict[str, float]] = field(default_factory=dict)  # key -> {task_id: start}
    fixed: dict[str, FixedWindow] = field(default_factory=dict)
    workflows: dict[str, dict[str, Any]] = field(default_factory=dict)
    workflow_pending: dict[str, set[str]] = field(default_factory=dict)
    listed: bool = False  # True once a task was appended or scheduled: what list_queues reports


def _copy(data: Any) -> Any:
    """A JSON round trip: stores only what JSON can carry, and hands out copies callers cannot alias."""
    try:
        return json.loads(json.dumps(data))
    except (TypeError, ValueError) as exc:
        raise BackendInputError(f"record is not JSON-serialisable: {exc}") from exc


class MemoryBackend(Backend):
    """In-process storage; the reference backend.

    :param instant_processing: when True, ``Queue.add``/``Queue.schedule`` run tasks immediately inside
        the caller (sheppy's default for ``memory://``); False makes it a real queue a ``Worker`` drains.
    :param dependency_overrides: used by inline processing, as ``Worker(dependency_overrides=...)``.
    :param ttl: default retention of finished records in seconds (None: for ever); by default
        :data:`~sheppy_core.backend.DEFAULT_TTL_SECONDS` (30 days), as every bundled backend.
    :param error_ttl: retention of failed/cancelled/crashed records; ``"inherit"`` uses ``ttl``.
    :param lease: default claim lease in seconds.
    """

    url_schemes: ClassVar[tuple[str, ...]] = ("memory",)
    contract_version: ClassVar[int] = CONTRACT_VERSION
    capabilities: ClassVar[frozenset[str]] = frozenset(
        {BLOCKING_POP, RESULT_NOTIFY, RATE_LIMIT, CRON, TTL, WORKFLOWS, TASK_PAGES, WORKER_REGISTRY,
         CHANGE_FEED}
    )

    def __init__(
        self,
        *,
        instant_processing: bool = True,
        dependency_overrides: Mapping[Callable[..., Any], Callable[..., Any]] | None = None,
        ttl: float | None = DEFAULT_TTL_SECONDS,
        error_ttl: float | str | None = "inherit",
        lease: float | None = None,
    ) -> None:
        self.instant_processing = instant_processing
        self.dependency_overrides = dict(dependency_overrides or {})
        self.ttl = ttl
        self.error_ttl = error_ttl
        if lease is not None:
            self.lease_duration = lease
        self._queues: dict[str, _Queue] = {}
        # Workers are not per queue: id -> (record, time.monotonic() of expiry).
        self._workers: dict[str, tuple[dict[str, Any], float]] = {}
        self._connected = False
        self._changed: asyncio.Event | None = None
        self._changed_loop: asyncio.AbstractEventLoop | None = None

    @classmethod
    def from_url(cls, url: str) -> Self:
        """``memory://`` with optional ``?instant_processing=false&lease=5&ttl=60&error_ttl=inherit``
        (``ttl``: seconds, or ``none`` to keep finished records for ever, default 30 days; ``error_ttl``
        the same for failed/cancelled/crashed records, or ``inherit``, the default)."""
        options = dict(parse_qsl(urlsplit(url).query))
        known = {"instant_processing"} | COMMON_URL_OPTIONS
        unknown = set(options) - known
        if unknown:
            raise ConfigurationError(f"unknown memory:// option(s) {sorted(unknown)}; known: {sorted(known)}")
        instant = options.get("instant_processing", "true").lower() not in ("0", "false", "no", "off")
        common = parse_common_options(options, redact_url(url))
        return cls(instant_processing=instant, lease=common.lease, ttl=common.ttl, error_ttl=common.error_ttl)

    def __repr__(self) -> str:
        return f"<MemoryBackend instant_processing={self.instant_processing}>"

    def reset(self) -> None:
        """Forget everything (between tests)."""
        self._queues.clear()
        self._workers.clear()
        self._notify()

    # -- plumbing --------------------------------------------------------------------------------

    @property
    def is_connected(self) -> bool:
        return self._connected

    async def connect(self) -> None:
        self._connected = True

    async def disconnect(self) -> None:
        self._connected = False
        self._notify()

    def _check_connected(self) -> None:
        if not self._connected:
            raise BackendConnectionError("MemoryBackend is not connected; call connect() first")

    def _queue(self, queue_name: str, *, create: bool = False) -> _Queue:
        self._check_connected()
        check_queue_name(queue_name)
        queue = self._queues.get(queue_name)
        if queue is None:
            queue = _Queue()
            if create:
                self._queues[queue_name] = queue
        self._purge_expired(queue)
        return queue

    @staticmethod
    def _purge_expired(queue: _Queue) -> None:
        order = queue.expiry_order
        if not order:
            return
        now = time.time()
        while order and order[0][0] <= now:
            at, task_id = heapq.heappop(order)
            if queue.expires.get(task_id) == at:
                del queue.expires[task_id]
                queue.records.pop(task_id, None)
                queue.listing.pop(task_id, None)

    def _notify(self) -> None:
        # One event for every waiter; each change wakes them all and they re-check. Waiters are few
        # (workers and wait_for calls of one process), so the simplicity is worth it.
        if self._changed is not None:
            self._changed.set()
            self._changed = None

    async def _wait_for_change(self, timeout: float) -> bool:
        """Wait for the next :meth:`_notify` (of any queue); True if it came within ``timeout``."""
        loop = asyncio.get_running_loop()
        if self._changed is None or self._changed_loop is not loop:
            # TestQueue runs a fresh event loop per call; an event bound to an old loop cannot be awaited.
            self._changed, self._changed_loop = asyncio.Event(), loop
        changed = self._changed
        try:
            async with asyncio.timeout(timeout):
                await changed.wait()
        except TimeoutError:
            return False
        return True

    def _name_of(self, queue: _Queue) -> str:
        return next((name for name, q in self._queues.items() if q is queue), "?")

    def _forget_position(self, queue: _Queue, task_id: str) -> None:
        queue.queued.pop(task_id, None)
        queue.claimed.pop(task_id, None)
        queue.scheduled.pop(task_id, None)

    def _store(self, queue: _Queue, record: dict[str, Any]) -> None:
        task_id = record["id"]
        queue.records[task_id] = record
        queue.expires.pop(task_id, None)
        if is_finished(record):
            seconds = retention_seconds(record, self.ttl, self.error_ttl)
            if seconds is not None:
                at = queue.expires[task_id] = time.time() + seconds
                heapq.heappush(queue.expiry_order, (at, task_id))
                if len(queue.expiry_order) > 2 * len(queue.expires) + 1024:
                    # Mostly entries of records stored again since: rebuild from what is current.
                    queue.expiry_order = [(when, t) for t, when in queue.expires.items()]
                    heapq.heapify(queue.expiry_order)

    # -- enqueue ---------------------------------------------------------------------------------

    async def append(
        self, queue_name: str, tasks: list[dict[str, Any]], unique: bool = True, *, connection: object = None
    ) -> list[bool]:
        check_no_connection(self, connection)
        queue = self._queue(queue_name, create=True)
        queue.listed = True
        records = [_copy(t) for t in tasks]
        for record in records:
            record["id"] = task_id_of(record)
        results: list[bool] = []
        for record in records:
            task_id = record["id"]
            if unique and task_id in queue.records:
                results.append(False)
                continue
            record["status"] = "pending"
            self._forget_position(queue, task_id)
            self._store(queue, record)
            queue.listing[task_id] = listing_key(record, utcnow())
            queue.queued[task_id] = None
            results.append(True)
        if any(results):
            self._notify()
        return results

    async def schedule(
        self,
        queue_name: str,
        task_data: dict[str, Any],
        at: datetime,
        unique: bool = True,
        *,
        connection: object = None,
    ) -> bool:
        check_no_connection(self, connection)
        check_aware(at, "at", "schedule")
        queue = self._queue(queue_name, create=True)
        queue.listed = True
        record = _copy(task_data)
        task_id = record["id"] = task_id_of(record)
        if unique and task_id in queue.records:
            return False
        record["status"] = "scheduled"
        record["scheduled_at"] = to_iso(at)
        self._forget_position(queue, task_id)
        self._store(queue, record)
        queue.listing[task_id] = listing_key(record, utcnow())
        queue.scheduled[task_id] = at
        self._notify()
        return True

    # -- claim -----------------------------------------------------------------------------------

    def inject_stored_text(self, queue_name: str, task_id: str, text: str) -> None:
        """Test hook: queue a task whose stored record is ``text`` as it would be read back from a
        store (for the ``robust.corrupt_record`` clause: text that is not a task record). Memory keeps
        records as objects, so what a read of that text gives is kept instead."""
        queue = self._queue(queue_name, create=True)
        queue.listed = True
        self._forget_position(queue, task_id)
        queue.records[task_id] = decode_record(text, task_id)
        queue.listing[task_id] = listing_key(queue.records[task_id], utcnow())
        queue.queued[task_id] = None
        self._notify()

    def _claim(
        self, queue: _Queue, limit: int, worker_id: str, lease: float, only: list[str] | None = None
    ) -> list[dict[str, Any]]:
        now = utcnow()
        expired = [t for t, until in queue.claimed.items() if until <= now]
        expiry = now + timedelta(seconds=lease)
        claimed: list[dict[str, Any]] = []
        candidates = [*expired, *queue.queued] if only is None else [t for t in only if t in queue.queued]
        for task_id in candidates:
            if len(claimed) >= limit:
                break
            record = queue.records[task_id]
            if is_quarantined(record):
                # Moved aside for good (finished, counted as quarantined), never claimed.
                self._forget_position(queue, task_id)
                self._store(queue, record)
                reason = record["quarantine"]["reason"]
                logger.warning("%s", CorruptRecordError(self._name_of(queue), task_id, reason))
                continue
            queue.queued.pop(task_id, None)
            queue.claimed[task_id] = expiry
            record["status"] = "processing"
            record["claimed_by"] = worker_id
            record["lease_expires_at"] = to_iso(expiry)
            record["deliveries"] = int(record.get("deliveries") or 0) + 1
            claimed.append(_copy(record))
        return claimed

    async def pop(
        self,
        queue_name: str,
        limit: int = 1,
        timeout: float | None = None,
        *,
        worker_id: str | None = None,
        lease: float | None = None,
    ) -> list[dict[str, Any]]:
        check_count(limit, "limit", "pop")
        owner = worker_id or self.client_id
        duration = self.lease_duration if lease is None else lease
        deadline = None if timeout is None or timeout <= 0 else time.monotonic() + timeout
        while True:
            queue = self._queue(queue_name)
            claimed = self._claim(queue, limit, owner, duration)
            if claimed or deadline is None:
                return claimed
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return []
            # Wake for an append, or when the earliest live lease could expire.
            if queue.claimed:
                soonest = min(queue.claimed.values())
                remaining = min(remaining, max(0.001, (soonest - utcnow()).total_seconds()))
            await self._wait_for_change(remaining)

    async def wait_for_change(self, queue_names: list[str], timeout: float) -> bool:
        """Woken by the in-process event every write that can unblock a waiter sets (of any queue: a
        True may be for another queue, which the contract allows)."""
        seconds = check_seconds(timeout, "timeout", "wait_for_change")
        self._check_connected()
        for name in queue_names:
            check_queue_name(name)
        return await self._wait_for_change(seconds)

    # -- TestQueue's hooks (not part of the contract) ---------------------------------------------

    def _claim_queued(self, queue_name: str, task_ids: list[str], worker_id: str) -> list[dict[str, Any]]:
        """Claim exactly these queued tasks, in this order (ids not queued are skipped): how
        ``TestQueue.process_scheduled`` runs the tasks it moved out of the schedule, and only those."""
        queue = self._queue(queue_name)
        return self._claim(queue, len(task_ids), worker_id, self.lease_duration, only=task_ids)

    def _requeue_now(self, queue_name: str, task_id: str) -> bool:
        """Move a scheduled (or retrying) task to the end of the queue, due at once: how ``TestQueue``
        re-queues a retry without waiting for its delay. False if the task is not in the schedule."""
        queue = self._queue(queue_name)
        if task_id not in queue.scheduled:
            return False
        del queue.scheduled[task_id]
        queue.queued[task_id] = None
        queue.records[task_id]["status"] = "pending"
        self._notify()
        return True

    async def acknowledge(self, queue_name: str, task_id: str) -> bool:
        task_id = check_task_id(task_id)
        queue = self._queue(queue_name)
        if task_id not in queue.claimed:
            return False
        del queue.claimed[task_id]
        record = queue.records.get(task_id)
        if record is not None:
            record.pop("claimed_by", None)
            record.pop("lease_expires_at", None)
        return True

    async def heartbeat(
        self,
        queue_name: str,
        task_ids: list[str],
        *,
        worker_id: str | None = None,
        lease: float | None = None,
    ) -> list[str]:
        task_ids = check_task_ids(task_ids)
        queue = self._queue(queue_name)
        owner = worker_id or self.client_id
        expiry = utcnow() + timedelta(seconds=self.lease_duration if lease is None else lease)
        held: list[str] = []
        for task_id in task_ids:
            record = queue.records.get(task_id)
            if task_id in queue.claimed and record is not None and record.get("claimed_by") == owner:
                queue.claimed[task_id] = expiry
                record["lease_expires_at"] = to_iso(expiry)
                held.append(task_id)
        return held

    # -- results ---------------------------------------------------------------------------------

    async def store_result(self, queue_name: str, task_data: dict[str, Any]) -> bool:
        queue = self._queue(queue_name)
        record = _copy(task_data)
        task_id = record["id"] = task_id_of(record)
        if task_id not in queue.records:
            return False
        record["claimed_by"] = None
        record["lease_expires_at"] = None
        self._forget_position(queue, task_id)
        if not is_finished(record):
            if record.get("status") in ("retrying", "scheduled"):
                queue.scheduled[task_id] = due_at(record)
            else:
                record["status"] = "pending"
                queue.queued[task_id] = None
        self._store(queue, record)
        self._notify()
        return True

    async def get_results(
        self, queue_name: str, task_ids: list[str], timeout: float | None = None
    ) -> dict[str, dict[str, Any]]:
        task_ids = check_task_ids(task_ids)
        if not task_ids:
            return {}
        deadline = (
            None
            if timeout is None or timeout < 0
            else (math.inf if timeout == 0 else time.monotonic() + timeout)
        )
        wanted = list(dict.fromkeys(task_ids))
        while True:
            queue = self._queue(queue_name)
            found = {
                t: _copy(queue.records[t])
                for t in wanted
                if t in queue.records and is_finished(queue.records[t])
            }
            if deadline is None or len(found) == len(wanted):
                return found
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                missing = len(wanted) - len(found)
                raise TimeoutError(f"{missing} of {len(wanted)} task(s) did not finish within {timeout} s")
            await self._wait_for_change(min(remaining, 3600.0))

    # -- inspection ------------------------------------------------------------------------------

    async def get_tasks(self, queue_name: str, task_ids: list[str]) -> dict[str, dict[str, Any]]:
        task_ids = check_task_ids(task_ids)
        queue = self._queue(queue_name)
        return {t: _copy(queue.records[t]) for t in task_ids if t in queue.records}

    async def get_all_tasks(self, queue_name: str) -> list[dict[str, Any]]:
        return [_copy(r) for r in self._queue(queue_name).records.values()]

    async def get_pending(self, queue_name: str, count: int = 1) -> list[dict[str, Any]]:
        check_count(count, "count", "get_pending")
        queue = self._queue(queue_name)
        return [_copy(queue.records[t]) for t in list(queue.queued)[:count]]

    async def get_scheduled(self, queue_name: str) -> list[dict[str, Any]]:
        queue = self._queue(queue_name)
        ordered = sorted(queue.scheduled.items(), key=lambda item: item[1])
        return [_copy(queue.records[t]) for t, _ in ordered]

    async def next_scheduled_at(self, queue_name: str) -> datetime | None:
        return min(self._queue(queue_name).scheduled.values(), default=None)

    async def size(self, queue_name: str) -> int:
        return len(self._queue(queue_name).queued)

    async def get_stats(self, queue_name: str) -> dict[str, int]:
        queue = self._queue(queue_name)
        stats = dict.fromkeys(STATS_KEYS, 0)
        stats["pending"] = len(queue.queued)
        stats["processing"] = len(queue.claimed)
        stats["scheduled"] = len(queue.scheduled)
        for record in queue.records.values():
            status = record.get("status")
            if is_finished(record) and status in stats:
                stats[status] += 1
        return stats

    async def list_queues(self) -> dict[str, int]:
        if not self._connected:
            raise BackendConnectionError("MemoryBackend is not connected; call connect() first")
        return {name: len(q.queued) for name, q in sorted(self._queues.items()) if q.listed}

    async def clear(self, queue_name: str) -> int:
        queue = self._queue(queue_name)
        removed = len(queue.records) + len(queue.crons)
        self._queues.pop(queue_name, None)
        self._notify()
        return removed

    # -- operator inspection ---------------------------------------------------------------------

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
        queue = self._queue(queue_name)
        admitted = (
            (key, task_id)
            for task_id, key in queue.listing.items()
            if listing.admits(key, queue.records[task_id])
        )
        # Listing order is (key, id) descending: the limit + 1 largest pairs, without sorting them all.
        shown = heapq.nlargest(listing.limit + 1, admitted)
        return page_of(listing, [(key, _copy(queue.records[task_id])) for key, task_id in shown])

    def _live_workers(self) -> dict[str, tuple[dict[str, Any], float]]:
        self._check_connected()
        now = time.monotonic()
        for worker_id in [w for w, (_, expiry) in self._workers.items() if expiry <= now]:
            del self._workers[worker_id]
        return self._workers

    async def register_worker(self, worker: dict[str, Any], *, ttl: float) -> None:
        worker_id = worker.get("id") if isinstance(worker, Mapping) else None
        if not isinstance(worker_id, str) or not worker_id:
            raise BackendInputError(
                f"register_worker() worker must be a JSON object with a string id, got {reprlib.repr(worker)}"
            )
        if isinstance(ttl, bool) or not isinstance(ttl, int | float) or not 0 < ttl < math.inf:
            raise BackendInputError(f"register_worker() ttl must be a number of seconds > 0, got {ttl!r}")
        record = _copy(worker)
        self._live_workers()[worker_id] = (record, time.monotonic() + ttl)

    async def unregister_worker(self, worker_id: str) -> bool:
        worker_id = check_task_id(worker_id)
        return self._live_workers().pop(worker_id, None) is not None

    async def list_workers(self) -> list[dict[str, Any]]:
        workers = self._live_workers()
        return [_copy(workers[w][0]) for w in sorted(workers)]

    # -- scheduling ------------------------------------------------------------------------------

    async def pop_scheduled(self, queue_name: str, now: datetime | None = None) -> list[dict[str, Any]]:
        queue = self._queue(queue_name)
        moment = utcnow() if now is None else check_aware(now, "now", "pop_scheduled")
        due = sorted(((at, t) for t, at in queue.scheduled.items() if at <= moment), key=lambda x: x[0])
        moved: list[dict[str, Any]] = []
        for _, task_id in due:
            del queue.scheduled[task_id]
            queue.queued[task_id] = None
            record = queue.records[task_id]
            record["status"] = "pending"
            moved.append(_copy(record))
        if moved:
            self._notify()
        return moved

    # -- cancel / delete -------------------------------------------------------------------------

    async def cancel(self, queue_name: str, task_id: str) -> dict[str, Any] | None:
        task_id = check_task_id(task_id)
        queue = self._queue(queue_name)
        if task_id not in queue.queued and task_id not in queue.scheduled:
            return None
        self._forget_position(queue, task_id)
        record = queue.records[task_id]
        record["status"] = "cancelled"
        record["finished_at"] = to_iso(utcnow())
        self._store(queue, record)
        self._notify()
        cancelled: dict[str, Any] = _copy(record)
        return cancelled

    async def delete_task(self, queue_name: str, task_id: str) -> bool:
        task_id = check_task_id(task_id)
        queue = self._queue(queue_name)
        record = queue.records.get(task_id)
        if record is None:
            return False
        if not is_finished(record):
            raise unfinished_delete_error(task_id, record.get("status"))
        del queue.records[task_id]
        queue.listing.pop(task_id, None)
        queue.expires.pop(task_id, None)
        # A corrupt record reads as finished (quarantined) while it still waits in the queue.
        self._forget_position(queue, task_id)
        return True

    # -- cron ------------------------------------------------------------------------------------

    async def add_cron(self, queue_name: str, deterministic_id: str, task_cron: dict[str, Any]) -> bool:
        queue = self._queue(queue_name, create=True)
        if deterministic_id in queue.crons:
            return False
        queue.crons[deterministic_id] = _copy(task_cron)
        return True

    async def delete_cron(self, queue_name: str, deterministic_id: str) -> bool:
        queue = self._queue(queue_name)
        if queue.crons.pop(deterministic_id, None) is None:
            return False
        for task_id in list(queue.scheduled):
            record = queue.records[task_id]
            cron_id = record.get("cron_id")
            occurrence = cron_id is not None and str(cron_id) == deterministic_id
            if occurrence and record.get("status") == "scheduled":
                del queue.scheduled[task_id]
                del queue.records[task_id]
                queue.listing.pop(task_id, None)
        return True

    async def get_crons(self, queue_name: str) -> list[dict[str, Any]]:
        return [_copy(c) for c in self._queue(queue_name).crons.values()]

    # -- rate limits -----------------------------------------------------------------------------

    async def acquire_rate_limit(
        self,
        queue_name: str,
        key: str,
        max_rate: int,
        rate_period: float,
        task_id: str,
        strategy: str = "sliding_window",
    ) -> float | None:
        check_rate_limit(max_rate, rate_period, strategy)
        queue = self._queue(queue_name, create=True)
        now = time.time()
        if strategy == "sliding_window":
            return take_sliding_window(queue.sliding.setdefault(key, {}), max_rate, rate_period, task_id, now)
        window = queue.fixed.setdefault(key, FixedWindow())  # fixed_window: check_rate_limit let no other by
        return take_fixed_window(window, max_rate, rate_period, task_id, now)

    # -- workflows -------------------------------------------------------------------------------

    @staticmethod
    def _workflow_finished(record: dict[str, Any]) -> bool:
        return record.get("finished_at") is not None or record.get("completed") is True

    async def store_workflow(
        self, queue_name: str, workflow_data: dict[str, Any], *, if_version: int | None = None
    ) -> bool:
        queue = self._queue(queue_name, create=True)
        record = _copy(workflow_data)
        workflow_id = record["id"] = task_id_of(record)
        if if_version is not None:
            stored = queue.workflows.get(workflow_id)
            current = int(stored.get("version") or 0) if stored is not None else 0
            if current != if_version:
                return False
        queue.workflows[workflow_id] = record
        if self._workflow_finished(record):
            queue.workflow_pending.pop(workflow_id, None)
        else:
            queue.workflow_pending[workflow_id] = set(record.get("pending_task_ids") or [])
        self._notify()
        return True

    async def get_workflows(self, queue_name: str, workflow_ids: list[str]) -> dict[str, dict[str, Any]]:
        queue = self._queue(queue_name)
        return {w: _copy(queue.workflows[w]) for w in workflow_ids if w in queue.workflows}

    async def get_all_workflows(self, queue_name: str) -> list[dict[str, Any]]:
        return [_copy(w) for w in self._queue(queue_name).workflows.values()]

    async def get_pending_workflows(self, queue_name: str) -> list[dict[str, Any]]:
        queue = self._queue(queue_name)
        return [_copy(w) for w in queue.workflows.values() if not self._workflow_finished(w)]

    async def delete_workflow(self, queue_name: str, workflow_id: str) -> bool:
        queue = self._queue(queue_name)
        queue.workflow_pending.pop(workflow_id, None)
        return queue.workflows.pop(workflow_id, None) is not None

    async def mark_workflow_task_complete(self, queue_name: str, workflow_id: str, task_id: str) -> int:
        pending = self._queue(queue_name).workflow_pending.get(workflow_id)
        if pending is None or task_id not in pending:
            return -1
        pending.discard(task_id)
        return len(pending)

    async def get_workflow_results(self, queue_name: str, workflow_id: str) -> dict[str, dict[str, Any]]:
        queue = self._queue(queue_name)
        return {
            t: _copy(r)
            for t, r in queue.records.items()
            if r.get("workflow_id") == workflow_id and is_finished(r)
        }
