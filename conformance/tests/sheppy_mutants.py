"""Deliberately broken variants of the reference ``MemoryBackend``, each with ONE realistic bug.

They prove the conformance suite has teeth: ``test_mutants.py`` runs the suite against every factory
in :data:`MUTANTS` and requires each to fail, naming the clause expected to catch it. The bugs mimic
mistakes real backends make (a read-then-write without a transaction, a ``<=`` for ``<``, a key built
from a sanitised queue name, counters bumped on every write, ...).

These subclasses reach into ``MemoryBackend``'s private state on purpose: they are test doubles of the
reference implementation, not plugins.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import math
import re
import time
from collections import Counter
from datetime import datetime, timedelta
from typing import Any

from sheppy_core import MemoryBackend
from sheppy_core.backend import (
    DEFAULT_PAGE_SIZE,
    FINISHED_STATUSES,
    Backend,
    TaskPage,
    check_listing,
    check_task_id,
    listing_key,
    micros_to_datetime,
    page_of,
    task_id_of,
    to_iso,
    utcnow,
)

__all__ = ["MUTANTS", "make_reference"]


def make_reference() -> MemoryBackend:
    """The unbroken reference, for comparison."""
    return MemoryBackend(instant_processing=False)


class _Mutant(MemoryBackend):
    """A memory backend that behaves as a plain store (no inline processing)."""

    @classmethod
    def build(cls) -> MemoryBackend:
        """The zero-argument factory: ``--sheppy-backend-factory sheppy_mutants:Lifo.build``."""
        return cls(instant_processing=False)


class RacyPop(_Mutant):
    """Reads the head of the queue, awaits (a network round trip), then claims what it read."""

    async def pop(self, queue_name: str, limit: int = 1, timeout: float | None = None, *,
                  worker_id: str | None = None, lease: float | None = None) -> list[dict[str, Any]]:
        if limit < 1:
            return await super().pop(queue_name, limit, timeout, worker_id=worker_id, lease=lease)
        queue = self._queue(queue_name)
        now = utcnow()
        head = ([t for t, until in queue.claimed.items() if until <= now] + list(queue.queued))[:limit]
        if not head:
            return await super().pop(queue_name, limit, timeout, worker_id=worker_id, lease=lease)
        await asyncio.sleep(0)
        expiry = utcnow() + timedelta(seconds=self.lease_duration if lease is None else lease)
        claimed = []
        for task_id in head:
            queue.queued.pop(task_id, None)
            queue.claimed[task_id] = expiry
            record = queue.records[task_id]
            record.update(status="processing", claimed_by=worker_id or self.client_id,
                          lease_expires_at=to_iso(expiry), deliveries=int(record.get("deliveries") or 0) + 1)
            claimed.append(json.loads(json.dumps(record)))
        return claimed


class Lifo(_Mutant):
    """Claims the newest task first (LPUSH + LPOP instead of RPOP)."""

    def _claim(self, queue: Any, limit: int, worker_id: str, lease: float) -> list[dict[str, Any]]:
        order = list(queue.queued)
        queue.queued = dict.fromkeys(reversed(order))
        try:
            return super()._claim(queue, limit, worker_id, lease)
        finally:
            queue.queued = {t: None for t in order if t in queue.queued}


class EarlySchedule(_Mutant):
    """Moves scheduled tasks up to a second early ("allowance for clock skew")."""

    async def pop_scheduled(self, queue_name: str, now: datetime | None = None) -> list[dict[str, Any]]:
        return await super().pop_scheduled(queue_name, (now or utcnow()) + timedelta(seconds=1))


class AppendNotUnique(_Mutant):
    """Checks uniqueness against the queue index only, so claimed/scheduled/finished ids are overwritten."""

    async def append(
        self, queue_name: str, tasks: list[dict[str, Any]], unique: bool = True, *, connection: object = None
    ) -> list[bool]:
        queue = self._queue(queue_name, create=True)
        results = []
        for task in tasks:
            if unique and task.get("id") in queue.queued:
                results.append(False)
            else:
                results.extend(await super().append(queue_name, [task], unique=False, connection=connection))
        return results


class LeaseNeverExpires(_Mutant):
    """Only ever claims queued tasks: a crashed worker's task is never redelivered."""

    def _claim(self, queue: Any, limit: int, worker_id: str, lease: float) -> list[dict[str, Any]]:
        held, queue.claimed = queue.claimed, {}
        try:
            return super()._claim(queue, limit, worker_id, lease)
        finally:
            queue.claimed = {**held, **queue.claimed}


