"""The ``Backend`` contract: what a storage plug-in must do for sheppy-core.

This module is the specification. Each guarantee carries a clause id in square brackets, e.g.
``[pop.fifo]``; the conformance suite (``sheppy-conformance``) has at least one test per id, named after
it, and its report lists them.

Vocabulary
----------
queue
    A name (any non-empty string, including ``:``, ``*``, ``{``, quotes, spaces, ``%``, ``_``, NUL and
    any unicode). Queues never see each other's tasks, crons, rate limits or workflows
    ``[isolation.queue_names]``. Task ids are unique *within* a queue.
    ``[input.unencodable]`` What no store can hold is refused with ``BackendInputError`` naming the
    problem, before anything is sent to the store (nothing of the call is stored; the backend stays
    usable): a queue name without a UTF-8 form (a lone surrogate such as ``"\\ud800"``), by every
    method; a task id containing NUL or without a UTF-8 form, in a record given to ``append``,
    ``schedule`` or ``store_result`` and as an argument of ``get_tasks``, ``get_results``,
    ``heartbeat``, ``acknowledge``, ``cancel`` or ``delete_task``.
    :func:`~sheppy_core.backend.check_queue_name`, :func:`~sheppy_core.backend.check_task_id` and
    :func:`~sheppy_core.backend.task_id_of` make these checks.
task record
    A JSON object (``dict``) holding a task's fields as ``Task.model_dump(mode="json")`` writes them.
    sheppy-core hands over only the fields that differ from their defaults (``id``, ``status``,
    ``spec`` and ``created_at`` are always there), so any other field may be missing: a missing field
    has its default (``None``, ``0``, ``[]``, ``{}``) ``[payload.compact]``. A backend stores it as JSON
    and hands it back equal, except for the fields the contract says the backend writes. Payloads may be
    large (1 MB) and hold any unicode ``[payload.large]`` ``[payload.unicode]``. The backend reads only:
    ``id`` (str), ``status``, ``finished_at``, ``scheduled_at``, ``next_retry_at``, ``workflow_id``,
    ``cron_id`` (the cron an occurrence belongs to, see ``delete_cron``), ``config.ttl`` and
    ``config.error_ttl``. Times are ISO 8601 strings with a UTC offset; use
    :func:`sheppy_core.backend.to_iso` / :func:`~sheppy_core.backend.from_iso`.
where a task is
    At any moment a stored task is in exactly one place: **queued** (waiting to be claimed, status
    ``pending``), **claimed** (status ``processing``, held under a lease), **scheduled** (waiting for a
    time, status ``scheduled`` or ``retrying``), or **finished** (``finished_at`` set; status
    ``completed``, ``failed``, ``cancelled`` or ``crashed``).
lease
    ``pop`` claims a task for ``lease`` seconds (default :attr:`Backend.lease_duration`). The claim —
    who holds it and until when — is kept *in the store*, visible on the record as ``claimed_by`` and
    ``lease_expires_at``, so any backend object on the same store can finish, extend or reclaim it.
    A claim that is neither finished (``store_result``/``acknowledge``) nor extended (``heartbeat``)
    before it expires makes the task claimable again: delivery is at-least-once.
clocks
    Lease expiry, TTL and rate-limit windows may be measured on the store's clock where it has one
    (Redis ``TIME``, PostgreSQL ``now()``); ``schedule(at=...)`` and ``pop_scheduled(now=...)`` compare the
    caller's times with the caller's clock. Keep clients' clocks in sync (NTP) for schedules to be exact.

Errors
------
Every method raises only :class:`~sheppy_core.exceptions.BackendError` subclasses (plus the
``TimeoutError`` documented on ``get_results``): :class:`~sheppy_core.exceptions.BackendConnectionError`
when the server cannot be reached or the connection was lost (the caller may retry),
:class:`~sheppy_core.exceptions.BackendInputError` for input the backend cannot accept (a record
without ``id``, an empty queue name, ``limit < 1``), :class:`~sheppy_core.exceptions.NotSupportedError`
for an optional capability the backend does not declare. A driver's own exception never escapes.
Calling a storage method before :meth:`Backend.connect` (or after :meth:`Backend.disconnect`) raises
``BackendConnectionError``.

Corrupt records ``[robust.corrupt_record]``: a stored record that cannot be read back as a JSON
object with its own ``id`` (written by a bug, a manual edit, a disk fault) never fails a call nor blocks
its queue. Every read (``get_tasks``, ``get_all_tasks``, ``get_results``, ``get_pending``,
``get_scheduled``, ``cancel``) hands out :func:`~sheppy_core.backend.quarantine_record` in its place
(:func:`~sheppy_core.backend.decode_record` does it); ``pop`` stores that stand-in — a finished record
with status ``quarantined`` that keeps the stored text — instead of claiming it, logs a warning naming
queue and id (a :class:`~sheppy_core.exceptions.CorruptRecordError` message) and claims the good tasks
behind it. ``get_stats`` counts such records under ``quarantined``, ``delete_task`` deletes them. A
record that is valid JSON but not a task is the caller's to find: sheppy-core's worker stores its
quarantine record through ``store_result``.

Reconnection ``[reconnect.recovers]``: when a connection is dropped between calls, the next call
either succeeds on a new connection or raises ``BackendConnectionError``; it never loses a task that an
earlier call acknowledged as stored, and a later call succeeds once the server is reachable.
"""

