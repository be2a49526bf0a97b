"""``SQLiteBackend``: a queue in one SQLite file, shared safely by any number of worker processes.

How it keeps the contract
-------------------------
* **One row per task** (table ``tasks``, see ``sql/migrations/0001_initial.sql``) with a ``state``
  column — queued, claimed, scheduled, finished or released — so a task is always in exactly one place.
  The JSON record is stored as text next to the few columns the queries need.
* **Atomic claims across processes.** ``pop`` is a single ``UPDATE … WHERE seq IN (SELECT …) RETURNING``.
  A write statement holds the file's write lock from its first read to its commit, so two connections —
  in this process or another — can never claim the same row. Multi-statement operations (cancel, clear,
  workflows, sliding-window rate limits, migrations) run inside ``BEGIN IMMEDIATE``, which takes the
  write lock before reading. No operation reads in a deferred transaction and then writes, which is what
  produces the unretryable ``SQLITE_BUSY_SNAPSHOT``.
* **Corrupt rows** (robust.corrupt_record): reads decode with ``decode_record``, so a row whose data is
  not a JSON object with its own id reads as its quarantine record. The claim statement sets such rows
  aside in the same statement (``json_valid`` and an id check per candidate row); :meth:`_claim_on` then
  stores their quarantine records and claims the rest of ``limit``. Nothing extra runs when no row is
  corrupt.
* **FIFO** by ``seq``, the rowid key: appends get ``max(seq) + 1``, and re-queues (``store_result``,
  ``pop_scheduled``) move the row to ``max(seq) + 1``. Expired leases are claimed before queued tasks.
* **SQLITE_BUSY** is waited out by SQLite's busy handler (``busy_timeout``, 5 s by default). The few busy
  results SQLite returns without waiting (e.g. while another process switches the journal mode) are
  retried here with a short backoff until the same deadline. After that the call raises
  ``BackendError`` saying the database stayed locked; the statement was rolled back, so no task is lost
  or half-written.
* **Waiting** (``pop``/``get_results`` with a timeout) — see :mod:`sheppy_sqlite._listener`: in-process
  wake-ups are immediate; commits from other processes are noticed through ``PRAGMA data_version`` within
  ``poll_interval`` (10 ms by default, the worst case).
* **Inspection** (:mod:`sheppy_sqlite._inspection`): ``append``/``schedule`` also store the listing key
  and ``spec.func`` in columns, which indexes order for ``list_tasks``.
* **TTL**: finished records get an ``expires_at`` (Unix seconds); every read ignores expired rows, and
  a purge deletes them at most once per ``purge_interval`` (60 s), piggy-backed on a call.

One backend object holds one aiosqlite connection. The coroutines of one event loop share it through
a lock, so each operation — a statement or a ``BEGIN IMMEDIATE`` transaction — runs alone on it, in a
shielded task: cancelling the caller never leaves the connection inside a transaction. Single
statements first try the fast path (:mod:`sheppy_sqlite._fastpath`): a second, non-waiting connection
used directly on the event loop, which hands the statement to the thread when the file is busy. The
change watcher (:mod:`sheppy_sqlite._listener`) has a third connection while someone waits.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import os
import sqlite3
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar, Self, TypeVar

from sheppy_core.backend import (
    BLOCKING_POP,
    CHANGE_FEED,
    CONTRACT_VERSION,
    CRON,
    DEFAULT_TTL_SECONDS,
    LISTABLE_STATUSES,
    QUARANTINED,
    RATE_LIMIT,
    SHARED_STORE,
    STATS_KEYS,
    TASK_PAGES,
    TTL,
    WORKER_REGISTRY,
    WORKFLOWS,
    Backend,
    BackendError,
    CorruptRecordError,
    check_aware,
    check_count,
    check_no_connection,
    check_queue_name,
    check_seconds,
    check_task_id,
    check_task_ids,
    decode_record,
    due_at,
    is_finished,
    is_quarantined,
    listing_key,
    quarantine_record,
    retention_seconds,
    task_id_of,
    to_iso,
    unfinished_delete_error,
)
from sheppy_sqlite._batching import Coalescer
from sheppy_sqlite._config import DEFAULT_BUSY_TIMEOUT_MS, DEFAULT_POLL_INTERVAL, SQLiteOptions, parse_url
from sheppy_sqlite._errors import translate
from sheppy_sqlite._extras import OptionalCapabilities
from sheppy_sqlite._inspection import Inspection
from sheppy_sqlite._listener import ChangeWatcher, Waiter, notify
from sheppy_sqlite._records import decoded, decoded_by_id, dumps
from sheppy_sqlite._sql import queries
from sheppy_sqlite._store import Conn, Store, fetch

__all__ = ["SQLiteBackend"]

T = TypeVar("T")

logger = logging.getLogger("sheppy.backend")

_INLINE_BATCH = 256  # larger append batches are stored off the event loop
_MAX_WAIT_SLICE = 3600.0  # asyncio timeouts are re-armed at least hourly (timeout == 0 waits for ever)
_EPOCH_ISO = "1970-01-01T00:00:00Z"


def _now() -> datetime:
    return datetime.now(UTC)


def _status_column(record: dict[str, Any]) -> str:
    """The record's status as the ``status`` column holds it: a status ``list_tasks`` can filter by, or
    ``''`` for any other (a finished record with an odd status), which the unfiltered listing reads as
    one more status."""
    status = record.get("status")
    return status if isinstance(status, str) and status in LISTABLE_STATUSES else ""


def _func_of(record: dict[str, Any]) -> str | None:
    """The ``spec.func`` the ``func`` column holds for ``list_tasks(func=...)``."""
    spec = record.get("spec")
    func = spec.get("func") if isinstance(spec, dict) else None
    return func if isinstance(func, str) else None


def _resolve(path: str) -> str:
    """The absolute, symlink-free path: the key under which every backend on this file meets."""
    return os.path.realpath(os.path.expanduser(path))


@dataclass
class _Claim:
    """What claim statements did: the tasks claimed (their ``seq`` and records, in claim order), and
    the quarantine records of rows set aside instead (robust.corrupt_record), by ``seq``."""

    seqs: list[int] = field(default_factory=list)
    records: list[dict[str, Any]] = field(default_factory=list)
    set_aside: list[tuple[int, dict[str, Any]]] = field(default_factory=list)


def _read_claim(rows: list[Any]) -> _Claim:
    """Sort the ``claim`` statement's rows ``(seq, redelivered, data, id, state)`` into a :class:`_Claim`.

    The statement set aside (state ``finished``) the rows SQLite cannot read as a task of their id; a
    claimed row Python cannot read (:func:`~sheppy_core.backend.decode_record`) is set aside too.
    """
    rows.sort(key=lambda row: (not row[1], row[0]))  # expired leases first, then queue order
    claim = _Claim()
    for seq, _, data, task_id, state in rows:
        record = decode_record(data, str(task_id))
        if state == "claimed" and not is_quarantined(record):
            claim.seqs.append(int(seq))
            claim.records.append(record)
            continue
        if not is_quarantined(record):  # SQLite's JSON reader refused what Python's reads (NaN, ...)
            record = quarantine_record(str(task_id), data, "SQLite cannot read the stored record as JSON")
        claim.set_aside.append((int(seq), record))
    return claim


class SQLiteBackend(Inspection, OptionalCapabilities, Backend):
    """Task queues in a SQLite file (``sqlite:///relative.db``, ``sqlite:////absolute/path.db``).

    :param path: the database file; created (with its schema) on :meth:`connect`. Relative paths are
        resolved against the working directory at connect time.
    :param busy_timeout: milliseconds a call waits for another connection's lock before raising
        ``BackendError``.
    :param lease: default claim lease in seconds (``Backend.lease_duration``).
    :param ttl: retention of finished records in seconds (None: for ever); by default
        :data:`~sheppy_core.backend.DEFAULT_TTL_SECONDS` (30 days), as every bundled backend.
    :param error_ttl: retention of failed/cancelled/crashed records; ``"inherit"`` uses ``ttl``.
    :param journal_mode: ``wal`` (default, lets readers and the writer work at once), ``delete``,
        ``truncate`` or ``persist``.
    :param synchronous: ``normal`` (default; with WAL a commit survives a process crash, and an OS crash
        may lose the last commits), ``full``/``extra`` (also survive power loss, slower) or ``off``.
    :param poll_interval: longest pause, in seconds, between two looks for other processes' commits
        while a call waits (the worst-case cross-process pick-up delay).
    :param purge_interval: seconds between two purges of expired finished records.
    :param fast_path: run single statements directly on the event loop when they need not wait (WAL
        with ``synchronous`` normal/off only; see :mod:`sheppy_sqlite._fastpath`).
    """

    url_schemes: ClassVar[tuple[str, ...]] = ("sqlite",)
    contract_version: ClassVar[int] = CONTRACT_VERSION
    # RESULT_NOTIFY is not declared: get_results is woken directly only inside one process; across
    # processes it learns of results by polling PRAGMA data_version, which is polling.
    # CHANGE_FEED is: the change watcher reads a commit counter the file keeps (PRAGMA data_version), the
    # closest SQLite has to a notification, and wakes wait_for_change within poll_interval.
    capabilities: ClassVar[frozenset[str]] = frozenset(
        {BLOCKING_POP, RATE_LIMIT, CRON, TTL, WORKFLOWS, SHARED_STORE, TASK_PAGES, WORKER_REGISTRY,
         CHANGE_FEED}
    )

    def __init__(
        self,
        path: str | os.PathLike[str] = "sheppy.db",
        *,
        busy_timeout: int = DEFAULT_BUSY_TIMEOUT_MS,
        lease: float | None = None,
        ttl: float | None = DEFAULT_TTL_SECONDS,
        error_ttl: float | str | None = "inherit",
        journal_mode: str = "wal",
        synchronous: str = "normal",
        poll_interval: float = DEFAULT_POLL_INTERVAL,
        purge_interval: float = 60.0,
        fast_path: bool = True,
    ) -> None:
        self.options = SQLiteOptions(
            path=os.fspath(path), busy_timeout=busy_timeout, journal_mode=journal_mode,
            synchronous=synchronous, lease=lease, ttl=ttl, error_ttl=error_ttl,
            poll_interval=poll_interval, purge_interval=purge_interval, fast_path=fast_path,
        )
        if lease is not None:
            self.lease_duration = float(lease)
        self.ttl = ttl
        self.error_ttl = error_ttl
        self._path = self.options.path
        self._store = Store(self.options, self._path)
        self._results = Coalescer(self._store, "store_result")
        self._watcher: ChangeWatcher | None = None
        self._opening: asyncio.Future[None] | None = None

    @classmethod
    def from_url(cls, url: str) -> Self:
        """Build from ``sqlite:///relative.db`` or ``sqlite:////absolute/path.db`` with query options
        ``busy_timeout`` (ms), ``journal_mode``, ``synchronous``, ``lease``, ``ttl``, ``error_ttl``,
        ``poll_interval``, ``purge_interval`` and ``fast_path``. No I/O; a bad URL or option raises
        ``ConfigurationError`` naming it."""
        options = parse_url(url)
        return cls(
            options.path, busy_timeout=options.busy_timeout, lease=options.lease, ttl=options.ttl,
            error_ttl=options.error_ttl, journal_mode=options.journal_mode,
            synchronous=options.synchronous, poll_interval=options.poll_interval,
            purge_interval=options.purge_interval, fast_path=options.fast_path,
        )

    def __repr__(self) -> str:
        return f"<SQLiteBackend {self._path!r}>"

    @property
    def path(self) -> str:
        """The database file (absolute once connected)."""
        return self._path

    # -- connection ------------------------------------------------------------------------------

    @property
    def is_connected(self) -> bool:
        return self._store.is_open

    async def store_exists(self) -> bool | None:
        """Whether the database file is there (``connect`` would create it)."""
        return await asyncio.to_thread(os.path.exists, self._path)

    async def connect(self) -> None:
        """Open the file (creating it), switch it to WAL, and create or migrate the schema.

        Concurrent calls (say, several ``Queue`` calls starting at once) share one opening.
        """
        if self._store.is_open:
            return
        opening = self._opening
        if opening is None or opening.done() or opening.get_loop() is not asyncio.get_running_loop():
            opening = self._opening = asyncio.ensure_future(self._open_store())
        await asyncio.shield(opening)

    async def _open_store(self) -> None:
        path = _resolve(self.options.path)
        store = Store(self.options, path)
        await store.open()
        self._path, self._store = path, store
        self._results = Coalescer(store, "store_result")
        self._watcher = ChangeWatcher(path, self.options.poll_interval)

    async def disconnect(self) -> None:
        """Close the connections. Claims stay in the file and expire as usual."""
        watcher, self._watcher = self._watcher, None
        if watcher is not None:
            await watcher.close()
        await self._store.close()
        notify(self._path)  # blocked calls of this object see the disconnect and raise

    async def server_info(self) -> dict[str, Any]:
        """SQLite library version, schema version, journal mode and file path."""
        rows = await self._rows("server_info", "schema_version", {})
        version = int(rows[0][0])
        return {
            "server_version": sqlite3.sqlite_version,
            "sqlite_version": sqlite3.sqlite_version,
            "schema_version": version,
            "journal_mode": self._store.journal_mode,
            "path": self._path,
        }

    # -- running statements (see sheppy_sqlite._store) -----------------------------------------

    async def _rows(
        self, operation: str, name: str, params: dict[str, Any], *, inline: bool = True
    ) -> list[Any]:
        return await self._store.rows(operation, name, params, inline=inline)

    async def _transaction(self, operation: str, body: Callable[[Conn], Awaitable[T]]) -> T:
        return await self._store.transaction(operation, body)

    _fetch = staticmethod(fetch)

    def _retention_deadline(self, record: dict[str, Any]) -> float | None:
        seconds = retention_seconds(record, self.ttl, self.error_ttl)
        return None if seconds is None else time.time() + seconds

    # -- enqueue ---------------------------------------------------------------------------------

    async def _insert(self, operation: str, queue_name: str, rows: list[list[Any]], unique: bool) -> set[str]:
        """Store rows ``[id, state, status, due_at, workflow_id, data, listed_at, func]`` in one
        statement; return the ids stored."""
        if len(rows) == 1:
            # One row (a single add or schedule): plain parameters, no JSON array to encode and parse.
            task_id, state, status, due, workflow_id, data, listed_at, func = rows[0]
            stored = await self._rows(operation, "insert_task_unique" if unique else "replace_task", {
                "queue": queue_name, "id": task_id, "state": state, "status": status, "due_at": due,
                "workflow_id": workflow_id, "data": data, "listed_at": listed_at, "func": func,
                "now": time.time(),
            })
        else:
            name = "insert_tasks_unique" if unique else "replace_tasks"
            stored = await self._rows(
                operation, name, {"queue": queue_name, "rows": dumps(rows), "now": time.time()},
                inline=len(rows) <= _INLINE_BATCH,
            )
        notify(self._path, queue_name)
        return {str(row[0]) for row in stored}

    async def append(
        self, queue_name: str, tasks: list[dict[str, Any]], unique: bool = True, *, connection: object = None
    ) -> list[bool]:
        check_no_connection(self, connection)
        check_queue_name(queue_name)
        if not tasks:
            return []
        ids: list[str] = []
        rows: list[list[Any]] = []
        stored_at = _now()
        for task in tasks:
            task_id = task_id_of(task)
            record = {**task, "id": task_id, "status": "pending"}
            workflow_id = record.get("workflow_id")
            ids.append(task_id)
            rows.append([task_id, "queued", "pending", None,
                         None if workflow_id is None else str(workflow_id), dumps(record),
                         listing_key(record, stored_at), _func_of(record)])
        stored = await self._insert("append", queue_name, rows, unique)
        results: list[bool] = []
        seen: set[str] = set()
        for task_id in ids:
            # With unique=True a repeated id in one call lost to its first occurrence.
            results.append(task_id in stored and (not unique or task_id not in seen))
            seen.add(task_id)
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
        check_queue_name(queue_name)
        check_aware(at, "at", "schedule")
        task_id = task_id_of(task_data)
        record = {**task_data, "id": task_id, "status": "scheduled", "scheduled_at": to_iso(at)}
        workflow_id = record.get("workflow_id")
        row = [task_id, "scheduled", "scheduled", at.timestamp(),
               None if workflow_id is None else str(workflow_id), dumps(record),
               listing_key(record, _now()), _func_of(record)]
        return task_id in await self._insert("schedule", queue_name, [row], unique)

    # -- claim -----------------------------------------------------------------------------------

    async def _claim(self, queue_name: str, limit: int, worker: str, lease: float) -> list[dict[str, Any]]:
        now = _now()
        params = {
            "queue": queue_name, "limit": limit, "worker": worker, "now": now.timestamp(),
            "lease_until": now.timestamp() + lease, "lease_iso": to_iso(now + timedelta(seconds=lease)),
            "quarantine_expires": self._retention_deadline({"status": QUARANTINED}),
        }
        # On the loop, a claim cannot be interrupted between its commit and its return.
        fast_rows = self._store.try_fast("pop", "claim", params)
        first = None if fast_rows is None else _read_claim(fast_rows)
        if first is not None and not first.set_aside:
            return first.records
        task = asyncio.ensure_future(self._claim_on(params, first))
        try:
            claim = await asyncio.shield(task)
        except asyncio.CancelledError:
            # The claim may commit after the caller gave up: hand such tasks back, claiming nothing.
            self._store.keep(asyncio.ensure_future(self._undo_claim(task, queue_name, worker)))
            raise
        return claim.records

    async def _claim_on(self, params: dict[str, Any], first: _Claim | None) -> _Claim:
        """Claim through the thread (``first`` is None), and as long as a claim statement sets rows aside
        (robust.corrupt_record), store their quarantine records and claim the rest of ``limit``: one more
        statement per round that found any, none when nothing is corrupt."""
        queue_name, worker, limit = params["queue"], params["worker"], params["limit"]
        claimed = _Claim()
        claim = first
        while True:
            if claim is None:
                try:
                    claim = _read_claim(await self._store.locked("pop", self._claim_body(params)))
                except BackendError:
                    if not claimed.records:
                        raise
                    return claimed  # what is claimed already is the caller's, not lost
            claimed.seqs += claim.seqs
            claimed.records += claim.records
            if not claim.set_aside:
                return claimed
            await self._quarantine(queue_name, worker, claim.set_aside)
            if len(claimed.records) >= limit:
                return claimed
            params = {**params, "limit": limit - len(claimed.records)}
            claim = None

    async def _quarantine(
        self, queue_name: str, worker: str, set_aside: list[tuple[int, dict[str, Any]]]
    ) -> None:
        """Log each record a claim set aside, and store its quarantine record (keeping the stored text) in
        place of the data. The rows are out of the queue already, so a failed write only leaves reads to
        show the record as quarantined from the stored text (:func:`~sheppy_core.backend.decode_record`)."""
        for _, record in set_aside:
            reason = record["quarantine"]["reason"]
            logger.warning("%s", CorruptRecordError(queue_name, record["id"], reason))
        try:
            await self._store.rows_many("pop", [("quarantine_task", {
                "queue": queue_name, "id": record["id"], "seq": seq, "worker": worker,
                "data": dumps(record), "expires_at": self._retention_deadline(record),
            }) for seq, record in set_aside])
        except BackendError as exc:
            logger.warning("sheppy-sqlite: queue %r: storing quarantine records failed: %s", queue_name, exc)

    @staticmethod
    def _claim_body(params: dict[str, Any]) -> Callable[[Conn], Awaitable[list[Any]]]:
        sql = queries()["claim"]

        async def body(conn: Conn) -> list[Any]:
            return list(await conn.execute_fetchall(sql, params))

        return body

    async def _undo_claim(self, task: asyncio.Future[_Claim], queue_name: str, worker: str) -> None:
        try:
            claim = await task
        except BaseException:
            return
        if claim.seqs:
            await self._rows("pop", "unclaim", {
                "queue": queue_name, "worker": worker, "epoch_iso": _EPOCH_ISO,
                "seqs": json.dumps(claim.seqs),
            })
            notify(self._path, queue_name)

    async def pop(
        self,
        queue_name: str,
        limit: int = 1,
        timeout: float | None = None,
        *,
        worker_id: str | None = None,
        lease: float | None = None,
    ) -> list[dict[str, Any]]:
        check_queue_name(queue_name)
        check_count(limit, "limit", "pop")
        worker = worker_id or self.client_id
        duration = self.lease_duration if lease is None else float(lease)
        if timeout is None or timeout <= 0:
            return await self._claim(queue_name, limit, worker, duration)
        deadline = time.monotonic() + timeout
        with Waiter(self._path, queue_name) as waiter:
            self._watch()
            try:
                while True:
                    waiter.clear()
                    claimed = await self._claim(queue_name, limit, worker, duration)
                    remaining = deadline - time.monotonic()
                    if claimed or remaining <= 0:
                        return claimed
                    # Also look again when the earliest live lease of the queue runs out.
                    expiry = (await self._rows("pop", "next_lease_expiry", {"queue": queue_name}))[0][0]
                    if expiry is not None:
                        remaining = min(remaining, max(0.001, float(expiry) - time.time()))
                    await waiter.wait(remaining)
            finally:
                self._unwatch()

    async def wait_for_change(self, queue_names: list[str], timeout: float) -> bool:
        """Woken by this process's writes to the file (:func:`~sheppy_sqlite._listener.notify`) and, for
        other processes' commits, by the change watcher (``PRAGMA data_version``), which wakes every
        waiter on the file: a True may be for another queue."""
        seconds = check_seconds(timeout, "timeout", "wait_for_change")
        names = list(dict.fromkeys(check_queue_name(name) for name in queue_names))
        changed = asyncio.Event()  # one event for the waiters of every queue
        with contextlib.ExitStack() as stack:
            for name in names:
                stack.enter_context(Waiter(self._path, name, changed))
            self._watch()
            try:
                async with asyncio.timeout(seconds):
                    await changed.wait()
            except TimeoutError:
                return False
            finally:
                self._unwatch()
        return True

    def _watch(self) -> None:
        watcher = self._watcher
        if watcher is None:
            raise self._store.not_connected()
        try:
            watcher.acquire()
        except sqlite3.Error as exc:
            raise translate(exc, "wait", self._path, self.options.busy_timeout) from exc

    def _unwatch(self) -> None:
        if self._watcher is not None:
            self._watcher.release()

    async def acknowledge(self, queue_name: str, task_id: str) -> bool:
        check_queue_name(queue_name)
        key = {"queue": queue_name, "id": check_task_id(task_id)}
        rows = await self._rows("acknowledge", "acknowledge", key)
        return bool(rows)

    async def heartbeat(
        self,
        queue_name: str,
        task_ids: list[str],
        *,
        worker_id: str | None = None,
        lease: float | None = None,
    ) -> list[str]:
        check_queue_name(queue_name)
        task_ids = check_task_ids(task_ids)
        if not task_ids:
            return []
        now = _now()
        duration = self.lease_duration if lease is None else float(lease)
        rows = await self._rows("heartbeat", "heartbeat", {
            "queue": queue_name, "worker": worker_id or self.client_id,
            "ids": json.dumps([str(t) for t in task_ids]), "lease_until": now.timestamp() + duration,
            "lease_iso": to_iso(now + timedelta(seconds=duration)),
        })
        held = {str(row[0]) for row in rows}
        return [t for t in dict.fromkeys(str(t) for t in task_ids) if t in held]

    # -- results ---------------------------------------------------------------------------------

    async def store_result(self, queue_name: str, task_data: dict[str, Any]) -> bool:
        check_queue_name(queue_name)
        task_id = task_id_of(task_data)
        record = {**task_data, "id": task_id, "claimed_by": None, "lease_expires_at": None}
        due: float | None = None
        expires: float | None = None
        if is_finished(record):
            state = "finished"
            expires = self._retention_deadline(record)
        elif record.get("status") in ("retrying", "scheduled"):
            state = "scheduled"
            due = due_at(record).timestamp()
        else:
            state = "queued"
            record["status"] = "pending"
        workflow_id = record.get("workflow_id")
        # Concurrent calls (a worker finishing several tasks) share one transaction.
        rows = await self._results.run("store_result_to_tail" if state == "queued" else "store_result", {
            "queue": queue_name, "id": task_id, "state": state, "status": _status_column(record),
            "due_at": due, "expires_at": expires,
            "workflow_id": None if workflow_id is None else str(workflow_id), "data": dumps(record),
            "now": time.time(),
        })
        if rows:
            notify(self._path, queue_name)
        return bool(rows)

    async def get_results(
        self, queue_name: str, task_ids: list[str], timeout: float | None = None
    ) -> dict[str, dict[str, Any]]:
        check_queue_name(queue_name)
        if not task_ids:
            return {}
        wanted = list(dict.fromkeys(check_task_ids(task_ids)))
        params = {"queue": queue_name, "ids": json.dumps(wanted)}

        async def finished() -> dict[str, dict[str, Any]]:
            rows = await self._rows("get_results", "get_results", {**params, "now": time.time()})
            return decoded_by_id(rows)

        if timeout is None or timeout < 0:
            return await finished()
        deadline = math.inf if timeout == 0 else time.monotonic() + timeout
        with Waiter(self._path, queue_name) as waiter:
            self._watch()
            try:
                while True:
                    waiter.clear()
                    found = await finished()
                    if len(found) == len(wanted):
                        return found
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        missing = len(wanted) - len(found)
                        raise TimeoutError(
                            f"{missing} of {len(wanted)} task(s) did not finish within {timeout} s"
                        )
                    await waiter.wait(min(remaining, _MAX_WAIT_SLICE))
            finally:
                self._unwatch()

    # -- inspection ------------------------------------------------------------------------------

    async def get_tasks(self, queue_name: str, task_ids: list[str]) -> dict[str, dict[str, Any]]:
        check_queue_name(queue_name)
        if not task_ids:
            return {}
        rows = await self._rows("get_tasks", "get_tasks", {
            "queue": queue_name, "ids": json.dumps(list(dict.fromkeys(check_task_ids(task_ids)))),
            "now": time.time(),
        })
        return decoded_by_id(rows)

    async def get_all_tasks(self, queue_name: str) -> list[dict[str, Any]]:
        check_queue_name(queue_name)
        rows = await self._rows("get_all_tasks", "get_all_tasks", {"queue": queue_name, "now": time.time()},
                               inline=False)
        return decoded(rows)

    async def get_pending(self, queue_name: str, count: int = 1) -> list[dict[str, Any]]:
        check_queue_name(queue_name)
        check_count(count, "count", "get_pending")
        rows = await self._rows("get_pending", "get_pending", {"queue": queue_name, "count": count})
        return decoded(rows)

    async def get_scheduled(self, queue_name: str) -> list[dict[str, Any]]:
        check_queue_name(queue_name)
        rows = await self._rows("get_scheduled", "get_scheduled", {"queue": queue_name}, inline=False)
        return decoded(rows)

    async def next_scheduled_at(self, queue_name: str) -> datetime | None:
        """One indexed query. The time is read from the earliest record itself, not from the REAL
        column, so it equals the ``at`` it was scheduled for to the microsecond."""
        check_queue_name(queue_name)
        rows = await self._rows("next_scheduled_at", "next_scheduled_at", {"queue": queue_name})
        if not rows:
            return None
        task_id, data, due = rows[0]
        record = decode_record(data, str(task_id))
        if is_quarantined(record):
            # A corrupt row has no time field to read: its column says when pop_scheduled moves it
            # (a stand-in's "due now" would have every scheduler spin until then).
            return datetime.fromtimestamp(due, UTC)
        return due_at(record)

    async def size(self, queue_name: str) -> int:
        check_queue_name(queue_name)
        return int((await self._rows("size", "size", {"queue": queue_name}))[0][0])

    async def get_stats(self, queue_name: str) -> dict[str, int]:
        check_queue_name(queue_name)
        rows = await self._rows("get_stats", "stats", {"queue": queue_name, "now": time.time()}, inline=False)
        stats = dict.fromkeys(STATS_KEYS, 0)
        places = {"queued": "pending", "claimed": "processing", "scheduled": "scheduled"}
        for state, status, count in rows:
            key = places.get(state) or (status if state == "finished" else None)
            if key in stats:
                stats[key] += int(count)
        return stats

    async def list_queues(self) -> dict[str, int]:
        rows = await self._rows("list_queues", "list_queues", {}, inline=False)
        return {str(name): int(size) for name, size in rows}

    async def clear(self, queue_name: str) -> int:
        check_queue_name(queue_name)
        params = {"queue": queue_name, "now": time.time()}

        async def body(conn: Conn) -> int:
            removed = int((await self._fetch(conn, "clear_count", params))[0][0])
            for name in ("clear_tasks", "clear_crons", "clear_grants", "clear_windows", "clear_window_starts",
                         "clear_workflows", "clear_workflow_pending", "clear_queue"):
                await self._fetch(conn, name, params)
            return removed

        removed = await self._transaction("clear", body)
        notify(self._path, queue_name)
        return removed

    # -- scheduling ------------------------------------------------------------------------------

    async def pop_scheduled(self, queue_name: str, now: datetime | None = None) -> list[dict[str, Any]]:
        check_queue_name(queue_name)
        moment = _now() if now is None else check_aware(now, "now", "pop_scheduled")
        rows = await self._rows("pop_scheduled", "pop_scheduled",
                                {"queue": queue_name, "now": moment.timestamp()}, inline=False)
        if not rows:
            return []
        notify(self._path, queue_name)
        return decoded((task_id, data) for _, task_id, data in sorted(rows, key=lambda row: int(row[0])))

    # -- cancel / delete -------------------------------------------------------------------------

    async def cancel(self, queue_name: str, task_id: str) -> dict[str, Any] | None:
        check_queue_name(queue_name)
        key = {"queue": queue_name, "id": check_task_id(task_id)}

        async def body(conn: Conn) -> dict[str, Any] | None:
            rows = await self._fetch(conn, "waiting_task", key)
            if not rows:
                return None
            record = decode_record(rows[0][0], key["id"])
            record["status"] = "cancelled"
            record["finished_at"] = to_iso(_now())
            await self._fetch(conn, "finish_task", {
                **key, "status": "cancelled", "expires_at": self._retention_deadline(record),
                "data": dumps(record),
            })
            return record

        record = await self._transaction("cancel", body)
        if record is not None:
            notify(self._path, queue_name)
        return record

    async def delete_task(self, queue_name: str, task_id: str) -> bool:
        check_queue_name(queue_name)
        key = {"queue": queue_name, "id": check_task_id(task_id), "now": time.time()}
        if await self._rows("delete_task", "delete_finished", key):
            return True
        state = await self._rows("delete_task", "task_state", key)
        if not state:
            return False
        raise unfinished_delete_error(task_id, state[0][1], queue_name)