class WaitersNeverWoken(_Mutant):
    """``store_result`` forgets to publish the "result ready" notification."""

    async def store_result(self, queue_name: str, task_data: dict[str, Any]) -> bool:
        self._notify = lambda: None  # type: ignore[method-assign]
        try:
            return await super().store_result(queue_name, task_data)
        finally:
            del self._notify


class QueueLeak(_Mutant):
    """Builds storage keys from a "sanitised" queue name, so ``a:b`` and ``a_b`` share one queue."""

    def _queue(self, queue_name: str, *, create: bool = False) -> Any:
        return super()._queue(re.sub(r"[^\w-]", "_", queue_name) or queue_name, create=create)


class ClearLeavesScheduled(_Mutant):
    """``clear`` deletes the queue but not the schedule (kept under a separate key)."""

    async def clear(self, queue_name: str) -> int:
        queue = self._queue(queue_name)
        kept = {t: (queue.records[t], at) for t, at in queue.scheduled.items()}
        removed = await super().clear(queue_name)
        if kept:
            fresh = self._queue(queue_name, create=True)
            for task_id, (record, at) in kept.items():
                fresh.records[task_id] = record
                fresh.scheduled[task_id] = at
        return removed


class RateLimitOffByOne(_Mutant):
    """Fixed windows compare ``count <= max_rate``: one start too many per window."""

    async def acquire_rate_limit(self, queue_name: str, key: str, max_rate: int, rate_period: float,
                                 task_id: str, strategy: str = "sliding_window") -> float | None:
        if strategy == "fixed_window":
            max_rate += 1
        return await super().acquire_rate_limit(queue_name, key, max_rate, rate_period, task_id, strategy)


