"""The Backend contract on PostgreSQL: enqueue, claim, results, inspection, cron, rate limits,
workflows, TTL. (The conformance suite covers every clause; these pin the PostgreSQL specifics.)"""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta

import asyncpg
import pytest
from sheppy_postgres import PostgresBackend
from sheppy_postgres._config import quote_ident

from sheppy_core.backend import utcnow
from sheppy_core.exceptions import BackendConnectionError, BackendInputError, TaskStateError

from .conftest import SERVER_URL, finished, task, url_for


async def test_append_unique_replace_and_fifo(backend: PostgresBackend, queue: str) -> None:
    a, b, c = task("a", n=1), task("b"), task("c")
    assert await backend.append(queue, [a, b, a]) == [True, True, False]
    assert await backend.append(queue, [a, c]) == [False, True]
    assert await backend.append(queue, [{**a, "payload": {"n": 2}}], unique=False) == [True]
    # The replaced record went to the tail.
    pending = await backend.get_pending(queue, 10)
    assert [t["id"] for t in pending] == ["b", "c", "a"]
    assert pending[2]["payload"] == {"n": 2}
    assert all(t["status"] == "pending" for t in pending)
    assert await backend.size(queue) == 3
    popped = await backend.pop(queue, 2)
    assert [t["id"] for t in popped] == ["b", "c"]
    assert await backend.append(queue, []) == []


async def test_pop_claim_fields_and_hidden(backend: PostgresBackend, queue: str) -> None:
    await backend.append(queue, [task("x")])
    [claimed] = await backend.pop(queue, worker_id="w1", lease=30)
    assert claimed["status"] == "processing"
    assert claimed["claimed_by"] == "w1"
    assert claimed["deliveries"] == 1
    assert await backend.pop(queue) == []
    assert await backend.size(queue) == 0
    stored = (await backend.get_tasks(queue, ["x", "x", "nope"]))
    assert list(stored) == ["x"]
    assert stored["x"]["claimed_by"] == "w1"
    assert (await backend.get_stats(queue))["processing"] == 1
    with pytest.raises(BackendInputError):
        await backend.pop(queue, 0)


async def test_store_result_finished_requeue_and_retry(backend: PostgresBackend, queue: str) -> None:
    await backend.append(queue, [task("t")])
    [claimed] = await backend.pop(queue)
    # Re-queued at the tail with the claim released.
    assert await backend.store_result(queue, {**claimed, "status": "processing"})
    [again] = await backend.pop(queue)
    assert again["deliveries"] == 2
    # Retrying: scheduled for next_retry_at, not claimable before.
    later = utcnow() + timedelta(hours=1)
    retry = {**again, "status": "retrying", "next_retry_at": later.isoformat()}
    assert await backend.store_result(queue, retry)
    assert await backend.pop(queue) == []
    assert [t["id"] for t in await backend.get_scheduled(queue)] == ["t"]
    assert await backend.next_scheduled_at(queue) == later
    moved = await backend.pop_scheduled(queue, now=later)
    assert [t["status"] for t in moved] == ["pending"]
    [third] = await backend.pop(queue)
    done = finished(third, result=42)
    assert await backend.store_result(queue, done)
    assert await backend.store_result(queue, done)  # idempotent
    results = await backend.get_results(queue, ["t", "unknown"])
    assert results["t"]["result"] == 42
    assert results["t"]["claimed_by"] is None
    stats = await backend.get_stats(queue)
    assert stats["completed"] == 1 and stats["processing"] == 0 and stats["pending"] == 0
    assert not await backend.store_result(queue, finished(task("never-stored")))


async def test_schedule_and_pop_scheduled_in_due_order(backend: PostgresBackend, queue: str) -> None:
    now = utcnow()
    assert await backend.schedule(queue, task("late"), now - timedelta(seconds=1))
    assert await backend.schedule(queue, task("early"), now - timedelta(seconds=5))
    assert await backend.schedule(queue, task("future"), now + timedelta(hours=1))
    assert not await backend.schedule(queue, task("late"), now)
    with pytest.raises(BackendInputError):
        await backend.schedule(queue, task("naive"), now.replace(tzinfo=None))
    assert await backend.pop(queue) == []
    assert [t["id"] for t in await backend.get_scheduled(queue)] == ["early", "late", "future"]
    moved = await backend.pop_scheduled(queue)
    assert [t["id"] for t in moved] == ["early", "late"]
    assert await backend.pop_scheduled(queue) == []
    assert [t["id"] for t in await backend.pop(queue, 5)] == ["early", "late"]
    assert (await backend.get_stats(queue))["scheduled"] == 1


