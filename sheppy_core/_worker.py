"""``Worker``: claims tasks from queues and runs them, with leases, schedules, crons and shutdown.

Roles running inside :meth:`Worker.work`, all as asyncio tasks of one loop:

- a **claim loop** per queue: asks the backend for at most the free slots, blocking on the backend
  (``BLOCKING_POP``) or, for a backend that cannot block, polling with a bounded backoff (10 ms doubling
  to 1 s, reset whenever a task arrives). Each claimed task then takes one of the
  ``max_concurrent_tasks`` slots before it runs, so the bound holds across queues too (claims of two
  queues at the same moment may exceed the free slots; the extra tasks wait, under lease);
- a **heartbeat** loop: extends the leases of running tasks every third of the lease; a task whose
  lease was lost (another worker reclaimed it) is cancelled here and not stored;
- a **registry** loop, on a backend declaring ``WORKER_REGISTRY``: the worker registers before it
  claims, refreshes its record every ``max(1 s, lease / 3)`` with a ttl of three such beats (a
  SIGKILLed worker drops out of ``list_workers`` within about one lease) and unregisters when it stops
  cleanly. The registry is for operators: a store that cannot be reached for it never stops the worker
  (one warning per outage, retried on the next beat);
- a **scheduler** per queue: moves due scheduled tasks into the queue, sleeping until the next due
  time (at most ``_scheduler_polling_interval``); the move is atomic in the backend, so N workers move
  each task once;
- a **cron manager** per queue: schedules the next occurrences of every cron under deterministic ids,
  so N workers create each occurrence once. Missed runs (every worker was down through several
  slots): only the latest missed slot runs, once, at once; the older overdue occurrences are skipped
  (cancelled, logged). The scheduler waits for the cron manager's first pass, so a restarted worker
  does not fire the overdue ones before that decision. An occurrence stored while its cron was being
  deleted is removed again at the end of the pass.

Shutdown (SIGTERM/SIGINT, or :meth:`Worker.stop`): stop claiming, let running tasks finish within
``shutdown_timeout``, then cancel the rest and hand them back to the queue at once (no lease wait). A
second signal cancels immediately.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import inspect
import logging
import os
import signal
import socket
import uuid
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sheppy_core._declarative_cron import DeclarativeCrons
from sheppy_core._processing import HandBackPolicy, StaleClaimError, TaskProcessor
from sheppy_core._registry import import_task_modules
from sheppy_core._runner import released
from sheppy_core._store import QueueStore, checked_queue_name
from sheppy_core.backend import BLOCKING_POP, CRON, WORKER_REGISTRY, Backend, due_at
from sheppy_core.exceptions import BackendError, CorruptRecordError
from sheppy_core.models import Task, TaskCron

__all__ = ["Worker", "WorkerStats"]

logger = logging.getLogger("sheppy.worker")

BACKOFF_START = 0.01
BACKOFF_MAX = 1.0
CRON_LOOKAHEAD = 3
CRON_FIRST_PASS_WAIT = 30.0
"""The scheduler starts moving due tasks after the cron manager's first pass, or after this many
seconds at the latest (a store too slow to answer must not stop the scheduler for good)."""
DEFAULT_HAND_BACK = HandBackPolicy()
REGISTRY_BEATS = 3
"""A worker's registry record lives this many refresh intervals: one late refresh does not drop it."""
REGISTRY_MIN_INTERVAL = 1.0
MAX_LISTED_IN_FLIGHT = 50
"""At most this many task ids in a registry record's ``in_flight_ids`` (``in_flight`` counts them all)."""


class _Unset:
    """The default of ``Worker(unregistered=)``: not given."""


_UNSET = _Unset()
BURST_HORIZON = 1.0
"""``oneshot`` also waits for scheduled tasks due within this many seconds, unless ``work(wait_scheduled=)``
(``sheppy work --burst --wait-scheduled SECONDS``) says otherwise."""
BURST_POLL = 0.25
"""How often ``oneshot`` looks again while tasks are claimed elsewhere."""


@dataclass
class WorkerStats:
    processed: int = 0
    """Tasks that completed (sheppy's name)."""
    failed: int = 0
    """Tasks that ended failed or crashed, with no retry left."""
    attempts: int = 0
    """Attempts run: each try of a task, the ones that will be retried included."""
    handed_back: int = 0
    """Tasks handed back unrun because their function is not registered in this worker."""