class StoreResultNotIdempotent(_Mutant):
    """Keeps finished-status counters bumped on every ``store_result``, so a retried write counts twice."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._writes: Counter[tuple[str, str]] = Counter()

    async def store_result(self, queue_name: str, task_data: dict[str, Any]) -> bool:
        stored = await super().store_result(queue_name, task_data)
        if stored and task_data.get("finished_at"):
            self._writes[(queue_name, str(task_data["id"]))] += 1
        return stored

    async def get_stats(self, queue_name: str) -> dict[str, int]:
        stats = await super().get_stats(queue_name)
        queue = self._queue(queue_name)
        for (name, task_id), writes in self._writes.items():
            record = queue.records.get(task_id)
            if name == queue_name and record is not None and record.get("status") in FINISHED_STATUSES:
                stats[record["status"]] += writes - 1
        return stats


class CronNotUnique(_Mutant):
    """``add_cron`` overwrites (SET instead of SET NX): every worker re-adds and fires the cron."""

    async def add_cron(self, queue_name: str, deterministic_id: str, task_cron: dict[str, Any]) -> bool:
        await self.delete_cron(queue_name, deterministic_id)
        return await super().add_cron(queue_name, deterministic_id, task_cron)


class LostOnReconnect(_Mutant):
    """Treats the queue index as connection state: a reconnect loses every queued task."""

    async def disconnect(self) -> None:
        for queue in self._queues.values():
            for task_id in list(queue.queued):
                queue.records.pop(task_id, None)
            queue.queued.clear()
        await super().disconnect()


class SizeCountsClaimed(_Mutant):
    """``size`` counts claimed tasks too (a list length that includes the in-flight list)."""

    async def size(self, queue_name: str) -> int:
        queue = self._queue(queue_name)
        return len(queue.queued) + len(queue.claimed)


class CancelClaimed(_Mutant):
    """``cancel`` accepts a task a worker is running (it only checks the record exists and is unfinished)."""

    async def cancel(self, queue_name: str, task_id: str) -> dict[str, Any] | None:
        queue = self._queue(queue_name)
        if task_id in queue.claimed:
            del queue.claimed[task_id]
            queue.queued[task_id] = None
        return await super().cancel(queue_name, task_id)


class AckKeepsClaim(_Mutant):
    """``acknowledge`` answers True but never removes the claim: the task comes back after its lease."""

    async def acknowledge(self, queue_name: str, task_id: str) -> bool:
        return task_id in self._queue(queue_name).claimed


class HeartbeatDoesNotExtend(_Mutant):
    """``heartbeat`` reports the held ids but writes the new expiry to the record only, not the claim."""

    async def heartbeat(self, queue_name: str, task_ids: list[str], *, worker_id: str | None = None,
                        lease: float | None = None) -> list[str]:
        queue = self._queue(queue_name)
        owner = worker_id or self.client_id
        return [t for t in task_ids if t in queue.claimed and queue.records[t].get("claimed_by") == owner]


class DeleteUnfinished(_Mutant):
    """``delete_task`` deletes whatever it is given, running or waiting."""

    async def delete_task(self, queue_name: str, task_id: str) -> bool:
        queue = self._queue(queue_name)
        if task_id not in queue.records:
            return False
        self._forget_position(queue, task_id)
        del queue.records[task_id]
        return True


class SurrogatePassNames(_Mutant):
    """Keys a queue by its name's bytes with ``surrogatepass`` (as a key builder might), so a name that
    has no UTF-8 form is stored instead of refused."""

    def _queue(self, queue_name: str, *, create: bool = False) -> Any:
        try:
            queue_name.encode("utf-8")
        except (AttributeError, UnicodeEncodeError):
            if isinstance(queue_name, str):
                queue_name = queue_name.encode("utf-8", "surrogatepass").decode("latin-1")
        return super()._queue(queue_name, create=create)


class HandOffDropped(_Mutant):
    """Blocked ``pop`` calls get one wake-up per change (one token, as with one LPUSH per append), and a
    woken pop that leaves tasks behind does not pass it on: the other idle pops sleep out their timeout."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._idle_pops: list[asyncio.Event] = []

    def _notify(self) -> None:
        if self._idle_pops:
            self._idle_pops.pop(0).set()
        super()._notify()

    async def pop(self, queue_name: str, limit: int = 1, timeout: float | None = None, *,
                  worker_id: str | None = None, lease: float | None = None) -> list[dict[str, Any]]:
        if limit < 1 or timeout is None or timeout <= 0:
            return await super().pop(queue_name, limit, timeout, worker_id=worker_id, lease=lease)
        owner = worker_id or self.client_id
        duration = self.lease_duration if lease is None else lease
        deadline = time.monotonic() + timeout
        while True:
            queue = self._queue(queue_name)
            claimed = self._claim(queue, limit, owner, duration)
            remaining = deadline - time.monotonic()
            if claimed or remaining <= 0:
                return claimed
            if queue.claimed:
                soonest = min(queue.claimed.values())
                remaining = min(remaining, max(0.001, (soonest - utcnow()).total_seconds()))
            woken = asyncio.Event()
            self._idle_pops.append(woken)
            try:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(woken.wait(), remaining)
            finally:
                if woken in self._idle_pops:
                    self._idle_pops.remove(woken)


class ClaimLostOnCancel(_Mutant):
    """Claims, then awaits the reply (a round trip) with nothing to undo the claim if the caller is
    cancelled meanwhile: the tasks stay claimed by nobody until their lease expires."""

    async def pop(self, queue_name: str, limit: int = 1, timeout: float | None = None, *,
                  worker_id: str | None = None, lease: float | None = None) -> list[dict[str, Any]]:
        claimed = await super().pop(queue_name, limit, timeout, worker_id=worker_id, lease=lease)
        if claimed:
            await asyncio.sleep(0)  # the reply on its way back
        return claimed


