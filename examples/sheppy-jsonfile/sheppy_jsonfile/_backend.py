"""``JsonFileBackend``: every queue in one JSON file, shared by processes through an ``fcntl`` lock.

Each storage call is one transaction: take an exclusive lock on ``<file>.lock``, read the whole file,
change the document, write it to a temporary file and ``os.replace`` it over the old one, release the
lock. That makes every call atomic across backend objects and processes on the same file (so the
backend declares ``SHARED_STORE``), and a crash mid-write never leaves a half-written file. The file
I/O runs in a thread so a lock held by another process never blocks the event loop.

Document layout::

    {"version": 1, "queues": {"<queue name>": {
        "records":   {"<task id>": <task record>},
        "queued":    ["<task id>", ...],          # claim order
        "claims":    {"<task id>": <lease expiry, Unix seconds>},
        "scheduled": {"<task id>": <due time, Unix seconds>},
        "expires":   {"<task id>": <when a finished record is dropped, Unix seconds>}}}}

Finished records are kept ``ttl`` seconds (default :data:`~sheppy_core.backend.DEFAULT_TTL_SECONDS`,
30 days, as every bundled backend; ``error_ttl`` for failed/cancelled/crashed ones), so the file does not
grow without bound: every transaction drops the expired ones of the queue it reads.

A stored record that is not a JSON object with its own id (a string, another task's record: a bug or
a hand edit) reads as its quarantine record (:func:`_record`); ``pop`` stores that record in its place,
logs a warning and claims the tasks behind it (the contract's ``[robust.corrupt_record]``).

It is slow (the whole file is rewritten on every call) and meant as a readable example of the contract,
not for production.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import logging
import os
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar, Self, TypeVar

from sheppy_core.backend import (
    CONTRACT_VERSION,
    DEFAULT_TTL_SECONDS,
    SHARED_STORE,
    STATS_KEYS,
    TTL,
    Backend,
    BackendConnectionError,
    BackendError,
    BackendInputError,
    CorruptRecordError,
    check_aware,
    check_count,
    check_no_connection,
    check_queue_name,
    check_task_id,
    check_task_ids,
    decode_record,
    due_at,
    is_finished,
    is_quarantined,
    retention_seconds,
    task_id_of,
    to_iso,
    unfinished_delete_error,
    wait_for_finished,
)
from sheppy_jsonfile._config import parse_url

__all__ = ["JsonFileBackend"]

T = TypeVar("T")
Queue = dict[str, Any]
Document = dict[str, Any]

POLL_SECONDS = 0.05
"""How often ``get_results`` re-reads the file while waiting (this backend has no notifications)."""

logger = logging.getLogger("sheppy.backend")


def _empty_queue() -> Queue:
    return {"records": {}, "queued": [], "claims": {}, "scheduled": {}}


def _record(queue: Queue, task_id: str) -> dict[str, Any]:
    """``queue["records"][task_id]``, read as the contract's ``[robust.corrupt_record]`` asks: a value
    that is not a JSON object with that id — say a record stored as a string (encoded twice, or text
    pasted in by hand), or another task's record — reads as its quarantine record, which keeps the
    stored text, instead of failing the call."""
    value = queue["records"][task_id]
    if isinstance(value, dict) and value.get("id") == task_id:
        return value
    return decode_record(value if isinstance(value, str) else json.dumps(value), task_id)


_CLAIM_FIELDS = ("status", "claimed_by", "lease_expires_at", "deliveries")
"""The record fields a claim writes (and a cancelled claim's hand-back restores)."""


@dataclass(frozen=True)
class _Before:
    """Where a claimed task was and what its claim fields held, to undo a claim nobody received."""

    lease_until: float | None  # an expired claim's lease expiry; None for a task taken from the queue
    fields: dict[str, Any]


def _epoch(moment: datetime) -> float:
    return moment.timestamp()


class JsonFileBackend(Backend):
    """Queues stored in one JSON file; see the module docstring for the layout and locking."""

    url_schemes: ClassVar[tuple[str, ...]] = ("jsonfile",)
    contract_version: ClassVar[int] = CONTRACT_VERSION
    capabilities: ClassVar[frozenset[str]] = frozenset({SHARED_STORE, TTL})

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        ttl: float | None = DEFAULT_TTL_SECONDS,
        error_ttl: float | str | None = "inherit",
        lease: float | None = None,
    ) -> None:
        self.path = Path(path)
        self.ttl = ttl
        self.error_ttl = error_ttl
        if lease is not None:
            self.lease_duration = lease
        self._lock_path = self.path.with_name(self.path.name + ".lock")
        self._connected = False

    @classmethod
    def from_url(cls, url: str) -> Self:
        """``jsonfile:///absolute/path/store.json`` or ``jsonfile://relative/path.json``, with optional
        ``?lease=SECONDS&ttl=SECONDS|none&error_ttl=SECONDS|none|inherit`` (the common options every
        backend takes): see :func:`sheppy_jsonfile._config.parse_url`."""
        options = parse_url(url)
        return cls(options.path, ttl=options.ttl, error_ttl=options.error_ttl, lease=options.lease)

    def __repr__(self) -> str:
        return f"<JsonFileBackend {str(self.path)!r}>"

    # -- connection ------------------------------------------------------------------------------

    @property
    def is_connected(self) -> bool:
        return self._connected

    async def connect(self) -> None:
        if self._connected:
            return
        if not self.path.parent.is_dir():
            raise BackendConnectionError(f"directory of {self.path} does not exist")
        self._connected = True

    async def disconnect(self) -> None:
        self._connected = False

    # -- the transaction -------------------------------------------------------------------------

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        with open(self._lock_path, "a+b") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def _load(self) -> Document:
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return {"version": 1, "queues": {}}
        document: Document = json.loads(text)
        return document

    def _save(self, document: Document) -> None:
        handle, temporary = tempfile.mkstemp(dir=self.path.parent, prefix=f".{self.path.name}.")
        try:
            with os.fdopen(handle, "w", encoding="utf-8") as out:
                json.dump(document, out, ensure_ascii=False)
            os.replace(temporary, self.path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temporary)
            raise

    def _run(self, change: Callable[[Document], T], write: bool) -> T:
        with self._locked():
            document = self._load()
            result = change(document)
            if write:
                self._save(document)
            return result

    async def _transaction(
        self, queue_name: str | None, change: Callable[[Document], T], *, write: bool = True
    ) -> T:
        """Run ``change`` on the document under the file lock, in a thread; write it back if ``write``."""
        if not self._connected:
            raise BackendConnectionError(f"{self!r} is not connected; call connect() first")
        if queue_name is not None:
            check_queue_name(queue_name)  # non-empty, with a UTF-8 form ([input.unencodable])
        try:
            return await asyncio.to_thread(self._run, change, write)
        except OSError as exc:
            raise BackendConnectionError(f"cannot use {self.path}: {exc}") from exc
        except (ValueError, TypeError) as exc:
            if isinstance(exc, BackendError):
                raise
            raise BackendInputError(f"cannot store in {self.path}: {exc}") from exc

    # -- helpers on one queue (always called inside a transaction) ---------------------------------

    @staticmethod
    def _queue(document: Document, queue_name: str, create: bool = False) -> Queue:
        queues: dict[str, Queue] = document["queues"]
        queue = queues.setdefault(queue_name, _empty_queue()) if create else queues.get(queue_name)
        if queue is None:
            return _empty_queue()
        expires: dict[str, float] = queue.get("expires") or {}
        now = time.time()
        for task_id in [t for t, at in expires.items() if at <= now]:
            del expires[task_id]
            record = _record(queue, task_id) if task_id in queue["records"] else None
            if record is not None and is_finished(record):  # not stored again as unfinished since
                del queue["records"][task_id]
        return queue

    def _retain(self, queue: Queue, task_id: str, record: dict[str, Any]) -> None:
        """Note when a (re)stored record expires: finished records after their retention time."""
        expires: dict[str, float] = queue.setdefault("expires", {})
        seconds = retention_seconds(record, self.ttl, self.error_ttl) if is_finished(record) else None
        if seconds is None:
            expires.pop(task_id, None)
        else:
            expires[task_id] = time.time() + seconds

    @staticmethod
    def _forget_position(queue: Queue, task_id: str) -> None:
        if task_id in queue["queued"]:
            queue["queued"].remove(task_id)
        queue["claims"].pop(task_id, None)
        queue["scheduled"].pop(task_id, None)

    # -- enqueue ---------------------------------------------------------------------------------

    async def append(
        self, queue_name: str, tasks: list[dict[str, Any]], unique: bool = True, *, connection: object = None
    ) -> list[bool]:
        check_no_connection(self, connection)
        records = [json.loads(json.dumps(t)) for t in tasks]
        for record in records:
            record["id"] = task_id_of(record)

        def change(document: Document) -> list[bool]:
            queue = self._queue(document, queue_name, create=True)
            results = []
            for record in records:
                task_id = record["id"]
                if unique and task_id in queue["records"]:
                    results.append(False)
                    continue
                self._forget_position(queue, task_id)
                queue["records"][task_id] = dict(record, status="pending")
                queue["queued"].append(task_id)
                results.append(True)
            return results

        return await self._transaction(queue_name, change)

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
        record = json.loads(json.dumps(task_data))
        task_id = record["id"] = task_id_of(record)

        def change(document: Document) -> bool:
            queue = self._queue(document, queue_name, create=True)
            if unique and task_id in queue["records"]:
                return False
            self._forget_position(queue, task_id)
            queue["records"][task_id] = dict(record, status="scheduled", scheduled_at=to_iso(at))
            queue["scheduled"][task_id] = _epoch(at)
            return True

        return await self._transaction(queue_name, change)

    # -- claim -----------------------------------------------------------------------------------

    async def pop(self, queue_name: str, limit: int = 1, timeout: float | None = None, *,
                  worker_id: str | None = None, lease: float | None = None) -> list[dict[str, Any]]:
        # No BLOCKING_POP: ``timeout`` is ignored and an empty queue answers [] at once.
        check_count(limit, "limit", "pop")
        owner = worker_id or self.client_id
        duration = self.lease_duration if lease is None else lease

        def change(document: Document) -> list[tuple[dict[str, Any], _Before]]:
            queue = self._queue(document, queue_name)
            now = time.time()
            expired = [t for t, until in queue["claims"].items() if until <= now]
            claimed: list[tuple[dict[str, Any], _Before]] = []
            for task_id in expired + queue["queued"]:
                if len(claimed) >= limit:
                    break
                record = queue["records"][task_id] = _record(queue, task_id)
                if is_quarantined(record):
                    # Not a task record: moved aside for good (finished, kept as long as failed ones).
                    self._forget_position(queue, task_id)
                    self._retain(queue, task_id, record)
                    reason = record["quarantine"]["reason"]
                    logger.warning("%s", CorruptRecordError(queue_name, task_id, reason))
                    continue
                fields = {name: record[name] for name in _CLAIM_FIELDS if name in record}
                before = _Before(queue["claims"].get(task_id), fields)
                if task_id in queue["queued"]:
                    queue["queued"].remove(task_id)
                queue["claims"][task_id] = now + duration
                record.update(status="processing", claimed_by=owner,
                              lease_expires_at=to_iso(datetime.fromtimestamp(now + duration, UTC)),
                              deliveries=int(record.get("deliveries") or 0) + 1)
                claimed.append((json.loads(json.dumps(record)), before))
            return claimed

        # The transaction runs in a thread, which a cancelled caller does not stop: it may commit a claim
        # nobody receives. So it is shielded, and such a claim is handed back ([pop.cancel_mid_claim]).
        claim = asyncio.ensure_future(self._transaction(queue_name, change))
        try:
            taken = await asyncio.shield(claim)
        except asyncio.CancelledError:
            await asyncio.shield(asyncio.ensure_future(self._hand_back(queue_name, claim)))
            raise
        return [record for record, _ in taken]

    async def _hand_back(
        self, queue_name: str, claim: asyncio.Future[list[tuple[dict[str, Any], _Before]]]
    ) -> None:
        """Undo a claim whose caller was cancelled: each task goes back where it was, as it was."""
        try:
            taken = await claim
        except Exception:
            return  # nothing was claimed
        if not taken:
            return

        def change(document: Document) -> None:
            queue = self._queue(document, queue_name)
            # Queued tasks were taken from the head: put back last first, they keep their order.
            for claimed, before in reversed(taken):
                task_id = claimed["id"]
                record = queue["records"].get(task_id)
                # Only while that very claim holds it (not stored or claimed again since).
                if record is None or task_id not in queue["claims"] or any(
                        record.get(name) != claimed[name] for name in ("claimed_by", "lease_expires_at")):
                    continue
                for name in _CLAIM_FIELDS:
                    record.pop(name, None)
                record.update(before.fields)
                if before.lease_until is not None:
                    queue["claims"][task_id] = before.lease_until
                else:
                    del queue["claims"][task_id]
                    queue["queued"].insert(0, task_id)

        await self._transaction(queue_name, change)

    async def acknowledge(self, queue_name: str, task_id: str) -> bool:
        task_id = check_task_id(task_id)

        def change(document: Document) -> bool:
            queue = self._queue(document, queue_name)
            if task_id not in queue["claims"]:
                return False
            del queue["claims"][task_id]
            # [ack.releases]: the record keeps its fields, but no longer names a claim nobody holds.
            record = queue["records"].get(task_id)
            if record is not None:
                record.update(claimed_by=None, lease_expires_at=None)
            return True

        return await self._transaction(queue_name, change)

    async def heartbeat(self, queue_name: str, task_ids: list[str], *, worker_id: str | None = None,
                        lease: float | None = None) -> list[str]:
        task_ids = check_task_ids(task_ids)
        owner = worker_id or self.client_id
        duration = self.lease_duration if lease is None else lease

        def change(document: Document) -> list[str]:
            queue = self._queue(document, queue_name)
            expiry = time.time() + duration
            held = []
            for task_id in task_ids:
                record = _record(queue, task_id) if task_id in queue["records"] else None
                if task_id in queue["claims"] and record is not None and record.get("claimed_by") == owner:
                    queue["claims"][task_id] = expiry
                    record["lease_expires_at"] = to_iso(datetime.fromtimestamp(expiry, UTC))
                    held.append(task_id)
            return held

        return await self._transaction(queue_name, change)

    # -- results ---------------------------------------------------------------------------------

    async def store_result(self, queue_name: str, task_data: dict[str, Any]) -> bool:
        record = json.loads(json.dumps(task_data))
        task_id = record["id"] = task_id_of(record)

        def change(document: Document) -> bool:
            queue = self._queue(document, queue_name)
            if task_id not in queue["records"]:
                return False
            record.update(claimed_by=None, lease_expires_at=None)
            self._forget_position(queue, task_id)
            if not is_finished(record):
                if record.get("status") in ("retrying", "scheduled"):
                    queue["scheduled"][task_id] = _epoch(due_at(record))
                else:
                    record["status"] = "pending"
                    queue["queued"].append(task_id)
            queue["records"][task_id] = record
            self._retain(queue, task_id, record)
            return True

        return await self._transaction(queue_name, change)

    async def get_results(self, queue_name: str, task_ids: list[str],
                          timeout: float | None = None) -> dict[str, dict[str, Any]]:
        async def read_finished(ids: list[str]) -> dict[str, dict[str, Any]]:
            return {t: r for t, r in (await self.get_tasks(queue_name, ids)).items() if is_finished(r)}

        # The kit's wait: the contract's timeout rules and TimeoutError, re-reading the file every poll.
        return await wait_for_finished(read_finished, task_ids, timeout, poll=POLL_SECONDS)

    # -- inspection ------------------------------------------------------------------------------

    async def _read(self, queue_name: str, view: Callable[[Queue], T]) -> T:
        return await self._transaction(queue_name, lambda d: view(self._queue(d, queue_name)), write=False)

    async def get_tasks(self, queue_name: str, task_ids: list[str]) -> dict[str, dict[str, Any]]:
        task_ids = check_task_ids(task_ids)
        return await self._read(
            queue_name, lambda q: {t: _record(q, t) for t in task_ids if t in q["records"]}
        )

    async def get_all_tasks(self, queue_name: str) -> list[dict[str, Any]]:
        return await self._read(queue_name, lambda q: [_record(q, t) for t in q["records"]])

    async def get_pending(self, queue_name: str, count: int = 1) -> list[dict[str, Any]]:
        check_count(count, "count", "get_pending")
        return await self._read(queue_name, lambda q: [_record(q, t) for t in q["queued"][:count]])

    async def get_scheduled(self, queue_name: str) -> list[dict[str, Any]]:
        def view(queue: Queue) -> list[dict[str, Any]]:
            ordered = sorted(queue["scheduled"].items(), key=lambda item: item[1])
            return [_record(queue, t) for t, _ in ordered]

        return await self._read(queue_name, view)

    async def size(self, queue_name: str) -> int:
        return await self._read(queue_name, lambda q: len(q["queued"]))

    async def get_stats(self, queue_name: str) -> dict[str, int]:
        def view(queue: Queue) -> dict[str, int]:
            stats = dict.fromkeys(STATS_KEYS, 0)
            stats.update(pending=len(queue["queued"]), processing=len(queue["claims"]),
                         scheduled=len(queue["scheduled"]))
            for record in (_record(queue, t) for t in queue["records"]):
                if is_finished(record) and record.get("status") in stats:
                    stats[record["status"]] += 1
            return stats

        return await self._read(queue_name, view)

    async def list_queues(self) -> dict[str, int]:
        def view(document: Document) -> dict[str, int]:
            return {name: len(queue["queued"]) for name, queue in sorted(document["queues"].items())}

        return await self._transaction(None, view, write=False)

    async def clear(self, queue_name: str) -> int:
        def change(document: Document) -> int:
            queue = document["queues"].pop(queue_name, None)
            return len(queue["records"]) if queue else 0

        return await self._transaction(queue_name, change)

    # -- scheduling ------------------------------------------------------------------------------

    async def pop_scheduled(self, queue_name: str, now: datetime | None = None) -> list[dict[str, Any]]:
        moment = _epoch(check_aware(now, "now", "pop_scheduled")) if now is not None else time.time()

        def change(document: Document) -> list[dict[str, Any]]:
            queue = self._queue(document, queue_name)
            due = sorted((at, t) for t, at in queue["scheduled"].items() if at <= moment)
            moved = []
            for _, task_id in due:
                del queue["scheduled"][task_id]
                queue["queued"].append(task_id)
                record = _record(queue, task_id)
                if not is_quarantined(record):  # a corrupt one is moved as stored; pop sets it aside
                    record["status"] = "pending"
                moved.append(record)
            return moved

        return await self._transaction(queue_name, change)

    # -- cancel / delete -------------------------------------------------------------------------

    async def cancel(self, queue_name: str, task_id: str) -> dict[str, Any] | None:
        task_id = check_task_id(task_id)

        def change(document: Document) -> dict[str, Any] | None:
            queue = self._queue(document, queue_name)
            if task_id not in queue["queued"] and task_id not in queue["scheduled"]:
                return None
            self._forget_position(queue, task_id)
            record = queue["records"][task_id] = _record(queue, task_id)
            if not is_quarantined(record):  # a corrupt one is set aside as it is, not "cancelled"
                record.update(status="cancelled", finished_at=to_iso(datetime.now(UTC)))
            self._retain(queue, task_id, record)
            return record

        return await self._transaction(queue_name, change)

    async def delete_task(self, queue_name: str, task_id: str) -> bool:
        task_id = check_task_id(task_id)

        def change(document: Document) -> bool:
            queue = self._queue(document, queue_name)
            if task_id not in queue["records"]:
                return False
            record = _record(queue, task_id)  # a corrupt record reads as quarantined: finished
            if not is_finished(record):
                raise unfinished_delete_error(task_id, record.get("status"))
            self._forget_position(queue, task_id)  # a corrupt record may still be queued
            del queue["records"][task_id]
            return True

        return await self._transaction(queue_name, change)
