"""schedule.not_before/due_moved/once_across_workers, cancel.* and delete.*."""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta

from sheppy_conformance._clause import clause
from sheppy_conformance._env import Env
from sheppy_conformance.clauses.inspect import _changed
from sheppy_conformance.records import (
    FAR_FUTURE,
    LEASE,
    brief,
    finished,
    future,
    ids,
    named,
    raises,
    requeued,
    task_record,
    within,
)
from sheppy_core.backend import BackendInputError, TaskStateError, from_iso, utcnow

__all__ = ["LifecycleClauses"]


class LifecycleClauses:
    @clause("schedule.not_before")
    async def test_schedule_not_before(self, env: Env) -> None:
        q, b = env.queue(), env.backend
        record, at = task_record(1), FAR_FUTURE
        await b.schedule(q, record, at)
        moved_now = await b.pop_scheduled(q)  # the real clock is long before 2100
        assert moved_now == [], (
            f"pop_scheduled() moved a task scheduled for 2100 today: {brief(ids(moved_now))}; "
            f"[schedule.not_before]: it is not returned by pop_scheduled before at"
        )
        moved_early = await b.pop_scheduled(q, now=at - timedelta(milliseconds=10))
        assert moved_early == [], (
            f"pop_scheduled(now=at - 10 ms) moved {brief(ids(moved_early))}; [schedule.not_before]: not "
            f"before at; a clock-skew allowance moves tasks early: compare at <= now exactly"
        )
        popped = await b.pop(q, limit=10, lease=30)
        assert popped == [], (
            f"pop(limit=10) claimed a task scheduled for 2100: {brief(ids(popped))}; [schedule.not_before]: "
            f"it is not returned by pop before at"
        )
        due = ids(await b.pop_scheduled(q, now=at))  # due *by* now includes now
        assert due == [record["id"]], (
            f"pop_scheduled(now=at) moved {brief(due)}; [schedule.not_before]: due by now includes now, so "
            f"the task scheduled for that moment is moved: [{record['id']!r}]"
        )

    @clause("schedule.not_before")
    async def test_schedule_not_before_soon(self, env: Env) -> None:
        q, b = env.queue(), env.backend
        record = task_record(1)
        at = utcnow() + timedelta(seconds=0.6)
        await b.schedule(q, record, at)
        moved_early = await b.pop_scheduled(q)
        assert moved_early == [], (
            f"pop_scheduled() moved a task due in 0.6 s at once: {brief(ids(moved_early))}; "
            f"[schedule.not_before]: it is not returned by pop_scheduled before at"
        )
        popped_early = await b.pop(q, lease=30)
        assert popped_early == [], (
            f"pop() claimed a task due in 0.6 s at once: {brief(ids(popped_early))}; [schedule.not_before]: "
            f"it is not returned by pop before at"
        )
        await asyncio.sleep(max(0.0, (at - utcnow()).total_seconds()) + 0.05)
        moved = await b.pop_scheduled(q)
        popped = await b.pop(q, lease=30)
        assert ids(moved + popped)[:1] == [record["id"]], (
            f"once at had passed, pop_scheduled() moved {brief(ids(moved))} and pop() claimed "
            f"{brief(ids(popped))}; [schedule.not_before]: after at the task is due, so it is moved and "
            f"claimable"
        )

    @clause("schedule.not_before")
    async def test_schedule_not_before_retry(self, env: Env) -> None:
        q, b = env.queue(), env.backend
        record = task_record(1)
        await b.append(q, [record])
        (claimed,) = await b.pop(q, lease=30)
        await b.store_result(q, requeued(claimed, status="retrying", at=FAR_FUTURE))
        moved_early = await b.pop_scheduled(q, now=FAR_FUTURE - timedelta(seconds=1))
        assert moved_early == [], (
            f"pop_scheduled(now=next_retry_at - 1 s) moved the retrying task: {brief(ids(moved_early))}; "
            f"[schedule.not_before]: a retry is not moved before its next_retry_at"
        )
        popped = await b.pop(q, lease=30)
        assert popped == [], (
            f"pop() claimed a task retrying in 2100: {brief(ids(popped))}; [schedule.not_before]: a retry "
            f"stays out of the queue until its next_retry_at"
        )
        due = ids(await b.pop_scheduled(q, now=FAR_FUTURE))
        assert due == [record["id"]], (
            f"pop_scheduled(now=next_retry_at) moved {brief(due)}; [schedule.not_before]: due by now "
            f"includes now, so the retry is moved: [{record['id']!r}]"
        )

    @clause("schedule.due_moved")
    async def test_schedule_due_moved(self, env: Env) -> None:
        q, b = env.queue(), env.backend
        base = FAR_FUTURE
        third, first, later, second = (task_record(i) for i in range(4))
        for record, hours in ((third, 3), (first, 1), (later, 9), (second, 2)):
            await b.schedule(q, record, base + timedelta(hours=hours))
        queued = task_record(5)
        names = dict(zip(ids([first, second, third, later, queued]),
                         ("first", "second", "third", "later", "queued"), strict=True))
        await b.append(q, [queued])
        moved = await b.pop_scheduled(q, now=base + timedelta(hours=4))
        assert ids(moved) == [first["id"], second["id"], third["id"]], (
            f"pop_scheduled(now=+4 h) moved {brief(named(ids(moved), names))}; [schedule.due_moved]: every "
            f"task due by now, in due order: ['first', 'second', 'third'] ('later' is due at +9 h)"
        )
        statuses = {r["status"] for r in moved}
        assert statuses == {"pending"}, (
            f"pop_scheduled returned the moved records with statuses {brief(sorted(statuses))}; "
            f"[schedule.due_moved]: each is stored with status='pending' and returned as stored"
        )
        size = await b.size(q)
        assert size == 4, (
            f"size after pop_scheduled moved 3 tasks into a queue holding 1 is {size}; [schedule.due_moved]: "
            f"the moved tasks are queued, so 4"
        )
        still_scheduled = ids(await b.get_scheduled(q))
        assert still_scheduled == [later["id"]], (
            f"get_scheduled after the move returned {brief(named(still_scheduled, names))}; "
            f"[schedule.due_moved]: tasks not yet due stay where they are: ['later']"
        )
        popped = ids(await b.pop(q, limit=10, lease=30))
        assert popped == [queued["id"], *ids(moved)], (
            f"pop(limit=10) claimed {brief(named(popped, names))}; [schedule.due_moved]: moved tasks are "
            f"queued at the tail, in due order: ['queued', 'first', 'second', 'third']"
        )
        moved_again = await b.pop_scheduled(q, now=base + timedelta(hours=4))
        assert moved_again == [], (
            f"a second pop_scheduled(now=+4 h) moved {brief(named(ids(moved_again), names))} again; "
            f"[schedule.due_moved]: a moved task has left the schedule"
        )
        with raises(BackendInputError, "pop_scheduled(now=<naive datetime>) must raise BackendInputError "
                                       "[schedule.due_moved]"):
            await b.pop_scheduled(q, now=(base + timedelta(hours=4)).replace(tzinfo=None))

    @clause("schedule.once_across_workers", timeout=20)
    async def test_schedule_once_across_workers(self, env: Env) -> None:
        q, b = env.queue(), env.backend
        records = [task_record(i) for i in range(40)]
        for i, record in enumerate(records):
            await b.schedule(q, record, FAR_FUTURE + timedelta(seconds=i))
        movers = await env.peers(6)
        now = FAR_FUTURE + timedelta(hours=1)
        results = await within(15, asyncio.gather(*(m.pop_scheduled(q, now=now) for m in movers)))
        moved = [t for result in results for t in ids(result)]
        assert len(moved) == len(set(moved)), (
            f"6 concurrent pop_scheduled calls returned {len(moved) - len(set(moved))} tasks more than once; "
            f"[schedule.once_across_workers]: the move is atomic per task, concurrent callers never both "
            f"return the same task; a read-then-move races: let one atomic step per task pick the single "
            f"winner"
        )
        assert sorted(moved) == sorted(ids(records)), (
            f"6 concurrent pop_scheduled calls moved {len(set(moved) & set(ids(records)))} of the 40 due "
            f"tasks and {len(set(moved) - set(ids(records)))} others; [schedule.once_across_workers]: every "
            f"due task is moved, once"
        )
        size = await b.size(q)
        assert size == 40, (
            f"size after 6 concurrent pop_scheduled calls moved 40 tasks is {size}; "
            f"[schedule.once_across_workers]: concurrent callers never both queue the same task, so 40"
        )
        queued = ids(await b.get_pending(q, 100))
        assert len(set(queued)) == 40, (
            f"get_pending(count=100) after the concurrent move shows {len(set(queued))} distinct tasks in "
            f"{len(queued)} entries; [schedule.once_across_workers]: each of the 40 moved tasks is queued "
            f"once"
        )

    @clause("ack.releases")
    async def test_ack_releases_clears_the_claim_from_the_record(self, env: Env) -> None:
        """After ``acknowledge`` the stored record (live or expired claim) has no ``claimed_by`` and no
        ``lease_expires_at``; every other field is kept as the claim left it."""
        q, b = env.queue(), env.backend
        live, expired = task_record(1), task_record(2)
        await b.append(q, [live, expired])
        (claimed_live,) = await b.pop(q, worker_id="acker", lease=30)
        (claimed_expired,) = await b.pop(q, worker_id="acker", lease=LEASE)
        await asyncio.sleep(LEASE + 0.15)
        for claimed in (claimed_live, claimed_expired):
            acknowledged = await b.acknowledge(q, claimed["id"])
            lease_state = "live" if claimed is claimed_live else "expired"
            assert acknowledged is True, (
                f"acknowledge of a claimed task with a {lease_state} lease returned {acknowledged!r}; "
                f"[ack.releases]: True if the task was claimed, lease live or expired"
            )
        stored = await (await env.peer()).get_tasks(q, ids([claimed_live, claimed_expired]))
        claim_fields = ("claimed_by", "lease_expires_at")
        for claimed in (claimed_live, claimed_expired):
            record = stored[claimed["id"]]
            left = {k: record[k] for k in claim_fields if record.get(k) is not None}
            assert not left, (
                f"after acknowledge the stored record still has {brief(left)}; [ack.releases]: claimed_by "
                f"and lease_expires_at are cleared"
            )
            kept = {k: v for k, v in record.items() if k not in claim_fields}
            expected = {k: v for k, v in claimed.items() if k not in claim_fields}
            assert kept == expected, (
                f"after acknowledge the stored record's other fields differ from the claimed one; "
                f"[ack.releases]: the record keeps its fields except claimed_by and lease_expires_at; as "
                f"(claimed, stored): {_changed(expected, kept)}"
            )

    @clause("cancel.waiting")
    async def test_cancel_waiting(self, env: Env) -> None:
        q, b = env.queue(), env.backend
        queued, scheduled, retrying = task_record(1), task_record(2), task_record(3)
        names = {queued["id"]: "queued", scheduled["id"]: "scheduled", retrying["id"]: "retrying"}
        await b.append(q, [retrying, queued])
        (claimed,) = await b.pop(q, lease=30)
        await b.store_result(q, requeued(claimed, status="retrying"))
        await b.schedule(q, scheduled, future(3600))
        waiter = asyncio.create_task((await env.peer()).get_results(q, [queued["id"]], timeout=5))
        await asyncio.sleep(0.15)
        started = time.monotonic()
        for record in (queued, scheduled, retrying):
            got = await b.cancel(q, record["id"])
            name = names[record["id"]]
            assert got is not None and got["id"] == record["id"], (
                f"cancel of the {name} task returned "
                f"{'None' if got is None else 'the record of ' + repr(got['id'])}; [cancel.waiting]: a "
                f"waiting task (queued, scheduled or retrying) is cancelled and its stored record returned"
            )
            assert got["status"] == "cancelled", (
                f"cancel of the {name} task returned status {got['status']!r}; [cancel.waiting]: it is "
                f"stored with status='cancelled' and the stored record returned"
            )
            off_by = abs((from_iso(got["finished_at"]) - utcnow()).total_seconds())
            assert off_by < 5, (
                f"cancel of the {name} task returned finished_at={got['finished_at']!r}, {off_by:.1f} s from "
                f"now; [cancel.waiting]: finished_at = now"
            )
        waited_status = (await within(6, waiter))[queued["id"]]["status"]
        assert waited_status == "cancelled", (
            f"get_results waiting on the queued task returned status {waited_status!r} after cancel; "
            f"[cancel.waiting]: cancel wakes get_results waiters with the stored cancelled record"
        )
        waited = time.monotonic() - started
        assert waited < 2, (
            f"get_results waiting on a cancelled task returned {waited:.2f} s after the cancels; "
            f"[cancel.waiting]: cancel wakes get_results waiters (here within 2 s, not at their timeout)"
        )
        stats = await b.get_stats(q)
        counts = (stats["pending"], stats["scheduled"], stats["cancelled"])
        assert counts == (0, 0, 3), (
            f"get_stats (pending, scheduled, cancelled) after cancelling a queued, a scheduled and a "
            f"retrying task is {counts}; [cancel.waiting]: each is removed from the queue or schedule and "
            f"stored cancelled, so (0, 0, 3)"
        )
        moved = await b.pop_scheduled(q, now=FAR_FUTURE + timedelta(days=1))
        assert moved == [], (
            f"pop_scheduled(now=2100) after cancel moved {brief(named(ids(moved), names))}; "
            f"[cancel.waiting]: cancel removes the task from the schedule"
        )
        popped = await b.pop(q, limit=10, lease=30)
        assert popped == [], (
            f"pop(limit=10) after cancel claimed {brief(named(ids(popped), names))}; [cancel.waiting]: "
            f"cancel removes the task from the queue"
        )

    @clause("cancel.refused")
    async def test_cancel_refused(self, env: Env) -> None:
        q, b = env.queue(), env.backend
        claimed, expired, done = task_record(1), task_record(2), task_record(3)
        names = {"unknown-id": "unknown", claimed["id"]: "claimed", expired["id"]: "expired-lease",
                 done["id"]: "finished"}
        await b.append(q, [claimed, expired, done])
        await b.pop(q, lease=30)
        await b.pop(q, lease=LEASE)
        (to_finish,) = await b.pop(q, lease=30)
        await b.store_result(q, finished(to_finish, result=1))
        await asyncio.sleep(LEASE + 0.15)
        before = await b.get_tasks(q, ids([claimed, expired, done]))
        stats = await b.get_stats(q)
        for task_id in ("unknown-id", claimed["id"], expired["id"], done["id"]):
            got = await b.cancel(q, task_id)
            assert got is None, (
                f"cancel of the {names[task_id]} task returned a record with status {got.get('status')!r}; "
                f"[cancel.refused]: None and no change when the task is unknown, claimed (even with an "
                f"expired lease) or finished; a task a worker holds is not waiting: check the claim in the "
                f"same step"
            )
        after = await b.get_tasks(q, ids([claimed, expired, done]))
        assert after == before, (
            f"refused cancels changed the records of the "
            f"{[names[i] for i in {**before, **after} if before.get(i) != after.get(i)]} tasks; "
            f"[cancel.refused]: cancel changes nothing when the task is claimed or finished"
        )
        stats_after = await b.get_stats(q)
        assert stats_after == stats, (
            f"refused cancels changed get_stats, as (before, after): {_changed(stats, stats_after)}; "
            f"[cancel.refused]: cancel changes nothing when the task is unknown, claimed or finished"
        )
        popped = ids(await b.pop(q, lease=30))
        assert popped == [expired["id"]], (
            f"pop after the refused cancels claimed {brief(named(popped, names))}; [cancel.refused]: the "
            f"task whose lease expired was not cancelled, so it is claimable again: ['expired-lease']"
        )

    @clause("delete.finished")
    async def test_delete_finished(self, env: Env) -> None:
        q, b = env.queue(), env.backend
        done, cancelled = task_record(1), task_record(2)
        await b.append(q, [done, cancelled])
        (claimed,) = await b.pop(q, lease=30)
        await b.store_result(q, finished(claimed, status="failed"))
        await b.cancel(q, cancelled["id"])
        names = {done["id"]: "failed", cancelled["id"]: "cancelled"}
        deleted_failed = await b.delete_task(q, done["id"])
        assert deleted_failed is True, (
            f"delete_task of a failed task returned {deleted_failed!r}; [delete.finished]: a finished record "
            f"is deleted: True"
        )
        deleted_cancelled = await b.delete_task(q, cancelled["id"])
        assert deleted_cancelled is True, (
            f"delete_task of a cancelled task returned {deleted_cancelled!r}; [delete.finished]: a finished "
            f"record is deleted: True"
        )
        found = await b.get_tasks(q, ids([done, cancelled]))
        assert found == {}, (
            f"get_tasks after delete_task still finds the {named(found, names)} records; [delete.finished]: "
            f"a deleted record is gone"
        )
        stats = await b.get_stats(q)
        assert all(v == 0 for v in stats.values()), (
            f"get_stats after deleting the only two records has nonzero counts "
            f"{brief({k: v for k, v in stats.items() if v})}; [delete.finished]: a deleted record is counted "
            f"by no key"
        )
        results = await b.get_results(q, ids([done, cancelled]))
        assert results == {}, (
            f"get_results after delete_task returned the {named(results, names)} records; "
            f"[delete.finished]: a deleted record has no result left"
        )

    @clause("delete.unknown")
    async def test_delete_unknown(self, env: Env) -> None:
        q, b = env.queue(), env.backend
        deleted_unknown = await b.delete_task(q, "unknown-id")
        assert deleted_unknown is False, (
            f"delete_task('unknown-id') returned {deleted_unknown!r}; [delete.unknown]: False if unknown"
        )
        record = task_record(1)
        await b.append(q, [record])
        (claimed,) = await b.pop(q, lease=30)
        await b.store_result(q, finished(claimed))
        deleted = await b.delete_task(q, record["id"])
        assert deleted is True, (
            f"delete_task of a completed task returned {deleted!r}; [delete.unknown] needs the finished "
            f"record deleted first: True"
        )
        deleted_again = await b.delete_task(q, record["id"])
        assert deleted_again is False, (
            f"a second delete_task of the same task returned {deleted_again!r}; [delete.unknown]: it is "
            f"unknown now, so False"
        )

    @clause("delete.unfinished")
    async def test_delete_unfinished(self, env: Env) -> None:
        q, b = env.queue(), env.backend
        claimed, queued, scheduled = task_record(1), task_record(2), task_record(3)
        names = {claimed["id"]: "claimed", queued["id"]: "queued", scheduled["id"]: "scheduled"}
        await b.append(q, [claimed, queued])
        await b.pop(q, lease=30)
        await b.schedule(q, scheduled, future(3600))
        stats = await b.get_stats(q)
        for record in (claimed, queued, scheduled):
            why = (f"delete_task of the {names[record['id']]} task must raise TaskStateError "
                   f"[delete.unfinished]: only a finished record is deleted")
            with raises(TaskStateError, why):
                await b.delete_task(q, record["id"])
        stats_after = await b.get_stats(q)
        assert stats_after == stats, (
            f"delete_task of unfinished tasks changed get_stats, as (before, after): "
            f"{_changed(stats, stats_after)}; [delete.unfinished]: a task that is not finished is left alone"
        )
        found = await b.get_tasks(q, ids([claimed, queued, scheduled]))
        assert len(found) == 3, (
            f"get_tasks after the refused deletes finds only {named(found, names)} of the claimed, queued "
            f"and scheduled tasks; [delete.unfinished]: a task that is not finished is left alone"
        )