class HandBackCountsDelivery(_Mutant):
    """Hands a claim whose caller was cancelled back to the head of the queue, but leaves the delivery
    counted: the next claimant sees ``deliveries=2`` and takes the task for a crashed earlier run."""

    async def pop(self, queue_name: str, limit: int = 1, timeout: float | None = None, *,
                  worker_id: str | None = None, lease: float | None = None) -> list[dict[str, Any]]:
        claimed = await super().pop(queue_name, limit, timeout, worker_id=worker_id, lease=lease)
        if claimed:
            try:
                await asyncio.sleep(0)  # the reply on its way back
            except asyncio.CancelledError:
                queue = self._queue(queue_name)
                for record in reversed(claimed):
                    task_id = record["id"]
                    queue.claimed.pop(task_id, None)
                    queue.queued = {task_id: None, **queue.queued}
                    stored = queue.records[task_id]
                    stored["status"] = "pending"
                    stored.pop("claimed_by", None)
                    stored.pop("lease_expires_at", None)
                raise
        return claimed


MUTANTS: dict[str, tuple[type[_Mutant], str]] = {
    cls.__name__: (cls, expected)
    for cls, expected in [
        (RacyPop, "pop.exclusive"),
        (Lifo, "pop.fifo"),
        (EarlySchedule, "schedule.not_before"),
        (AppendNotUnique, "append.unique"),
        (LeaseNeverExpires, "lease.expired_redelivered"),
        (WaitersNeverWoken, "get_results.waits"),
        (QueueLeak, "isolation.queue_names"),
        (ClearLeavesScheduled, "clear.everything"),
        (RateLimitOffByOne, "rate_limit.fixed_window"),
        (StoreResultNotIdempotent, "store_result.idempotent"),
        (CronNotUnique, "cron.unique"),
        (LostOnReconnect, "reconnect.recovers"),
        (SizeCountsClaimed, "size.queued_only"),
        (CancelClaimed, "cancel.refused"),
        (AckKeepsClaim, "ack.releases"),
        (HeartbeatDoesNotExtend, "lease.heartbeat_extends"),
        (DeleteUnfinished, "delete.unfinished"),
        (SurrogatePassNames, "input.unencodable"),
        (HandOffDropped, "pop.wakes_all"),
        (ClaimLostOnCancel, "pop.cancel_mid_claim"),
        (HandBackCountsDelivery, "pop.cancel_mid_claim"),
    ]
}
"""Mutant name -> (class, the clause designed to catch it)."""


async def drop_and_log(backend: MemoryBackend) -> None:
    """A ``--sheppy-drop-connection`` hook for the plugin tests: reconnects and logs that it ran."""
    import os
    from pathlib import Path

    log = Path(os.environ["SHEPPY_DROP_LOG"])
    previous = log.read_text(encoding="utf-8") if log.exists() else ""  # noqa: ASYNC240 - test helper
    log.write_text(previous + f"{type(backend).__name__}\n", encoding="utf-8")  # noqa: ASYNC240
    await backend.disconnect()
    await backend.connect()


class EagerPurge(_Mutant):
    """Purges "ahead" on each write (finished records due to expire within the next 1.5 s go now, to save
    a later pass): a finished record disappears before its TTL whenever other clients keep writing."""

    async def append(
        self, queue_name: str, tasks: list[dict[str, Any]], unique: bool = True, *, connection: object = None
    ) -> list[bool]:
        import time

        queue = self._queue(queue_name, create=True)
        soon = time.time() + 1.5
        for task_id in [t for t, at in queue.expires.items() if at <= soon]:
            del queue.expires[task_id]
            queue.records.pop(task_id, None)
        return await super().append(queue_name, tasks, unique, connection=connection)


class CronDeleteKeepsOccurrences(_Mutant):
    """``delete_cron`` removes the definition only (HDEL): the occurrences already scheduled still run,
    and the cron added back finds their ids taken."""

    async def delete_cron(self, queue_name: str, deterministic_id: str) -> bool:
        return self._queue(queue_name).crons.pop(deterministic_id, None) is not None


MUTANTS[EagerPurge.__name__] = (EagerPurge, "ttl.readable_until")
MUTANTS[CronDeleteKeepsOccurrences.__name__] = (CronDeleteKeepsOccurrences, "cron.delete")


