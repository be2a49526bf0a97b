"""store_result.*, get_results.* and ttl.*: writing outcomes back and waiting for them."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from sheppy_conformance._clause import clause
from sheppy_conformance._env import Env
from sheppy_conformance.records import (
    LEASE,
    brief,
    changes,
    eventually,
    finished,
    future,
    ids,
    named,
    raises,
    requeued,
    task_record,
    within,
)
from sheppy_core.backend import TTL, from_iso, utcnow

__all__ = ["ResultClauses"]


def _stored_true(call: str, stored: bool) -> str:
    """The message for a store_result of a record whose id exists that did not return True."""
    return (f"{call} returned {stored!r}; [store_result.unknown]: True when a record with that id exists in "
            f"the queue")


QueueState = tuple[dict[str, Any], int, list[str]]
"""What store_result may change in a queue: (get_stats, size, scheduled ids)."""


def _state_change(once: QueueState, twice: QueueState) -> str:
    """What a second round of the same store_result calls changed in a :data:`QueueState`."""
    (stats_once, size_once, scheduled_once), (stats_twice, size_twice, scheduled_twice) = once, twice
    return (f"get_stats changed {brief(changes(stats_once, stats_twice))}, size {size_once} -> "
            f"{size_twice}, {len(scheduled_once)} -> {len(scheduled_twice)} scheduled")


class ResultClauses:
    @clause("store_result.finished")
    async def test_store_result_finished(self, env: Env) -> None:
        q, b = env.queue(), env.backend
        record = task_record(1)
        await b.append(q, [record])
        (claimed,) = await b.pop(q, lease=LEASE)
        stored_ok = await b.store_result(q, finished(claimed, result={"answer": 42}))
        assert stored_ok is True, _stored_true("store_result(finished claimed record)", stored_ok)
        stored = (await b.get_tasks(q, [record["id"]]))[record["id"]]
        outcome = (stored["status"], stored["result"])
        assert outcome == ("completed", {"answer": 42}), (
            f"get_tasks after store_result shows (status, result) = {brief(outcome)}; "
            "[store_result.finished]: the finished record replaces the stored one: "
            "('completed', {'answer': 42})"
        )
        assert stored["claimed_by"] is None and stored["lease_expires_at"] is None, (
            f"get_tasks after store_result shows claimed_by={brief(stored['claimed_by'])}, "
            f"lease_expires_at={brief(stored['lease_expires_at'])}; [store_result.finished]: the record is "
            f"stored with claimed_by/lease_expires_at cleared (None)"
        )
        stats = await b.get_stats(q)
        counts = (stats["completed"], stats["processing"], stats["pending"])
        assert counts == (1, 0, 0), (
            f"get_stats() shows (completed, processing, pending) = {counts} after store_result of the one "
            f"claimed task; [store_result.finished]: the task leaves the queue and claims: (1, 0, 0)"
        )
        await asyncio.sleep(LEASE + 0.15)  # its old lease is over: it must not come back
        popped = await b.pop(q, lease=30)
        assert popped == [], (
            f"pop() claimed {brief(named(ids(popped), {record['id']: 'finished'}))} after the finished "
            "task's old lease ran out; [store_result.finished]: it leaves the queue, schedule and claims "
            "for good: []"
        )
        results = ids(list((await b.get_results(q, [record["id"]])).values()))
        assert results == [record["id"]], (
            f"get_results(finished id) returned {brief(named(results, {record['id']: 'finished'}))}; "
            f"[store_result.finished]: the finished record is its result: ['finished']"
        )

    @clause("store_result.finished")
    async def test_store_result_finished_wakes_waiters(self, env: Env) -> None:
        q, b = env.queue(), env.backend
        record = task_record(1)
        await b.append(q, [record])
        (claimed,) = await b.pop(q, lease=30)
        waiter = asyncio.create_task((await env.peer()).get_results(q, [record["id"]], timeout=5))
        await asyncio.sleep(0.15)
        started = time.monotonic()
        await b.store_result(q, finished(claimed, status="failed"))
        got = await within(6, waiter)
        # The same check the lookup below makes, with a message instead of a bare KeyError.
        assert record["id"] in got, (
            f"get_results(timeout=5) returned {brief(named(got, {record['id']: 'finished'}))} once "
            "store_result ran; [store_result.finished]: waiters in get_results for it return its record: "
            "['finished']"
        )
        status = got[record["id"]]["status"]
        assert status == "failed", (
            f"get_results(timeout=5) returned the record with status {brief(status)}; "
            "[store_result.finished]: the finished record replaces the stored one, and waiters get it: "
            "'failed'"
        )
        waited = time.monotonic() - started
        assert waited < 2, (
            f"get_results(timeout=5) in another backend object returned {waited:.2f} s after store_result; "
            f"[store_result.finished]: waiters in get_results for it return (here within 2 s)"
        )

    @clause("store_result.requeue")
    async def test_store_result_requeue(self, env: Env) -> None:
        q, b = env.queue(), env.backend
        again, retry, later, other = (task_record(i) for i in range(4))
        await b.append(q, [again, retry, later])
        claimed = await b.pop(q, limit=3, lease=30)
        await b.append(q, [other])
        retry_at, later_at = future(7200), future(3600)
        stored_ok = await b.store_result(q, requeued(claimed[0], status="processing"))
        assert stored_ok is True, _stored_true("store_result(re-queued, status 'processing')", stored_ok)
        stored_ok = await b.store_result(q, requeued(claimed[1], status="retrying", at=retry_at))
        assert stored_ok is True, _stored_true("store_result(re-queued, status 'retrying')", stored_ok)
        stored_ok = await b.store_result(q, requeued(claimed[2], status="scheduled", at=later_at))
        assert stored_ok is True, _stored_true("store_result(re-queued, status 'scheduled')", stored_ok)
        names = {r["id"]: f"#{i}" for i, r in enumerate((again, retry, later, other))}
        stats = await b.get_stats(q)
        counts = (stats["pending"], stats["processing"], stats["scheduled"])
        assert counts == (2, 0, 2), (
            f"get_stats() shows (pending, processing, scheduled) = {counts} after re-queueing 3 claimed "
            "tasks beside 1 queued; [store_result.requeue]: 'retrying' and 'scheduled' are scheduled, "
            f"anything else is queued: (2, 0, 2)"
        )
        pending = await b.get_pending(q, 10)
        assert ids(pending) == [other["id"], again["id"]], (  # re-queued at the tail
            f"get_pending() returned {brief(named(ids(pending), names))}; [store_result.requeue]: a "
            "re-queued task is queued at the tail: ['#3', '#0'] (#0..#2 claimed, #3 appended, then #0 "
            "re-queued as 'processing')"
        )
        assert pending[1]["status"] == "pending", (
            "#0, re-queued with status 'processing', is stored with status "
            f"{brief(pending[1]['status'])}; [store_result.requeue]: anything but 'retrying'/'scheduled' is "
            "stored with status 'pending'"
        )
        assert pending[1]["claimed_by"] is None, (
            f"the re-queued #0 is stored with claimed_by={brief(pending[1]['claimed_by'])}; "
            f"[store_result.requeue]: store_result releases its claim (None)"
        )
        scheduled = ids(await b.get_scheduled(q))
        assert scheduled == [later["id"], retry["id"]], (
            f"get_scheduled() returned {brief(named(scheduled, names))}; [store_result.requeue]: 'retrying' "
            "is scheduled for next_retry_at (#1, in 2 h), 'scheduled' for scheduled_at (#2, in 1 h), in due "
            "order: ['#2', '#1']"
        )
        next_at = await b.next_scheduled_at(q)
        assert abs((next_at - later_at).total_seconds()) < 0.001, (  # type: ignore[operator]
            f"next_scheduled_at() is {next_at.isoformat() if next_at else None}; [store_result.requeue]: the "
            f"'scheduled' record is scheduled for its scheduled_at, {later_at.isoformat()}, the earliest"
        )
        with raises(TimeoutError, "get_results(re-queued id, timeout=0.2) must raise TimeoutError "
                    "[store_result.requeue]: a re-queue is not a result, waiters are not woken"):
            await b.get_results(q, [again["id"]], timeout=0.2)

    @clause("store_result.idempotent")
    async def test_store_result_idempotent(self, env: Env) -> None:
        q, b = env.queue(), env.backend
        done, again, retry = (task_record(i) for i in range(3))
        await b.append(q, [done, again, retry])
        claimed = await b.pop(q, limit=3, lease=30)
        results = [finished(claimed[0]), requeued(claimed[1]), requeued(claimed[2], status="retrying")]
        for result in results:
            stored_ok = await b.store_result(q, result)
            assert stored_ok is True, _stored_true(f"store_result({result['status']} record)", stored_ok)
        once = (await b.get_stats(q), await b.size(q), ids(await b.get_scheduled(q)))
        for result in results:
            stored_ok = await b.store_result(q, result)
            assert stored_ok is True, (
                f"store_result of the same {result['status']} record again returned {stored_ok!r}; "
                f"[store_result.idempotent]: storing it twice is as storing it once: True"
            )
        twice = (await b.get_stats(q), await b.size(q), ids(await b.get_scheduled(q)))
        assert twice == once, (
            f"storing the same 3 records a second time: {_state_change(once, twice)}; "
            "[store_result.idempotent]: it leaves the same state as once (no second queue entry, no double "
            "count in get_stats)"
        )
        assert once[0]["completed"] == 1 and once[1] == 1, (
            f"after store_result of one finished and two re-queued records get_stats counts "
            f"completed={once[0]['completed']} and size() is {once[1]}; [store_result.finished] and "
            f"[store_result.requeue]: one finished, one queued again: 1 and 1"
        )
        popped = ids(await b.pop(q, limit=10, lease=30))
        names = {r["id"]: f"#{i}" for i, r in enumerate((done, again, retry))}
        assert popped == [again["id"]], (
            f"pop(limit=10) claimed {brief(named(popped, names))}; [store_result.idempotent]: only the "
            "re-queued #1 is queued, once (#0 finished, #2 retrying): ['#1']"
        )

    @clause("store_result.unknown")
    async def test_store_result_unknown(self, env: Env) -> None:
        q, b = env.queue(), env.backend
        never = task_record(1)
        stored_ok = await b.store_result(q, finished(never))
        assert stored_ok is False, (
            f"store_result(finished record never appended) returned {stored_ok!r}; [store_result.unknown]: "
            f"False when no record with that id exists in the queue"
        )
        deleted, cleared = task_record(2), task_record(3)
        names = {never["id"]: "never appended", deleted["id"]: "deleted", cleared["id"]: "cleared"}
        listed = await b.get_all_tasks(q)
        assert listed == [], (
            f"get_all_tasks() lists {brief(named(ids(listed), names))} after store_result of an unknown id; "
            f"[store_result.unknown]: it stores nothing: []"
        )
        await b.append(q, [deleted])
        (claimed,) = await b.pop(q, lease=30)
        await b.store_result(q, finished(claimed))
        await b.delete_task(q, deleted["id"])
        stored_ok = await b.store_result(q, finished(claimed))
        assert stored_ok is False, (
            f"store_result(finished record of a deleted task) returned {stored_ok!r}; "
            "[store_result.unknown]: False when no record with that id exists in the queue (deleted "
            "meanwhile)"
        )
        await b.append(q, [cleared])
        (claimed,) = await b.pop(q, lease=30)
        await b.clear(q)
        stored_ok = await b.store_result(q, requeued(claimed))
        assert stored_ok is False, (
            f"store_result(re-queued record of a cleared task) returned {stored_ok!r}; "
            "[store_result.unknown]: False when no record with that id exists in the queue (cleared "
            "meanwhile)"
        )
        listed = await b.get_all_tasks(q)
        assert listed == [], (
            f"get_all_tasks() lists {brief(named(ids(listed), names))} after store_result of a deleted and "
            f"a cleared id; [store_result.unknown]: it stores nothing: []"
        )
        size = await b.size(q)
        assert size == 0, (
            f"size() is {size} after store_result re-queued a cleared task; [store_result.unknown]: it "
            f"stores and queues nothing: 0"
        )

    @clause("store_result.atomic", timeout=20)
    async def test_store_result_atomic(self, env: Env) -> None:
        # Finishing, re-queueing and claiming race each other; afterwards every task must be in
        # exactly one place (queued, claimed, scheduled or finished), never in two or none.
        q, b = env.queue(), env.backend
        records = [task_record(i) for i in range(30)]
        await b.append(q, records)
        claimed = await b.pop(q, limit=30, lease=30)
        peers = await env.peers(3)

        async def write(i: int, record: dict[str, object]) -> None:
            peer = peers[i % len(peers)]
            result = finished(record) if i % 3 == 0 else requeued(record) if i % 3 == 1 else requeued(
                record, status="retrying")
            await peer.store_result(q, result)

        async def claim() -> None:
            for _ in range(10):
                await peers[0].pop(q, limit=2, lease=30)
                await asyncio.sleep(0)

        await within(15, asyncio.gather(*(write(i, r) for i, r in enumerate(claimed)), claim()))
        stats = await b.get_stats(q)
        placed = stats["pending"] + stats["processing"] + stats["scheduled"] + stats["completed"]
        places = {key: stats[key] for key in ("pending", "processing", "scheduled", "completed")}
        assert placed == 30, (
            f"get_stats() places {placed} of 30 tasks ({places}) after store_result raced with pop; "
            f"[store_result.atomic]: each store_result is one atomic step, every task is in exactly one place"
        )
        settled = (stats["completed"], stats["scheduled"])
        assert settled == (10, 10), (
            f"get_stats() shows (completed, scheduled) = {settled} after 10 finished and 10 retrying records "
            "were stored while pop ran; [store_result.atomic]: each store_result is one atomic step: "
            "(10, 10)"
        )
        queued = ids(await b.get_pending(q, 100))
        assert len(queued) == len(set(queued)) == stats["pending"], (
            f"get_pending() lists {len(queued)} entries for {len(set(queued))} tasks while get_stats counts "
            f"pending={stats['pending']}; [store_result.atomic]: each re-queued task is queued exactly once"
        )

    @clause("get_results.waits", timeout=20)  # two 5 s bounds: a backend that never wakes fails them
    async def test_get_results_waits(self, env: Env) -> None:
        q, b = env.queue(), env.backend
        first, second = task_record(1), task_record(2)
        await b.append(q, [first, second])
        claimed = await b.pop(q, limit=2, lease=30)
        names = {first["id"]: "first", second["id"]: "second"}
        none_asked = await b.get_results(q, [])
        assert none_asked == {}, (
            f"get_results(q, []) returned {brief(none_asked)}; [get_results.waits]: an empty task_ids "
            f"returns {{}}"
        )
        unfinished = await b.get_results(q, [*ids(claimed), "unknown"])
        assert unfinished == {}, (
            f"get_results(two claimed ids and 'unknown') returned {brief(named(unfinished, names))}; "
            f"[get_results.waits]: timeout None returns what is finished now, none is: {{}}"
        )
        no_wait = await b.get_results(q, ids(claimed), timeout=-1)
        assert no_wait == {}, (
            f"get_results(two claimed ids, timeout=-1) returned {brief(named(no_wait, names))}; "
            f"[get_results.waits]: timeout < 0 returns what is finished now, none is: {{}}"
        )
        waiter = asyncio.create_task(b.get_results(q, ids(claimed), timeout=0))  # 0: no time limit
        other = await env.peer()
        await other.store_result(q, finished(claimed[0]))
        await asyncio.sleep(0.2)
        assert not waiter.done(), (
            "get_results(two ids, timeout=0) returned 0.2 s after only one of them finished; "
            "[get_results.waits]: timeout=0 waits until every id is finished"
        )
        started = time.monotonic()
        await other.store_result(q, finished(claimed[1]))
        got = await within(5, waiter)
        assert sorted(got) == sorted(ids(claimed)), (
            f"get_results(two ids, timeout=0) returned {brief(sorted(named(got, names)))}; "
            "[get_results.waits]: it returns {id: record} for every id once all are finished: "
            "['first', 'second']"
        )
        waited = time.monotonic() - started
        assert waited < 2, (
            f"get_results(timeout=0) returned {waited:.2f} s after the last store_result in another backend "
            f"object; [get_results.waits]: waiting ends as soon as the last one finishes (here within 2 s)"
        )
        finished_now = await b.get_results(q, [*ids(claimed), "unknown"])
        assert sorted(finished_now) == sorted(ids(claimed)), (
            "get_results(two finished ids and 'unknown') returned "
            f"{brief(sorted(named(finished_now, names)))}; [get_results.waits]: the finished ones are "
            "returned, unknown ids omitted: ['first', 'second']"
        )

    @clause("get_results.timeout")
    async def test_get_results_timeout(self, env: Env) -> None:
        q, b = env.queue(), env.backend
        done, running = task_record(1), task_record(2)
        await b.append(q, [done, running])
        claimed = await b.pop(q, limit=2, lease=30)
        await b.store_result(q, finished(claimed[0]))
        started = time.monotonic()
        with raises(TimeoutError, "get_results(one finished and one claimed id, timeout=0.3) must raise "
                    "TimeoutError when the time is up [get_results.timeout]"):
            await within(5, b.get_results(q, ids(claimed), timeout=0.3))
        waited = time.monotonic() - started
        assert 0.25 <= waited < 2.5, (
            f"get_results(timeout=0.3) raised TimeoutError after {waited:.2f} s; [get_results.timeout]: it "
            f"waits at most that many seconds, then raises when the time is up (here 0.25 to 2.5 s)"
        )

    @clause("ttl.expires", requires=TTL)
    async def test_ttl_expires(self, env: Env) -> None:
        q, b = env.queue(), env.backend
        keep_config = {**task_record().get("config", {}), "ttl": 1}
        short, waiting = task_record(1, config=keep_config), task_record(2, config=keep_config)
        await b.append(q, [short, waiting])
        (claimed,) = await b.pop(q, lease=30)
        await b.store_result(q, finished(claimed))
        found = await b.get_tasks(q, [short["id"]])
        assert short["id"] in found, (
            "get_tasks right after store_result does not find the finished record with ttl=1; "
            "[ttl.readable_until]: until its retention time it is readable by get_tasks"
        )

        async def expired() -> bool:
            return short["id"] not in await b.get_tasks(q, [short["id"]])

        assert await eventually(expired, timeout=4), (
            "get_tasks still finds a finished record with ttl=1 about 4 s after store_result; [ttl.expires]: "
            "with TTL a finished record expires after its retention time (1 s)"
        )
        completed = (await b.get_stats(q))["completed"]
        assert completed == 0, (
            f"get_stats() counts completed={completed} after the finished ttl=1 record expired; "
            f"[ttl.readable_until]: after its retention time get_stats does not count it: 0"
        )
        # Unfinished records never expire, whatever their ttl.
        kept = await b.get_tasks(q, [waiting["id"]])
        assert waiting["id"] in kept, (
            "get_tasks does not find a queued record with ttl=1 after 1 s; [ttl.expires]: unfinished records "
            "never expire"
        )
        size = await b.size(q)
        assert size == 1, (
            f"size() is {size} with one queued record with ttl=1 left; [ttl.expires]: unfinished records "
            f"never expire: 1"
        )

    @clause("ttl.expires", requires=TTL)
    async def test_ttl_expires_not_before_retention(self, env: Env) -> None:
        q, b = env.queue(), env.backend
        config = {**task_record().get("config", {}), "ttl": 3}
        record = task_record(1, config=config)
        await b.append(q, [record])
        (claimed,) = await b.pop(q, lease=30)
        await b.store_result(q, finished(claimed))
        await asyncio.sleep(1.0)
        got = await b.get_tasks(q, [record["id"]])
        assert record["id"] in got, (
            "get_tasks does not find a finished record with ttl=3 1 s after store_result; [ttl.expires]: it "
            "expires after its retention time (3 s), not before"
        )
        finished_at = from_iso(got[record["id"]]["finished_at"])
        now = utcnow()
        assert finished_at <= now, (
            f"get_tasks shows finished_at={finished_at.isoformat()}, later than now ({now.isoformat()}); "
            f"[store_result.finished]: the finished record replaces the stored one as written, finished_at "
            f"included (a backend's expiry time is its own bookkeeping)"
        )

    @clause("ttl.readable_until", requires=TTL, timeout=20)
    async def test_ttl_readable_until(self, env: Env) -> None:
        """A finished record with ttl=2 is read, listed and counted for (nearly) 2 s while other
        clients write and a neighbour with ttl=1 expires (whatever purges those run), then gone."""
        q, b = env.queue(), env.backend
        writer = await env.peer()
        config = task_record().get("config", {})
        record = task_record(1, config={**config, "ttl": 2})
        neighbour = task_record(2, config={**config, "ttl": 1})
        await b.append(q, [neighbour, record])
        claimed = {r["id"]: r for r in await b.pop(q, limit=2, lease=30)}
        started = time.monotonic()  # the record's TTL runs from its store_result, which is later
        await b.store_result(q, finished(claimed[neighbour["id"]]))
        await b.store_result(q, finished(claimed[record["id"]]))
        extra = 0

        async def write_around() -> None:
            # Writes of every kind a backend may hang a purge on.
            nonlocal extra
            extra += 1
            spare = task_record(100 + extra)
            await writer.append(q, [spare])
            await writer.pop_scheduled(q)
            await writer.cancel(q, spare["id"])

        while time.monotonic() - started < 1.4:
            await write_around()
            found = record["id"] in await b.get_tasks(q, [record["id"]])
            listed = record["id"] in ids(await b.get_all_tasks(q))
            counted = (await b.get_stats(q))["completed"] >= 1
            elapsed = time.monotonic() - started
            if elapsed < 1.9:  # well within the 2 s it must be kept (however slow this loop ran)
                assert found, (
                    f"get_tasks does not find a finished record with ttl=2 {elapsed:.2f} s after "
                    "store_result while others write; [ttl.readable_until]: until then it is readable by "
                    f"get_tasks, whatever purges run in between"
                )
                assert listed, (
                    f"get_all_tasks does not list a finished record with ttl=2 {elapsed:.2f} s after "
                    "store_result while others write; [ttl.readable_until]: until then it is listed by "
                    f"get_all_tasks, whatever purges run in between"
                )
                assert counted, (
                    f"get_stats does not count a finished record with ttl=2 {elapsed:.2f} s after "
                    "store_result while others write; [ttl.readable_until]: until then it is counted by "
                    f"get_stats, whatever purges run in between"
                )
            await asyncio.sleep(0.05)

        async def gone() -> bool:
            await write_around()
            return (
                record["id"] not in await b.get_tasks(q, [record["id"]])
                and record["id"] not in ids(await b.get_all_tasks(q))
                and (await b.get_stats(q))["completed"] == 0
            )

        assert await eventually(gone, timeout=6), (
            f"a finished record with ttl=2 is still read, listed or counted {time.monotonic() - started:.1f} "
            f"s after store_result; [ttl.readable_until]: after its retention time none of get_tasks, "
            f"get_all_tasks and get_stats shows it"
        )
