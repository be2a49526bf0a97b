"""schedule.not_before/due_moved/once_across_workers, cancel.* and delete.*."""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta

import pytest

from sheppy_conformance._clause import clause
from sheppy_conformance._env import Env
from sheppy_conformance.records import FAR_FUTURE, LEASE, finished, future, ids, requeued, task_record, within
from sheppy_core.backend import BackendInputError, TaskStateError, from_iso, utcnow

__all__ = ["LifecycleClauses"]


class LifecycleClauses:
    @clause("schedule.not_before")
    async def test_schedule_not_before(self, env: Env) -> None:
        q, b = env.queue(), env.backend
        record, at = task_record(1), FAR_FUTURE
        await b.schedule(q, record, at)
        assert await b.pop_scheduled(q) == []  # the real clock is long before 2100
        assert await b.pop_scheduled(q, now=at - timedelta(milliseconds=10)) == []
        assert await b.pop(q, limit=10, lease=30) == []
        assert ids(await b.pop_scheduled(q, now=at)) == [record["id"]]  # due *by* now includes now

    @clause("schedule.not_before")
    async def test_schedule_not_before_soon(self, env: Env) -> None:
        q, b = env.queue(), env.backend
        record = task_record(1)
        at = utcnow() + timedelta(seconds=0.6)
        await b.schedule(q, record, at)
        assert await b.pop_scheduled(q) == []
        assert await b.pop(q, lease=30) == []
        await asyncio.sleep(max(0.0, (at - utcnow()).total_seconds()) + 0.05)
        moved = await b.pop_scheduled(q)
        popped = await b.pop(q, lease=30)
        assert ids(moved + popped)[:1] == [record["id"]]

    @clause("schedule.not_before")
    async def test_schedule_not_before_retry(self, env: Env) -> None:
        q, b = env.queue(), env.backend
        record = task_record(1)
        await b.append(q, [record])
        (claimed,) = await b.pop(q, lease=30)
        await b.store_result(q, requeued(claimed, status="retrying", at=FAR_FUTURE))
        assert await b.pop_scheduled(q, now=FAR_FUTURE - timedelta(seconds=1)) == []
        assert await b.pop(q, lease=30) == []
        assert ids(await b.pop_scheduled(q, now=FAR_FUTURE)) == [record["id"]]

    @clause("schedule.due_moved")
    async def test_schedule_due_moved(self, env: Env) -> None:
        q, b = env.queue(), env.backend
        base = FAR_FUTURE
        third, first, later, second = (task_record(i) for i in range(4))
        for record, hours in ((third, 3), (first, 1), (later, 9), (second, 2)):
            await b.schedule(q, record, base + timedelta(hours=hours))
        queued = task_record(5)
        await b.append(q, [queued])
        moved = await b.pop_scheduled(q, now=base + timedelta(hours=4))
        assert ids(moved) == [first["id"], second["id"], third["id"]]
        assert {r["status"] for r in moved} == {"pending"}
        assert await b.size(q) == 4
        assert ids(await b.get_scheduled(q)) == [later["id"]]
        assert ids(await b.pop(q, limit=10, lease=30)) == [queued["id"], *ids(moved)]
        assert await b.pop_scheduled(q, now=base + timedelta(hours=4)) == []
        with pytest.raises(BackendInputError):
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
        assert len(moved) == len(set(moved)), "a scheduled task was moved by two callers"
        assert sorted(moved) == sorted(ids(records))
        assert await b.size(q) == 40
        queued = ids(await b.get_pending(q, 100))
        assert len(set(queued)) == 40

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
            assert await b.acknowledge(q, claimed["id"]) is True
        stored = await (await env.peer()).get_tasks(q, ids([claimed_live, claimed_expired]))
        claim_fields = ("claimed_by", "lease_expires_at")
        for claimed in (claimed_live, claimed_expired):
            record = stored[claimed["id"]]
            left = {k: record[k] for k in claim_fields if record.get(k) is not None}
            assert not left, (
                f"acknowledge must clear claimed_by and lease_expires_at on the stored record; still "
                f"set: {left}"
            )
            kept = {k: v for k, v in record.items() if k not in claim_fields}
            expected = {k: v for k, v in claimed.items() if k not in claim_fields}
            assert kept == expected, "acknowledge must keep the record's other fields as the claim left them"

    @clause("cancel.waiting")
    async def test_cancel_waiting(self, env: Env) -> None:
        q, b = env.queue(), env.backend
        queued, scheduled, retrying = task_record(1), task_record(2), task_record(3)
        await b.append(q, [retrying, queued])
        (claimed,) = await b.pop(q, lease=30)
        await b.store_result(q, requeued(claimed, status="retrying"))
        await b.schedule(q, scheduled, future(3600))
        waiter = asyncio.create_task((await env.peer()).get_results(q, [queued["id"]], timeout=5))
        await asyncio.sleep(0.15)
        started = time.monotonic()
        for record in (queued, scheduled, retrying):
            got = await b.cancel(q, record["id"])
            assert got is not None and got["id"] == record["id"]
            assert got["status"] == "cancelled"
            assert abs((from_iso(got["finished_at"]) - utcnow()).total_seconds()) < 5
        assert (await within(6, waiter))[queued["id"]]["status"] == "cancelled"
        assert time.monotonic() - started < 2, "cancel did not wake get_results promptly"
        stats = await b.get_stats(q)
        assert (stats["pending"], stats["scheduled"], stats["cancelled"]) == (0, 0, 3)
        assert await b.pop_scheduled(q, now=FAR_FUTURE + timedelta(days=1)) == []
        assert await b.pop(q, limit=10, lease=30) == []

    @clause("cancel.refused")
    async def test_cancel_refused(self, env: Env) -> None:
        q, b = env.queue(), env.backend
        claimed, expired, done = task_record(1), task_record(2), task_record(3)
        await b.append(q, [claimed, expired, done])
        await b.pop(q, lease=30)
        await b.pop(q, lease=LEASE)
        (to_finish,) = await b.pop(q, lease=30)
        await b.store_result(q, finished(to_finish, result=1))
        await asyncio.sleep(LEASE + 0.15)
        before = await b.get_tasks(q, ids([claimed, expired, done]))
        stats = await b.get_stats(q)
        for task_id in ("unknown-id", claimed["id"], expired["id"], done["id"]):
            assert await b.cancel(q, task_id) is None, task_id
        assert await b.get_tasks(q, ids([claimed, expired, done])) == before
        assert await b.get_stats(q) == stats
        assert ids(await b.pop(q, lease=30)) == [expired["id"]]  # still claimable after its lease

    @clause("delete.finished")
    async def test_delete_finished(self, env: Env) -> None:
        q, b = env.queue(), env.backend
        done, cancelled = task_record(1), task_record(2)
        await b.append(q, [done, cancelled])
        (claimed,) = await b.pop(q, lease=30)
        await b.store_result(q, finished(claimed, status="failed"))
        await b.cancel(q, cancelled["id"])
        assert await b.delete_task(q, done["id"]) is True
        assert await b.delete_task(q, cancelled["id"]) is True
        assert await b.get_tasks(q, ids([done, cancelled])) == {}
        assert all(v == 0 for v in (await b.get_stats(q)).values())
        assert await b.get_results(q, ids([done, cancelled])) == {}

    @clause("delete.unknown")
    async def test_delete_unknown(self, env: Env) -> None:
        q, b = env.queue(), env.backend
        assert await b.delete_task(q, "unknown-id") is False
        record = task_record(1)
        await b.append(q, [record])
        (claimed,) = await b.pop(q, lease=30)
        await b.store_result(q, finished(claimed))
        assert await b.delete_task(q, record["id"]) is True
        assert await b.delete_task(q, record["id"]) is False

    @clause("delete.unfinished")
    async def test_delete_unfinished(self, env: Env) -> None:
        q, b = env.queue(), env.backend
        claimed, queued, scheduled = task_record(1), task_record(2), task_record(3)
        await b.append(q, [claimed, queued])
        await b.pop(q, lease=30)
        await b.schedule(q, scheduled, future(3600))
        stats = await b.get_stats(q)
        for record in (claimed, queued, scheduled):
            with pytest.raises(TaskStateError):
                await b.delete_task(q, record["id"])
        assert await b.get_stats(q) == stats
        assert len(await b.get_tasks(q, ids([claimed, queued, scheduled]))) == 3