class CorruptRecordBlocksQueue(_Mutant):
    """Decodes each claimed record with the JSON library and lets its error escape: one corrupt record
    at the head of a queue fails every ``pop`` after it (as sheppy-redis and sheppy-postgres did)."""

    def _claim(self, queue: Any, limit: int, worker_id: str, lease: float) -> list[dict[str, Any]]:
        head = [*queue.queued][:limit]
        for task_id in head:
            record = queue.records[task_id]
            if record.get("status") == "quarantined":
                json.loads(record["quarantine"]["raw"] or "")  # raises JSONDecodeError, not BackendError
        return super()._claim(queue, limit, worker_id, lease)


MUTANTS[CorruptRecordBlocksQueue.__name__] = (CorruptRecordBlocksQueue, "robust.corrupt_record")


class ShieldedClaim(_Mutant):
    """A blocking ``pop`` runs each claim, a transaction with its COMMIT round trip, under
    ``asyncio.shield`` "so that a cancel cannot leave it half done": a pop cancelled after it found a task
    commits the claim anyway, and nobody receives the task until its lease expires."""

    async def pop(self, queue_name: str, limit: int = 1, timeout: float | None = None, *,
                  worker_id: str | None = None, lease: float | None = None) -> list[dict[str, Any]]:
        if limit < 1 or timeout is None or timeout <= 0:
            return await super().pop(queue_name, limit, timeout, worker_id=worker_id, lease=lease)
        owner = worker_id or self.client_id
        duration = self.lease_duration if lease is None else lease
        deadline = time.monotonic() + timeout
        while True:
            claimed = await asyncio.shield(self._claim_and_commit(queue_name, limit, owner, duration))
            remaining = deadline - time.monotonic()
            if claimed or remaining <= 0:
                return claimed
            queue = self._queue(queue_name)
            if queue.claimed:
                soonest = min(queue.claimed.values())
                remaining = min(remaining, max(0.001, (soonest - utcnow()).total_seconds()))
            await self._wait_for_change(remaining)

    async def _claim_and_commit(self, queue_name: str, limit: int, owner: str,
                                duration: float) -> list[dict[str, Any]]:
        claimed = self._claim(self._queue(queue_name), limit, owner, duration)
        await asyncio.sleep(0)  # the COMMIT's round trip
        return claimed


class PollingPop(_Mutant):
    """A blocking ``pop`` that polls the store every 150 ms (a SELECT, then a sleep) instead of being woken
    by ``append``: it does return the task, but ~75 ms late on average and up to 150 ms."""

    POLL_INTERVAL = 0.15

    async def pop(self, queue_name: str, limit: int = 1, timeout: float | None = None, *,
                  worker_id: str | None = None, lease: float | None = None) -> list[dict[str, Any]]:
        if limit < 1 or timeout is None or timeout <= 0:
            return await super().pop(queue_name, limit, timeout, worker_id=worker_id, lease=lease)
        deadline = time.monotonic() + timeout
        while True:
            claimed = await super().pop(queue_name, limit, worker_id=worker_id, lease=lease)
            remaining = deadline - time.monotonic()
            if claimed or remaining <= 0:
                return claimed
            await asyncio.sleep(min(self.POLL_INTERVAL, remaining))


MUTANTS[ShieldedClaim.__name__] = (ShieldedClaim, "pop.cancel_mid_claim")
MUTANTS[PollingPop.__name__] = (PollingPop, "pop.wakes_promptly")


class AppendCheckThenInsert(_Mutant):
    """``append(unique=True)`` looks the id up, then inserts in a second round trip (a SELECT, then an
    INSERT without a unique key or transaction): concurrent writers of one new id all see it missing and
    all store it."""

    async def append(
        self, queue_name: str, tasks: list[dict[str, Any]], unique: bool = True, *, connection: object = None
    ) -> list[bool]:
        if not unique:
            return await super().append(queue_name, tasks, unique, connection=connection)
        for task in tasks:
            task_id_of(task)  # the argument checks stay (a bad id refuses the whole batch)
        results = []
        for task in tasks:
            exists = task.get("id") in self._queue(queue_name, create=True).records
            await asyncio.sleep(0)  # the INSERT's round trip
            if exists:
                results.append(False)
            else:
                results.extend(await super().append(queue_name, [task], unique=False, connection=connection))
        return results