async def test_pop_blocks_until_append_from_another_backend(
    backend: PostgresBackend, url: str, queue: str
) -> None:
    async with PostgresBackend.from_url(url) as other:
        waiter = asyncio.create_task(backend.pop(queue, timeout=5))
        await asyncio.sleep(0.1)
        started = time.monotonic()
        await other.append(queue, [task("wake")])
        [record] = await waiter
        assert record["id"] == "wake"
        # Woken by NOTIFY, not by the 1 s fallback poll.
        assert time.monotonic() - started < 0.5


async def test_pop_timeout_returns_empty(backend: PostgresBackend, queue: str) -> None:
    started = time.monotonic()
    assert await backend.pop(queue, timeout=0.3) == []
    assert 0.25 < time.monotonic() - started < 2


async def test_cancelled_blocking_pop_claims_nothing(backend: PostgresBackend, queue: str) -> None:
    waiter = asyncio.create_task(backend.pop(queue, timeout=5))
    await asyncio.sleep(0.05)
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    await backend.append(queue, [task("kept")])
    assert [t["id"] for t in await backend.pop(queue)] == ["kept"]


async def test_get_results_waits_for_notify(backend: PostgresBackend, url: str, queue: str) -> None:
    await backend.append(queue, [task("r1"), task("r2")])
    claimed = await backend.pop(queue, 2)
    waiter = asyncio.create_task(backend.get_results(queue, ["r1", "r2"], timeout=5))
    async with PostgresBackend.from_url(url) as other:
        await asyncio.sleep(0.05)
        await other.store_result(queue, finished(claimed[0]))
        await asyncio.sleep(0.05)
        assert not waiter.done()
        started = time.monotonic()
        await other.store_result(queue, finished(claimed[1], status="failed"))
        results = await waiter
        assert time.monotonic() - started < 0.5
    assert {k: v["status"] for k, v in results.items()} == {"r1": "completed", "r2": "failed"}
    with pytest.raises(TimeoutError):
        await backend.get_results(queue, ["r1", "missing"], timeout=0.2)


async def test_cancel_and_delete(backend: PostgresBackend, queue: str) -> None:
    await backend.append(queue, [task("q1"), task("q2")])
    await backend.schedule(queue, task("s1"), utcnow() + timedelta(hours=1))
    cancelled = await backend.cancel(queue, "q1")
    assert cancelled is not None and cancelled["status"] == "cancelled" and cancelled["finished_at"]
    assert (await backend.cancel(queue, "s1") or {}).get("status") == "cancelled"
    [claimed] = await backend.pop(queue)
    assert claimed["id"] == "q2"
    assert await backend.cancel(queue, "q2") is None  # claimed
    assert await backend.cancel(queue, "q1") is None  # finished
    assert await backend.cancel(queue, "nope") is None
    assert (await backend.get_results(queue, ["q1"]))["q1"]["status"] == "cancelled"
    with pytest.raises(TaskStateError):
        await backend.delete_task(queue, "q2")
    assert await backend.delete_task(queue, "q1")
    assert not await backend.delete_task(queue, "q1")
    assert (await backend.get_stats(queue))["cancelled"] == 1


async def test_acknowledge(backend: PostgresBackend, queue: str) -> None:
    await backend.append(queue, [task("k")])
    assert not await backend.acknowledge(queue, "k")  # queued, not claimed
    await backend.pop(queue, lease=0.1)
    assert await backend.acknowledge(queue, "k")
    assert not await backend.acknowledge(queue, "k")
    await asyncio.sleep(0.2)
    assert await backend.pop(queue) == []  # never delivered again
    assert "k" in await backend.get_tasks(queue, ["k"])


async def test_list_queues_and_clear(backend: PostgresBackend, queue: str) -> None:
    other = queue + "-other"
    await backend.append(queue, [task("1"), task("2")])
    await backend.append(other, [task("1")])
    await backend.add_cron(queue, "cron-1", {"expression": "* * * * *"})
    queues = await backend.list_queues()
    assert queues[queue] == 2 and queues[other] == 1
    assert await backend.clear(queue) == 3
    assert queue not in await backend.list_queues()
    assert await backend.get_all_tasks(queue) == []
    assert await backend.get_crons(queue) == []
    assert await backend.size(other) == 1
    await backend.clear(other)


