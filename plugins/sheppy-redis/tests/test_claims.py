"""Claims against the real Redis: Lua atomicity under concurrency, leases, redelivery, blocking waits."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sheppy_redis import RedisBackend

from sheppy_core.backend import from_iso

Factory = Callable[..., RedisBackend]


def record(task_id: str, **extra: Any) -> dict[str, Any]:
    return {"id": task_id, "status": "new", "spec": {"func": "m:f", "args": [task_id]}, **extra}


async def connected(make_backend: Factory, count: int, **kwargs: Any) -> list[RedisBackend]:
    backends = [make_backend(**kwargs) for _ in range(count)]
    await asyncio.gather(*(b.connect() for b in backends))
    return backends


async def test_concurrent_pops_on_separate_objects_claim_each_task_once(make_backend: Factory) -> None:
    producer, *workers = await connected(make_backend, 9)
    ids = [f"t{i}" for i in range(600)]
    assert all(await producer.append("work", [record(t) for t in ids]))

    async def drain(worker: RedisBackend, index: int) -> list[str]:
        got: list[str] = []
        while batch := await worker.pop("work", limit=1 + index % 3, worker_id=f"w{index}"):
            got.extend(r["id"] for r in batch)
        return got

    claimed = await asyncio.gather(*(drain(w, i) for i, w in enumerate(workers)))
    counts = Counter(t for got in claimed for t in got)
    assert sorted(counts) == sorted(ids)
    assert set(counts.values()) == {1}
    assert sum(1 for got in claimed if got) > 1  # the work really was shared
    stats = await producer.get_stats("work")
    assert stats["pending"] == 0
    assert stats["processing"] == len(ids)


async def test_concurrent_unique_appends_store_each_id_once(make_backend: Factory) -> None:
    backends = await connected(make_backend, 6)
    ids = [f"u{i}" for i in range(50)]
    results = await asyncio.gather(*(b.append("uniq", [record(t) for t in ids]) for b in backends))
    per_id = [sum(r[i] for r in results) for i in range(len(ids))]
    assert per_id == [1] * len(ids)
    assert await backends[0].size("uniq") == len(ids)


async def test_concurrent_pop_scheduled_moves_each_task_once(make_backend: Factory) -> None:
    backends = await connected(make_backend, 5)
    past = datetime.now(UTC) - timedelta(seconds=1)
    for i in range(100):
        assert await backends[0].schedule("sched", record(f"s{i}"), past + timedelta(milliseconds=i))
    moved = await asyncio.gather(*(b.pop_scheduled("sched") for b in backends))
    counts = Counter(r["id"] for batch in moved for r in batch)
    assert len(counts) == 100 and set(counts.values()) == {1}
    assert await backends[0].size("sched") == 100
    pending = await backends[0].get_pending("sched", 100)
    assert [r["id"] for r in pending] == [f"s{i}" for i in range(100)]  # due order


async def test_lease_expiry_redelivers_to_another_object_first(make_backend: Factory) -> None:
    first, second = await connected(make_backend, 2)
    await first.append("lease", [record("a"), record("b")])
    [claim] = await first.pop("lease", worker_id="w1", lease=1.0)
    assert claim["id"] == "a" and claim["claimed_by"] == "w1" and claim["deliveries"] == 1
    stored = (await second.get_tasks("lease", ["a"]))["a"]
    assert stored["claimed_by"] == "w1" and stored["status"] == "processing"
    assert from_iso(stored["lease_expires_at"]) > datetime.now(UTC)
    await asyncio.sleep(1.1)
    # The expired claim comes back before the queued task "b".
    [again] = await second.pop("lease", worker_id="w2")
    assert again["id"] == "a" and again["claimed_by"] == "w2" and again["deliveries"] == 2
    # The first worker lost the claim: its heartbeat says so and changes nothing.
    assert await first.heartbeat("lease", ["a"], worker_id="w1") == []
    assert (await second.get_tasks("lease", ["a"]))["a"]["claimed_by"] == "w2"


async def test_heartbeat_extends_the_lease_in_the_store(make_backend: Factory) -> None:
    worker, thief = await connected(make_backend, 2)
    await worker.append("hb", [record("x")])
    await worker.pop("hb", worker_id="w", lease=1.0)
    for _ in range(4):
        await asyncio.sleep(0.4)  # four heartbeats outlive the first lease by far
        assert await worker.heartbeat("hb", ["x", "unknown"], worker_id="w", lease=1.0) == ["x"]
        assert await thief.pop("hb") == []
    await asyncio.sleep(1.1)
    assert [r["id"] for r in await thief.pop("hb")] == ["x"]


async def test_blocking_pop_wakes_on_append_and_on_lease_expiry(make_backend: Factory) -> None:
    producer, consumer = await connected(make_backend, 2)
    waiting = asyncio.create_task(consumer.pop("block", timeout=5))
    await asyncio.sleep(0.1)
    assert not waiting.done()
    started = time.monotonic()
    await producer.append("block", [record("b1")])
    assert [r["id"] for r in await waiting] == ["b1"]
    assert time.monotonic() - started < 1.0  # woken, not timed out (5 s)
    # Nobody appends: the blocked pop still wakes when the claim it could take expires.
    await producer.append("block", [record("b2")])
    started = time.monotonic()
    await producer.pop("block", lease=0.5)
    again = await consumer.pop("block", timeout=5)
    assert [r["id"] for r in again] == ["b2"]
    assert 0.45 < time.monotonic() - started < 2.5


async def test_blocking_pop_times_out_empty(backend: RedisBackend) -> None:
    started = time.monotonic()
    assert await backend.pop("empty", timeout=0.3) == []
    assert 0.25 < time.monotonic() - started < 2.5


async def test_cancelled_blocking_pop_claims_nothing(make_backend: Factory) -> None:
    producer, consumer = await connected(make_backend, 2)
    waiting = asyncio.create_task(consumer.pop("cancel", timeout=5))
    await asyncio.sleep(0.1)
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    await producer.append("cancel", [record("c")])
    assert await producer.size("cancel") == 1
    assert [r["id"] for r in await consumer.pop("cancel", timeout=1)] == ["c"]


async def test_many_idle_workers_all_get_work_from_one_batch(make_backend: Factory) -> None:
    producer, *workers = await connected(make_backend, 5)
    waiting = [asyncio.create_task(w.pop("herd", timeout=5)) for w in workers]
    await asyncio.sleep(0.1)
    await producer.append("herd", [record(f"h{i}") for i in range(4)])
    results = await asyncio.wait_for(asyncio.gather(*waiting), 3)
    assert sorted(r["id"] for batch in results for r in batch) == ["h0", "h1", "h2", "h3"]


async def test_get_results_is_woken_by_store_result_of_another_object(make_backend: Factory) -> None:
    producer, worker = await connected(make_backend, 2)
    await producer.append("res", [record("r1"), record("r2")])
    waiting = asyncio.create_task(producer.get_results("res", ["r1", "r2"], timeout=10))
    await asyncio.sleep(0.1)
    claimed = await worker.pop("res", limit=2)
    now = datetime.now(UTC).isoformat()
    await worker.store_result("res", {**claimed[0], "status": "completed", "finished_at": now, "result": 1})
    await asyncio.sleep(0.05)
    assert not waiting.done()
    started = time.monotonic()
    await worker.store_result("res", {**claimed[1], "status": "failed", "finished_at": now})
    results = await asyncio.wait_for(waiting, 2)
    assert time.monotonic() - started < 1.0  # woken by the notification, not by the 10 s timeout
    assert {k: v["status"] for k, v in results.items()} == {"r1": "completed", "r2": "failed"}
    with pytest.raises(TimeoutError):
        await producer.get_results("res", ["r1", "missing"], timeout=0.2)


async def test_store_result_requeue_and_retry_rules(backend: RedisBackend) -> None:
    await backend.append("rq", [record("a")])
    [claim] = await backend.pop("rq")
    assert await backend.store_result("rq", {**claim, "status": "processing"})
    assert await backend.store_result("rq", {**claim, "status": "processing"})  # idempotent
    assert await backend.size("rq") == 1
    [claim] = await backend.pop("rq")
    later = (datetime.now(UTC) + timedelta(minutes=5)).isoformat()
    assert await backend.store_result("rq", {**claim, "status": "retrying", "next_retry_at": later})
    stats = await backend.get_stats("rq")
    assert (stats["pending"], stats["processing"], stats["scheduled"]) == (0, 0, 1)
    assert abs((await backend.next_scheduled_at("rq") - from_iso(later)).total_seconds()) < 0.001  # type: ignore[operator]
    assert not await backend.store_result("rq", {**claim, "id": "never-stored"})


async def test_ttl_expires_finished_records_and_their_counts(make_backend: Factory) -> None:
    backend = make_backend(ttl=1.0)
    await backend.connect()
    await backend.append("ttl", [record("t"), record("keep", config={"ttl": None})])
    for claim in await backend.pop("ttl", limit=2):
        done = {**claim, "status": "completed", "finished_at": "2026-01-01T00:00:00Z"}
        await backend.store_result("ttl", done)
    assert (await backend.get_stats("ttl"))["completed"] == 2
    await asyncio.sleep(1.2)
    assert (await backend.get_stats("ttl"))["completed"] == 1
    assert [r["id"] for r in await backend.get_all_tasks("ttl")] == ["keep"]
    assert await backend.append("ttl", [record("t")]) == [True]  # the id is free again
    assert (await backend.get_stats("ttl"))["pending"] == 1


async def test_records_round_trip_exactly(backend: RedisBackend) -> None:
    payload = {"big": 2**63 + 1, "float": 0.1, "empty_list": [], "empty_obj": {}, "text": "ü\u2028\U0001f600"}
    await backend.append("exact", [record("e", result=payload)])
    stored = (await backend.get_tasks("exact", ["e"]))["e"]
    assert stored["result"] == payload
    assert type(stored["result"]["empty_list"]) is list


async def test_large_batches_keep_append_order_across_script_chunks(backend: RedisBackend) -> None:
    ids = [f"n{i:05d}" for i in range(2500)]  # three script calls, pipelined in one round trip
    result = await backend.append("big", [record(t) for t in ids] + [record("n00000")])
    assert result == [True] * len(ids) + [False]
    assert [r["id"] for r in await backend.get_pending("big", 3000)] == ids
    assert [r["id"] for r in await backend.pop("big", limit=5)] == ids[:5]


async def test_bad_input_is_refused_with_backend_input_error(backend: RedisBackend) -> None:
    from sheppy_core.exceptions import BackendInputError

    with pytest.raises(BackendInputError):
        await backend.append("bad", [{"spec": {}}])  # no id
    with pytest.raises(BackendInputError):
        await backend.append("bad", [{"id": "x", "payload": object()}])
    with pytest.raises(BackendInputError):
        await backend.append("", [record("x")])
    with pytest.raises(BackendInputError):
        await backend.schedule("bad", record("x"), datetime(2030, 1, 1))  # naive
    with pytest.raises(BackendInputError):
        await backend.pop("bad", limit=0)
    assert await backend.get_all_tasks("bad") == []


async def test_concurrent_store_results_share_round_trips_and_all_land(make_backend: Factory) -> None:
    producer, worker = await connected(make_backend, 2)
    ids = [f"s{i}" for i in range(200)]
    await producer.append("many", [record(t) for t in ids])
    claims = await worker.pop("many", limit=200)
    now = datetime.now(UTC).isoformat()
    records = [{**c, "status": "completed", "finished_at": now} for c in claims]
    unknown = {**records[0], "id": "unknown"}
    outcomes = await asyncio.gather(*(worker.store_result("many", r) for r in [*records, unknown]))
    assert outcomes == [True] * 200 + [False]
    results = await producer.get_results("many", ids, timeout=5)
    assert set(results) == set(ids)
    assert (await producer.get_stats("many"))["completed"] == 200


async def test_disconnect_ends_waits_with_connection_error(make_backend: Factory) -> None:
    from sheppy_core.exceptions import BackendConnectionError

    backend = make_backend()
    await backend.connect()
    await backend.append("gone", [record("w")])
    waiting_result = asyncio.create_task(backend.get_results("gone", ["w"], timeout=10))
    waiting_pop = asyncio.create_task(backend.pop("empty-queue", timeout=10))
    await asyncio.sleep(0.1)
    await backend.disconnect()
    for waiting in (waiting_result, waiting_pop):
        with pytest.raises(BackendConnectionError):
            await asyncio.wait_for(waiting, 5)


async def test_results_merged_into_one_call_keep_each_outcome(make_backend: Factory) -> None:
    # Finished, re-queued, retrying and unknown results of one queue in the same turn share one script
    # call; each still lands in its own place, and a repeat of the same id applies in order.
    producer, worker = await connected(make_backend, 2)
    await producer.append("mix", [record(t) for t in ("done", "again", "later", "twice")])
    claims = {c["id"]: c for c in await worker.pop("mix", limit=4)}
    now = datetime.now(UTC)
    later = (now + timedelta(hours=1)).isoformat()
    outcomes = await asyncio.gather(
        worker.store_result("mix", {**claims["done"], "status": "completed", "finished_at": now.isoformat()}),
        worker.store_result("mix", {**claims["again"], "status": "pending"}),
        worker.store_result("mix", {**claims["later"], "status": "retrying", "next_retry_at": later}),
        worker.store_result("mix", {**claims["twice"], "status": "pending"}),
        worker.store_result("mix", {**claims["twice"], "status": "failed", "finished_at": now.isoformat()}),
        worker.store_result("mix", {**claims["done"], "id": "nobody"}),
    )
    assert list(outcomes) == [True, True, True, True, True, False]
    stats = await producer.get_stats("mix")
    assert (stats["completed"], stats["failed"], stats["pending"], stats["scheduled"]) == (1, 1, 1, 1)
    assert [r["id"] for r in await producer.get_pending("mix", 5)] == ["again"]
    assert (await producer.get_tasks("mix", ["twice"]))["twice"]["status"] == "failed"


async def test_append_keeps_ids_and_bodies_of_any_shape(backend: RedisBackend) -> None:
    # The append script reads records from one packed argument by byte lengths: ids and workflow ids
    # with spaces, newlines, digits only or multi-byte characters must come back unchanged.
    odd = ["1 2 3\n", "ünï cødé ✓", "9", "x" * 300]
    records = [record(t, workflow_id=f"wf {t}", note="line\nbreak ✓") for t in odd]
    assert await backend.append("odd", records) == [True] * 4
    assert await backend.append("odd", records[:2]) == [False, False]
    claimed = await backend.pop("odd", limit=10)
    assert [c["id"] for c in claimed] == odd
    assert [c["workflow_id"] for c in claimed] == [f"wf {t}" for t in odd]
    assert all(c["note"] == "line\nbreak ✓" and c["status"] == "processing" for c in claimed)
