"""pop.*, lease.* and ack.*: claiming tasks under a lease, and letting claims go."""

from __future__ import annotations

import asyncio
import contextlib
import random
import statistics
import time
from datetime import timedelta
from typing import Any

from sheppy_conformance._clause import clause
from sheppy_conformance._env import Env
from sheppy_conformance.records import (
    LEASE,
    brief,
    eventually,
    finished,
    future,
    ids,
    raises,
    requeued,
    task_record,
    within,
)
from sheppy_core.backend import BLOCKING_POP, Backend, BackendInputError, from_iso, utcnow

__all__ = ["ClaimClauses"]

WAKE_MEDIAN_BOUND = 0.05
"""``[pop.wakes_promptly]``: the median wake-up delay allowed. The bundled backends measure 0.1-7 ms on
a 2-core machine at load 3 and at most 16 ms (postgres) at load 5; polling every 100 ms gives ~70 ms here,
every 150 ms ~120 ms, every 20 ms ~10 ms (which passes: polling that often is allowed)."""

WAKE_SAMPLE_TIMEOUT = 3.0
"""Each wake-up sample's ``pop`` timeout: a waiter that is never woken counts as this long."""


class ClaimClauses:
    @clause("pop.fifo")
    async def test_pop_fifo(self, env: Env) -> None:
        q, b = env.queue(), env.backend
        records = [task_record(i) for i in range(10)]
        await b.append(q, records)
        oldest = ids(await b.pop(q, limit=3, lease=30))
        assert oldest == ids(records[:3]), (
            f"pop(limit=3) on 10 queued tasks returned the ones appended at {_appended_at(oldest, records)}; "
            f"[pop.fifo]: queued tasks are claimed in append order, so [0, 1, 2]"
        )
        rest = ids(await b.pop(q, limit=20, lease=30))
        assert rest == ids(records[3:]), (
            f"pop(limit=20) on the 7 tasks left returned the ones appended at {_appended_at(rest, records)}; "
            f"[pop.fifo]: queued tasks are claimed in append order, so [3, 4, 5, 6, 7, 8, 9]"
        )

    @clause("pop.fifo")
    async def test_pop_fifo_requeue_goes_to_tail(self, env: Env) -> None:
        q, b = env.queue(), env.backend
        first, second = task_record(1), task_record(2)
        await b.append(q, [first, second])
        (claimed,) = await b.pop(q, lease=30)
        assert claimed["id"] == first["id"], (
            "pop() on two queued tasks returned the one appended at "
            f"{_appended_at([claimed['id']], [first, second])}; [pop.fifo]: queued tasks are claimed in "
            "append order, so [0]"
        )
        await b.store_result(q, requeued(claimed))
        after_requeue = ids(await b.pop(q, limit=5, lease=30))
        assert after_requeue == [second["id"], first["id"]], (
            "pop(limit=5) after store_result re-queued task 0 returned the tasks appended at "
            f"{_appended_at(after_requeue, [first, second])}; [pop.fifo]: store_result re-queues at the "
            "tail, so [1, 0]"
        )

    @clause("pop.fifo")
    async def test_pop_fifo_expired_leases_first(self, env: Env) -> None:
        q, b = env.queue(), env.backend
        records = [task_record(i) for i in range(3)]
        await b.append(q, records)
        await b.pop(q, lease=LEASE)
        await asyncio.sleep(LEASE + 0.15)
        reclaimed = ids(await b.pop(q, limit=2, lease=30))
        assert reclaimed == ids(records[:2]), (
            f"pop(limit=2) on 3 tasks, the oldest claimed under an expired lease, returned the tasks "
            f"appended at {_appended_at(reclaimed, records)}; [pop.fifo]: tasks with an expired lease are "
            f"claimed before queued ones, queued ones in append order, so [0, 1]"
        )

    @clause("pop.limit")
    async def test_pop_limit(self, env: Env) -> None:
        q, b = env.queue(), env.backend
        await b.append(q, [task_record(i) for i in range(5)])
        for bad in (0, -1):
            with raises(BackendInputError, f"pop(limit={bad}) must raise BackendInputError [pop.limit]"):
                await b.pop(q, limit=bad)
        two = await b.pop(q, limit=2, lease=30)
        assert len(two) == 2, (
            f"pop(limit=2) on 5 queued tasks returned {len(two)} record(s); [pop.limit]: up to limit "
            "records, so 2"
        )
        one = await b.pop(q, limit=1, lease=30)
        assert len(one) == 1, (
            f"pop(limit=1) on 3 queued tasks returned {len(one)} record(s); [pop.limit]: up to limit "
            "records, so 1"
        )
        the_rest = await b.pop(q, limit=50, lease=30)
        assert len(the_rest) == 2, (
            f"pop(limit=50) on the 2 tasks left returned {len(the_rest)} record(s); [pop.limit]: up to limit "
            f"records, so both"
        )
        none_left = await b.pop(q, limit=50, lease=30)
        assert none_left == [], (
            f"pop(limit=50) with all 5 tasks claimed returned {_brief_ids(none_left)}; [pop.limit]: nothing "
            "is claimable, so []"
        )

    @clause("pop.claim")
    async def test_pop_claim(self, env: Env) -> None:
        q, b = env.queue(), env.backend
        first, second = task_record(1), task_record(2)
        await b.append(q, [first, second])
        before = utcnow()
        (got,) = await b.pop(q, worker_id="worker-a", lease=5)
        assert got["id"] == first["id"], (
            "pop() on two queued tasks returned the one appended at "
            f"{_appended_at([got['id']], [first, second])}; [pop.claim]: it claims the oldest queued task, "
            "so [0]"
        )
        returned_claim = (got["status"], got["claimed_by"], got["deliveries"])
        assert returned_claim == ("processing", "worker-a", 1), (
            f"pop(worker_id='worker-a') returned (status, claimed_by, deliveries) = {brief(returned_claim)}; "
            f"[pop.claim]: status='processing', claimed_by=worker_id, deliveries incremented by one, so "
            f"('processing', 'worker-a', 1)"
        )
        expiry = from_iso(got["lease_expires_at"])
        assert before + timedelta(seconds=4) <= expiry <= utcnow() + timedelta(seconds=6), (
            f"pop(lease=5) returned lease_expires_at={got['lease_expires_at']}, "
            f"{(expiry - before).total_seconds():.2f} s after the call began; [pop.claim]: lease_expires_at "
            "= now + lease seconds (4-6 s allowed)"
        )
        stored = (await b.get_tasks(q, [first["id"]]))[first["id"]]
        stored_claim = (stored["status"], stored["claimed_by"], stored["deliveries"])
        assert stored_claim == ("processing", "worker-a", 1), (
            f"get_tasks after pop(worker_id='worker-a') shows (status, claimed_by, deliveries) = "
            f"{brief(stored_claim)}; [pop.claim]: each returned record is stored as returned, so "
            f"('processing', 'worker-a', 1)"
        )
        (other,) = await b.pop(q)  # defaults: client_id and lease_duration
        assert other["claimed_by"] == b.client_id, (
            f"pop() without worker_id returned claimed_by={brief(other['claimed_by'])}; [pop.claim]: "
            f"claimed_by defaults to client_id, {b.client_id!r}"
        )
        lease = from_iso(other["lease_expires_at"]) - utcnow()
        assert abs(lease.total_seconds() - b.lease_duration) < 2, (
            f"pop() without lease returned a lease of {lease.total_seconds():.1f} s; [pop.claim]: lease=None "
            f"means lease_duration, {b.lease_duration} s (within 2 s)"
        )

    @clause("pop.claim")
    async def test_pop_claim_counts_deliveries(self, env: Env) -> None:
        q, b = env.queue(), env.backend
        record = task_record(1)
        assert "deliveries" not in record, "[pop.claim]: the suite's record leaves deliveries out (0)"
        await b.append(q, [record])
        first_claim = await b.pop(q, worker_id="w1", lease=LEASE)
        assert first_claim[0]["deliveries"] == 1, (
            f"pop() of a record without a deliveries field returned deliveries="
            f"{brief(first_claim[0]['deliveries'])}; [pop.claim]: a missing field counts as 0, so 1"
        )
        await asyncio.sleep(LEASE + 0.15)
        again = await b.pop(q, worker_id="w2", lease=30)
        assert ids(again) == [record["id"]], (
            f"pop(worker_id='w2') after w1's {LEASE} s lease expired returned {brief(ids(again))}; "
            "[pop.claim]: the task is claimable again, so it is returned"
        )
        second_claim = (again[0]["deliveries"], again[0]["claimed_by"])
        assert second_claim == (2, "w2"), (
            "the second claim, pop(worker_id='w2'), returned (deliveries, claimed_by) = "
            f"{brief(second_claim)}; [pop.claim]: each claim increments deliveries by one and sets "
            "claimed_by, so (2, 'w2')"
        )

    @clause("pop.exclusive", timeout=20)
    async def test_pop_exclusive(self, env: Env) -> None:
        q = env.queue()
        records = [task_record(i) for i in range(60)]
        await env.backend.append(q, records)
        consumers = await env.peers(8)
        delivered: list[str] = []

        async def consume(backend: Backend, seed: int) -> None:
            rng = random.Random(seed)
            while True:
                got = await backend.pop(q, limit=rng.randint(1, 3), lease=30, worker_id=f"w{seed}")
                if not got:
                    return
                delivered.extend(ids(got))

        await within(15, asyncio.gather(*(consume(c, i) for i, c in enumerate(consumers))))
        duplicates = sorted({t for t in delivered if delivered.count(t) > 1})
        assert not duplicates, (
            f"8 consumers popping concurrently got {len(duplicates)} of {len(records)} task(s) more than "
            "once; [pop.exclusive]: a claim is atomic, no task is returned twice while its lease is live: a "
            "read-then-claim races: make the claim itself take only unclaimed tasks\n"
            f"e.g. {brief(duplicates[:3])}"
        )
        assert sorted(delivered) == sorted(ids(records)), (
            f"8 consumers popping concurrently until [] got {len(delivered)} of {len(records)} tasks; "
            "[pop.exclusive]: every task is claimed once\n"
            f"missing: {brief(sorted(set(ids(records)) - set(delivered)))}"
        )

    @clause("pop.hidden")
    async def test_pop_hidden(self, env: Env) -> None:
        q, b = env.queue(), env.backend
        first, second = task_record(1), task_record(2)
        await b.append(q, [first, second])
        await b.pop(q, lease=30)
        size = await b.size(q)
        assert size == 1, (
            f"size() with 1 of 2 tasks claimed returned {size}; [pop.hidden]: a claimed task is not counted "
            "by size until its lease expires, so 1"
        )
        pending = ids(await b.get_pending(q, 10))
        assert pending == [second["id"]], (
            f"get_pending(10) after pop() claimed 1 of 2 tasks returned the tasks appended at "
            f"{_appended_at(pending, [first, second])}; [pop.hidden]: the claimed task (the oldest, "
            f"[pop.fifo]) is not listed until its lease expires, so [1]"
        )
        unclaimed = ids(await b.pop(q, limit=10, lease=30))
        assert unclaimed == [second["id"]], (
            f"pop(limit=10) after pop() claimed 1 of 2 tasks returned the tasks appended at "
            f"{_appended_at(unclaimed, [first, second])}; [pop.hidden]: the claimed task (the oldest, "
            f"[pop.fifo]) is not returned again until its lease expires, so [1]"
        )
        none_left = await b.pop(q, limit=10, lease=30)
        assert none_left == [], (
            f"pop(limit=10) with both tasks claimed under live leases returned {_brief_ids(none_left)}; "
            f"[pop.hidden]: a claimed task is not returned again until its lease expires, so []"
        )

    @clause("lease.expired_redelivered")
    async def test_lease_expired_redelivered(self, env: Env) -> None:
        q, b = env.queue(), env.backend
        record = task_record(1)
        await b.append(q, [record])
        await b.pop(q, worker_id="crashed", lease=LEASE)
        while_live = await b.pop(q, lease=30)
        assert while_live == [], (
            f"pop() while the only task's {LEASE} s lease is live returned {_brief_ids(while_live)}; "
            f"[lease.expired_redelivered]: the task comes back only once its lease expires, so []"
        )
        await asyncio.sleep(LEASE + 0.15)
        other = await env.peer()
        rescued = ids(await other.pop(q, worker_id="rescuer", lease=30))
        assert rescued == [record["id"]], (
            f"pop() on another backend object {LEASE + 0.15:.2f} s after a claim with lease={LEASE} returned "
            f"{brief(rescued)}; [lease.expired_redelivered]: once the lease expires, a later pop returns the "
            "task again: a claimed task with an expired lease is claimable, not only queued ones"
        )

    @clause("pop.timeout")
    async def test_pop_timeout_non_positive_returns_at_once(self, env: Env) -> None:
        q, b = env.queue(), env.backend
        for timeout in (None, 0, -1):
            started = time.monotonic()
            got = await within(2, b.pop(q, timeout=timeout))
            assert got == [], (
                f"pop(timeout={timeout}) on an empty queue returned {_brief_ids(got)}; [pop.timeout]: with "
                "nothing claimable it returns []"
            )
            waited = time.monotonic() - started
            assert waited < 0.5, (
                f"pop(timeout={timeout}) on an empty queue returned after {waited:.3f} s; [pop.timeout]: "
                "timeout None or <= 0 returns at once (under 0.5 s)"
            )

    @clause("pop.timeout", requires=BLOCKING_POP)
    async def test_pop_timeout_waits_then_returns_empty(self, env: Env) -> None:
        q, b = env.queue(), env.backend
        started = time.monotonic()
        got = await within(5, b.pop(q, timeout=0.4))
        assert got == [], (
            f"pop(timeout=0.4) on an empty queue returned {_brief_ids(got)}; [pop.timeout]: when the time is "
            "up with nothing claimable it returns []"
        )
        waited = time.monotonic() - started
        assert 0.3 <= waited < 2.5, (
            f"pop(timeout=0.4) on an empty queue returned after {waited:.3f} s; a backend with BLOCKING_POP "
            "must wait [pop.timeout]: up to timeout seconds for an append, then return [] (0.3-2.5 s "
            "allowed)"
        )

    @clause("pop.blocks_until_append", requires=BLOCKING_POP)
    async def test_pop_blocks_until_append(self, env: Env) -> None:
        q, b = env.queue(), env.backend
        producer = await env.peer()
        record = task_record(1)
        waiter = asyncio.create_task(b.pop(q, timeout=5, lease=30))
        await asyncio.sleep(0.2)
        assert not waiter.done(), (
            f"pop(timeout=5) on an empty queue {_outcome(waiter)} within 0.2 s, before anything was "
            "appended; [pop.blocks_until_append]: with BLOCKING_POP it waits for an append"
        )
        started = time.monotonic()
        await producer.append(q, [record])
        woken = ids(await within(6, waiter))
        assert woken == [record["id"]], (
            f"a blocked pop(timeout=5) returned {brief(woken)} after another object appended one task; "
            f"[pop.blocks_until_append]: it returns as soon as an append arrives, with that task"
        )
        woke_after = time.monotonic() - started
        assert woke_after < 2, (
            f"a blocked pop(timeout=5) returned {woke_after:.2f} s after another object's append began; "
            f"[pop.blocks_until_append]: it returns as soon as an append arrives (under 2 s)"
        )

    @clause("pop.wakes_promptly", requires=BLOCKING_POP, timeout=40)
    async def test_pop_wakes_promptly(self, env: Env) -> None:
        q, b = env.queue(), env.backend
        producer = await env.peer()
        rng = random.Random(2718)
        # Idle waits of varied length, so that a backend polling every P ms is sampled at every phase of
        # its cycle; the short ones (20-40 ms) alone already catch any poll interval above ~90 ms.
        idle_waits = [rng.uniform(0.02, 0.04) for _ in range(8)] + [rng.uniform(0.15, 0.35) for _ in range(8)]
        rng.shuffle(idle_waits)
        delays: list[float] = []
        for sample, idle in enumerate(idle_waits):
            record = task_record(sample)
            waiter = asyncio.create_task(b.pop(q, timeout=WAKE_SAMPLE_TIMEOUT, lease=30))
            await asyncio.sleep(idle)
            if waiter.done():
                returned = waiter.result()
                raise AssertionError(
                    f"pop(timeout={WAKE_SAMPLE_TIMEOUT}) on an empty queue returned {_brief_ids(returned)} "
                    f"after {idle * 1000:.0f} ms; a backend with BLOCKING_POP must wait [pop.wakes_promptly]"
                )
            await producer.append(q, [record])
            appended = time.monotonic()
            got = await within(WAKE_SAMPLE_TIMEOUT + 5, waiter)
            # A waiter that never woke counts as the whole timeout; its task is taken out so that the
            # next sample starts from an empty queue again.
            delays.append(max(0.0, time.monotonic() - appended) if got else WAKE_SAMPLE_TIMEOUT)
            if not got:
                await within(5, b.pop(q, limit=10, lease=30))
            if sum(d > WAKE_MEDIAN_BOUND for d in delays) > len(idle_waits) // 2:
                break  # the median is over the bound whatever the other samples show
        median = statistics.median(delays)
        assert median <= WAKE_MEDIAN_BOUND, (
            f"an idle pop(timeout={WAKE_SAMPLE_TIMEOUT}) returned the task a median of {median * 1000:.0f} "
            "ms after another object's append returned; [pop.wakes_promptly]: with BLOCKING_POP the median "
            f"is at most {WAKE_MEDIAN_BOUND * 1000:.0f} ms: wake pop by a notification; polling passes only "
            "every few tens of ms (20 ms does, 100 ms does not)\n"
            f"delays over {len(delays)} waits: {', '.join(f'{d * 1000:.0f}' for d in sorted(delays))} ms"
        )

    @clause("pop.blocks_until_append", requires=BLOCKING_POP)
    async def test_pop_blocks_until_append_cancelled_wait_claims_nothing(self, env: Env) -> None:
        q, b = env.queue(), env.backend
        waiter = asyncio.create_task(b.pop(q, timeout=5, lease=30))
        await asyncio.sleep(0.1)
        waiter.cancel()
        with raises(asyncio.CancelledError, "awaiting a pop(timeout=5) cancelled while it blocks must raise "
                    "CancelledError [pop.blocks_until_append]"):
            await waiter
        record = task_record(1)
        await b.append(q, [record])
        await asyncio.sleep(0.1)
        got = await b.pop(q, lease=30)
        assert ids(got) == [record["id"]], (
            f"pop() after a blocking pop was cancelled and one task appended returned {_brief_ids(got)}; "
            f"[pop.blocks_until_append]: a cancelled wait claims nothing, so the task is still claimable"
        )
        assert got[0]["deliveries"] == 1, (
            "the task claimed after a blocking pop was cancelled has "
            f"deliveries={brief(got[0]['deliveries'])}; [pop.blocks_until_append]: a cancelled wait claims "
            "nothing, so this is delivery 1"
        )

    @clause("pop.wakes_all", requires=BLOCKING_POP, timeout=20)
    async def test_pop_wakes_all(self, env: Env) -> None:
        q = env.queue()
        count = 5
        consumers = await env.peers(count)
        producer = await env.peer()
        waiters = [
            asyncio.create_task(c.pop(q, timeout=8, lease=30, worker_id=f"idle-{i}"))
            for i, c in enumerate(consumers)
        ]
        await asyncio.sleep(0.3)  # let them block (one that has not blocked yet claims at once anyway)
        assert not any(w.done() for w in waiters), (
            f"{sum(w.done() for w in waiters)} of {count} pop(timeout=8) calls on an empty queue returned "
            "within 0.3 s, before anything was appended; [pop.wakes_all]: with BLOCKING_POP they wait for "
            "an append"
        )
        records = [task_record(i) for i in range(count)]
        started = time.monotonic()
        await producer.append(q, records)
        got = await within(12, asyncio.gather(*waiters))
        elapsed = time.monotonic() - started
        assert elapsed < 3, (
            f"{count} blocked pops took {elapsed:.1f} s to get {count} tasks appended at once; "
            "[pop.wakes_all]: each returns promptly (under 3 s): a woken pop that leaves work behind must "
            "wake the other waiters"
        )
        batch_sizes = [len(batch) for batch in got]
        assert batch_sizes == [1] * count, (
            f"{count} blocked pop(limit=1) calls woken by one append of {count} tasks returned batches of "
            f"{batch_sizes} record(s); [pop.wakes_all]: every one of them returns with a task"
        )
        woken_with = sorted(ids([r for batch in got for r in batch]))
        assert woken_with == sorted(ids(records)), (
            f"{count} blocked pops woken by one append of {count} tasks got {len(set(woken_with))} distinct "
            f"of them ({brief(woken_with)}); [pop.wakes_all]: each waiter gets one of the appended tasks"
        )

    @clause("pop.cancel_mid_claim", timeout=60)
    async def test_pop_cancel_mid_claim(self, env: Env) -> None:
        q, b = env.queue(), env.backend
        producer = await env.peer()
        blocking = BLOCKING_POP in env.capabilities
        rng = random.Random(4711)
        appended: list[str] = []
        delivered: list[dict[str, object]] = []
        for round_no in range(120):
            batch = [task_record(round_no * 10 + i) for i in range(rng.randint(0, 3))]
            appended.extend(ids(batch))
            timeout = rng.choice([None, 2.0]) if blocking else None
            pop = asyncio.create_task(
                b.pop(q, limit=rng.randint(1, 4), timeout=timeout, worker_id="cancelled", lease=60)
            )
            adding = asyncio.create_task(producer.append(q, batch))
            # Cancel at a varying point: after a few event-loop turns, or after up to 3 ms (a round
            # trip), so that some cancels land while a claim is on its way or its reply is.
            if rng.random() < 0.5:
                for _ in range(rng.randint(0, 8)):
                    await asyncio.sleep(0)
            else:
                await asyncio.sleep(rng.uniform(0, 0.003))
            pop.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                delivered.extend(await within(10, pop))  # it finished first: a claim like any other
            await within(10, adding)
        await _check_cancelled_claims_handed_back(b, q, appended, delivered)

    @clause("pop.cancel_mid_claim", requires=BLOCKING_POP, timeout=60)
    async def test_pop_cancel_mid_claim_woken_waiters(self, env: Env) -> None:
        # Idle blocking pops on several objects, woken by an append from another one and cancelled at
        # varied points after it: the cancel lands while a woken pop's claim (or its reply) is on the
        # way, the case a backend that shields its claim from cancellation gets wrong.
        q, b = env.queue(), env.backend
        waiting_on = [b, *await env.peers(2)]
        producer = await env.peer()
        rng = random.Random(1213)
        appended: list[str] = []
        delivered: list[dict[str, object]] = []
        for round_no in range(40):
            pops = [
                asyncio.create_task(
                    w.pop(q, limit=rng.randint(1, 2), timeout=5, worker_id=f"cancelled-{i}", lease=60)
                )
                for i, w in enumerate(waiting_on)
            ]
            # Let them block. One that has not blocked yet claims at once instead, and is checked alike.
            await asyncio.sleep(0.03)
            batch = [task_record(round_no * 10 + i) for i in range(rng.randint(1, 3))]
            appended.extend(ids(batch))
            adding = asyncio.create_task(producer.append(q, batch))
            # Each pop is cancelled at its own point from the start of the append: after 0-8 event-loop
            # turns or 0-15 ms (an append's round trip, then the wake-up and the claim's round trip).
            points = [rng.randint(0, 8) if rng.random() < 0.5 else rng.uniform(0, 0.015) for _ in pops]
            await asyncio.gather(*(_cancel_after(p, at) for p, at in zip(pops, points, strict=True)))
            await within(10, adding)
            for pop in pops:
                with contextlib.suppress(asyncio.CancelledError):
                    delivered.extend(await within(10, pop))  # it returned first: a claim like any other
        await _check_cancelled_claims_handed_back(b, q, appended, delivered)

    @clause("pop.no_scheduled")
    async def test_pop_no_scheduled(self, env: Env) -> None:
        q, b = env.queue(), env.backend
        await b.schedule(q, task_record(1), future(3600))
        await b.append(q, [task_record(2)])
        got = await b.pop(q, limit=10, lease=30)
        args = [r["spec"]["args"] for r in got]
        assert args == [[2]], (
            "pop(limit=10) with task [1] scheduled an hour ahead and task [2] queued returned tasks with "
            f"args {brief(args)}; [pop.no_scheduled]: a scheduled task is never returned before "
            "pop_scheduled moves it, so [[2]]"
        )
        none_left = await b.pop(q, limit=10, lease=30)
        assert none_left == [], (
            f"a second pop(limit=10) returned {_brief_ids(none_left)}; [pop.no_scheduled]: the task "
            "scheduled an hour ahead is never returned early, so []"
        )

    @clause("ack.releases")
    async def test_ack_releases(self, env: Env) -> None:
        q, b = env.queue(), env.backend
        live, expired = task_record(1), task_record(2)
        await b.append(q, [live, expired])
        await b.pop(q, lease=30)
        await b.pop(q, lease=LEASE)
        await asyncio.sleep(LEASE + 0.15)
        acked_live = await b.acknowledge(q, live["id"])
        assert acked_live is True, (
            f"acknowledge() of a task claimed under a live lease returned {brief(acked_live)}; "
            "[ack.releases]: True if the task was claimed (lease live or expired)"
        )
        acked_expired = await b.acknowledge(q, expired["id"])  # an expired claim is still ours to release
        assert acked_expired is True, (
            f"acknowledge() of a claimed task whose lease expired returned {brief(acked_expired)}; "
            f"[ack.releases]: True if the task was claimed (lease live or expired)"
        )
        processing = (await b.get_stats(q))["processing"]
        assert processing == 0, (
            f"get_stats()['processing'] after both claims were acknowledged is {processing}; [ack.releases]: "
            "acknowledge releases the claim (claimed_by and lease_expires_at cleared) and the task is "
            "counted by no get_stats key, so 0"
        )
        after_ack = await b.pop(q, limit=10, lease=30)
        assert after_ack == [], (
            f"pop(limit=10) after both claims were acknowledged returned {_brief_ids(after_ack)}; "
            "[ack.releases]: an acknowledged task is not delivered again: acknowledge must drop the claim, "
            "not only answer True"
        )
        size = await b.size(q)
        assert size == 0, (
            f"size() after both claims were acknowledged is {size}; [ack.releases]: the released task is in "
            "none of the four places, so 0"
        )
        acked_twice = await b.acknowledge(q, live["id"])
        assert acked_twice is False, (
            f"a second acknowledge() of the same task returned {brief(acked_twice)}; [ack.releases]: once "
            "released it is no longer claimed, so False"
        )

    @clause("ack.unknown")
    async def test_ack_unknown(self, env: Env) -> None:
        q, b = env.queue(), env.backend
        queued, scheduled, done = task_record(1), task_record(2), task_record(3)
        await b.append(q, [done])
        await b.pop(q, lease=30)
        await b.store_result(q, finished(done, result=7))
        await b.append(q, [queued])
        await b.schedule(q, scheduled, future(3600))
        before_stats = await b.get_stats(q)
        before = await b.get_tasks(q, ids([queued, scheduled, done]))
        unclaimed = {"no-such-task": "an unknown id", queued["id"]: "a queued task",
                     scheduled["id"]: "a scheduled task", done["id"]: "a finished task"}
        for task_id in ("no-such-task", queued["id"], scheduled["id"], done["id"]):
            acked = await b.acknowledge(q, task_id)
            assert acked is False, (
                f"acknowledge() of {unclaimed[task_id]} ({task_id}) returned {brief(acked)}; [ack.unknown]: "
                "False for an unknown id or a task that is not claimed"
            )
        after_stats = await b.get_stats(q)
        assert after_stats == before_stats, (
            "acknowledge() of unclaimed tasks changed get_stats(): "
            f"{brief(_changes(before_stats, after_stats))} (before, after); [ack.unknown]: queued, scheduled "
            "and finished tasks are left as they are"
        )
        after = await b.get_tasks(q, ids([queued, scheduled, done]))
        changed = {unclaimed.get(t, t): _changes(before.get(t, {}), after.get(t, {}))
                   for t in {*before, *after} if before.get(t) != after.get(t)}
        assert after == before, (
            f"acknowledge() of unclaimed tasks changed their stored records: {brief(changed)} (before, "
            "after); [ack.unknown]: queued, scheduled and finished tasks are left as they are"
        )

    @clause("lease.heartbeat_extends")
    async def test_lease_heartbeat_extends(self, env: Env) -> None:
        q, b = env.queue(), env.backend
        record = task_record(1)
        await b.append(q, [record])
        await b.pop(q, worker_id="w1", lease=LEASE)
        await asyncio.sleep(LEASE / 2)
        held = await b.heartbeat(q, [record["id"]], worker_id="w1", lease=1.0)
        assert held == [record["id"]], (
            f"heartbeat(worker_id='w1', lease=1.0) halfway through w1's lease returned {brief(held)}; "
            "[lease.heartbeat_extends]: it returns the ids still claimed by worker_id, so the task's id"
        )
        await asyncio.sleep(LEASE)  # the first lease is over; the extended one is not
        during_extension = await b.pop(q, lease=30)
        assert during_extension == [], (
            f"pop() after the first {LEASE} s lease ran out, within heartbeat's 1.0 s extension, returned "
            f"{_brief_ids(during_extension)}; [lease.heartbeat_extends]: not redelivered until the new "
            "expiry: store the new expiry where pop looks for expired leases"
        )
        stored = (await b.get_tasks(q, [record["id"]]))[record["id"]]
        assert from_iso(stored["lease_expires_at"]) > utcnow(), (
            f"get_tasks shows lease_expires_at={stored['lease_expires_at']}, already past, within "
            "heartbeat's 1.0 s extension; [lease.heartbeat_extends]: the stored record carries the new "
            "expiry"
        )
        await asyncio.sleep(1.0)
        after_extension = ids(await b.pop(q, lease=30))
        assert after_extension == [record["id"]], (
            f"pop() after the heartbeat-extended lease expired returned {brief(after_extension)}; "
            f"[lease.heartbeat_extends]: the task is redelivered once the new expiry passes"
        )

    @clause("lease.heartbeat_extends")
    async def test_lease_heartbeat_extends_just_expired_unreclaimed(self, env: Env) -> None:
        q, b = env.queue(), env.backend
        first, second = task_record(1), task_record(2)
        await b.append(q, [first, second])
        await b.pop(q, limit=2, worker_id="w1", lease=LEASE)
        await asyncio.sleep(LEASE + 0.15)
        held = await b.heartbeat(q, [second["id"], first["id"]], worker_id="w1", lease=30)
        assert held == [second["id"], first["id"]], (
            "heartbeat([task 1, task 0], worker_id='w1') just after w1's unreclaimed leases expired "
            f"returned the tasks {_appended_at(held, [first, second])}; [lease.heartbeat_extends]: the ids "
            "still claimed by worker_id, in input order, even if the lease had just expired, so [1, 0]"
        )
        after_heartbeat = await b.pop(q, lease=30)
        assert after_heartbeat == [], (
            f"pop() after heartbeat renewed the just-expired leases for 30 s returned "
            f"{_brief_ids(after_heartbeat)}; [lease.heartbeat_extends]: not redelivered until the new expiry"
        )

    @clause("lease.heartbeat_lost")
    async def test_lease_heartbeat_lost(self, env: Env) -> None:
        q, b = env.queue(), env.backend
        mine, theirs, done, queued = (task_record(i) for i in range(4))
        await b.append(q, [mine, theirs, done])
        await b.pop(q, worker_id="me", lease=30)
        (claimed,) = await b.pop(q, worker_id="them", lease=30)
        await b.pop(q, worker_id="me", lease=30)
        await b.store_result(q, finished(done))
        await b.append(q, [queued])
        asked = ["unknown-id", theirs["id"], done["id"], queued["id"], mine["id"]]
        held = await b.heartbeat(q, asked, worker_id="me", lease=60)
        names = {"unknown-id": "unknown", theirs["id"]: "theirs", done["id"]: "finished",
                 queued["id"]: "queued", mine["id"]: "mine"}
        assert held == [mine["id"]], (
            f"heartbeat(worker_id='me') of [unknown, theirs, finished, queued, mine] returned "
            f"{brief([names.get(t, t) for t in held])}; [lease.heartbeat_lost]: unknown, finished and other "
            f"workers' ids are left out, so ['mine']"
        )
        stored = await b.get_tasks(q, [theirs["id"], queued["id"]])
        assert from_iso(stored[theirs["id"]]["lease_expires_at"]) == from_iso(claimed["lease_expires_at"]), (
            f"heartbeat(worker_id='me') of a task claimed by 'them' moved its lease_expires_at from "
            f"{claimed['lease_expires_at']} to {stored[theirs['id']]['lease_expires_at']}; "
            f"[lease.heartbeat_lost]: ids claimed by another worker are left untouched"
        )
        assert stored[theirs["id"]]["claimed_by"] == "them", (
            "heartbeat(worker_id='me') of a task claimed by 'them' left "
            f"claimed_by={brief(stored[theirs['id']]['claimed_by'])}; [lease.heartbeat_lost]: ids claimed by "
            "another worker are left untouched, so 'them'"
        )
        assert stored[queued["id"]]["status"] == "pending", (
            "heartbeat(worker_id='me') of a queued task left "
            f"status={brief(stored[queued['id']]['status'])}; [lease.heartbeat_lost]: ids not claimed by the "
            "caller are left untouched, so 'pending'"
        )
        size = await b.size(q)
        assert size == 1, (
            f"size() after heartbeat(worker_id='me') of a queued task is {size}; [lease.heartbeat_lost]: it "
            "is left untouched, still queued, so 1"
        )


