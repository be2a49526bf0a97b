"""store_result.*, get_results.* and ttl.*: writing outcomes back and waiting for them."""

from __future__ import annotations

import asyncio
import time

import pytest

from sheppy_conformance._clause import clause
from sheppy_conformance._env import Env
from sheppy_conformance.records import LEASE, eventually, finished, future, ids, requeued, task_record, within
from sheppy_core.backend import TTL, from_iso, utcnow

__all__ = ["ResultClauses"]


class ResultClauses:
    @clause("store_result.finished")
    async def test_store_result_finished(self, env: Env) -> None:
        q, b = env.queue(), env.backend
        record = task_record(1)
        await b.append(q, [record])
        (claimed,) = await b.pop(q, lease=LEASE)
        assert await b.store_result(q, finished(claimed, result={"answer": 42})) is True
        stored = (await b.get_tasks(q, [record["id"]]))[record["id"]]
        assert (stored["status"], stored["result"]) == ("completed", {"answer": 42})
        assert stored["claimed_by"] is None and stored["lease_expires_at"] is None
        stats = await b.get_stats(q)
        assert (stats["completed"], stats["processing"], stats["pending"]) == (1, 0, 0)
        await asyncio.sleep(LEASE + 0.15)  # its old lease is over: it must not come back
        assert await b.pop(q, lease=30) == []
        assert ids(list((await b.get_results(q, [record["id"]])).values())) == [record["id"]]

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
        assert got[record["id"]]["status"] == "failed"
        assert time.monotonic() - started < 2, "get_results was not woken promptly by store_result"

    @clause("store_result.requeue")
    async def test_store_result_requeue(self, env: Env) -> None:
        q, b = env.queue(), env.backend
        again, retry, later, other = (task_record(i) for i in range(4))
        await b.append(q, [again, retry, later])
        claimed = await b.pop(q, limit=3, lease=30)
        await b.append(q, [other])
        retry_at, later_at = future(7200), future(3600)
        assert await b.store_result(q, requeued(claimed[0], status="processing")) is True
        assert await b.store_result(q, requeued(claimed[1], status="retrying", at=retry_at)) is True
        assert await b.store_result(q, requeued(claimed[2], status="scheduled", at=later_at)) is True
        stats = await b.get_stats(q)
        assert (stats["pending"], stats["processing"], stats["scheduled"]) == (2, 0, 2)
        pending = await b.get_pending(q, 10)
        assert ids(pending) == [other["id"], again["id"]]  # re-queued at the tail
        assert pending[1]["status"] == "pending"
        assert pending[1]["claimed_by"] is None
        assert ids(await b.get_scheduled(q)) == [later["id"], retry["id"]]
        assert abs((await b.next_scheduled_at(q) - later_at).total_seconds()) < 0.001  # type: ignore[operator]
        with pytest.raises(TimeoutError):  # a re-queue is not a result: waiters keep waiting
            await b.get_results(q, [again["id"]], timeout=0.2)

    @clause("store_result.idempotent")
    async def test_store_result_idempotent(self, env: Env) -> None:
        q, b = env.queue(), env.backend
        done, again, retry = (task_record(i) for i in range(3))
        await b.append(q, [done, again, retry])
        claimed = await b.pop(q, limit=3, lease=30)
        results = [finished(claimed[0]), requeued(claimed[1]), requeued(claimed[2], status="retrying")]
        for result in results:
            assert await b.store_result(q, result) is True
        once = (await b.get_stats(q), await b.size(q), ids(await b.get_scheduled(q)))
        for result in results:
            assert await b.store_result(q, result) is True
        assert (await b.get_stats(q), await b.size(q), ids(await b.get_scheduled(q))) == once
        assert once[0]["completed"] == 1 and once[1] == 1
        assert ids(await b.pop(q, limit=10, lease=30)) == [again["id"]]

    @clause("store_result.unknown")
    async def test_store_result_unknown(self, env: Env) -> None:
        q, b = env.queue(), env.backend
        assert await b.store_result(q, finished(task_record(1))) is False
        assert await b.get_all_tasks(q) == []
        deleted, cleared = task_record(2), task_record(3)
        await b.append(q, [deleted])
        (claimed,) = await b.pop(q, lease=30)
        await b.store_result(q, finished(claimed))
        await b.delete_task(q, deleted["id"])
        assert await b.store_result(q, finished(claimed)) is False
        await b.append(q, [cleared])
        (claimed,) = await b.pop(q, lease=30)
        await b.clear(q)
        assert await b.store_result(q, requeued(claimed)) is False
        assert await b.get_all_tasks(q) == []
        assert await b.size(q) == 0

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
        assert placed == 30, stats
        assert (stats["completed"], stats["scheduled"]) == (10, 10)
        queued = ids(await b.get_pending(q, 100))
        assert len(queued) == len(set(queued)) == stats["pending"]

    @clause("get_results.waits")
    async def test_get_results_waits(self, env: Env) -> None:
        q, b = env.queue(), env.backend
        first, second = task_record(1), task_record(2)
        await b.append(q, [first, second])
        claimed = await b.pop(q, limit=2, lease=30)
        assert await b.get_results(q, []) == {}
        assert await b.get_results(q, [*ids(claimed), "unknown"]) == {}
        assert await b.get_results(q, ids(claimed), timeout=-1) == {}
        waiter = asyncio.create_task(b.get_results(q, ids(claimed), timeout=0))  # 0: no time limit
        other = await env.peer()
        await other.store_result(q, finished(claimed[0]))
        await asyncio.sleep(0.2)
        assert not waiter.done(), "get_results(timeout=0) returned before every task finished"
        started = time.monotonic()
        await other.store_result(q, finished(claimed[1]))
        got = await within(5, waiter)
        assert sorted(got) == sorted(ids(claimed))
        assert time.monotonic() - started < 2, "get_results was not woken promptly by the last result"
        assert sorted(await b.get_results(q, [*ids(claimed), "unknown"])) == sorted(ids(claimed))

    @clause("get_results.timeout")
    async def test_get_results_timeout(self, env: Env) -> None:
        q, b = env.queue(), env.backend
        done, running = task_record(1), task_record(2)
        await b.append(q, [done, running])
        claimed = await b.pop(q, limit=2, lease=30)
        await b.store_result(q, finished(claimed[0]))
        started = time.monotonic()
        with pytest.raises(TimeoutError):
            await within(5, b.get_results(q, ids(claimed), timeout=0.3))
        assert 0.25 <= time.monotonic() - started < 2.5

    @clause("ttl.expires", requires=TTL)
    async def test_ttl_expires(self, env: Env) -> None:
        q, b = env.queue(), env.backend
        keep_config = {**task_record()["config"], "ttl": 1}
        short, waiting = task_record(1, config=keep_config), task_record(2, config=keep_config)
        await b.append(q, [short, waiting])
        (claimed,) = await b.pop(q, lease=30)
        await b.store_result(q, finished(claimed))
        assert short["id"] in await b.get_tasks(q, [short["id"]])

        async def expired() -> bool:
            return short["id"] not in await b.get_tasks(q, [short["id"]])

        assert await eventually(expired, timeout=4), "a finished record with ttl=1 did not expire"
        assert (await b.get_stats(q))["completed"] == 0
        # Unfinished records never expire, whatever their ttl.
        assert waiting["id"] in await b.get_tasks(q, [waiting["id"]])
        assert await b.size(q) == 1

    @clause("ttl.expires", requires=TTL)
    async def test_ttl_expires_not_before_retention(self, env: Env) -> None:
        q, b = env.queue(), env.backend
        config = {**task_record()["config"], "ttl": 3}
        record = task_record(1, config=config)
        await b.append(q, [record])
        (claimed,) = await b.pop(q, lease=30)
        await b.store_result(q, finished(claimed))
        await asyncio.sleep(1.0)
        got = await b.get_tasks(q, [record["id"]])
        assert record["id"] in got, "a finished record with ttl=3 expired after 1 s"
        assert from_iso(got[record["id"]]["finished_at"]) <= utcnow()

    @clause("ttl.readable_until", requires=TTL, timeout=20)
    async def test_ttl_readable_until(self, env: Env) -> None:
        """A finished record with ttl=2 is read, listed and counted for (nearly) 2 s while other
        clients write and a neighbour with ttl=1 expires (whatever purges those run), then gone."""
        q, b = env.queue(), env.backend
        writer = await env.peer()
        config = task_record()["config"]
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
                assert found, f"a finished record with ttl=2 could not be read after {elapsed:.2f} s"
                assert listed, f"a finished record with ttl=2 was not listed after {elapsed:.2f} s"
                assert counted, f"a finished record with ttl=2 was not counted after {elapsed:.2f} s"
            await asyncio.sleep(0.05)

        async def gone() -> bool:
            await write_around()
            return (
                record["id"] not in await b.get_tasks(q, [record["id"]])
                and record["id"] not in ids(await b.get_all_tasks(q))
                and (await b.get_stats(q))["completed"] == 0
            )

        assert await eventually(gone, timeout=6), "a finished record with ttl=2 was still there after 8 s"
