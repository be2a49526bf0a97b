"""``PostgresBackend``: sheppy-core's Backend contract on PostgreSQL through asyncpg.

Design in one paragraph: one ``tasks`` table holds every record with a ``state`` column (queued,
claimed, scheduled, finished, acked). ``pop`` is one ``UPDATE … FROM (SELECT … FOR UPDATE SKIP LOCKED)``
over two partial indexes (expired leases first, then the queue head by a bigserial), so concurrent
claimers take disjoint rows and a crashed worker's tasks come back by the same query once their lease
has passed. Writers NOTIFY in the same statement; idle ``pop``/``get_results`` wait for that on one
LISTEN connection (see :mod:`sheppy_postgres._listener`); results are only notified for queues that
have a registered waiter. Cron, rate limits and workflows live in :mod:`sheppy_postgres._extras`; the
SQL in ``sql/`` (named queries, numbered migrations).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import uuid
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any, Self, TypeAlias

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from sheppy_core.backend import (
    BLOCKING_POP,
    CHANGE_FEED,
    CONTRACT_VERSION,
    CRON,
    RATE_LIMIT,
    RESULT_NOTIFY,
    SHARED_STORE,
    STATS_KEYS,
    TASK_PAGES,
    TRANSACTIONAL_ENQUEUE,
    TTL,
    WORKER_REGISTRY,
    WORKFLOWS,
    Backend,
    check_aware,
    check_count,
    check_queue_name,
    check_seconds,
    check_task_id,
    check_task_ids,
    decode_record,
    due_at,
    is_quarantined,
    listing_key,
    record_to_json,
    retention_seconds,
    task_id_of,
    to_iso,
    unfinished_delete_error,
    utcnow,
)
from sheppy_core.exceptions import (
    BackendConnectionError,
    BackendError,
    BackendInputError,
    CorruptRecordError,
)
from sheppy_postgres._batching import FinishedWrite, ResultBatcher
from sheppy_postgres._config import PostgresOptions, parse_url, quote_ident
from sheppy_postgres._errors import is_connection_problem, translate
from sheppy_postgres._extras import OptionalCapabilities
from sheppy_postgres._inspection import OperatorInspection, stored_func
from sheppy_postgres._lane import Lane, LaneUnavailable
from sheppy_postgres._listener import Notifier
from sheppy_postgres._migrations import apply_migrations, latest_version
from sheppy_postgres._records import (
    decode_name,
    encode_name,
    escape_name,
    int_or_none,
    notify_key,
    row_to_record,
)
from sheppy_postgres._sql import queries_for

__all__ = ["Connection", "PostgresBackend"]

logger = logging.getLogger("sheppy.postgres")
_backend_log = logging.getLogger("sheppy.backend")
"""Where backends log what the contract asks them to (a record set aside as quarantined)."""

Connection: TypeAlias = "asyncpg.Connection[Any] | PoolConnectionProxy[Any]"
"""A caller's asyncpg connection (plain or from a pool), for transactional enqueue."""

_PURGE_BATCH = 500
"""Finished records deleted per purge statement: small, so the purge never holds many row locks."""
_CONNECT_TIMEOUT = 10.0
_REGISTER_RECHECK = 0.02
"""Seconds after registering as a result waiter before looking again (covers a store_result that
raced the registration: its statement is over within this time unless it waited for a lock)."""
_CLAIM_ROUNDS = 32
"""Claim statements one pop runs at most while corrupt rows it sets aside take the places of tasks."""
_STATS_BY_STATE = {"queued": "pending", "claimed": "processing", "scheduled": "scheduled"}


async def _keep_session(conn: asyncpg.Connection[Any]) -> None:
    """Pool reset hook that does nothing (asyncpg still rolls back a transaction left open).

    asyncpg's default reset sends ``RESET ALL; UNLISTEN *; …`` on *every* release — a second round
    trip per query, halving throughput. This pool is private and its sessions never change state:
    no session-level SET (migrations use SET LOCAL), LISTEN lives on its own connection, and advisory
    locks are transaction-scoped.
    """


def _log_quarantined(queue_name: str, stand_in: dict[str, Any]) -> None:
    reason = stand_in["quarantine"]["reason"]
    _backend_log.warning("%s", CorruptRecordError(queue_name, str(stand_in["id"]), reason))


def _workflow_key(record: dict[str, Any]) -> str | None:
    workflow_id = record.get("workflow_id")
    return None if workflow_id is None else encode_name(str(workflow_id))