async def _size_is(backend: Backend, queue: str, expected: int) -> bool:
    return await backend.size(queue) == expected


def _appended_at(task_ids: list[str], records: list[dict[str, Any]]) -> list[int | str]:
    """Each id as the index of its record in ``records`` (append order), so that a message reads
    ``[2, 1, 0]`` rather than three uuids; an id that was never appended is shown as it is."""
    position = {str(r["id"]): i for i, r in enumerate(records)}
    return [position.get(str(t), t) for t in task_ids]


def _brief_ids(returned: Any) -> str:
    """The ids of what ``pop`` returned, cut short; what it returned as is if that is not a list of records
    (a failure message must not fail on a malformed answer)."""
    try:
        return brief(ids(returned))
    except (KeyError, TypeError):
        return brief(returned)


def _outcome(task: asyncio.Task[Any]) -> str:
    """What a finished ``pop`` task did: ``returned [...]``, ``raised ...`` or ``was cancelled``."""
    if task.cancelled():
        return "was cancelled"
    error = task.exception()
    return f"raised {brief(error)}" if error is not None else f"returned {_brief_ids(task.result())}"


def _changes(before: dict[str, Any], after: dict[str, Any]) -> dict[str, tuple[Any, Any]]:
    """``{key: (before, after)}`` for every key whose value differs."""
    keys = sorted({*before, *after})
    return {k: (before.get(k), after.get(k)) for k in keys if before.get(k) != after.get(k)}


