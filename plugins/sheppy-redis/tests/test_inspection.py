"""The operator inspection API on Redis: ``list_tasks`` pages from sorted sets (order, filters, cursor,
expiry, the index of stores written before it existed) and the worker registry.

The conformance suite checks the contract's clauses; these tests check what is Redis's own: where the
listing comes from, that a page reads about ``limit`` records whatever the store holds, and that a store
written by an earlier version is indexed on first use.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import redis.asyncio as redis_asyncio
from sheppy_redis import RedisBackend
from sheppy_redis._keys import QueueKeys
from sheppy_redis_testing import RedisServer, write_stored_text

from sheppy_core.backend import TASK_PAGES, WORKER_REGISTRY, TaskPage, is_quarantined
from sheppy_core.exceptions import BackendInputError

Factory = Callable[..., RedisBackend]
T0 = datetime(2026, 1, 1, tzinfo=UTC)


def record(task_id: str, second: float, func: str = "jobs:work", **extra: Any) -> dict[str, Any]:
    created = (T0 + timedelta(seconds=second)).isoformat()
    return {"id": task_id, "spec": {"func": func}, "created_at": created, **extra}


def finished(claim: dict[str, Any], status: str = "completed") -> dict[str, Any]:
    return {**claim, "status": status, "finished_at": datetime.now(UTC).isoformat()}


async def every_page(backend: RedisBackend, queue: str, limit: int, **filters: Any) -> list[list[str]]:
    pages: list[list[str]] = []
    cursor = None
    while True:
        page: TaskPage = await backend.list_tasks(queue, cursor=cursor, limit=limit, **filters)
        pages.append([r["id"] for r in page.records])
        if page.next_cursor is None:
            return pages
        cursor = page.next_cursor


def flat(pages: list[list[str]]) -> list[str]:
    return [task_id for page in pages for task_id in page]


async def test_capabilities_are_declared(backend: RedisBackend) -> None:
    assert {TASK_PAGES, WORKER_REGISTRY} <= backend.capabilities


async def test_pages_are_newest_first_then_by_id_in_code_point_order(backend: RedisBackend) -> None:
    ids = ["b", "a", "é", "Z", "z", "a1"]  # all created at the same moment: the id decides
    assert all(await backend.append("q", [record(i, 5) for i in ids]))
    assert all(await backend.append("q", [record("old", 1), record("new", 9)]))
    pages = await every_page(backend, "q", limit=3)
    assert flat(pages) == ["new", *sorted(ids, reverse=True), "old"]
    assert [len(p) for p in pages] == [3, 3, 2]


async def test_filters_by_status_func_and_time(backend: RedisBackend) -> None:
    assert all(await backend.append("q", [record(f"t{i}", i, func=f"jobs:f{i % 2}") for i in range(10)]))
    assert await backend.schedule("q", record("later", 20), T0 + timedelta(days=3650))
    claims = await backend.pop("q", limit=4, worker_id="w")  # t0..t3: processing
    assert [c["id"] for c in claims] == ["t0", "t1", "t2", "t3"]
    assert await backend.store_result("q", finished(claims[0]))
    assert await backend.store_result("q", finished(claims[1], "failed"))
    retry_at = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    assert await backend.store_result("q", {**claims[2], "status": "retrying", "next_retry_at": retry_at})
    assert await backend.cancel("q", "t9") is not None

    async def ids(**filters: Any) -> list[str]:
        return flat(await every_page(backend, "q", limit=2, **filters))

    assert await ids(status="completed") == ["t0"]
    assert await ids(status="failed") == ["t1"]
    assert await ids(status="retrying") == ["t2"]
    assert await ids(status="processing") == ["t3"]
    assert await ids(status="pending") == ["t8", "t7", "t6", "t5", "t4"]
    assert await ids(status="cancelled") == ["t9"]
    assert await ids(status="scheduled") == ["later"]
    assert await ids(status="crashed") == []
    assert await ids(func="jobs:f1") == ["t9", "t7", "t5", "t3", "t1"]
    assert await ids(func="jobs:f1", status="pending") == ["t7", "t5"]
    assert await ids(func="jobs:nothing") == []
    window = {"since": T0 + timedelta(seconds=3), "until": T0 + timedelta(seconds=7)}
    assert await ids(**window) == ["t6", "t5", "t4", "t3"]
    assert await ids(status="pending", **window) == ["t6", "t5", "t4"]
    assert await ids(func="jobs:f0", **window) == ["t6", "t4"]
    # The records come as get_tasks has them.
    page = await backend.list_tasks("q", status="processing")
    assert page.records == [(await backend.get_tasks("q", ["t3"]))["t3"]]


async def test_an_acknowledged_task_is_still_listed_as_processing(backend: RedisBackend) -> None:
    assert all(await backend.append("q", [record("a", 1), record("b", 2), record("c", 3)]))
    claims = await backend.pop("q", limit=2, worker_id="w")
    assert await backend.acknowledge("q", "a")  # released, status left as it was
    assert flat(await every_page(backend, "q", limit=1, status="processing")) == ["b", "a"]
    assert flat(await every_page(backend, "q", limit=1, status="pending")) == ["c"]
    assert await backend.store_result("q", finished(claims[0]))
    assert flat(await every_page(backend, "q", limit=1, status="processing")) == ["b"]
    assert flat(await every_page(backend, "q", limit=1, status="completed")) == ["a"]


async def test_a_walk_cut_by_its_budget_resumes_where_it_stopped(
    backend: RedisBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    # status and func together: one set is walked, the other filter checked per record; a script call
    # looks at a bounded number of members and the client resumes after the last one.
    monkeypatch.setattr("sheppy_redis._listing._EXAMINED_PER_CALL", 3)
    assert all(await backend.append("q", [record(f"t{i:02}", i, func=f"jobs:f{i % 4}") for i in range(24)]))
    claims = await backend.pop("q", limit=24, worker_id="w")
    for claim in claims:
        if int(claim["id"][1:]) % 3:
            assert await backend.store_result("q", finished(claim))
    want = [f"t{i:02}" for i in range(23, -1, -1) if i % 4 == 1 and i % 3]
    assert flat(await every_page(backend, "q", limit=2, status="completed", func="jobs:f1")) == want


async def test_the_listing_key_stays_when_the_record_moves_on(backend: RedisBackend) -> None:
    assert all(await backend.append("q", [record("a", 1), record("b", 2)]))
    (claim,) = await backend.pop("q", worker_id="w")
    assert claim["id"] == "a"
    # store_result writes a new body (with a later created_at even): the key of the append stays.
    assert await backend.store_result("q", finished({**claim, "created_at": (T0 + timedelta(9)).isoformat()}))
    assert flat(await every_page(backend, "q", limit=5)) == ["b", "a"]


async def test_deleted_and_requeued_records_leave_their_old_place(backend: RedisBackend) -> None:
    assert all(await backend.append("q", [record(f"t{i}", i) for i in range(5)]))
    claims = await backend.pop("q", limit=2, worker_id="w")
    for claim in claims:
        assert await backend.store_result("q", finished(claim))
    assert await backend.delete_task("q", "t0")
    assert await backend.append("q", [record("t1", 50)], unique=False)  # stored again, newer
    assert flat(await every_page(backend, "q", limit=2)) == ["t1", "t4", "t3", "t2"]
    assert flat(await every_page(backend, "q", limit=2, status="completed")) == []
    assert flat(await every_page(backend, "q", limit=2, status="pending")) == ["t1", "t4", "t3", "t2"]
    assert await backend.clear("q") == 4
    assert flat(await every_page(backend, "q", limit=2)) == []
    assert flat(await every_page(backend, "q", limit=2, status="processing")) == []
    client = redis_asyncio.Redis.from_url(backend.url)
    try:
        base = QueueKeys.for_queue(backend.prefix, "q").base
        assert await client.keys(f"{base}*") == []  # clear leaves no index; listing writes none
    finally:
        await client.aclose()


async def test_a_cursor_continues_while_records_come_and_go(backend: RedisBackend) -> None:
    assert all(await backend.append("q", [record(f"t{i:02}", i) for i in range(10)]))
    first = await backend.list_tasks("q", limit=4)
    assert [r["id"] for r in first.records] == ["t09", "t08", "t07", "t06"]
    assert all(await backend.append("q", [record("newest", 99)]))
    claims = await backend.pop("q", limit=10, worker_id="w")
    for claim in claims:
        if claim["id"] in ("t06", "t05"):
            assert await backend.store_result("q", finished(claim))
    assert await backend.delete_task("q", "t05")  # the next record to show
    assert await backend.delete_task("q", "t06")  # the last one shown
    second = await backend.list_tasks("q", limit=4, cursor=first.next_cursor)
    assert [r["id"] for r in second.records] == ["t04", "t03", "t02", "t01"]


async def test_expired_records_drop_out_and_pages_stay_full(make_backend: Factory) -> None:
    backend = make_backend(ttl=0.5)
    await backend.connect()
    assert all(await backend.append("q", [record(f"t{i:02}", i) for i in range(12)]))
    claims = await backend.pop("q", limit=6, worker_id="w")  # t00..t05
    for claim in claims:
        assert await backend.store_result("q", finished(claim))
    deadline = time.monotonic() + 20
    while len(await backend.get_tasks("q", [c["id"] for c in claims])) > 0:
        assert time.monotonic() < deadline, "finished records did not expire"
        await asyncio.sleep(0.05)
    page = await backend.list_tasks("q", limit=7)
    assert [r["id"] for r in page.records] == [f"t{i:02}" for i in range(11, 5, -1)]
    assert page.next_cursor is None
    assert await backend.list_tasks("q", status="completed") == TaskPage([], None)
    assert (await backend.list_tasks("q", func="jobs:work", limit=3)).next_cursor is not None


async def test_an_unreadable_record_is_listed_as_its_stand_in(backend: RedisBackend) -> None:
    assert all(await backend.append("q", [record("good", 1)]))
    await write_stored_text(backend, "q", "bad", "not json")
    page = await backend.list_tasks("q", status="pending")
    assert [r["id"] for r in page.records] == ["bad", "good"]  # stored later than good's created_at
    assert is_quarantined(page.records[0])
    assert [r["id"] for r in (await backend.list_tasks("q", func="jobs:work")).records] == ["good"]


async def test_bad_arguments_are_input_errors(backend: RedisBackend) -> None:
    with pytest.raises(BackendInputError, match="status"):
        await backend.list_tasks("q", status="done")
    with pytest.raises(BackendInputError, match="cursor"):
        await backend.list_tasks("q", cursor="not a cursor")
    with pytest.raises(BackendInputError, match="limit"):
        await backend.list_tasks("q", limit=0)


async def test_a_store_written_before_the_index_is_indexed_on_first_listing(backend: RedisBackend) -> None:
    assert all(await backend.append("q", [record(f"t{i}", i, func=f"jobs:f{i % 2}") for i in range(6)]))
    claims = await backend.pop("q", limit=2, worker_id="w")
    assert await backend.store_result("q", finished(claims[0]))
    base = QueueKeys.for_queue(backend.prefix, "q").base
    client = redis_asyncio.Redis.from_url(backend.url)
    try:
        # What an earlier sheppy-redis left: records and places, no listing index.
        index = [k for k in await client.keys(f"{base}l*") if k != f"{base}lease".encode()]
        assert index
        await client.unlink(*index)
        for i in range(6):
            await client.hdel(f"{base}t:t{i}", "_ls")
    finally:
        await client.aclose()
    assert flat(await every_page(backend, "q", limit=4)) == [f"t{i}" for i in range(5, -1, -1)]
    assert flat(await every_page(backend, "q", limit=4, status="completed")) == ["t0"]
    assert flat(await every_page(backend, "q", limit=4, status="processing")) == ["t1"]
    assert flat(await every_page(backend, "q", limit=4, status="pending", func="jobs:f1")) == ["t5", "t3"]
    # From then on the index follows the records as usual.
    (claim,) = await backend.pop("q", worker_id="w")
    assert claim["id"] == "t2"
    assert flat(await every_page(backend, "q", limit=4, status="processing")) == ["t2", "t1"]


# -- cost: a page reads about `limit` records, whatever the store holds ------------------------------


@pytest.fixture(scope="module")
def own_server(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """A redis-server of this module's own: its command counters see nothing but this test."""
    server = RedisServer(tmp_path_factory.mktemp("redis-cost"))
    server.start()
    yield server
    server.stop()