class PostgresBackend(OperatorInspection, OptionalCapabilities, Backend):
    """Task storage in a PostgreSQL schema. Build it with :meth:`from_url`::

        backend = PostgresBackend.from_url("postgresql://user:pw@db:5432/app?schema=jobs")

    See the package README for URL options, transactional enqueue and PgBouncer mode.
    """

    url_schemes = ("postgresql", "postgres")
    contract_version = CONTRACT_VERSION
    capabilities = frozenset({
        BLOCKING_POP, RESULT_NOTIFY, RATE_LIMIT, CRON, TTL, WORKFLOWS, SHARED_STORE, TRANSACTIONAL_ENQUEUE,
        TASK_PAGES, WORKER_REGISTRY, CHANGE_FEED,
    })

    def __init__(self, url: str = "postgresql://postgres@127.0.0.1:5432/postgres") -> None:
        self._config: PostgresOptions = parse_url(url)
        self.lease_duration = self._config.lease
        self.ttl: float | None = self._config.ttl
        self.error_ttl: float | str | None = self._config.error_ttl
        quoted = quote_ident(self._config.schema)
        self._sql = queries_for(quoted)
        # The sequence behind tasks.seq, as text for a ::regclass parameter (pop_scheduled numbers
        # moved tasks in due order from it).
        self._seq_name = f"{quoted}.tasks_seq_seq"
        # Channel names are identifiers (63 bytes at most): a hash of the schema keeps them short and
        # lets several schemas share a database without waking each other.
        digest = hashlib.md5(self._config.schema.encode(), usedforsecurity=False).hexdigest()[:16]
        self._channel = f"sheppy_{digest}"
        self._pool: asyncpg.Pool[asyncpg.Record] | None = None
        self._notifier: Notifier | None = None
        self._lane: Lane | None = None  # heartbeats' own connection
        self._purge_task: asyncio.Task[None] | None = None
        self._connect_lock: asyncio.Lock | None = None
        self._schema_version = 0
        # Finished records written by concurrent store_result calls share one statement.
        self._results = ResultBatcher(
            self._store_finished_one, self._store_finished_many,
            is_connection_problem=lambda exc: isinstance(exc, BackendConnectionError),
        )

    @classmethod
    def from_url(cls, url: str) -> Self:
        """Build an unconnected backend; ``ConfigurationError`` names a bad option. No I/O."""
        return cls(url)

    def __repr__(self) -> str:
        return f"<PostgresBackend {self._config.redacted} schema={self._config.schema!r}>"

    @property
    def config(self) -> PostgresOptions:
        return self._config

    @property
    def schema(self) -> str:
        return self._config.schema

    @property
    def channel(self) -> str:
        """The LISTEN/NOTIFY channel of this schema."""
        return self._channel

    # -- connection ------------------------------------------------------------------------------

    @property
    def is_connected(self) -> bool:
        return self._pool is not None

    async def _open(self) -> asyncpg.Connection[Any]:
        return await asyncpg.connect(
            self._config.dsn, timeout=_CONNECT_TIMEOUT, statement_cache_size=self._config.statement_cache_size
        )

    async def connect(self) -> None:
        """Open the pool, apply pending migrations (under an advisory lock), start LISTEN and the purge.

        Idempotent. ``BackendConnectionError`` (password redacted) when the server cannot be reached.
        """
        if self._connect_lock is None:
            self._connect_lock = asyncio.Lock()
        async with self._connect_lock:
            if self._pool is not None:
                return
            pool: asyncpg.Pool[asyncpg.Record] | None = None
            try:
                pool = await asyncpg.create_pool(
                    self._config.dsn,
                    min_size=self._config.pool_min,
                    max_size=self._config.pool_max,
                    timeout=_CONNECT_TIMEOUT,
                    statement_cache_size=self._config.statement_cache_size,
                    reset=_keep_session,
                )
                async with pool.acquire() as conn:
                    version, _ = await apply_migrations(conn, self._config.schema)
            except BaseException as exc:
                if pool is not None:
                    pool.terminate()
                if isinstance(exc, Exception):
                    raise translate(exc, "connect", self._config.redacted) from exc
                raise
            if version > latest_version():
                pool.terminate()
                raise BackendError(
                    f"PostgreSQL backend at {self._config.redacted}: schema {self._config.schema!r} is at "
                    f"version {version}, newer than this sheppy-postgres knows ({latest_version()}); "
                    "upgrade sheppy-postgres"
                )
            self._schema_version = version
            self._pool = pool
            self._lane = Lane(self._open)
            if self._config.listen:
                self._notifier = Notifier(self._open, self._channel)
                await self._notifier.start()
            self._purge_task = asyncio.create_task(self._purge_loop(), name="sheppy-postgres purge")

    async def disconnect(self) -> None:
        """Close everything. Claims stay in the table and expire as usual."""
        if self._pool is not None:  # result writes already on their way still get their answer
            await self._results.close()
        pool, self._pool = self._pool, None
        purge, self._purge_task = self._purge_task, None
        notifier, self._notifier = self._notifier, None
        lane, self._lane = self._lane, None
        if lane is not None:
            await lane.close()  # bounded: a heartbeat in flight is cut off, not waited for
        if purge is not None:
            purge.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await purge
        if notifier is not None:
            await notifier.close()
        if pool is not None:
            try:
                await asyncio.wait_for(pool.close(), 5.0)
            except Exception:  # a connection stuck mid-query or already dead: drop them all
                pool.terminate()

    async def migrate(self) -> int:
        """Apply pending migrations now (for ``sheppy`` commands); return the schema version.

        Works connected or not; ``connect`` does the same automatically.
        """
        try:
            if self._pool is not None:
                async with self._pool.acquire() as pooled:
                    version, _ = await apply_migrations(pooled, self._config.schema)
            else:
                single = await self._open()
                try:
                    version, _ = await apply_migrations(single, self._config.schema)
                finally:
                    await single.close()
        except Exception as exc:
            raise translate(exc, "migrate", self._config.redacted) from exc
        self._schema_version = version
        return version

    async def server_info(self) -> dict[str, Any]:
        row = await self._fetchrow("schema_version", retry=True)
        return {
            "server_version": row["server"],
            "schema": self._config.schema,
            "schema_version": row["version"],
            "listening": self._notifier is not None and self._notifier.listening,
        }

    # -- plumbing ----------------------------------------------------------------------------------

    def _require(self) -> asyncpg.Pool[asyncpg.Record]:
        if self._pool is None:
            raise BackendConnectionError(
                f"PostgreSQL backend at {self._config.redacted} is not connected; call connect() first"
            )
        return self._pool

    async def _fetch(
        self, name: str, *args: Any, conn: Connection | None = None, retry: bool = False
    ) -> list[asyncpg.Record]:
        """Run named query ``name``; driver errors become BackendErrors. ``retry``: for idempotent
        queries, try once more when the first attempt lost its connection (a pooled connection that
        died with a server restart)."""
        target = conn if conn is not None else self._require()
        try:
            return await target.fetch(self._sql[name], *args)
        except Exception as exc:
            if not (retry and conn is None and is_connection_problem(exc)):
                raise translate(exc, name, self._config.redacted) from exc
        try:
            return await self._require().fetch(self._sql[name], *args)
        except Exception as exc:
            raise translate(exc, name, self._config.redacted) from exc

    async def _fetchrow(
        self, name: str, *args: Any, conn: Connection | None = None, retry: bool = False
    ) -> asyncpg.Record:
        rows = await self._fetch(name, *args, conn=conn, retry=retry)
        if not rows:
            raise BackendError(f"PostgreSQL backend: query {name} returned no row")
        return rows[0]

    async def _fetchval(
        self, name: str, *args: Any, conn: Connection | None = None, retry: bool = False
    ) -> Any:
        return (await self._fetchrow(name, *args, conn=conn, retry=retry))[0]

    @contextlib.asynccontextmanager
    async def _transaction(self, action: str) -> AsyncIterator[PoolConnectionProxy[Any]]:
        pool = self._require()
        try:
            async with pool.acquire() as conn, conn.transaction():
                yield conn
        except BackendError:
            raise
        except Exception as exc:
            raise translate(exc, action, self._config.redacted) from exc

    @staticmethod
    def _queue(queue_name: str) -> str:
        return encode_name(check_queue_name(queue_name))

    def _lease(self, lease: float | None) -> float:
        seconds = self.lease_duration if lease is None else float(lease)
        if not seconds > 0:
            raise BackendInputError(f"lease must be > 0 seconds, got {lease!r}")
        return seconds

    # -- enqueue ---------------------------------------------------------------------------------

    async def append(
        self,
        queue_name: str,
        tasks: list[dict[str, Any]],
        unique: bool = True,
        *,
        connection: Connection | None = None,
    ) -> list[bool]:
        """Store and queue ``tasks`` in one statement (see the contract).

        ``connection``: run on the caller's asyncpg connection, inside its open transaction; the tasks
        (and the wakeup NOTIFY) become visible when that transaction commits, and vanish on rollback.
        """
        queue = self._queue(queue_name)
        if not tasks:
            return []
        ids = [encode_name(task_id_of(t)) for t in tasks]
        chosen: dict[str, int] = {}
        for index, task_id in enumerate(ids):
            if unique:
                chosen.setdefault(task_id, index)  # first wins
            else:
                chosen.pop(task_id, None)
                chosen[task_id] = index  # last wins, queued at its own position
        picks = list(chosen.values())
        datas, deliveries, workflows, keys, funcs = [], [], [], [], []
        now = utcnow()
        for index in picks:
            record = dict(tasks[index])
            record["status"] = "pending"
            datas.append(record_to_json(record))
            deliveries.append(int_or_none(record.get("deliveries")))
            workflows.append(_workflow_key(record))
            keys.append(listing_key(record, now))
            funcs.append(stored_func(record))
        row = await self._fetchrow(
            "append", queue, [ids[i] for i in picks], datas, deliveries, workflows, not unique,
            self._channel, notify_key("q", queue), escape_name(queue_name), keys, funcs, conn=connection,
        )
        if not unique:
            return [True] * len(tasks)
        if row["ids"] is None:  # every picked record was stored
            return [chosen[task_id] == index for index, task_id in enumerate(ids)]
        stored = set(row["ids"])
        return [chosen[task_id] == index and task_id in stored for index, task_id in enumerate(ids)]

    async def schedule(
        self,
        queue_name: str,
        task_data: dict[str, Any],
        at: datetime,
        unique: bool = True,
        *,
        connection: Connection | None = None,
    ) -> bool:
        """Store a record as scheduled for ``at``; ``connection`` as in :meth:`append`."""
        queue = self._queue(queue_name)
        task_id = encode_name(task_id_of(task_data))
        check_aware(at, "at", "schedule")
        record = dict(task_data)
        record["status"] = "scheduled"
        record["scheduled_at"] = to_iso(at)
        count = await self._fetchval(
            "schedule", queue, task_id, record_to_json(record), at, int_or_none(record.get("deliveries")),
            _workflow_key(record), not unique, escape_name(queue_name), listing_key(record, utcnow()),
            stored_func(record), conn=connection,
        )
        return bool(count)

    # -- claim -----------------------------------------------------------------------------------

    async def pop(
        self,
        queue_name: str,
        limit: int = 1,
        timeout: float | None = None,
        *,
        worker_id: str | None = None,
        lease: float | None = None,
    ) -> list[dict[str, Any]]:
        """Claim up to ``limit`` tasks; with ``timeout > 0`` wait for a NOTIFY (or the fallback poll)."""
        queue = self._queue(queue_name)
        check_count(limit, "limit", "pop")
        worker = worker_id or self.client_id
        seconds = self._lease(lease)
        if timeout is None or timeout <= 0:
            return await self._claim(queue, limit, worker, seconds, queue_name)

        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        notifier = self._notifier
        with contextlib.ExitStack() as stack:
            # Subscribe before the first claim, so a NOTIFY sent while it runs is not lost.
            event = stack.enter_context(notifier.subscribe(notify_key("q", queue))) if notifier else None
            while True:
                if event is not None:
                    event.clear()
                records = await self._claim(queue, limit, worker, seconds, queue_name)
                if records:
                    return records
                remaining = deadline - loop.time()
                if remaining <= 0:
                    return []
                await self._wait(event, min(remaining, self._config.poll_interval))

    @staticmethod
    async def _wait(event: asyncio.Event | None, seconds: float) -> None:
        if event is None:
            await asyncio.sleep(seconds)
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(event.wait(), seconds)

    async def _claim(
        self, queue: str, limit: int, worker: str, lease: float, queue_name: str
    ) -> list[dict[str, Any]]:
        """Claim up to ``limit`` tasks that can be read ``[robust.corrupt_record]``.

        A claimed row whose data is not a task record of its key (decoded in Python: PostgreSQL 15
        has no non-raising JSON test, and parsing every payload in the claim would cost the hot path)
        is set aside as quarantined right after, still under this claim, and as many more are claimed
        in its place. No extra statement runs when nothing is corrupt. Should this process die in
        between, the row stays claimed until its lease passes, and the next claimer sets it aside.
        """
        records: list[dict[str, Any]] = []
        held: list[str] = []
        try:
            for _ in range(_CLAIM_ROUNDS):
                wanted = limit - len(records)
                rows = await self._claim_rows(queue, wanted, worker, lease)
                corrupt: list[tuple[asyncpg.Record, dict[str, Any]]] = []
                for row in rows:
                    record = row_to_record(row)
                    if is_quarantined(record):
                        corrupt.append((row, record))
                    else:
                        records.append(record)
                        held.append(row["id"])
                if not corrupt:
                    return records
                try:
                    await self._quarantine_claimed(queue, queue_name, worker, corrupt)
                except BackendError:
                    if records:  # claimed: hand them out; the corrupt rows come back after their lease
                        return records
                    raise
                if len(rows) < wanted:
                    return records
        except asyncio.CancelledError:
            if held:  # a cancelled pop claims nothing: give back what earlier rounds took
                with contextlib.suppress(Exception):
                    await self._fetch("release_tasks", queue, held, worker)
            raise
        return records

    async def _quarantine_claimed(
        self, queue: str, queue_name: str, worker: str, corrupt: list[tuple[asyncpg.Record, dict[str, Any]]]
    ) -> None:
        """Store the quarantine stand-ins of claimed rows pop could not read (only where this very claim
        still holds them: same holder, same delivery count) and log each one set aside."""
        row = await self._fetchrow(
            "quarantine_claimed", queue, [r["id"] for r, _ in corrupt], worker,
            [r["deliveries"] for r, _ in corrupt], [record_to_json(stand_in) for _, stand_in in corrupt],
            [retention_seconds(stand_in, self.ttl, self.error_ttl) for _, stand_in in corrupt],
            self._channel, notify_key("r", queue),
        )
        moved = set(row["ids"])
        for stored, stand_in in corrupt:
            if stored["id"] in moved:
                _log_quarantined(queue_name, stand_in)

    async def _claim_rows(self, queue: str, limit: int, worker: str, lease: float) -> list[asyncpg.Record]:
        # Shielded: if the caller is cancelled while the UPDATE runs, the claim may still commit; the
        # rows it took are then given back, so a cancelled pop claims nothing.
        attempt = asyncio.ensure_future(self._fetch("claim_tasks", queue, limit, worker, lease, retry=True))
        try:
            rows = await asyncio.shield(attempt)
        except asyncio.CancelledError:
            with contextlib.suppress(Exception):
                taken = await attempt
                if taken:
                    await self._fetch("release_tasks", queue, [r["id"] for r in taken], worker)
            raise
        rows.sort(key=lambda r: (r["priority"], r["seq"]))
        return rows

    async def acknowledge(self, queue_name: str, task_id: str) -> bool:
        rows = await self._fetch("acknowledge", self._queue(queue_name), encode_name(check_task_id(task_id)))
        return bool(rows)

    async def heartbeat(
        self,
        queue_name: str,
        task_ids: list[str],
        *,
        worker_id: str | None = None,
        lease: float | None = None,
    ) -> list[str]:
        queue = self._queue(queue_name)
        seconds = self._lease(lease)
        task_ids = check_task_ids(task_ids)
        if not task_ids:
            return []
        encoded = [encode_name(t) for t in task_ids]
        worker = worker_id or self.client_id
        rows = await self._heartbeat_rows(queue, encoded, worker, seconds)
        held = {r["id"] for r in rows}
        seen: set[str] = set()
        kept: list[str] = []
        for task_id, stored in zip(task_ids, encoded, strict=True):
            if stored in held and stored not in seen:
                seen.add(stored)
                kept.append(task_id)
        return kept

    async def _heartbeat_rows(
        self, queue: str, ids: list[str], worker: str, seconds: float
    ) -> list[asyncpg.Record]:
        """Run the heartbeat statement on the lane (:mod:`sheppy_postgres._lane`), within a third of the
        lease; through the pool whenever the lane cannot take it at once or fails."""
        args = (queue, ids, worker, seconds)
        lane = self._lane
        if lane is not None:
            timeout = max(0.5, min(seconds / 3, 5.0))
            try:
                return await lane.fetch(self._sql["heartbeat"], *args, timeout=timeout)
            except LaneUnavailable:
                pass
            except Exception as exc:  # refused by the server: the pool says it again, translated
                logger.debug("sheppy-postgres: heartbeat connection failed (%s); using the pool", exc)
        return await self._fetch("heartbeat", *args, retry=True)

    # -- results ---------------------------------------------------------------------------------

    async def store_result(self, queue_name: str, task_data: dict[str, Any]) -> bool:
        queue = self._queue(queue_name)
        task_id = encode_name(task_id_of(task_data))
        record = dict(task_data)
        record["claimed_by"] = None
        record["lease_expires_at"] = None
        deliveries = int_or_none(record.get("deliveries"))
        workflow = _workflow_key(record)
        if record.get("finished_at") is not None:
            status = str(record.get("status") or "completed")
            keep = retention_seconds(record, self.ttl, self.error_ttl)
            self._require()
            write = FinishedWrite(task_id, status, record_to_json(record), deliveries, workflow, keep)
            return await self._results.store(queue, write)
        if record.get("status") in ("retrying", "scheduled"):
            rows = await self._fetch(
                "store_rescheduled", queue, task_id, record["status"], record_to_json(record), due_at(record),
                deliveries, workflow,
            )
            return bool(rows)
        record["status"] = "pending"
        row = await self._fetchrow(
            "store_requeued", queue, task_id, record_to_json(record), deliveries, workflow,
            self._channel, notify_key("q", queue),
        )
        return bool(row["stored"])

    async def _store_finished_one(self, queue: str, write: FinishedWrite) -> bool:
        row = await self._fetchrow(
            "store_finished", queue, write.task_id, write.status, write.data, write.deliveries,
            write.workflow, write.keep, self._channel, notify_key("r", queue),
        )
        return bool(row["stored"])

    async def _store_finished_many(self, queue: str, writes: list[FinishedWrite]) -> set[str]:
        row = await self._fetchrow(
            "store_finished_many", queue, [w.task_id for w in writes], [w.status for w in writes],
            [w.data for w in writes], [w.deliveries for w in writes], [w.workflow for w in writes],
            [w.keep for w in writes], self._channel, notify_key("r", queue),
        )
        return set(row["ids"])

    async def get_results(
        self, queue_name: str, task_ids: list[str], timeout: float | None = None
    ) -> dict[str, dict[str, Any]]:
        queue = self._queue(queue_name)
        if not task_ids:
            return {}
        wanted = {encode_name(t): t for t in check_task_ids(task_ids)}
        results: dict[str, dict[str, Any]] = {}

        async def collect() -> None:
            missing = [stored for stored, task_id in wanted.items() if task_id not in results]
            for row in await self._fetch("get_results", queue, missing, retry=True):
                results[wanted[row["id"]]] = row_to_record(row, wanted[row["id"]])

        if timeout is None or timeout < 0:
            await collect()
            return results
        loop = asyncio.get_running_loop()
        deadline = None if timeout == 0 else loop.time() + timeout
        notifier = self._notifier
        tokens: list[uuid.UUID] = []
        registered_pid: int | None = None
        try:
            with contextlib.ExitStack() as stack:
                event = stack.enter_context(notifier.subscribe(notify_key("r", queue))) if notifier else None
                while True:
                    if event is not None:
                        event.clear()
                    await collect()
                    if len(results) == len(wanted):
                        return results
                    wait = self._config.poll_interval
                    pid = notifier.server_pid if notifier is not None else None
                    if pid is not None and pid != registered_pid:
                        # Writers only NOTIFY queues somebody waits on: register (again, if the LISTEN
                        # session changed), then look again soon, because a store_result whose
                        # statement began before the registration committed did not notify.
                        await self._register_result_waiters([queue], pid, tokens)
                        registered_pid = pid
                        wait = _REGISTER_RECHECK
                    if deadline is not None:
                        remaining = deadline - loop.time()
                        if remaining <= 0:
                            raise TimeoutError(
                                f"{len(wanted) - len(results)} of {len(wanted)} tasks in queue "
                                f"{queue_name!r} did not finish within {timeout} s"
                            )
                        wait = min(wait, remaining)
                    await self._wait(event, wait)
        finally:
            with contextlib.suppress(BackendError):
                await self._unregister_result_waiters(tokens)

    async def wait_for_change(self, queue_names: list[str], timeout: float) -> bool:
        """LISTEN for the queues' ``q`` (append, schedule, requeue) and ``r`` (finished) NOTIFYs.

        Writers only NOTIFY results of queues somebody waits on, so the call registers as a result
        waiter of each queue for its duration (again when the LISTEN session changes), as ``get_results``
        does. Without a LISTEN connection (``listen=false``) it is the default: a sleep, then False.
        """
        seconds = check_seconds(timeout, "timeout", "wait_for_change")
        queues = list(dict.fromkeys(self._queue(name) for name in queue_names))
        notifier = self._notifier
        if notifier is None:
            return await super().wait_for_change(queue_names, seconds)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + seconds
        changed = asyncio.Event()
        tokens: list[uuid.UUID] = []
        registered_pid: int | None = None
        try:
            with contextlib.ExitStack() as stack:
                for queue in queues:
                    stack.enter_context(notifier.subscribe(notify_key("q", queue), changed))
                    stack.enter_context(notifier.subscribe(notify_key("r", queue), changed))
                while True:
                    pid = notifier.server_pid
                    if pid is not None and pid != registered_pid:
                        await self._register_result_waiters(queues, pid, tokens)
                        registered_pid = pid
                    remaining = deadline - loop.time()
                    if remaining <= 0:
                        return False
                    try:
                        # Look at the LISTEN session again after a poll interval: while it is down
                        # nothing is delivered, and once it is back the registration must follow it.
                        async with asyncio.timeout(min(remaining, self._config.poll_interval)):
                            await changed.wait()
                    except TimeoutError:
                        continue
                    return True
        finally:
            with contextlib.suppress(BackendError):
                await self._unregister_result_waiters(tokens)

    async def _register_result_waiters(self, queues: list[str], pid: int, tokens: list[uuid.UUID]) -> None:
        """Register as a result waiter of each of ``queues`` for the LISTEN session ``pid`` (writers only
        NOTIFY results of queues somebody waits on), replacing the registrations in ``tokens``, which then
        holds the new ones."""
        await self._unregister_result_waiters(tokens)
        for queue in queues:
            token = uuid.uuid4()
            await self._fetch("register_result_waiter", token, queue, pid)
            tokens.append(token)

    async def _unregister_result_waiters(self, tokens: list[uuid.UUID]) -> None:
        """Forget these result-waiter registrations (best effort: a row left behind only costs NOTIFYs
        until the purge drops it); the list is emptied."""
        while tokens:
            await self._fetch("unregister_result_waiter", tokens.pop())

    # -- inspection ------------------------------------------------------------------------------

    async def get_tasks(self, queue_name: str, task_ids: list[str]) -> dict[str, dict[str, Any]]:
        queue = self._queue(queue_name)
        if not task_ids:
            return {}
        wanted = {encode_name(t): t for t in check_task_ids(task_ids)}
        rows = await self._fetch("get_tasks", queue, list(wanted), retry=True)
        return {wanted[r["id"]]: row_to_record(r, wanted[r["id"]]) for r in rows}

    async def get_all_tasks(self, queue_name: str) -> list[dict[str, Any]]:
        rows = await self._fetch("get_all_tasks", self._queue(queue_name), retry=True)
        return [row_to_record(r) for r in rows]

    async def get_pending(self, queue_name: str, count: int = 1) -> list[dict[str, Any]]:
        queue = self._queue(queue_name)
        check_count(count, "count", "get_pending")
        return [row_to_record(r) for r in await self._fetch("get_pending", queue, count, retry=True)]

    async def get_scheduled(self, queue_name: str) -> list[dict[str, Any]]:
        rows = await self._fetch("get_scheduled", self._queue(queue_name), retry=True)
        return [row_to_record(r) for r in rows]

    async def next_scheduled_at(self, queue_name: str) -> datetime | None:
        queue = self._queue(queue_name)
        value: datetime | None = await self._fetchval("next_scheduled_at", queue, retry=True)
        return value

    async def size(self, queue_name: str) -> int:
        return int(await self._fetchval("size", self._queue(queue_name), retry=True))

    async def get_stats(self, queue_name: str) -> dict[str, int]:
        stats = dict.fromkeys(STATS_KEYS, 0)
        for row in await self._fetch("get_stats", self._queue(queue_name), retry=True):
            key = row["status"] if row["state"] == "finished" else _STATS_BY_STATE.get(row["state"], "")
            if key in stats:
                stats[key] += int(row["n"])
        return stats

    async def list_queues(self) -> dict[str, int]:
        rows = await self._fetch("list_queues", retry=True)
        return {decode_name(r["name"]): int(r["size"]) for r in rows}

    async def clear(self, queue_name: str) -> int:
        return int(await self._fetchval("clear", self._queue(queue_name)))

    # -- scheduling ------------------------------------------------------------------------------

    async def pop_scheduled(self, queue_name: str, now: datetime | None = None) -> list[dict[str, Any]]:
        queue = self._queue(queue_name)
        moment = utcnow() if now is None else check_aware(now, "now", "pop_scheduled")
        rows = await self._fetch(
            "pop_scheduled", queue, moment, self._seq_name, self._channel, notify_key("q", queue)
        )
        return [row_to_record(r) for r in rows]

    # -- cancel / delete -------------------------------------------------------------------------

    async def cancel(self, queue_name: str, task_id: str) -> dict[str, Any] | None:
        queue = self._queue(queue_name)
        stored_id = encode_name(check_task_id(task_id))
        async with self._transaction("cancel") as conn:
            row = await conn.fetchrow(self._sql["lock_task"], queue, stored_id)
            if row is None or row["state"] not in ("queued", "scheduled"):
                return None
            record = decode_record(row["data"], str(task_id))
            if is_quarantined(record):  # cannot be read as a task: set aside like pop would, not run
                keep = retention_seconds(record, self.ttl, self.error_ttl)
                await conn.execute(
                    self._sql["store_quarantined"], queue, stored_id, record_to_json(record), keep
                )
                await conn.fetch(self._sql["notify_results"], queue, self._channel, notify_key("r", queue))
                _log_quarantined(queue_name, record)
                return record
            record["status"] = "cancelled"
            record["finished_at"] = to_iso(utcnow())
            if row["deliveries"] is not None:
                record["deliveries"] = row["deliveries"]
            keep = retention_seconds(record, self.ttl, self.error_ttl)
            await conn.execute(self._sql["store_cancelled"], queue, stored_id, record_to_json(record), keep)
            await conn.fetch(self._sql["notify_results"], queue, self._channel, notify_key("r", queue))
        return record

    async def delete_task(self, queue_name: str, task_id: str) -> bool:
        queue, stored_id = self._queue(queue_name), encode_name(check_task_id(task_id))
        for _ in range(2):  # a second look if the row changed between the statements
            row = await self._fetchrow("delete_task", queue, stored_id)
            if row["deleted"]:
                return True
            if row["state"] is None:
                return False
            # Not finished, unless its data cannot be read as a task: reads hand out a (finished)
            # quarantine stand-in for it, so it is deleted like one ([robust.corrupt_record]).
            current = await self._fetch("get_unfinished_row", queue, stored_id)
            if not current or not is_quarantined(row_to_record(current[0], str(task_id))):
                break
            state, seq, data = current[0]["state"], current[0]["seq"], current[0]["data"]
            if await self._fetchval("delete_unfinished", queue, stored_id, state, seq, data):
                return True
        raise unfinished_delete_error(str(task_id), queue_name=queue_name)

    # -- retention -------------------------------------------------------------------------------

    async def purge_expired(self) -> int:
        """Delete expired finished records (in batches of 500) and spent rate-limit state; return the
        number of records deleted. Runs in the background every ``purge_interval`` seconds, never on
        the claim path; reads already ignore expired rows, so the purge only reclaims space."""
        total = 0
        while True:
            deleted = int(await self._fetchval("purge_expired", _PURGE_BATCH))
            total += deleted
            if deleted < _PURGE_BATCH:
                break
            await asyncio.sleep(0)  # let other coroutines run between batches
        await self._fetch("purge_rate_limits")
        await self._fetch("purge_result_waiters")
        return total

    async def _purge_loop(self) -> None:
        while True:
            await asyncio.sleep(self._config.purge_interval)
            try:
                purged = await self.purge_expired()
                if purged:
                    logger.debug("sheppy-postgres: purged %d expired records", purged)
            except BackendError as exc:  # the server is away; try again next round
                logger.debug("sheppy-postgres: purge failed: %s", exc)


async def migrate(url: str) -> int:
    """Apply pending migrations to the schema named by ``url`` and return its version."""
    return await PostgresBackend.from_url(url).migrate()