class ScheduleCheckThenInsert(_Mutant):
    """``schedule(unique=True)`` looks the id up, then inserts in a second round trip: concurrent writers
    of one new id all store it."""

    async def schedule(self, queue_name: str, task_data: dict[str, Any], at: datetime, unique: bool = True,
                       *, connection: object = None) -> bool:
        if not unique:
            return await super().schedule(queue_name, task_data, at, unique, connection=connection)
        exists = task_data.get("id") in self._queue(queue_name, create=True).records
        await asyncio.sleep(0)  # the INSERT's round trip
        if exists:
            return False
        return await super().schedule(queue_name, task_data, at, unique=False, connection=connection)


class CronCheckThenInsert(_Mutant):
    """``add_cron`` checks HEXISTS, then HSETs in a second round trip: concurrent adders of one new id all
    get True (and the last one's definition is kept)."""

    async def add_cron(self, queue_name: str, deterministic_id: str, task_cron: dict[str, Any]) -> bool:
        queue = self._queue(queue_name, create=True)
        exists = deterministic_id in queue.crons
        await asyncio.sleep(0)  # the HSET's round trip
        if exists:
            return False
        queue.crons[deterministic_id] = json.loads(json.dumps(task_cron))
        return True


class WorkflowCreateUpserts(_Mutant):
    """``store_workflow(if_version=0)`` runs a conditional UPDATE and, when it matched no row, an upsert
    in a second round trip: every concurrent creator of one new workflow wins."""

    async def store_workflow(self, queue_name: str, workflow_data: dict[str, Any], *,
                             if_version: int | None = None) -> bool:
        missing = workflow_data.get("id") not in self._queue(queue_name, create=True).workflows
        if if_version == 0 and missing:
            await asyncio.sleep(0)  # the upsert's round trip
            return await super().store_workflow(queue_name, workflow_data)
        return await super().store_workflow(queue_name, workflow_data, if_version=if_version)


class AckLeavesClaimFields(_Mutant):
    """``acknowledge`` drops the claim from the lease index only: the record keeps ``claimed_by`` and
    ``lease_expires_at`` (as examples/sheppy-jsonfile once did)."""

    async def acknowledge(self, queue_name: str, task_id: str) -> bool:
        queue = self._queue(queue_name)
        return queue.claimed.pop(check_task_id(task_id), None) is not None


MUTANTS[AppendCheckThenInsert.__name__] = (AppendCheckThenInsert, "append.unique")
MUTANTS[ScheduleCheckThenInsert.__name__] = (ScheduleCheckThenInsert, "schedule.unique")
MUTANTS[CronCheckThenInsert.__name__] = (CronCheckThenInsert, "cron.unique")
MUTANTS[WorkflowCreateUpserts.__name__] = (WorkflowCreateUpserts, "workflow.cas")
MUTANTS[AckLeavesClaimFields.__name__] = (AckLeavesClaimFields, "ack.releases")


class _ListingMutant(_Mutant):
    """``list_tasks`` over the reference's listing keys, with the order and cursor rule a subclass gets
    wrong (one bug each)."""

    descending = True
    inclusive_cursor = False

    async def list_tasks(self, queue_name: str, *, status: str | None = None, func: str | None = None,
                         since: datetime | None = None, until: datetime | None = None,
                         cursor: str | None = None, limit: int = DEFAULT_PAGE_SIZE) -> TaskPage:
        listing = check_listing(
            status=status, func=func, since=since, until=until, cursor=cursor, limit=limit
        )
        queue = self._queue(queue_name)
        unbounded = dataclasses.replace(listing, after=None)
        after = listing.after

        def beyond(place: tuple[int, str]) -> bool:
            if after is None:
                return True
            if self.inclusive_cursor and place == after:
                return True
            return place < after if self.descending else place > after

        places = sorted(((key, task_id) for task_id, key in queue.listing.items()
                         if unbounded.admits(key, queue.records[task_id]) and beyond((key, task_id))),
                        reverse=self.descending)
        return page_of(listing, [(key, json.loads(json.dumps(queue.records[task_id])))
                                 for key, task_id in places[: listing.limit + 1]])


