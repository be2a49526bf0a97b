"""Redis restarts under a running backend (a redis-server this test owns): the backend reports the
outage as BackendConnectionError, reconnects by itself, and nothing it acknowledged is lost."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sheppy_redis import RedisBackend
from sheppy_redis_testing import RedisServer

from sheppy_core.exceptions import BackendConnectionError


@pytest.fixture
def server(tmp_path: Path) -> Iterator[RedisServer]:
    own = RedisServer(tmp_path / "redis")
    own.start()
    yield own
    own.stop()


def finished(claim: dict[str, object]) -> dict[str, object]:
    return {**claim, "status": "completed", "finished_at": datetime.now(UTC).isoformat()}


async def test_backend_survives_a_redis_restart(server: RedisServer) -> None:
    producer = RedisBackend(server.url, prefix="restart")
    worker = RedisBackend(server.url, prefix="restart")
    await producer.connect()
    await worker.connect()
    try:
        ids = [f"r{i}" for i in range(20)]
        assert all(await producer.append("q", [{"id": t, "spec": {"func": "m:f"}} for t in ids]))
        claims = await worker.pop("q", limit=5, worker_id="w", lease=60)
        for claim in claims[:3]:
            assert await worker.store_result("q", finished(claim))

        blocked = asyncio.create_task(worker.pop("other", timeout=30))
        await asyncio.sleep(0.1)
        server.kill()  # SIGKILL: only what was fsynced survives (appendfsync always)

        with pytest.raises(BackendConnectionError):
            await asyncio.wait_for(blocked, 10)
        with pytest.raises(BackendConnectionError):
            await producer.size("q")
        with pytest.raises(BackendConnectionError):
            await worker.pop("q")

        server.start()  # same port, same data directory
        stats = await producer.get_stats("q")
        assert (stats["pending"], stats["processing"], stats["completed"]) == (15, 2, 3)
        assert sorted(r["id"] for r in await producer.get_all_tasks("q")) == sorted(ids)

        # Scripts were flushed with the restart: EVALSHA falls back to EVAL transparently, also for
        # results stored concurrently (which share one pipeline).
        waiting = asyncio.create_task(producer.get_results("q", ids, timeout=20))
        done = {c["id"] for c in claims[:3]}
        stored = await asyncio.gather(*(worker.store_result("q", finished(c)) for c in claims[3:]))
        assert stored == [True, True]
        done.update(c["id"] for c in claims[3:])
        while batch := await worker.pop("q", limit=4, timeout=0.5):
            for claim in batch:
                assert await worker.store_result("q", finished(claim))
                done.add(claim["id"])
        assert done == set(ids)
        results = await asyncio.wait_for(waiting, 10)
        assert set(results) == set(ids)
        assert (await producer.get_stats("q"))["completed"] == 20
    finally:
        await producer.disconnect()
        await worker.disconnect()