async def commands_run(client: Any) -> dict[str, int]:
    stats = await client.info("commandstats")
    return {name.removeprefix("cmdstat_"): int(value["calls"]) for name, value in stats.items()}


async def test_a_page_reads_about_limit_records_with_every_filter(own_server: RedisServer) -> None:
    backend = RedisBackend(own_server.url, prefix="cost")
    await backend.connect()
    client = redis_asyncio.Redis.from_url(own_server.url)
    try:
        finished_count, limit = 20_000, 25
        batch = [record(f"done-{i:05}", i, func="jobs:done") for i in range(finished_count)]
        assert all(await backend.append("q", batch))
        while claims := await backend.pop("q", limit=1000, worker_id="w"):
            stored = await asyncio.gather(*(backend.store_result("q", finished(c)) for c in claims))
            assert all(stored)
        # A few pending ones, older than every finished record, with a func of their own.
        todo = [record(f"todo-{i}", -100 + i, func="jobs:todo") for i in range(5)]
        assert all(await backend.append("q", todo))
        assert len(await backend.pop("q", limit=2, worker_id="w")) == 2  # two of them in flight
        assert (await backend.get_stats("q"))["completed"] == finished_count
        await backend.list_tasks("q")  # scripts loaded, index in place

        middle = T0 + timedelta(seconds=finished_count // 2)
        cases: dict[str, tuple[dict[str, Any], int]] = {  # filters, records on a page
            "none": ({}, limit),
            "completed": ({"status": "completed"}, limit),
            "pending": ({"status": "pending"}, 3),
            "processing": ({"status": "processing"}, 2),
            "func": ({"func": "jobs:todo"}, 5),
            "func+status": ({"func": "jobs:todo", "status": "pending"}, 3),
            "window": ({"since": middle - timedelta(seconds=100), "until": middle}, limit),
        }
        for name, (filters, shown) in cases.items():
            cursor = None
            for _ in range(2 if shown == limit else 1):  # the first page, and one from a cursor
                await client.config_resetstat()
                page = await backend.list_tasks("q", limit=limit, cursor=cursor, **filters)
                calls = await commands_run(client)
                assert len(page.records) == shown, name
                # Each record looked at costs a few commands inside the script (HGET, HGETALL).
                touched = sum(v for k, v in calls.items() if k not in ("config", "info"))
                assert touched <= 6 * (limit + 1) + 10, (name, calls)
                assert not {"sscan", "smembers", "scan", "keys"} & calls.keys(), (name, calls)
                cursor = page.next_cursor
    finally:
        await client.aclose()
        await backend.disconnect()


# -- the worker registry -----------------------------------------------------------------------------


def worker(worker_id: str, **extra: Any) -> dict[str, Any]:
    return {"id": worker_id, "host": "h", "pid": 1, "queues": ["q"], "in_flight": 0, **extra}


async def test_workers_register_refresh_unregister_and_expire(backend: RedisBackend) -> None:
    assert await backend.list_workers() == []
    await backend.register_worker(worker("w-b"), ttl=60)
    await backend.register_worker(worker("w-a", in_flight=3), ttl=60)
    await backend.register_worker(worker("w-b", in_flight=7), ttl=60)  # a refresh replaces it
    assert await backend.list_workers() == [worker("w-a", in_flight=3), worker("w-b", in_flight=7)]
    assert await backend.unregister_worker("w-a") is True
    assert await backend.unregister_worker("w-a") is False
    assert await backend.list_workers() == [worker("w-b", in_flight=7)]

    await backend.register_worker(worker("w-short"), ttl=0.3)
    assert [w["id"] for w in await backend.list_workers()] == ["w-b", "w-short"]
    deadline = time.monotonic() + 20
    while [w["id"] for w in await backend.list_workers()] != ["w-b"]:
        assert time.monotonic() < deadline, "a worker past its ttl is still listed"
        await asyncio.sleep(0.05)
    assert await backend.unregister_worker("w-short") is False
    await backend.clear("q")
    assert [w["id"] for w in await backend.list_workers()] == ["w-b"]


async def test_workers_are_shared_by_backends_of_one_store(make_backend: Factory) -> None:
    one, two = make_backend(), make_backend()
    await one.connect()
    await two.connect()
    await one.register_worker(worker("w1"), ttl=60)
    assert await two.list_workers() == [worker("w1")]


@pytest.mark.parametrize(
    ("record_", "ttl", "problem"),
    [({"host": "h"}, 10.0, "id"), ({"id": 5}, 10.0, "id"), (worker("w"), 0.0, "ttl"),
     (worker("w"), -1.0, "ttl")],
)
async def test_bad_worker_records_are_input_errors(
    backend: RedisBackend, record_: dict[str, Any], ttl: float, problem: str
) -> None:
    with pytest.raises(BackendInputError, match=problem):
        await backend.register_worker(record_, ttl=ttl)
    assert await backend.list_workers() == []