async def test_cron_storage(backend: PostgresBackend, queue: str) -> None:
    definition = {"expression": "*/5 * * * *", "spec": {"func": "m:f"}}
    assert await backend.add_cron(queue, "c", definition)
    assert not await backend.add_cron(queue, "c", {"other": True})
    assert await backend.get_crons(queue) == [definition]
    assert await backend.delete_cron(queue, "c")
    assert not await backend.delete_cron(queue, "c")


async def test_rate_limit_sliding_window(backend: PostgresBackend, queue: str) -> None:
    assert await backend.acquire_rate_limit(queue, "k", 2, 0.5, "t1") is None
    assert await backend.acquire_rate_limit(queue, "k", 2, 0.5, "t2") is None
    assert await backend.acquire_rate_limit(queue, "k", 2, 0.5, "t1") is None  # not charged twice
    wait = await backend.acquire_rate_limit(queue, "k", 2, 0.5, "t3")
    assert wait is not None and 0 < wait <= 0.5
    await asyncio.sleep(wait + 0.02)
    assert await backend.acquire_rate_limit(queue, "k", 2, 0.5, "t3") is None
    with pytest.raises(BackendInputError):
        await backend.acquire_rate_limit(queue, "k", 2, 1, "t", strategy="leaky")


async def test_rate_limit_is_atomic_across_backends(url: str, queue: str) -> None:
    backends = [PostgresBackend.from_url(url) for _ in range(4)]
    for b in backends:
        await b.connect()
    try:
        for strategy in ("sliding_window", "fixed_window"):
            results = await asyncio.gather(*(
                backends[i % 4].acquire_rate_limit(queue, strategy, 5, 30, f"t{i}", strategy)
                for i in range(40)
            ))
            assert sum(r is None for r in results) == 5, strategy
    finally:
        for b in backends:
            await b.disconnect()


async def test_rate_limit_fixed_window(backend: PostgresBackend, queue: str) -> None:
    period = 0.4
    # Start near the beginning of a window so both grants land in the same one.
    now = time.time()
    await asyncio.sleep(period - (now % period) + 0.01)
    assert await backend.acquire_rate_limit(queue, "f", 1, period, "a", "fixed_window") is None
    wait = await backend.acquire_rate_limit(queue, "f", 1, period, "b", "fixed_window")
    assert wait is not None and 0 < wait <= period
    await asyncio.sleep(wait + 0.01)
    assert await backend.acquire_rate_limit(queue, "f", 1, period, "b", "fixed_window") is None


async def test_workflows(backend: PostgresBackend, queue: str) -> None:
    wf = {"id": "wf", "version": 1, "pending_task_ids": ["a", "b", "c"], "finished_at": None}
    assert await backend.store_workflow(queue, wf, if_version=0)
    assert not await backend.store_workflow(queue, {**wf, "version": 2}, if_version=0)
    assert await backend.store_workflow(queue, {**wf, "version": 2}, if_version=1)
    assert (await backend.get_workflows(queue, ["wf", "nope"]))["wf"]["version"] == 2
    assert [w["id"] for w in await backend.get_pending_workflows(queue)] == ["wf"]
    left = await asyncio.gather(*(backend.mark_workflow_task_complete(queue, "wf", t) for t in "abc"))
    assert sorted(left) == [0, 1, 2]
    assert await backend.mark_workflow_task_complete(queue, "wf", "a") == -1
    assert await backend.store_workflow(queue, {**wf, "version": 3, "finished_at": utcnow().isoformat()})
    assert await backend.get_pending_workflows(queue) == []
    assert len(await backend.get_all_workflows(queue)) == 1
    await backend.append(queue, [{**task("wt"), "workflow_id": "wf"}])
    [claimed] = await backend.pop(queue)
    await backend.store_result(queue, finished(claimed))
    assert list(await backend.get_workflow_results(queue, "wf")) == ["wt"]
    assert await backend.delete_workflow(queue, "wf")
    assert not await backend.delete_workflow(queue, "wf")