async def _cancel_after(task: asyncio.Task[object], point: int | float) -> None:
    """Cancel ``task`` after ``point`` event-loop turns (an int) or seconds (a float)."""
    if isinstance(point, int):
        for _ in range(point):
            await asyncio.sleep(0)
    else:
        await asyncio.sleep(point)
    task.cancel()


async def _check_cancelled_claims_handed_back(
    backend: Backend, queue: str, appended: list[str], delivered: list[dict[str, object]]
) -> None:
    """Every appended task was either returned to a pop (``delivered``) or is claimable again, exactly
    once, with ``deliveries`` counting only claims a caller received."""
    # A backend may finish handing cancelled claims back just after the cancel.
    expected = len(appended) - len(delivered)
    await eventually(lambda: _size_is(backend, queue, expected), timeout=5)
    claimable: list[dict[str, object]] = []
    while batch := await within(10, backend.pop(queue, limit=100, worker_id="checker", lease=60)):
        claimable.extend(batch)
    seen = ids(delivered) + ids(claimable)
    missing = sorted(set(appended) - set(seen))
    assert not missing, (
        f"{len(missing)} of {len(appended)} task(s) stayed claimed by a cancelled pop, not claimable until "
        "their lease expires; [pop.cancel_mid_claim]: cancelling pop claims nothing: do not shield the "
        "claim; let cancellation roll back, or hand back what it took\n"
        f"e.g. {brief(missing[:3])}"
    )
    twice = sorted({t for t in seen if seen.count(t) > 1})
    assert not twice, (
        f"{len(twice)} task(s) were returned both to a pop and to a later claim; [pop.cancel_mid_claim]: "
        "every task stays claimable exactly once: hand back only what the caller never got\n"
        f"e.g. {brief(twice[:3])}"
    )
    recounted = [r["id"] for r in [*delivered, *claimable] if r["deliveries"] != 1]
    assert not recounted, (
        f"{len(recounted)} task(s) came back with deliveries != 1 after a cancelled pop; "
        "[pop.cancel_mid_claim]: deliveries does not count the cancelled claim: undo the increment when "
        "handing a claim back\n"
        f"e.g. {brief(recounted[:3])}"
    )