class _Slots:
    """At most ``size`` holders at once; waiters are served first come, first served, each release
    handing its slot straight to the next waiter. (``asyncio.Semaphore`` on Python 3.11 scans every
    waiter on each acquire: quadratic with a prefetch of hundreds.)"""

    def __init__(self, size: int) -> None:
        self._free = size
        self._waiters: collections.deque[asyncio.Future[None]] = collections.deque()

    async def acquire(self) -> None:
        if self._free > 0 and not self._waiters:
            self._free -= 1
            return
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self.release()  # the slot was handed over just as the wait was cancelled: pass it on
            raise

    def release(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():  # cancelled waiters are skipped
                waiter.set_result(None)
                return
        self._free += 1


@dataclass
class _Running:
    queue: QueueStore
    record: dict[str, Any]
    job: asyncio.Task[None]
    lost: bool = False
    waiting: bool = False
    """Prefetched and not started: waiting for a slot."""
    unfinished: bool = True
    """False once the task's code has finished and only its outcome is being stored."""
    reclaimed: dict[str, Any] | None = None
    """A claim of this task this worker's own claim loop made while the outcome was being stored:
    taken up once the store returns (see :meth:`Worker._start`)."""


class Worker:
    """Runs tasks from one or more queues of a backend.

    Parameters follow sheppy's ``Worker``; additions are keyword-only (``prefetch`` is the one knob
    for claiming ahead):

    :param backend: a ``Backend`` object or a URL (``sqlite:///jobs.db``, ``redis://...``), as
        ``Queue`` takes.
    :param task_modules: modules to import at start so their ``@task`` functions are registered —
        the only functions this worker will run.
    :param allowed_modules: module prefixes ``task_modules`` must fall under (an allow-list).
    :param lease: claim lease in seconds (default: the backend's ``lease_duration``); heartbeats renew
        it every third of it, so a dead worker's tasks are redelivered within one lease.
    :param prefetch: how many tasks to claim beyond the free slots (default 0: a claim asks only for
        free slots, as in sheppy). Prefetched tasks wait in this worker, their leases renewed, until a
        slot frees; the next claim's round trip then overlaps running tasks instead of following them.
        Worth it for many short tasks; with long ones, prefetched tasks wait here while another worker
        may be idle. At shutdown, prefetched tasks that have not started go straight back to the queue.
        A worker that dies (SIGKILL, out of memory) loses them as it loses running ones: they come
        back after the lease and, as after a crashed run, use a retry, or end ``crashed`` with none
        left, although they never started. Prefer it for tasks that have retries.
    :param max_prefetch_tasks: deprecated (sheppy's name, kept working): caps how many tasks one claim
        asks for. Claims already ask only for the free slots (plus ``prefetch``), so it only makes
        claims smaller; a ``DeprecationWarning`` says so when it is given. Lower
        ``max_concurrent_tasks`` to hold fewer tasks, raise ``prefetch`` to claim ahead.
    :param unregistered: what to do with a claimed task whose function is not registered in this
        worker (a worker missing an ``--import``, or of another deploy): by default it is handed back
        unrun, delayed, using no retry, for a worker that has it, and fails only after about an hour
        and 20 hand-backs (:class:`~sheppy_core.HandBackPolicy`); None fails it at once. A
        ``task_processor`` given without this keeps its own ``unregistered`` setting.
    """

    def __init__(
        self,
        queue_name: str | Sequence[str],
        backend: Backend | str,
        shutdown_timeout: float = 30.0,
        max_concurrent_tasks: int = 10,
        max_prefetch_tasks: int | None = None,
        enable_job_processing: bool = True,
        enable_scheduler: bool = True,
        enable_cron_manager: bool = True,
        task_processor: TaskProcessor | None = None,
        middleware: Sequence[Callable[..., Any]] | None = None,
        dependency_overrides: Mapping[Callable[..., Any], Callable[..., Any]] | None = None,
        *,
        task_modules: Sequence[str] = (),
        allowed_modules: Sequence[str] | None = None,
        lease: float | None = None,
        prefetch: int = 0,
        unregistered: HandBackPolicy | _Unset | None = _UNSET,
    ) -> None:
        if isinstance(backend, str):
            from sheppy_core._plugins import backend_from_url

            backend = backend_from_url(backend)  # a URL, as Queue(url) and create_router(url) take
        if not isinstance(backend, Backend):
            raise TypeError(f"Worker needs a Backend object or a URL, got {type(backend).__name__}")
        if not (enable_job_processing or enable_scheduler or enable_cron_manager):
            raise ValueError(
                "a Worker with job processing, scheduler and cron manager all disabled does nothing"
            )
        if max_concurrent_tasks < 1:
            raise ValueError("max_concurrent_tasks must be >= 1")
        if prefetch < 0:
            raise ValueError("prefetch must be >= 0")
        if max_prefetch_tasks is not None:
            warnings.warn(
                "Worker(max_prefetch_tasks=...) is deprecated: it still caps each claim, but claims "
                "already ask only for free slots; lower max_concurrent_tasks to hold fewer tasks, "
                "or use prefetch=N to claim ahead",
                DeprecationWarning,
                stacklevel=2,
            )
        names = [queue_name] if isinstance(queue_name, str) else list(queue_name)
        if not names:
            raise ValueError("a Worker needs at least one queue name")
        names = [checked_queue_name(name) for name in names]  # "" is refused, not taken for the default
        self.backend = backend
        self.stores = [QueueStore(backend, name) for name in names]
        self.queues = [store.as_queue() for store in self.stores]
        self.worker_id = f"worker-{socket.gethostname()}-{uuid.uuid4().hex[:8]}"
        self.shutdown_timeout = shutdown_timeout
        self.max_concurrent_tasks = max_concurrent_tasks
        self.max_prefetch_tasks = max_prefetch_tasks
        self.prefetch = prefetch
        self.enable_job_processing = enable_job_processing
        self.enable_scheduler = enable_scheduler
        self.enable_cron_manager = enable_cron_manager
        self.stats = WorkerStats()
        self.lease = lease if lease is not None else backend.lease_duration
        self.task_modules = list(task_modules)
        self.allowed_modules = list(allowed_modules) if allowed_modules is not None else None
        self.processor = task_processor or TaskProcessor(
            dependency_overrides=dict(dependency_overrides or {}),
            middleware=list(middleware or []),
            unregistered=DEFAULT_HAND_BACK,
        )
        if not isinstance(unregistered, _Unset):
            if not isinstance(self.processor, TaskProcessor):
                raise TypeError("unregistered= needs a TaskProcessor (or none given)")
            # The caller's processor gets the policy asked for; one given without it keeps its own.
            self.processor.unregistered = unregistered
        # A TaskProcessor subclass written before ``attempt_done`` existed still works: its tasks hold
        # their slot until their outcome is stored.
        self._pipelined = "attempt_done" in inspect.signature(self.processor.process).parameters
        # Later sheppy's crash-recovery settings (idle time before a claimed task counts as crashed, and
        # how often its worker heart-beats and reclaims), with its defaults. Accepted and kept for code
        # that reads or sets them; sheppy-core's leases (``lease``) do that job within seconds (§18.2).
        self.heartbeat_timeout = 300.0
        self.heartbeat_interval = 30.0
        self.reclaim_interval = 60.0
        # sheppy's tests tune these private attributes; kept with the same names and meanings.
        self._blocking_timeout = 5.0
        self._scheduler_polling_interval = 1.0
        self._cron_polling_interval = 10.0
        self._running: dict[str, _Running] = {}
        # Jobs that have ended here, ever: an empty claim answered after one ended may predate the
        # tasks it queued (chained, a workflow's next step), so ``oneshot`` looks again.
        self._jobs_ended = 0
        # Claims are counted on unfinished tasks (prefetched or running): a task whose outcome is being
        # stored no longer counts, so the next claim overlaps the store. Every held claim (unfinished
        # or storing) stays bounded. A task runs only once it holds one of the slots.
        self._unfinished = 0
        self._max_held = 2 * max_concurrent_tasks + prefetch
        self._slots = _Slots(max_concurrent_tasks)
        self._slot_freed = asyncio.Event()
        # Set when this worker schedules a retry or a rate-limit deferral, so its scheduler wakes for
        # it instead of finishing a longer sleep.
        self._rescheduled = {name: asyncio.Event() for name in names}
        # Set once the cron manager has made its first pass over a queue (missed runs decided).
        self._crons_checked = {name: asyncio.Event() for name in names}
        # Tasks this worker put back to wait (retry, rate limit): ``oneshot`` waits for them to run.
        self._awaiting = {name: set[str]() for name in names}
        self._handed_back = {name: set[str]() for name in names}
        self._stop: asyncio.Event | None = None
        self._stop_early = False
        self._force = False
        self._claimed = 0
        # Set once ``work(max_tasks=...)`` has claimed its tasks: every claim loop stops then, including
        # one blocked on an empty queue.
        self._claims_done = asyncio.Event()
        self._last_beat = 0.0
        self._burst_in_flight: dict[str, int] = {}
        self._wait_scheduled = BURST_HORIZON
        self._declared_crons = DeclarativeCrons()
        self._started_at = datetime.now(UTC)
        self._registry_down = False

    # -- control ---------------------------------------------------------------------------------

    def stop(self) -> None:
        """Ask :meth:`work` to shut down gracefully (a second call cancels running tasks at once)."""
        if self._stop is None:
            self._stop_early = True  # work() has not started yet: it will return at once
            return
        if self._stop.is_set():
            self._force = True
            for running in self._running.values():
                running.job.cancel()
        self._stop.set()

    async def work(
        self,
        max_tasks: int | None = None,
        oneshot: bool = False,
        register_signal_handlers: bool = True,
        *,
        wait_scheduled: float = BURST_HORIZON,
    ) -> None:
        """Run until stopped; ``max_tasks``: stop after claiming that many; ``oneshot``: stop once every
        queue is empty: nothing queued, nothing processing anywhere, nothing this worker retries or
        rescheduled still waiting, and no scheduled task due within ``wait_scheduled`` seconds."""
        if wait_scheduled < 0 or wait_scheduled != wait_scheduled:
            raise ValueError(f"wait_scheduled must be a number of seconds >= 0, got {wait_scheduled!r}")
        self._wait_scheduled = float(wait_scheduled)
        if self.task_modules:
            import_task_modules(self.task_modules, self.allowed_modules)
        self._stop = asyncio.Event()
        if self._stop_early:
            self._stop.set()
            self._stop_early = False
        self._force = False
        self._claimed = 0
        self._claims_done = asyncio.Event()
        self._declared_crons = DeclarativeCrons()
        self._crons_checked = {name: asyncio.Event() for name in self._crons_checked}
        loop = asyncio.get_running_loop()
        handled: list[signal.Signals] = []
        previous_handlers: dict[signal.Signals, Any] = {}
        if register_signal_handlers:
            for sig in (signal.SIGINT, signal.SIGTERM):
                with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                    previous = signal.getsignal(sig)
                    loop.add_signal_handler(sig, self.stop)
                    handled.append(sig)
                    previous_handlers[sig] = previous
        # A backend this worker connected is disconnected when it stops (a driver's threads would
        # otherwise keep a `sheppy work --burst` process alive); one the caller connected stays so.
        owns_connection = not self.backend.is_connected
        await self.backend.connect()
        logger.info(
            "worker %s started on queue(s) %s", self.worker_id, ", ".join(q.name for q in self.queues)
        )
        claimers: list[asyncio.Task[None]] = []
        helpers: list[asyncio.Task[None]] = []
        registered = WORKER_REGISTRY in self.backend.capabilities
        try:
            if registered:
                self._started_at = datetime.now(UTC)
                self._registry_down = False
                await self._register()  # before the first claim: listed before it holds any task
                helpers.append(asyncio.create_task(self._registry_loop()))
            else:
                logger.debug(
                    "backend %s does not declare capability %s: worker %s is not registered",
                    type(self.backend).__name__, WORKER_REGISTRY, self.worker_id,
                )
            if self.enable_job_processing:
                claimers = [asyncio.create_task(self._claim_loop(q, max_tasks, oneshot)) for q in self.stores]
                helpers.append(asyncio.create_task(self._heartbeat_loop()))
            if self.enable_scheduler:
                helpers += [asyncio.create_task(self._scheduler_loop(q)) for q in self.stores]
            if self.enable_cron_manager and CRON in self.backend.capabilities:
                helpers += [asyncio.create_task(self._cron_loop(q)) for q in self.stores]
            if claimers:
                await asyncio.gather(*claimers)
            else:
                await self._stop.wait()
            await self._drain()
        finally:
            self._stop.set()
            for job in claimers + helpers:
                job.cancel()
            await asyncio.gather(*claimers, *helpers, return_exceptions=True)
            if registered:
                await self._unregister()
            for sig in handled:
                loop.remove_signal_handler(sig)
                # Put back what was there before (e.g. asyncio.run's Ctrl-C handling), not the default.
                previous = previous_handlers.get(sig)
                if previous is not None:
                    with contextlib.suppress(ValueError, TypeError):
                        signal.signal(sig, previous)
            if owns_connection:
                with contextlib.suppress(BackendError):
                    await self.backend.disconnect()
            logger.info(
                "worker %s stopped: %d processed, %d failed",
                self.worker_id,
                self.stats.processed,
                self.stats.failed,
            )

    # -- claiming --------------------------------------------------------------------------------

    async def _wait_or_stop(self, awaitable: Any, also: asyncio.Event | None = None) -> Any:
        """Await ``awaitable`` unless a stop (or the ``also`` event) comes first: then it is cancelled
        and None returned."""
        assert self._stop is not None
        job = asyncio.ensure_future(awaitable)
        stoppers = {asyncio.ensure_future(self._stop.wait())}
        if also is not None:
            stoppers.add(asyncio.ensure_future(also.wait()))
        try:
            await asyncio.wait({job, *stoppers}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for stopper in stoppers:
                stopper.cancel()
        if job.done():
            return job.result()
        job.cancel()
        with contextlib.suppress(asyncio.CancelledError, BackendError):
            await job
        return None

    def _capacity(self) -> int:
        return min(
            self.max_concurrent_tasks + self.prefetch - self._unfinished, self._max_held - len(self._running)
        )

    async def _free_slots(self) -> int:
        while self._capacity() <= 0:
            self._slot_freed.clear()
            await self._wait_or_stop(self._slot_freed.wait())
            if self._stop is not None and self._stop.is_set():
                return 0
        return self._capacity()

    async def _claim_loop(self, queue: QueueStore, max_tasks: int | None, oneshot: bool) -> None:
        assert self._stop is not None
        blocking = BLOCKING_POP in self.backend.capabilities
        backoff = BACKOFF_START
        while not self._stop.is_set():
            if await self._max_tasks_reached(max_tasks):
                return
            free = await self._free_slots()
            if free == 0:
                return
            if max_tasks is not None and self._claimed >= max_tasks:
                continue  # the check above decides, waiting for rate-limit deferrals if need be
            limit = min(free, self.max_prefetch_tasks or free)
            if max_tasks is not None:
                limit = min(limit, max_tasks - self._claimed)
            timeout = self._blocking_timeout if blocking and not oneshot else None
            jobs_ended = self._jobs_ended
            if self._heartbeat_overdue():
                # The loop was held up (a task blocking it, a slow store) past the heartbeat's time:
                # renew the leases of the tasks running here before claiming, so this worker does not
                # take its own lapsed claims back as new work.
                await self._beat()
            try:
                records = await self._wait_or_stop(
                    queue.claim(limit, timeout, worker_id=self.worker_id, lease=self.lease),
                    also=self._claims_done,
                )
            except BackendError as exc:
                logger.error(
                    "claiming from queue %r failed: %s; retrying in %.1f s", queue.name, exc, BACKOFF_MAX
                )
                await self._wait_or_stop(asyncio.sleep(BACKOFF_MAX))
                continue
            if records is None:
                return
            if not records:
                if oneshot and self._jobs_ended != jobs_ended:
                    continue
                if oneshot and not await self._more_work_soon(queue):
                    return
                if not blocking or oneshot:
                    await self._wait_or_stop(asyncio.sleep(backoff))
                    backoff = min(backoff * 2, BACKOFF_MAX)
                continue
            backoff = BACKOFF_START
            for record in records:
                if self._start(queue, record):
                    self._claimed += 1
            if max_tasks is not None and self._claimed >= max_tasks:
                self._claims_done.set()  # the other queues' claim loops stop too

    async def _max_tasks_reached(self, max_tasks: int | None) -> bool:
        """For ``work(max_tasks=N)``: have N claimed tasks got under way? A task its rate limit
        deferred does not count (as in sheppy, which never hands it to the worker): while a claimed
        rate-limited task has not passed its check yet, this waits to see."""
        assert self._stop is not None
        while max_tasks is not None and self._claimed >= max_tasks:
            if not any(_has_rate_limit(r.record) for r in self._running.values()) or self._stop.is_set():
                return True
            self._slot_freed.clear()
            await self._wait_or_stop(self._slot_freed.wait())
        return False

    async def _more_work_soon(self, queue: QueueStore) -> bool:
        """For ``oneshot``: is this queue not drained yet? True while tasks run here (they may chain
        or retry), while tasks this worker rescheduled still wait, while a scheduled task is due
        within ``wait_scheduled`` seconds, or while tasks are claimed (processing) anywhere; sleeps a little
        before saying so."""
        if any(r.queue is queue for r in self._running.values()):
            self._slot_freed.clear()
            await self._wait_or_stop(self._slot_freed.wait())
            return True
        if not self.enable_scheduler:
            # Nothing here moves scheduled tasks (retries included) into the queue: as in sheppy, the
            # queue is drained at its first empty claim, unless tasks are claimed elsewhere (below).
            self._awaiting[queue.name].clear()
        awaiting = self._awaiting[queue.name]
        if awaiting:
            records = await queue.records(list(awaiting))
            awaiting.intersection_update(
                task_id for task_id, record in records.items() if record.get("finished_at") is None
            )
        upcoming = await queue.next_scheduled_at() if self.enable_scheduler else None
        handed_back = self._handed_back[queue.name]
        if upcoming is not None and handed_back:
            # Tasks this worker handed back (not registered here) are another worker's to run.
            scheduled = await queue.scheduled_records()
            others = [due_at(r) for r in scheduled if str(r.get("id")) not in handed_back]
            upcoming = min(others, default=None)
        wait = (upcoming - datetime.now(UTC)).total_seconds() if upcoming is not None else None
        if not awaiting and (wait is None or wait > self._wait_scheduled):
            # Claimed elsewhere: by a live worker (it will finish them), or by a dead one (they come
            # back when its lease runs out, and this worker runs them). Not drained until they are done.
            in_flight = (await queue.stats()).get("processing", 0)
            if not in_flight:
                return False
            if in_flight != self._burst_in_flight.get(queue.name):
                logger.info(
                    "queue %r: waiting for %d task(s) still processing (claimed by other workers, or "
                    "by one that died: they come back when its lease runs out)",
                    queue.name,
                    in_flight,
                )
                self._burst_in_flight[queue.name] = in_flight
            await self._wait_or_stop(asyncio.sleep(BURST_POLL))
            return True
        await self._wait_or_stop(asyncio.sleep(min(max(wait or 0.0, 0.01), BURST_HORIZON)))
        return True

    def _start(self, queue: QueueStore, record: dict[str, Any]) -> bool:
        """Start running a claimed record; False if this worker already runs that task."""
        task_id = str(record["id"])
        self._awaiting[queue.name].discard(task_id)
        previous = self._running.get(task_id)
        if previous is not None and not previous.job.done() and not previous.lost and not previous.unfinished:
            # Its code has finished and its outcome is being stored. This claim either raced that store
            # (the lease lapsed first: the store then voids it) or came after it (a retry due at once):
            # which, is known when the store returns, and the job takes the claim up then.
            previous.reclaimed = record
            return False
        if previous is not None and not previous.job.done() and not previous.lost:
            # Its lease lapsed while this worker still ran it (the loop was blocked, or the store was
            # out of reach longer than the lease) and this worker's own claim loop took it again. The
            # claim is this worker's again, renewed by the pop: the job running it goes on, and no
            # second copy starts beside it.
            logger.warning(
                "task %s came back to this worker's own claim after its lease lapsed (delivery %s); it "
                "is still running here: lease renewed, not started twice",
                task_id,
                record.get("deliveries"),
            )
            return False
        if previous is not None and previous.unfinished:
            # A job whose lease was lost is still unwinding: the counter follows the entry tracked.
            previous.unfinished = False
            self._unfinished -= 1
        job = asyncio.create_task(self._run(queue, record))
        self._running[task_id] = _Running(queue, record, job, waiting=True)
        self._unfinished += 1
        return True

    def _own_entry(self, task_id: str, job: asyncio.Task[Any] | None) -> _Running | None:
        """``job``'s entry for ``task_id``; None if the id is tracked for another job now (it was handed
        back and claimed anew while ``job`` finished)."""
        running = self._running.get(task_id)
        return running if running is not None and running.job is job else None

    def _attempt_done(self, task_id: str, job: asyncio.Task[Any] | None) -> None:
        """Stop counting ``task_id``'s job as unfinished (once) and wake the claim loop."""
        running = self._own_entry(task_id, job)
        if running is not None and running.unfinished:
            running.unfinished = False
            self._unfinished -= 1
            self._slot_freed.set()

    async def _take_slot(self, running: _Running | None) -> bool:
        """Wait for a slot to run a claimed task; False if the worker stopped first (no slot held).

        A job still waiting when the worker stops is cancelled by :meth:`_drain` and hands its task back.
        """
        assert self._stop is not None
        await self._slots.acquire()
        if self._stop.is_set():
            self._slots.release()
            return False
        if running is not None:
            running.waiting = False
        return True

    async def _run(self, queue: QueueStore, record: dict[str, Any]) -> None:
        task_id = str(record["id"])
        job = asyncio.current_task()
        holds_slot = False

        def attempt_done() -> None:
            nonlocal holds_slot
            if holds_slot:
                holds_slot = False
                self._slots.release()
            self._attempt_done(task_id, job)

        try:
            # Every task takes a slot, at once when one is free: claim loops of several queues may
            # together claim more than the free slots, and prefetched tasks wait here by design.
            if not await self._take_slot(self._own_entry(task_id, job)):
                # Stopping before it started: straight back to the queue, not run, not charged.
                await self._release(queue, record)
                return
            holds_slot = True
            if self._pipelined:
                outcome = await self.processor.process(queue, record, attempt_done=attempt_done)
            else:
                outcome = await self.processor.process(queue, record)
            if outcome.handed_back > int(record.get("handed_back") or 0):
                # For a worker that has it registered: not awaited here (oneshot does not wait for it).
                self.stats.handed_back += 1
                self._handed_back[queue.name].add(task_id)
            elif outcome.status in ("retrying", "scheduled"):
                self._awaiting[queue.name].add(task_id)
                self._rescheduled[queue.name].set()
                if outcome.status == "scheduled":
                    # Deferred by its rate limit, not run: it does not use up one of ``max_tasks``.
                    self._claimed -= 1
                    self._claims_done.clear()
            # As sheppy counts: tasks that completed, and tasks that ended failed (or crashed); an
            # attempt that will be retried counts in neither, only in the attempts.
            if outcome.status in ("completed", "failed", "crashed", "retrying"):
                self.stats.attempts += 1
            if outcome.status == "completed":
                self.stats.processed += 1
            elif outcome.status in ("failed", "crashed"):
                self.stats.failed += 1
        except asyncio.CancelledError:
            running = self._running.get(task_id)
            if running is not None and not running.lost:
                await self._release(queue, record)
        except StaleClaimError as exc:
            logger.info("%s", exc)
        except CorruptRecordError as exc:
            logger.error("%s", exc)  # quarantined by the processor: stored, not redelivered
        except BackendError as exc:
            # The outcome could not be stored; the lease will expire and another worker retries it.
            logger.error("storing the outcome of task %s failed: %s", task_id, exc)
        except Exception:
            logger.exception("unexpected error while processing task %s", task_id)
        finally:
            attempt_done()
            entry = self._own_entry(task_id, job)
            if entry is not None:
                del self._running[task_id]
                self._jobs_ended += 1
                if entry.reclaimed is not None:
                    await self._take_up(queue, entry.reclaimed)
            self._slot_freed.set()

    async def _take_up(self, queue: QueueStore, record: dict[str, Any]) -> None:
        """A claim made while this task's outcome was being stored: run it (a stale one is dropped by
        the processor, which finds the outcome stored), or hand it back if the worker is stopping."""
        if self._stop is not None and self._stop.is_set():
            await self._release(queue, record)
        else:
            self._start(queue, record)

    async def _release(self, queue: QueueStore, record: dict[str, Any]) -> None:
        """Hand a task cut off by shutdown back to the queue at once (not charged as a crash)."""
        try:
            task: Task[Any] = Task.model_validate(record)
        except ValueError:
            return  # not a task: the processor quarantines it, or its lease brings it back to one that does
        handed_back = released(task, status="pending", deliveries=max(task.deliveries - 1, 0))
        try:
            # If the cancel landed after the outcome was stored, the claim is gone: nothing to hand back.
            held = await queue.heartbeat([str(task.id)], worker_id=self.worker_id, lease=self.lease)
            if not held:
                return
            await asyncio.shield(queue.store_result(handed_back))
            logger.warning("task %s handed back to queue %r at shutdown", task.id, queue.name)
        except BackendError as exc:
            logger.error("could not hand task %s back (%s); it returns after its lease", task.id, exc)

    async def _drain(self) -> None:
        if not self._running:
            return
        if self._stop is not None and self._stop.is_set():
            # Stopping (not just done claiming after max_tasks): prefetched tasks that never started
            # hand their tasks back at once. A stop arriving later is seen by _take_slot.
            for running in self._running.values():
                if running.waiting:
                    running.job.cancel()
        jobs = [r.job for r in self._running.values()]
        timeout = 0.0 if self._force else self.shutdown_timeout
        logger.info("waiting up to %.1f s for %d running task(s)", timeout, len(jobs))
        _, pending = await asyncio.wait(jobs, timeout=timeout)
        for job in pending:
            job.cancel()
        if pending:
            await asyncio.gather(*pending, return_exceptions=True)

    # -- leases ----------------------------------------------------------------------------------

    def _heartbeat_interval(self) -> float:
        return max(self.lease / 3, 0.01)

    def _heartbeat_overdue(self) -> bool:
        if not self._running:
            return False
        since = asyncio.get_running_loop().time() - self._last_beat
        return since > 1.5 * self._heartbeat_interval()

    async def _heartbeat_loop(self) -> None:
        assert self._stop is not None
        loop = asyncio.get_running_loop()
        interval = self._heartbeat_interval()
        stall_warning = max(1.0, self.lease / 6)
        self._last_beat = loop.time()
        while True:
            asleep = loop.time()
            await asyncio.sleep(interval)
            late = loop.time() - asleep - interval
            if late > stall_warning:
                logger.warning(
                    "the event loop of worker %s was blocked for %.1f s (a task blocking it, e.g. "
                    "time.sleep() or CPU-bound code in an async def, holds up heartbeats: leases last "
                    "%.1f s); %d task(s) running",
                    self.worker_id,
                    late,
                    self.lease,
                    len(self._running),
                )
            await self._beat()

    async def _beat(self) -> None:
        """Extend the leases of every task this worker holds; cancel those another worker took."""
        started = asyncio.get_running_loop().time()
        by_queue: dict[QueueStore, list[str]] = {}
        for task_id, running in list(self._running.items()):
            by_queue.setdefault(running.queue, []).append(task_id)
        for queue, ids in by_queue.items():
            try:
                held = set(await queue.heartbeat(ids, worker_id=self.worker_id, lease=self.lease))
            except BackendError as exc:
                logger.error("heartbeat for queue %r failed: %s", queue.name, exc)
                continue
            missing = [i for i in ids if i not in held and i in self._running]
            if missing:
                await self._stop_lost(queue, missing)
        # Tried, if not renewed everywhere: the claim loop adds at most one beat per interval, not
        # one before every claim while a store is slow or down.
        self._last_beat = started

    async def _stop_lost(self, queue: QueueStore, task_ids: list[str]) -> None:
        """Cancel the jobs whose claim another worker now holds.

        A heartbeat also misses tasks whose outcome this worker has just stored (that released the
        claim) while the job finishes its follow-up work, e.g. resuming a workflow: those are left
        alone. Only a record claimed by someone else means the lease was lost.
        """
        try:
            records = await queue.records(task_ids)
        except BackendError as exc:
            logger.error("checking lost leases in queue %r failed: %s", queue.name, exc)
            return
        for task_id in task_ids:
            record = records.get(task_id)
            holder = self._running.get(task_id)
            if record is None or holder is None or holder.job.done():
                continue
            if record.get("status") == "processing" and record.get("claimed_by") != self.worker_id:
                holder.lost = True
                holder.job.cancel()
                logger.warning(
                    "lease of task %s lost (%s has it now); stopped here", task_id, record.get("claimed_by")
                )

    # -- registry --------------------------------------------------------------------------------

    def _registry_interval(self) -> float:
        return max(REGISTRY_MIN_INTERVAL, self.lease / 3)

    def registry_record(self) -> dict[str, Any]:
        """What this worker stores in the backend's worker registry (JSON)."""
        from sheppy_core import __version__

        held = list(self._running)
        return {
            "id": self.worker_id,
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "queues": [queue.name for queue in self.queues],
            "concurrency": self.max_concurrent_tasks,
            "in_flight": len(held),
            "in_flight_ids": held[:MAX_LISTED_IN_FLIGHT],
            "started_at": self._started_at.isoformat(),
            "last_beat": datetime.now(UTC).isoformat(),
            "version": __version__,
            "completed": self.stats.processed,
            "failed": self.stats.failed,
        }

    async def _register(self) -> None:
        """Store or refresh this worker's record; a failure is logged (once per outage), never raised."""
        interval = self._registry_interval()
        try:
            # Bounded: a store that hangs must not hold up claiming (at start) or the next refresh.
            async with asyncio.timeout(max(interval, 5.0)):
                await self.backend.register_worker(self.registry_record(), ttl=REGISTRY_BEATS * interval)
        except Exception as exc:  # the registry is for operators: nothing about it may stop the worker
            if not self._registry_down:
                logger.warning(
                    "worker %s could not register in the worker registry (%s); it keeps working and "
                    "retries every %.1f s",
                    self.worker_id, one_line_error(exc), interval,
                )
            self._registry_down = True
            return
        if self._registry_down:
            logger.info("worker %s is registered again in the worker registry", self.worker_id)
            self._registry_down = False

    async def _registry_loop(self) -> None:
        # Runs on through the drain at shutdown (tasks finishing can take longer than the ttl) until
        # work() cancels it and unregisters.
        while True:
            await asyncio.sleep(self._registry_interval())
            await self._register()

    async def _unregister(self) -> None:
        """Leave the registry at a clean stop; a failure only means the record expires with its ttl."""
        try:
            async with asyncio.timeout(5.0):
                await self.backend.unregister_worker(self.worker_id)
        except Exception as exc:
            logger.warning(
                "worker %s could not unregister (%s); its record expires within %.1f s",
                self.worker_id, one_line_error(exc), REGISTRY_BEATS * self._registry_interval(),
            )

    # -- scheduler and cron ----------------------------------------------------------------------

    async def _scheduler_loop(self, queue: QueueStore) -> None:
        assert self._stop is not None
        wakeup = self._rescheduled[queue.name]
        if self.enable_cron_manager and CRON in self.backend.capabilities:
            # Overdue cron occurrences (every worker was down) wait for the cron manager's decision.
            await self._wait_or_stop(_wait_at_most(self._crons_checked[queue.name], CRON_FIRST_PASS_WAIT))
        while not self._stop.is_set():
            wakeup.clear()
            try:
                await queue.release_due()
                upcoming = await queue.next_scheduled_at()
            except BackendError as exc:
                logger.error("scheduler for queue %r failed: %s", queue.name, exc)
                upcoming = None
            delay = self._scheduler_polling_interval
            if upcoming is not None:
                delay = min(delay, max((upcoming - datetime.now(UTC)).total_seconds(), 0.0))
            await self._wait_or_stop(_wait_at_most(wakeup, delay))

    async def _cron_loop(self, queue: QueueStore) -> None:
        assert self._stop is not None
        while not self._stop.is_set():
            try:
                await self._schedule_crons(queue)
            except BackendError as exc:
                logger.error("cron manager for queue %r failed: %s", queue.name, exc)
            finally:
                self._crons_checked[queue.name].set()
            await self._wait_or_stop(asyncio.sleep(self._cron_polling_interval))

    async def _schedule_crons(self, queue: QueueStore) -> None:
        if queue is self.stores[0]:
            # Declarative crons ([[tool.sheppy.cron]]): once per pass for all of this worker's queues.
            try:
                await self._declared_crons.maybe_reconcile(self.backend, [q.name for q in self.queues])
            except BackendError:
                raise
            except Exception:
                logger.exception("declarative cron reconciliation failed; crons left as they are")
        crons = self._valid_crons(queue, await queue.cron_records())
        if not crons:
            return
        now = datetime.now(UTC)
        await self._skip_missed_runs(queue, crons, now)
        stored: dict[str, list[str]] = {}
        for cron_id, cron in crons.items():
            for moment in cron.next_runs(CRON_LOOKAHEAD, now):
                occurrence = cron.create_task(moment)
                # Deterministic ids make this idempotent across workers: only the first one stores it.
                if await queue.schedule(occurrence, moment):
                    stored.setdefault(cron_id, []).append(str(occurrence.id))
        if stored:
            await self._drop_orphans(queue, stored)

    @staticmethod
    def _valid_crons(queue: QueueStore, records: list[dict[str, Any]]) -> dict[str, TaskCron]:
        crons: dict[str, TaskCron] = {}
        for data in records:
            try:
                cron = TaskCron.model_validate(data)
            except ValueError as exc:
                logger.error("skipping an invalid cron in queue %r: %s", queue.name, exc)
                continue
            crons[str(cron.deterministic_id)] = cron
        return crons

    async def _skip_missed_runs(self, queue: QueueStore, crons: dict[str, TaskCron], now: datetime) -> None:
        """The missed-run policy: of a cron's overdue occurrences (still scheduled, due before ``now``),
        only the latest slot runs, at once; older ones are cancelled. One due occurrence of the latest
        slot is the normal case (the scheduler moves it any moment) and is left alone.

        Cheap while nothing is overdue: one ``next_scheduled_at``; the schedule is read only when some
        task of the queue is due and not moved yet (typically once, after a restart).
        """
        upcoming = await queue.next_scheduled_at()
        if upcoming is None or upcoming > now:
            return
        overdue: dict[str, list[dict[str, Any]]] = {}
        for record in await queue.scheduled_records():
            if due_at(record) > now:
                continue
            cron_id = record.get("cron_id")
            if record.get("status") == "scheduled" and cron_id is not None and str(cron_id) in crons:
                overdue.setdefault(str(cron_id), []).append(record)
        for cron_id, records in overdue.items():
            cron = crons[cron_id]
            latest = cron.previous_run(now)
            catch_up = cron.create_task(latest)
            # Only occurrences still waiting for their own slot were missed; one handed back or deferred
            # by a rate limit (due later than its slot) was delivered and is left alone.
            stale = [
                str(r["id"])
                for r in records
                if str(r["id"]) != str(catch_up.id) and str(cron.create_task(due_at(r)).id) == str(r["id"])
            ]
            if not stale:
                continue
            skipped = 0
            for task_id in stale:
                if await queue.cancel(task_id) is not None:
                    skipped += 1
            await queue.schedule(catch_up, latest)
            logger.warning(
                "cron %s (%s %s) in queue %r missed %d run(s) while no worker ran it: skipped %d, "
                "running the latest missed slot (%s) once now",
                cron_id, cron.expression, cron.spec.func, queue.name, len(stale), skipped, latest.isoformat(),
            )

    async def _drop_orphans(self, queue: QueueStore, stored: dict[str, list[str]]) -> None:
        """Remove occurrences this pass stored for crons deleted meanwhile: ``delete_cron`` removes the
        occurrences that exist when it runs, so one stored just after it (this pass read the cron
        before the delete) would otherwise run although its cron is gone."""
        still = self._valid_crons(queue, await queue.cron_records())
        for cron_id, task_ids in stored.items():
            if cron_id in still:
                continue
            for task_id in task_ids:
                if await queue.cancel(task_id) is not None:
                    # Deleted, not kept as cancelled: the same slot can be scheduled when the cron is
                    # added back.
                    with contextlib.suppress(BackendError):
                        await queue.delete(task_id)
            logger.info(
                "cron %s was deleted from queue %r while this worker scheduled it: %d occurrence(s) removed",
                cron_id, queue.name, len(task_ids),
            )


def one_line_error(exc: BaseException) -> str:
    """``Type: message`` on one line (a driver's error may span several)."""
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _has_rate_limit(record: dict[str, Any]) -> bool:
    config = record.get("config")
    return isinstance(config, dict) and config.get("rate_limit") is not None


async def _wait_at_most(event: asyncio.Event, seconds: float) -> None:
    """Wait for ``event`` at most ``seconds``. (``asyncio.timeout``, not ``wait_for``: on Python 3.11
    ``wait_for`` can swallow a cancellation that arrives as the wait ends.)"""
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(seconds):
            await event.wait()