async def test_ttl_hides_expired_records_and_purge_deletes_them(schema: str, queue: str) -> None:
    async with PostgresBackend.from_url(url_for(schema, ttl=0.2)) as backend:
        await backend.append(queue, [task("old"), task("kept")])
        claimed = await backend.pop(queue, 2)
        await backend.store_result(queue, finished(claimed[0]))
        await backend.store_result(queue, finished(claimed[1], config={"ttl": None}))
        assert set(await backend.get_results(queue, ["old", "kept"])) == {"old", "kept"}
        await asyncio.sleep(0.3)
        assert set(await backend.get_results(queue, ["old", "kept"])) == {"kept"}
        assert (await backend.get_stats(queue))["completed"] == 1
        # An expired id can be used again.
        assert await backend.append(queue, [task("old")]) == [True]
        await backend.pop(queue)
        await backend.store_result(queue, finished(task("old")))
        await asyncio.sleep(0.3)
        assert await backend.purge_expired() >= 1
        assert not await backend.store_result(queue, finished(task("old")))


async def test_payload_large_and_unicode_round_trips(backend: PostgresBackend, queue: str) -> None:
    record = task("big", blob="x" * 1_000_000, text="nul\x00 ünï ✓ 😀 lone \ud800", n=1e308)
    await backend.append(queue, [record])
    [claimed] = await backend.pop(queue)
    assert claimed["payload"] == record["payload"]


async def test_calls_before_connect_raise_connection_error(url: str, queue: str) -> None:
    backend = PostgresBackend.from_url(url)
    with pytest.raises(BackendConnectionError, match="not connected"):
        await backend.size(queue)
    await backend.connect()
    await backend.connect()  # idempotent
    await backend.disconnect()
    await backend.disconnect()
    with pytest.raises(BackendConnectionError):
        await backend.pop(queue)


async def test_unreachable_server_raises_connection_error_without_password() -> None:
    backend = PostgresBackend.from_url("postgresql://postgres:hunter2@127.0.0.1:1/test")
    with pytest.raises(BackendConnectionError) as info:
        await backend.connect()
    assert "hunter2" not in str(info.value)
    assert not backend.is_connected


async def test_listen_false_polls(schema: str, queue: str) -> None:
    async with PostgresBackend.from_url(url_for(schema, listen="false")) as polling, \
            PostgresBackend.from_url(url_for(schema)) as writer:
        assert (await polling.server_info())["listening"] is False
        waiter = asyncio.create_task(polling.pop(queue, timeout=3))
        await asyncio.sleep(0.1)
        await writer.append(queue, [task("p")])
        assert [t["id"] for t in await waiter] == ["p"]


async def test_results_are_notified_only_while_someone_waits(
    backend: PostgresBackend, url: str, queue: str
) -> None:
    heard: list[str] = []
    spy = await asyncpg.connect(SERVER_URL)
    try:
        await spy.add_listener(backend.channel, lambda *args: heard.append(args[3]))
        await backend.append(queue, [task("quiet"), task("loud")])
        quiet, loud = await backend.pop(queue, 2)
        heard.clear()
        await backend.store_result(queue, finished(quiet))
        await asyncio.sleep(0.1)
        assert not [p for p in heard if p.startswith("r")]  # nobody waited: no NOTIFY
        async with PostgresBackend.from_url(url) as waiter_backend:
            waiter = asyncio.create_task(waiter_backend.get_results(queue, ["loud"], timeout=5))
            await asyncio.sleep(0.1)
            started = time.monotonic()
            await backend.store_result(queue, finished(loud))
            assert "loud" in await waiter
            assert time.monotonic() - started < 0.5
        assert [p for p in heard if p.startswith("r")]
        # The waiter unregistered when it returned; a dead session's row is purged.
        conn = await asyncpg.connect(SERVER_URL)
        try:
            table = f"{quote_ident(backend.schema)}.result_waiters"
            assert await conn.fetchval(f"SELECT count(*) FROM {table} WHERE queue = $1", queue) == 0
            await conn.execute(f"INSERT INTO {table} (token, queue, pid) VALUES (gen_random_uuid(), $1, -1)",
                               queue)
            await backend.purge_expired()
            assert await conn.fetchval(f"SELECT count(*) FROM {table} WHERE queue = $1", queue) == 0
        finally:
            await conn.close()
    finally:
        await spy.close()