from __future__ import annotations

import asyncio
import uuid
from abc import ABC, abstractmethod
from datetime import datetime
from types import TracebackType
from typing import Any, ClassVar, Self

from sheppy_core.backend._capabilities import (
    CRON,
    RATE_LIMIT,
    TASK_PAGES,
    WORKER_REGISTRY,
    WORKFLOWS,
    missing_capability,
)
from sheppy_core.backend._checks import check_count, check_queue_name, check_seconds
from sheppy_core.backend._pages import DEFAULT_PAGE_SIZE, TaskPage
from sheppy_core.backend._records import STATS_KEYS
from sheppy_core.exceptions import NotSupportedError

__all__ = ["CONTRACT_VERSION", "Backend"]

CONTRACT_VERSION = 1
"""The version of this contract. A plugin states the version it was written for in
``Backend.contract_version``; sheppy-core refuses a backend built for another version."""

DEFAULT_LEASE_SECONDS = 15.0
DEFAULT_COUNT_CAP = 10_000


class Backend(ABC):
    """Abstract storage for queues of task records. Async only.

    Class attributes a backend declares:

    ``url_schemes``
        The URL schemes it serves (``("redis", "rediss")``); used by the plugin registry.
    ``contract_version``
        The :data:`CONTRACT_VERSION` it implements. Not inherited on purpose: a plugin must state it.
    ``capabilities``
        A frozenset of names from :mod:`sheppy_core.backend` (``BLOCKING_POP``, ``RATE_LIMIT``, ...).
        Methods for a capability the backend lacks raise ``NotSupportedError`` (the defaults here do).

    A backend used by several coroutines of one event loop at once must be safe for that; it need not
    be shared across event loops or threads.
    """

    url_schemes: ClassVar[tuple[str, ...]] = ()
    contract_version: ClassVar[int]
    capabilities: ClassVar[frozenset[str]] = frozenset()

    #: Default claim lease in seconds, used when ``pop``/``heartbeat`` get ``lease=None``.
    lease_duration: float = DEFAULT_LEASE_SECONDS

    _client_id: str | None = None

    @classmethod
    def from_url(cls, url: str) -> Self:
        """Build an unconnected backend from a URL of one of ``url_schemes``.

        Raises ``ConfigurationError`` (a ``ValueError``) naming the problem for a URL it cannot use.
        Must not connect or do I/O: connecting is :meth:`connect`'s job.
        """
        raise NotSupportedError(f"{cls.__name__} cannot be built from a URL")

    @property
    def client_id(self) -> str:
        """An id unique to this backend object, used as ``claimed_by`` when ``pop`` gets no ``worker_id``."""
        if self._client_id is None:
            self._client_id = f"client-{uuid.uuid4().hex[:12]}"
        return self._client_id

    def __repr__(self) -> str:
        return f"<{type(self).__name__}>"

    async def __aenter__(self) -> Self:
        await self.connect()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.disconnect()

    # -- connection ------------------------------------------------------------------------------

    @property
    @abstractmethod
    def is_connected(self) -> bool:
        """True between a successful :meth:`connect` and :meth:`disconnect`."""

    @abstractmethod
    async def connect(self) -> None:
        """Open connections (and create or migrate the schema, where the backend has one).

        Idempotent: connecting a connected backend does nothing. Raises ``BackendConnectionError``
        (with the URL's password redacted) when the server cannot be reached.
        """

    @abstractmethod
    async def disconnect(self) -> None:
        """Close connections. Idempotent. Stored data is untouched; claims stay in the store and expire
        as usual, so a task claimed through this object is redelivered after its lease."""

    async def store_exists(self) -> bool | None:
        """Whether the store this backend would connect to exists already, found without creating it
        (and without connecting). None (the default) when the backend cannot tell that way — a server
        is there or not, and :meth:`connect` says which.

        A backend whose :meth:`connect` creates its store (SQLite creates the file) overrides it, so
        that commands which only read (``sheppy task list``) refuse a mistyped path instead of creating
        an empty store there and reporting that it holds nothing.
        """
        return None

    async def server_info(self) -> dict[str, Any]:
        """Facts for ``sheppy backends check``: e.g. ``{"server_version": "7.0.15", "schema_version": 2}``.

        Optional; the default knows nothing.
        """
        return {}

    # -- enqueue ---------------------------------------------------------------------------------

    @abstractmethod
    async def append(
        self, queue_name: str, tasks: list[dict[str, Any]], unique: bool = True, *, connection: Any = None
    ) -> list[bool]:
        """Store task records and queue them for claiming, in list order.

        Returns one bool per input record, in order: True if it was stored and queued.

        - ``[append.status]`` A queued record is stored with ``status`` set to ``"pending"``.
        - ``[append.unique]`` With ``unique=True`` a record whose ``id`` already exists in this queue, in
          any state (queued, claimed, scheduled, finished), is neither stored nor queued: its entry is
          False and the stored record is unchanged. Two records with the same id in one call: the
          first wins.
        - ``[append.replace]`` With ``unique=False`` the record replaces any stored one with that id and
          the task is queued at the tail; it is never in the queue or schedule twice (an existing queue
          or schedule entry, or claim, for that id is dropped).
        - ``[append.batch]`` The call is atomic per record (a record is either fully stored and queued or
          not at all) and should be one round trip for the whole list; an empty list returns ``[]``.
        - ``[append.fifo]`` Tasks are claimed in the order they were appended (see ``pop``).

        ``[append.connection]`` ``connection`` (keyword only) belongs to the ``TRANSACTIONAL_ENQUEUE``
        capability: a backend declaring it takes the caller's open connection/transaction there, and
        the records become visible only when that transaction commits (a rollback leaves no task
        behind). A backend without the capability accepts only ``connection=None`` and raises
        :func:`~sheppy_core.backend.missing_capability` for anything else.
        """

    @abstractmethod
    async def schedule(
        self,
        queue_name: str,
        task_data: dict[str, Any],
        at: datetime,
        unique: bool = True,
        *,
        connection: Any = None,
    ) -> bool:
        """Store a record and keep it out of the queue until ``at`` (an aware datetime).

        - ``[schedule.status]`` Stored with ``status="scheduled"`` and ``scheduled_at`` set to ``at``.
        - ``[schedule.unique]`` ``unique`` behaves as in ``append``: False and no change when the id
          exists; with ``unique=False`` the record replaces the stored one and any queue entry, schedule
          entry or claim for it.
        - ``[schedule.not_before]`` The task is not returned by ``pop`` or ``pop_scheduled`` before ``at``.

        Returns True if stored. A naive ``at`` raises ``BackendInputError``. ``connection``: as in
        ``append`` (``TRANSACTIONAL_ENQUEUE``).
        """

    # -- claim -----------------------------------------------------------------------------------

    @abstractmethod
    async def pop(
        self,
        queue_name: str,
        limit: int = 1,
        timeout: float | None = None,
        *,
        worker_id: str | None = None,
        lease: float | None = None,
    ) -> list[dict[str, Any]]:
        """Claim up to ``limit`` claimable tasks and return their records as now stored.

        A task is claimable when it is queued, or claimed with an expired lease.

        - ``[pop.fifo]`` Queued tasks are claimed in append order (``pop_scheduled`` and ``store_result``
          re-queue at the tail). Tasks with an expired lease are claimed before queued ones.
        - ``[pop.limit]`` At most ``limit`` records; ``limit < 1`` raises ``BackendInputError``.
        - ``[pop.claim]`` Each returned record is stored and returned with ``status="processing"``,
          ``claimed_by`` = ``worker_id`` (or :attr:`client_id`), ``lease_expires_at`` = now + ``lease``
          seconds (``lease=None``: :attr:`lease_duration`), and ``deliveries`` incremented by one (a
          missing field counts as 0). ``deliveries > 1`` tells the claimant that an earlier claim of the
          same run was lost.
        - ``[pop.exclusive]`` A claim is atomic: concurrent ``pop`` calls, from any number of backend
          objects and processes on the same store, never return the same task while its lease is live.
        - ``[pop.hidden]`` A claimed task is not returned again (nor counted by ``size``/``get_pending``)
          until its lease expires.
        - ``[lease.expired_redelivered]`` Once the lease expires without ``heartbeat``/``store_result``/
          ``acknowledge``, a later ``pop`` returns the task again.
        - ``[pop.timeout]`` ``timeout`` None or ``<= 0``: return at once (possibly ``[]``). ``timeout > 0``
          with ``BLOCKING_POP``: if nothing is claimable, wait up to ``timeout`` seconds for an
          ``append``/re-queue ``[pop.blocks_until_append]`` and return as soon as one arrives, or ``[]``
          when the time is up. (A lease expiring during the wait may wake it too, or be noticed at the
          next call.) Without ``BLOCKING_POP`` the backend may return ``[]`` at once.
        - ``[pop.wakes_promptly]`` With ``BLOCKING_POP``, an idle ``pop(timeout=...)`` is woken by an
          ``append`` from another coroutine or backend object on the same store within a bound: over a
          run of idle waits, the median time from ``append`` returning to ``pop`` returning the task is
          at most 50 ms (the bundled backends take 0.1-16 ms on a loaded 2-core machine). Waking by a
          notification (LISTEN/NOTIFY, pub/sub, a blocking list pop, an in-process event) meets it;
          polling the store meets it only at a few tens of milliseconds or less (every 150 ms does not).
        - ``[pop.no_scheduled]`` A scheduled task is never returned by ``pop`` before it has been moved to
          the queue by ``pop_scheduled`` (backends may move due tasks themselves; never early ones).
        - ``[pop.wakes_all]`` With ``BLOCKING_POP``, when ``n`` tasks arrive in one ``append`` while ``n``
          ``pop`` calls block (on any objects on the same store), every one of them returns promptly
          with a task; a woken ``pop`` that leaves work behind must not leave the other waiters asleep.
        - ``[pop.cancel_mid_claim]`` Cancelling the awaiting coroutine, while it blocks or at any other
          point, claims nothing: a claim the caller never received (made in the store while the
          cancellation arrived, its reply still on the way) is handed back before or soon after the
          cancellation completes, so every task stays claimable, each exactly once, with
          ``deliveries`` not counting the cancelled claim. (A claim shielded from cancellation, e.g.
          ``asyncio.shield`` around the claiming transaction, commits for a caller that is gone: let the
          cancellation roll the transaction back, or shield it only together with a hand-back.)
        """

    @abstractmethod
    async def acknowledge(self, queue_name: str, task_id: str) -> bool:
        """Release the claim on a task and drop it from the queue without recording an outcome.

        ``[ack.releases]`` Returns True if the task was claimed (lease live or expired); it will not be
        delivered again. Its record keeps its fields except ``claimed_by``/``lease_expires_at``, which are
        cleared; the task is then in none of the four places and is counted by no ``get_stats`` key,
        until ``store_result``, ``append(unique=False)``/``schedule(unique=False)`` or ``clear``.
        sheppy-core's worker never calls it (``store_result`` releases the claim itself); it exists for
        the seed contract. ``[ack.unknown]`` False for an unknown id or a task that is not claimed
        (queued, scheduled or finished tasks are left as they are).
        """

    @abstractmethod
    async def heartbeat(
        self,
        queue_name: str,
        task_ids: list[str],
        *,
        worker_id: str | None = None,
        lease: float | None = None,
    ) -> list[str]:
        """Extend the leases this worker holds, to now + ``lease`` (``None``: :attr:`lease_duration`).

        ``[lease.heartbeat_extends]`` A task whose lease is extended is not redelivered until the new
        expiry. Returns the ids, in input order, still claimed by ``worker_id`` (or :attr:`client_id`)
        — even if the lease had just expired, as long as nobody reclaimed it.
        ``[lease.heartbeat_lost]`` Ids that are unknown, finished, or claimed by another worker are left
        out and untouched: the caller has lost that claim and should stop working on it. Required of
        every backend (leases are not optional).
        """

    async def get_stale_messages(self, queue_name: str, min_idle_ms: int) -> list[dict[str, Any]]:
        """sheppy's hook for reclaiming messages of dead workers; always ``[]`` here: an expired lease
        makes a claimed task claimable again by :meth:`pop` itself, so nothing is ever left stale.
        Kept so code written against sheppy's ``Backend`` finds the name."""
        return []

    # -- results ---------------------------------------------------------------------------------

    @abstractmethod
    async def store_result(self, queue_name: str, task_data: dict[str, Any]) -> bool:
        """Write a record back after an attempt, release its claim, and wake ``get_results`` waiters.

        One atomic step ``[store_result.atomic]``; what happens depends on the record:

        - ``[store_result.finished]`` ``finished_at`` set: the record replaces the stored one with
          ``claimed_by``/``lease_expires_at`` cleared; the task leaves the queue, schedule and claims for
          good; waiters in ``get_results`` for it return.
        - ``[store_result.requeue]`` ``finished_at`` null: the task goes back to waiting. Status
          ``"retrying"``: scheduled for ``next_retry_at``. Status ``"scheduled"``: scheduled for
          ``scheduled_at``. Anything else: stored with ``status="pending"`` and queued at the tail.
          Waiters are not woken.
        - ``[store_result.idempotent]`` Storing the same record twice leaves the same state as once
          (no second queue entry, no double count in ``get_stats``).
        - ``[store_result.unknown]`` Returns False and stores nothing when no record with that id exists
          in the queue (deleted, cleared or expired meanwhile); True otherwise.
        - The write does not depend on who holds the claim: a worker whose lease expired and was
          reclaimed may still store its outcome (last writer wins; delivery is at-least-once). The
          new claimant's next ``heartbeat`` then reports the claim lost.
        - ``[ttl.expires]`` With ``TTL``, a finished record expires after its retention time
          (:func:`sheppy_core.backend.retention_seconds`); unfinished records never expire.
          ``[ttl.readable_until]`` Until then it is readable by ``get_tasks``, listed by
          ``get_all_tasks`` and counted by ``get_stats``, whatever purges run in between (other
          writes, expiring neighbours); after it, none of them shows it. A backend's default retention
          (no ``ttl`` option given) is :data:`~sheppy_core.backend.DEFAULT_TTL_SECONDS` (30 days), for
          error records too.
        """

    @abstractmethod
    async def get_results(
        self, queue_name: str, task_ids: list[str], timeout: float | None = None
    ) -> dict[str, dict[str, Any]]:
        """Return ``{id: record}`` for those of ``task_ids`` that are finished (``finished_at`` set).

        - ``timeout`` None or ``< 0``: no waiting, return what is finished now (unknown ids omitted).
        - ``[get_results.waits]`` ``timeout == 0``: wait until every id is finished; ``timeout > 0``:
          wait at most that many seconds. Waiting ends as soon as the last one finishes (woken by
          ``store_result``/``cancel`` in any backend object on the store; with ``RESULT_NOTIFY`` without
          polling).
        - ``[get_results.timeout]`` When the time is up and some are unfinished, raise ``TimeoutError``
          (the built-in class or a subclass).
        - An empty ``task_ids`` returns ``{}`` at once.
        """

    # -- inspection ------------------------------------------------------------------------------

    @abstractmethod
    async def get_tasks(self, queue_name: str, task_ids: list[str]) -> dict[str, dict[str, Any]]:
        """Return ``{id: record}`` for the ids that exist in the queue, in any state; unknown ids are
        omitted, duplicates collapse ``[get_tasks.lookup]``."""

    @abstractmethod
    async def get_all_tasks(self, queue_name: str) -> list[dict[str, Any]]:
        """Every stored record of the queue, in any state (order unspecified) ``[get_all_tasks.all]``."""

    @abstractmethod
    async def get_pending(self, queue_name: str, count: int = 1) -> list[dict[str, Any]]:
        """Peek at up to ``count`` queued (unclaimed) records from the head, in claim order, without
        claiming ``[get_pending.peek]``. ``count < 1`` raises ``BackendInputError``."""

    @abstractmethod
    async def get_scheduled(self, queue_name: str) -> list[dict[str, Any]]:
        """Every scheduled record (status ``scheduled`` or ``retrying``), earliest due first
        ``[get_scheduled.order]``."""

    async def next_scheduled_at(self, queue_name: str) -> datetime | None:
        """When the earliest scheduled task of the queue is due, or None if none is scheduled.

        Lets the worker's scheduler sleep until then. The default derives it from ``get_scheduled``;
        backends should override it with one cheap query.
        """
        from sheppy_core.backend._records import due_at, is_quarantined

        scheduled = await self.get_scheduled(queue_name)
        # A corrupt record's stand-in has no time of its own: not "due now" (schedulers would spin).
        return min((due_at(t) for t in scheduled if not is_quarantined(t)), default=None)

    @abstractmethod
    async def size(self, queue_name: str) -> int:
        """The number of queued, unclaimed tasks ``[size.queued_only]`` (not claimed, scheduled or
        finished ones). 0 for an unknown queue."""

    @abstractmethod
    async def get_stats(self, queue_name: str) -> dict[str, int]:
        """Counts of the queue's stored tasks ``[stats.counts]``, with at least these keys:

        ``pending`` (queued, = ``size``), ``processing`` (claimed), ``scheduled`` (status scheduled or
        retrying), ``completed``, ``failed``, ``cancelled``, ``crashed``, ``quarantined`` (finished
        records by status, until they expire or are deleted). All zero for an unknown queue.
        """

    @abstractmethod
    async def list_queues(self) -> dict[str, int]:
        """``{queue name: size}`` for every queue that has had a task appended or scheduled and has not
        been cleared since ``[list_queues.known]``."""

    @abstractmethod
    async def clear(self, queue_name: str) -> int:
        """Delete everything of this queue: task records in every state, queue entries, schedule,
        claims, crons, rate-limit state and workflows ``[clear.everything]``. Other queues are untouched
        ``[clear.isolated]``. The queue disappears from ``list_queues``. Returns the number of task
        records plus crons removed ``[clear.count]``."""

    # -- operator inspection (pages, counts, workers) -------------------------------------------

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
        """One page of the queue's stored records, newest first (capability ``TASK_PAGES``).

        - ``[list_tasks.order]`` Records come in listing order: by listing key descending, then by id
          descending (plain code-point order of the id string). The listing key is fixed when
          ``append``/``schedule`` stores the record (its ``created_at``, see
          :mod:`sheppy_core.backend._pages`) and never changed by ``pop``, ``store_result``, ``cancel``
          or quarantining; records are returned as ``get_tasks`` would return them.
        - ``[list_tasks.filters]`` ``status`` matches the stored ``status`` exactly (one of
          :data:`~sheppy_core.backend.LISTABLE_STATUSES`); ``func`` matches ``spec.func`` exactly;
          ``since`` (inclusive) and ``until`` (exclusive), aware datetimes, bound the listing key.
          Filters combine with AND. A quarantined stand-in has no ``spec``: only ``status`` and the times
          find it.
        - ``[list_tasks.cursor]`` At most ``limit`` records (1..:data:`MAX_PAGE_SIZE`) and
          ``next_cursor``: None on the last page, else an opaque string that, passed back with the same
          filters, continues right after this page's last record. Following the cursors from the first
          page lists every matching record exactly once, also while records are added (newer ones
          appear only on a new first page) or deleted meanwhile.
        - ``[list_tasks.input]`` An unknown status, a naive time, a bad ``limit`` or a cursor that is
          not one raises ``BackendInputError`` naming it (:func:`~sheppy_core.backend.check_listing`
          checks them all).
        - Cost: a page reads about ``limit`` records through an index or sorted set, whatever the number
          of records in the store; a backend that would have to read them all does not declare the
          capability (the default here raises :func:`missing_capability`).
        """
        raise missing_capability(self, TASK_PAGES)

    async def count_by_status(self, queue_name: str, *, cap: int = DEFAULT_COUNT_CAP) -> dict[str, int]:
        """Counts as ``get_stats`` has them, each clamped to ``cap + 1`` ``[count_by_status.capped]``.

        Every key of :data:`~sheppy_core.backend.STATS_KEYS` is present; a count up to ``cap`` is exact,
        and ``cap + 1`` means "more than ``cap``" (shown as ``10,000+``), so a backend may stop counting
        there: a page of the dashboard must not count 5 million finished rows. ``cap < 1`` raises
        ``BackendInputError``. The default derives the counts from ``get_stats``; SQL backends should
        override it with ``LIMIT cap + 1`` sub-counts.
        """
        cap = check_count(cap, "cap", "count_by_status")
        stats = await self.get_stats(queue_name)
        return {key: min(int(stats.get(key, 0)), cap + 1) for key in STATS_KEYS}

    async def oldest_ready_at(self, queue_name: str) -> datetime | None:
        """When the task at the head of the queue became ready to run, or None when nothing is queued
        ``[oldest_ready.head]``.

        The head is the task ``pop`` would claim next among the queued ones (``get_pending(q, 1)``);
        it became ready at the latest of its ``created_at``, ``scheduled_at`` and ``next_retry_at``
        (a scheduled or retried task waited on purpose until then). Operators read "oldest ready age" =
        now - this. The default reads the head with ``get_pending``; a corrupt head counts as ready now.
        """
        from sheppy_core.backend._records import from_iso, is_quarantined, utcnow

        head = await self.get_pending(queue_name, 1)
        if not head:
            return None
        record = head[0]
        if is_quarantined(record):
            return utcnow()
        moments = []
        for name in ("created_at", "scheduled_at", "next_retry_at"):
            value = record.get(name)
            if isinstance(value, str):
                try:
                    moments.append(from_iso(value))
                except ValueError:
                    continue
        return max(moments) if moments else utcnow()

    async def register_worker(self, worker: dict[str, Any], *, ttl: float) -> None:
        """Store or refresh a worker's record for ``ttl`` seconds (capability ``WORKER_REGISTRY``).

        ``[workers.register]`` ``worker`` is a JSON object with a string ``id`` (sheppy-core's worker
        sends ``id``, ``host``, ``pid``, ``queues``, ``in_flight``, ``concurrency``, ``started_at``,
        ``last_beat`` and its counters); it replaces any record with that id. Workers are not per queue:
        one record per worker, whatever queues it serves. ``ttl`` must be > 0, a record without ``id``
        raises ``BackendInputError``.
        """
        raise missing_capability(self, WORKER_REGISTRY)

    async def unregister_worker(self, worker_id: str) -> bool:
        """Delete a worker's record (a worker stopping cleanly) ``[workers.unregister]``; True if it was
        there and unexpired."""
        raise missing_capability(self, WORKER_REGISTRY)

    async def list_workers(self) -> list[dict[str, Any]]:
        """The records of the workers alive: registered, refreshed within their ``ttl``, not
        unregistered ``[workers.alive]``; as stored, sorted by id. A worker killed without unregistering
        drops out once its ``ttl`` passes ``[workers.expire]``. ``clear`` of a queue leaves them."""
        raise missing_capability(self, WORKER_REGISTRY)

    # -- change feed -----------------------------------------------------------------------------

    async def wait_for_change(self, queue_names: list[str], timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for a sign that a task of one of ``queue_names`` was added
        (``append``, ``schedule``, a retry through ``store_result``) or finished (``store_result``,
        ``cancel``); True as soon as one comes, False when the time ran out.

        A True may be spurious (a change of another queue, a reconnect, a disconnect): the caller reads
        the store again, and waits again. Changes made between the caller's read and this call are not
        signalled: callers start the wait before they read (the dashboard's live counts do). With an
        empty ``queue_names`` only the timeout (or a spurious sign) ends the wait.

        - ``[change_feed.added]`` ``[change_feed.finished]`` With ``CHANGE_FEED`` the sign comes from the
          store's own notifications, for changes made through any backend object on the same store
          (other processes too where ``SHARED_STORE``) once this call has subscribed, within about a
          second. Claims (``pop``) and due schedules (``pop_scheduled``) need not signal.
        - ``[change_feed.timeout]`` With nothing happening it returns False once ``timeout`` has run
          out, not before. ``timeout`` must be a finite number of seconds > 0; anything else raises
          ``BackendInputError`` (:func:`~sheppy_core.backend.check_seconds`).

        The default (no feed) sleeps ``timeout`` and returns False, and callers poll.
        """
        seconds = check_seconds(timeout, "timeout", "wait_for_change")
        for name in queue_names:
            check_queue_name(name)
        await asyncio.sleep(seconds)
        return False

    # -- scheduling ------------------------------------------------------------------------------

    @abstractmethod
    async def pop_scheduled(self, queue_name: str, now: datetime | None = None) -> list[dict[str, Any]]:
        """Move every scheduled task due by ``now`` (default: the current time) into the queue.

        ``[schedule.due_moved]`` Each moved record is stored with ``status="pending"`` and queued at the
        tail, in due order; the moved records are returned as stored. ``[schedule.once_across_workers]``
        The move is atomic per task: concurrent callers never both return (or both queue) the same task.
        Tasks not yet due stay where they are.
        """

    # -- cancel / delete -------------------------------------------------------------------------

    @abstractmethod
    async def cancel(self, queue_name: str, task_id: str) -> dict[str, Any] | None:
        """Cancel a task that is still waiting: queued and unclaimed, or scheduled/retrying.

        ``[cancel.waiting]`` Atomically removes it from the queue or schedule, stores it with
        ``status="cancelled"`` and ``finished_at`` = now, wakes ``get_results`` waiters, and returns the
        stored record. ``[cancel.refused]`` Returns None and changes nothing when the task is unknown,
        claimed (even with an expired lease) or finished.
        """

    @abstractmethod
    async def delete_task(self, queue_name: str, task_id: str) -> bool:
        """Delete a finished record ``[delete.finished]``: True if deleted, False if unknown
        ``[delete.unknown]``. ``[delete.unfinished]`` A task that is not finished is left alone and
        ``TaskStateError`` is raised."""

    # -- cron (capability CRON) ------------------------------------------------------------------

    async def add_cron(self, queue_name: str, deterministic_id: str, task_cron: dict[str, Any]) -> bool:
        """Store a cron definition under ``deterministic_id``. ``[cron.unique]`` False (and no change)
        if that id exists in the queue; True when stored."""
        raise missing_capability(self, CRON)

    async def delete_cron(self, queue_name: str, deterministic_id: str) -> bool:
        """Remove a cron definition and, in the same atomic step, its waiting occurrences
        ``[cron.delete]``.

        An occurrence is a task record whose ``cron_id`` equals ``deterministic_id``; the waiting ones
        are those scheduled with status ``scheduled`` (not yet due-moved, claimed or run). They are
        deleted, not cancelled: nothing of them stays, so the same ids can be scheduled again when the
        cron is added back. Occurrences that are queued, claimed, retrying or finished, and every other
        record, are left as they are. Returns True if the definition existed; False changes nothing.
        """
        raise missing_capability(self, CRON)

    async def get_crons(self, queue_name: str) -> list[dict[str, Any]]:
        """Every stored cron definition of the queue, as stored ``[cron.list]``."""
        raise missing_capability(self, CRON)

    # -- rate limits (capability RATE_LIMIT) -----------------------------------------------------

    async def acquire_rate_limit(
        self,
        queue_name: str,
        key: str,
        max_rate: int,
        rate_period: float,
        task_id: str,
        strategy: str = "sliding_window",
    ) -> float | None:
        """Try to take one start from the budget ``max_rate`` per ``rate_period`` seconds of ``key``.

        Returns None when granted, else the seconds (> 0) until the start this call *reserved* for
        ``task_id``: a later call for ``task_id`` from that moment on is granted without using another
        start, and tasks deferred after it queue behind it. Each deferral is no sooner than "the budget
        frees up" (counting reservations) nor than "the previous pending reservation + ``rate_period /
        max_rate``" (deferred tasks are staggered, as in sheppy). Atomic across all clients: grants and
        reservations never exceed the budget ``[rate_limit.atomic]``. A ``task_id`` that already holds a
        start in the window is granted again without using another (a redelivered task is not charged
        twice). ``sheppy_core.backend.take_sliding_window`` / ``take_fixed_window`` implement the rule on
        plain data.

        - ``[rate_limit.sliding_window]`` ``"sliding_window"``: granted iff fewer than ``max_rate``
          starts (made or reserved) are in the trailing ``rate_period`` seconds or later.
        - ``[rate_limit.fixed_window]`` ``"fixed_window"``: at most ``max_rate`` starts per window; a
          window begins with the first start after the previous one ended (as sheppy's), and windows
          holding reservations follow one another without a gap.
        - An unknown strategy, ``max_rate < 1`` or ``rate_period <= 0`` raises ``BackendInputError``.
        """
        raise missing_capability(self, RATE_LIMIT)

    # -- workflows (capability WORKFLOWS) --------------------------------------------------------

    async def store_workflow(
        self, queue_name: str, workflow_data: dict[str, Any], *, if_version: int | None = None
    ) -> bool:
        """Store a workflow record (a JSON object with ``id``).

        ``[workflow.store]`` With ``if_version=None`` the record replaces any stored one. With an int,
        it is written only if the stored record's ``version`` field equals it (a missing record counts
        as version 0; a missing field as 0): compare-and-set, atomic ``[workflow.cas]``; returns False
        when the versions differ. The backend never changes ``version`` itself: the caller writes the
        next version in the record it stores. While the record is unfinished (``finished_at`` null and
        ``completed`` not true) its ``pending_task_ids`` replace the workflow's set of pending task ids
        and it is listed by ``get_pending_workflows``; once finished, the pending set is dropped.
        """
        raise missing_capability(self, WORKFLOWS)

    async def get_workflows(self, queue_name: str, workflow_ids: list[str]) -> dict[str, dict[str, Any]]:
        """``{id: record}`` for the stored workflows among ``workflow_ids`` ``[workflow.get]``."""
        raise missing_capability(self, WORKFLOWS)

    async def get_all_workflows(self, queue_name: str) -> list[dict[str, Any]]:
        """Every stored workflow record of the queue."""
        raise missing_capability(self, WORKFLOWS)

    async def get_pending_workflows(self, queue_name: str) -> list[dict[str, Any]]:
        """Every unfinished workflow record of the queue ``[workflow.pending]``."""
        raise missing_capability(self, WORKFLOWS)

    async def delete_workflow(self, queue_name: str, workflow_id: str) -> bool:
        """Delete a workflow record and its pending set ``[workflow.delete]``; True if it existed."""
        raise missing_capability(self, WORKFLOWS)

    async def mark_workflow_task_complete(self, queue_name: str, workflow_id: str, task_id: str) -> int:
        """Remove ``task_id`` from the workflow's pending set and return how many remain.

        ``[workflow.mark_complete]`` Atomic: when several callers remove the last ids concurrently,
        exactly one of them sees 0. Returns -1 if ``task_id`` was not in the set (already removed, or
        unknown workflow) — so each id is counted once.
        """
        raise missing_capability(self, WORKFLOWS)

    async def get_workflow_results(self, queue_name: str, workflow_id: str) -> dict[str, dict[str, Any]]:
        """``{id: record}`` of every finished task record whose ``workflow_id`` equals ``workflow_id``
        ``[workflow.results]``."""
        raise missing_capability(self, WORKFLOWS)