class ListOldestFirst(_ListingMutant):
    """``list_tasks`` runs ``ORDER BY created_at, id`` without ``DESC``: the oldest records come first."""

    descending = False


class CursorRepeatsLast(_ListingMutant):
    """The next page starts *at* the cursor's record (``WHERE (key, id) <= (:key, :id)``), not after it:
    each page repeats the last record of the one before."""

    inclusive_cursor = True


class ListingKeyRestamped(_Mutant):
    """``store_result`` and ``cancel`` write the listing key again (an ``updated_at`` column the listing
    orders by), so a record moves to the top whenever it changes."""

    async def store_result(self, queue_name: str, task_data: dict[str, Any]) -> bool:
        stored = await super().store_result(queue_name, task_data)
        self._restamp(queue_name, str(task_data.get("id")))
        return stored

    async def cancel(self, queue_name: str, task_id: str) -> dict[str, Any] | None:
        cancelled = await super().cancel(queue_name, task_id)
        self._restamp(queue_name, task_id)
        return cancelled

    def _restamp(self, queue_name: str, task_id: str) -> None:
        queue = self._queue(queue_name)
        if task_id in queue.listing:
            queue.listing[task_id] = listing_key({}, utcnow())


class OldestReadyIsOldestCreated(_Mutant):
    """``oldest_ready_at`` runs ``SELECT min(created_at)`` over the queued tasks instead of reading the
    head, so a task appended late with an old ``created_at`` (or a long-scheduled one) shows as waiting."""

    async def oldest_ready_at(self, queue_name: str) -> datetime | None:
        queue = self._queue(queue_name)
        return min((micros_to_datetime(queue.listing[t]) for t in queue.queued), default=None)


class WorkersNeverExpire(_Mutant):
    """``register_worker`` stores the record without its ttl (an HSET with no EXPIRE): a worker killed
    without unregistering is listed for ever."""

    async def register_worker(self, worker: dict[str, Any], *, ttl: float) -> None:
        await super().register_worker(worker, ttl=ttl)
        record, _ = self._workers[worker["id"]]
        self._workers[worker["id"]] = (record, math.inf)


MUTANTS[ListOldestFirst.__name__] = (ListOldestFirst, "list_tasks.order")
MUTANTS[CursorRepeatsLast.__name__] = (CursorRepeatsLast, "list_tasks.cursor")
MUTANTS[ListingKeyRestamped.__name__] = (ListingKeyRestamped, "list_tasks.order")
MUTANTS[OldestReadyIsOldestCreated.__name__] = (OldestReadyIsOldestCreated, "oldest_ready.head")
MUTANTS[WorkersNeverExpire.__name__] = (WorkersNeverExpire, "workers.expire")


class FeedNeverWakes(_Mutant):
    """Declares ``CHANGE_FEED`` (inherited) but ``wait_for_change`` is the default, a sleep: the feed was
    never wired to the store's notifications, and the dashboard's pushed counts never come."""

    async def wait_for_change(self, queue_names: list[str], timeout: float) -> bool:
        return await Backend.wait_for_change(self, queue_names, timeout)


MUTANTS[FeedNeverWakes.__name__] = (FeedNeverWakes, "change_feed.added")


class ExpectsEveryField(_Mutant):
    """Written against records with every field spelled out: ``append`` reads ``record["finished_at"]``
    and fails on the compact records sheppy-core stores (fields at their defaults left out)."""

    async def append(
        self, queue_name: str, tasks: list[dict[str, Any]], *, unique: bool = True
    ) -> list[bool]:
        for record in tasks:
            if record["finished_at"] is not None or record["scheduled_at"] is not None:
                raise ValueError("append takes unfinished, unscheduled records")
        return await super().append(queue_name, tasks, unique=unique)


MUTANTS[ExpectsEveryField.__name__] = (ExpectsEveryField, "payload.compact")
