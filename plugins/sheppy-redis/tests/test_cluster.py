"""Redis Cluster: a local 3-master cluster this module starts on free loopback ports (and stops).

Every key of a queue carries the queue's encoded hash tag, so each Lua script touches one slot; queue
names full of braces and colons must land in different slots and still work.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from redis.crc import key_slot
from sheppy_conformance import BackendConformance
from sheppy_redis import RedisBackend
from sheppy_redis._keys import QueueKeys
from sheppy_redis_testing import RedisClusterNodes, write_stored_text

from sheppy_core.backend import Backend

NASTY_NAMES = ["plain", "{braces}", "}{", "a:b:{c}", "*", "with space", "日本語", "%_'\""]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisClusterNodes]:
    nodes = RedisClusterNodes(Path(tmp_path_factory.mktemp("cluster")))
    try:
        nodes.start()
        yield nodes
    finally:
        nodes.stop()


async def test_contract_operations_on_a_cluster(cluster: RedisClusterNodes) -> None:
    slots = {key_slot(QueueKeys.for_queue("sheppy", n).ids.encode()) for n in NASTY_NAMES}
    assert len(slots) > 1  # the queues really are spread over the cluster
    producer = RedisBackend.from_url(cluster.url)
    worker = RedisBackend.from_url(cluster.url)
    await producer.connect()
    await worker.connect()
    try:
        assert (await producer.server_info())["cluster"] is True
        for name in NASTY_NAMES:
            ids = [f"{name}-{i}" for i in range(3)]
            stored = await producer.append(name, [{"id": t, "spec": {"func": "m:f"}} for t in ids])
            assert stored == [True] * 3
            assert await producer.append(name, [{"id": ids[0]}]) == [False]
            soon = datetime.now(UTC) + timedelta(milliseconds=200)
            assert await producer.schedule(name, {"id": f"{name}-later"}, soon)
            waiting = asyncio.create_task(producer.get_results(name, ids, timeout=10))
            blocked = asyncio.create_task(worker.pop(name, limit=3, timeout=5))
            claims = await blocked
            assert [c["id"] for c in claims] == ids
            assert await worker.heartbeat(name, ids, worker_id=worker.client_id) == ids
            for claim in claims:
                done = {**claim, "status": "completed", "finished_at": datetime.now(UTC).isoformat()}
                assert await worker.store_result(name, done)
            assert set(await asyncio.wait_for(waiting, 5)) == set(ids)
            await asyncio.sleep(0.25)
            assert [r["id"] for r in await worker.pop_scheduled(name)] == [f"{name}-later"]
            assert (await producer.cancel(name, f"{name}-later") or {}).get("status") == "cancelled"
            assert await producer.acquire_rate_limit(name, "k", 1, 60, "t1") is None
            assert await producer.acquire_rate_limit(name, "k", 1, 60, "t2") is not None
            stats = await producer.get_stats(name)
            assert (stats["completed"], stats["cancelled"], stats["pending"]) == (3, 1, 0)
        assert set(NASTY_NAMES) <= set(await producer.list_queues())
        for name in NASTY_NAMES:
            assert await producer.clear(name) == 4
        assert not set(NASTY_NAMES) & set(await producer.list_queues())
    finally:
        await producer.disconnect()
        await worker.disconnect()


class TestClusterConformance(BackendConformance):
    """The whole conformance suite against the cluster."""

    @pytest.fixture
    def backend_factory(self, cluster: RedisClusterNodes) -> object:
        def make() -> Backend:
            return RedisBackend.from_url(cluster.url)

        return make

    async def write_stored_text(self, backend: Backend, queue_name: str, task_id: str, text: str) -> None:
        await write_stored_text(backend, queue_name, task_id, text)


async def test_large_batch_on_a_cluster_keeps_order(cluster: RedisClusterNodes) -> None:
    backend = RedisBackend.from_url(cluster.url)
    await backend.connect()
    try:
        ids = [f"c{i:05d}" for i in range(2100)]
        assert await backend.append("{big}", [{"id": t} for t in ids]) == [True] * len(ids)
        assert [r["id"] for r in await backend.get_pending("{big}", 3000)] == ids
        assert await backend.clear("{big}") == len(ids)
    finally:
        await backend.disconnect()


def test_the_nodes_ports_never_take_each_others_bus_ports(monkeypatch: pytest.MonkeyPatch) -> None:
    """A node whose port is another node's bus port (+10000) cannot start ("Address already in use",
    seen once under load): the ports of one cluster are chosen together."""
    import random

    import sheppy_redis_testing

    picks = iter([30000, 20000, 21000])
    monkeypatch.setattr(random, "randint", lambda low, high: next(picks))
    monkeypatch.setattr(sheppy_redis_testing, "_bindable", lambda port: True)
    taken: set[int] = set()
    first = sheppy_redis_testing.free_cluster_port(taken)
    second = sheppy_redis_testing.free_cluster_port(taken)
    assert (first, second) == (30000, 21000)  # 20000's bus port is 30000, the first node's own port
    assert taken == {30000, 40000, 21000, 31000}
