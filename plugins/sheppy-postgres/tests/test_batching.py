"""Coalesced ``store_result``: concurrent finished writes share one statement, yet every caller gets
its own record's answer, exactly as with one statement per call."""

from __future__ import annotations

import asyncio
from typing import Any

from sheppy_postgres import PostgresBackend
from sheppy_postgres._batching import FinishedWrite

from sheppy_core.exceptions import BackendError

from .conftest import finished, task


class _Counting:
    """Counts the statements the batcher sends (wraps the backend's two writers)."""

    def __init__(self, backend: PostgresBackend) -> None:
        self.single = 0
        self.many: list[int] = []
        batcher = backend._results
        one, many = batcher._single, batcher._many

        async def count_one(queue: str, write: FinishedWrite) -> bool:
            self.single += 1
            return await one(queue, write)

        async def count_many(queue: str, writes: list[FinishedWrite]) -> set[str]:
            self.many.append(len(writes))
            return await many(queue, writes)

        batcher._single, batcher._many = count_one, count_many


async def test_concurrent_finished_writes_share_one_statement(backend: PostgresBackend, queue: str) -> None:
    await backend.append(queue, [task(f"t{i}", i=i) for i in range(20)])
    claimed = await backend.pop(queue, limit=20)
    counting = _Counting(backend)
    writes: list[dict[str, Any]] = [finished(r, result=r["payload"]["i"]) for r in claimed]
    writes.append(finished(task("unknown")))  # never stored: False, and it does not spoil the others
    writes.append(finished(claimed[0], status="failed", error="boom"))  # same id again: applied after
    answers = await asyncio.gather(*(backend.store_result(queue, w) for w in writes))
    assert answers == [True] * 20 + [False, True]
    assert counting.many == [21] and counting.single == 1  # second write of t0 in a round of its own
    results = await backend.get_results(queue, [f"t{i}" for i in range(20)])
    assert len(results) == 20
    assert results["t0"]["status"] == "failed" and results["t0"]["error"] == "boom"
    assert all(results[f"t{i}"]["result"] == i and results[f"t{i}"]["claimed_by"] is None
               for i in range(1, 20))
    stats = await backend.get_stats(queue)
    assert stats["completed"] == 19 and stats["failed"] == 1 and stats["processing"] == 0


async def test_batched_writes_keep_each_records_retention(url: str, queue: str) -> None:
    backend = PostgresBackend.from_url(url)
    backend.ttl, backend.error_ttl = 3600.0, 0.05
    await backend.connect()
    try:
        await backend.append(queue, [task("ok"), task("bad")])
        ok, bad = sorted(await backend.pop(queue, limit=2), key=lambda r: str(r["id"]))[::-1]
        assert await asyncio.gather(
            backend.store_result(queue, finished(ok)), backend.store_result(queue, finished(bad, "failed"))
        ) == [True, True]
        await asyncio.sleep(0.2)
        results = await backend.get_results(queue, ["ok", "bad"])
        assert list(results) == ["ok"]  # the failed record's shorter retention passed
    finally:
        await backend.disconnect()


async def test_failed_batch_falls_back_to_one_statement_per_record(
    backend: PostgresBackend, queue: str
) -> None:
    await backend.append(queue, [task("a"), task("b")])
    a, b = await backend.pop(queue, limit=2)
    batcher = backend._results

    async def broken(queue_key: str, writes: list[FinishedWrite]) -> set[str]:
        raise BackendError("batch refused")

    batcher._many = broken
    assert await asyncio.gather(
        backend.store_result(queue, finished(a)), backend.store_result(queue, finished(task("zz"))),
        backend.store_result(queue, finished(b)),
    ) == [True, False, True]
    assert set(await backend.get_results(queue, ["a", "b"])) == {"a", "b"}


async def test_disconnect_waits_for_writes_on_their_way(url: str, queue: str) -> None:
    backend = PostgresBackend.from_url(url)
    await backend.connect()
    await backend.append(queue, [task(f"d{i}") for i in range(5)])
    claimed = await backend.pop(queue, limit=5)
    pending = [asyncio.ensure_future(backend.store_result(queue, finished(r))) for r in claimed]
    await asyncio.sleep(0)  # the writes are queued, not yet sent
    await backend.disconnect()
    assert [await p for p in pending] == [True] * 5
    other = PostgresBackend.from_url(url)
    await other.connect()
    try:
        assert len(await other.get_results(queue, [f"d{i}" for i in range(5)])) == 5
        assert (await other.get_stats(queue))["completed"] == 5
    finally:
        await other.disconnect()
