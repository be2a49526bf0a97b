"""Each contract method of SQLiteBackend against a real file (see also test_conformance.py)."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from sheppy_sqlite import LATEST_SCHEMA_VERSION, SQLiteBackend

from sheppy_core.backend import from_iso, to_iso, utcnow
from sheppy_core.exceptions import BackendConnectionError, BackendInputError, TaskStateError

Q = "jobs"


def rec(task_id: str, **fields: Any) -> dict[str, Any]:
    return {"id": task_id, "status": "new", "config": {}, **fields}


def done(record: dict[str, Any], status: str = "completed", **fields: Any) -> dict[str, Any]:
    return {**record, "status": status, "finished_at": to_iso(utcnow()), **fields}


def ids(records: list[dict[str, Any]]) -> list[str]:
    return [r["id"] for r in records]


# -- connection and schema ----------------------------------------------------------------------


async def test_connect_creates_schema_in_wal_mode(backend: SQLiteBackend, db_path: str) -> None:
    info = await backend.server_info()
    assert info["schema_version"] == LATEST_SCHEMA_VERSION
    assert info["server_version"] == sqlite3.sqlite_version
    assert info["journal_mode"] == "wal"
    with sqlite3.connect(db_path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


async def test_connect_is_idempotent_and_reconnect_keeps_data(
    make_backend: Callable[..., SQLiteBackend], db_path: str
) -> None:
    backend = make_backend()
    await backend.connect()
    await backend.connect()
    await backend.append(Q, [rec("a")])
    await backend.disconnect()
    await backend.disconnect()
    assert not backend.is_connected
    await backend.connect()
    assert await backend.size(Q) == 1
    with sqlite3.connect(db_path) as conn:
        assert conn.execute("SELECT count(*) FROM schema_version").fetchone()[0] == LATEST_SCHEMA_VERSION


async def test_concurrent_connects_share_one_opening(
    make_backend: Callable[..., SQLiteBackend], monkeypatch: pytest.MonkeyPatch
) -> None:
    from sheppy_sqlite._store import Store

    opened: list[Store] = []
    original = Store.open

    async def counting_open(store: Store) -> None:
        opened.append(store)
        await original(store)

    monkeypatch.setattr(Store, "open", counting_open)
    backend = make_backend()
    await asyncio.gather(*(backend.connect() for _ in range(5)))
    assert len(opened) == 1
    store = backend._store
    await backend.connect()
    assert backend._store is store, "connecting a connected backend does nothing"
    assert await backend.append(Q, [rec("a")]) == [True]


async def test_newer_schema_is_refused(make_backend: Callable[..., SQLiteBackend], db_path: str) -> None:
    backend = make_backend()
    await backend.connect()
    await backend.disconnect()
    with sqlite3.connect(db_path) as conn:
        conn.execute("INSERT INTO schema_version VALUES (?, 0)", (LATEST_SCHEMA_VERSION + 1,))
    with pytest.raises(Exception, match="newer than this sheppy-sqlite"):
        await make_backend().connect()


async def test_calls_before_connect_raise_connection_error(
    make_backend: Callable[..., SQLiteBackend],
) -> None:
    backend = make_backend()
    with pytest.raises(BackendConnectionError):
        await backend.size(Q)
    with pytest.raises(BackendConnectionError):
        await backend.pop(Q, timeout=1)


async def test_unopenable_file_is_a_connection_error(tmp_path: Any) -> None:
    backend = SQLiteBackend(str(tmp_path / "missing-dir" / "q.db"))
    with pytest.raises(BackendConnectionError, match="missing-dir"):
        await backend.connect()


# -- append / schedule --------------------------------------------------------------------------


async def test_append_unique_and_first_duplicate_wins(backend: SQLiteBackend) -> None:
    assert await backend.append(Q, []) == []
    assert await backend.append(Q, [rec("a", n=1), rec("b"), rec("a", n=2)]) == [True, True, False]
    assert await backend.append(Q, [rec("a", n=3)]) == [False]
    stored = await backend.get_tasks(Q, ["a"])
    assert stored["a"]["n"] == 1
    assert stored["a"]["status"] == "pending"


async def test_append_replace_moves_to_tail_without_duplicates(backend: SQLiteBackend) -> None:
    await backend.append(Q, [rec("a"), rec("b")])
    claimed = await backend.pop(Q)
    assert ids(claimed) == ["a"]
    assert await backend.append(Q, [rec("a", n=2)], unique=False) == [True]
    assert ids(await backend.get_pending(Q, 10)) == ["b", "a"]
    assert (await backend.get_stats(Q))["processing"] == 0, "the claim was dropped"
    assert await backend.size(Q) == 2


async def test_append_rejects_records_without_id(backend: SQLiteBackend) -> None:
    with pytest.raises(BackendInputError):
        await backend.append(Q, [rec("a"), {"status": "new"}])
    assert await backend.size(Q) == 0, "nothing of a refused batch is stored"
    with pytest.raises(BackendInputError):
        await backend.append("", [rec("a")])


async def test_payloads_round_trip(backend: SQLiteBackend) -> None:
    text = "é ü 中文 😀 \u0000 \ud800 ' \" \\ %_*{}:"
    big = "x" * 1_000_000
    await backend.append(Q, [rec("u", text=text, nested={"k": [1, 2.5, None, True]}), rec("big", blob=big)])
    popped = {t["id"]: t for t in await backend.pop(Q, 2)}
    assert popped["u"]["text"] == text
    assert popped["u"]["nested"] == {"k": [1, 2.5, None, True]}
    assert popped["big"]["blob"] == big


async def test_schedule_stores_and_hides_until_due(backend: SQLiteBackend) -> None:
    at = utcnow() + timedelta(seconds=60)
    assert await backend.schedule(Q, rec("s"), at)
    assert not await backend.schedule(Q, rec("s"), at)
    stored = (await backend.get_tasks(Q, ["s"]))["s"]
    assert stored["status"] == "scheduled" and stored["scheduled_at"] == to_iso(at)
    assert await backend.pop(Q) == []
    assert await backend.pop_scheduled(Q) == []
    assert await backend.next_scheduled_at(Q) == at
    with pytest.raises(BackendInputError):
        await backend.schedule(Q, rec("n"), at.replace(tzinfo=None))


async def test_schedule_replace_drops_queue_entry(backend: SQLiteBackend) -> None:
    await backend.append(Q, [rec("a")])
    assert await backend.schedule(Q, rec("a"), utcnow() + timedelta(hours=1), unique=False)
    assert await backend.size(Q) == 0
    assert ids(await backend.get_scheduled(Q)) == ["a"]


# -- pop / lease --------------------------------------------------------------------------------


async def test_pop_is_fifo_and_claims(backend: SQLiteBackend) -> None:
    await backend.append(Q, [rec(f"t{i}") for i in range(5)])
    first = await backend.pop(Q, 2, worker_id="w1", lease=30)
    assert ids(first) == ["t0", "t1"]
    for task in first:
        assert task["status"] == "processing"
        assert task["claimed_by"] == "w1"
        assert task["deliveries"] == 1
        assert 29 < (from_iso(task["lease_expires_at"]) - utcnow()).total_seconds() <= 30
    assert ids(await backend.pop(Q, 10)) == ["t2", "t3", "t4"]
    assert await backend.pop(Q) == []
    with pytest.raises(BackendInputError):
        await backend.pop(Q, 0)


async def test_pop_default_owner_is_client_id(backend: SQLiteBackend) -> None:
    await backend.append(Q, [rec("a")])
    assert (await backend.pop(Q))[0]["claimed_by"] == backend.client_id


async def test_expired_leases_are_claimed_first(backend: SQLiteBackend, other: SQLiteBackend) -> None:
    await backend.append(Q, [rec("a"), rec("b"), rec("c")])
    await backend.pop(Q, 1, worker_id="dies", lease=0.05)
    await asyncio.sleep(0.1)
    again = await other.pop(Q, 2, worker_id="w2")
    assert ids(again) == ["a", "b"]
    assert again[0]["deliveries"] == 2 and again[0]["claimed_by"] == "w2"


async def test_live_lease_is_hidden(backend: SQLiteBackend, other: SQLiteBackend) -> None:
    await backend.append(Q, [rec("a")])
    await backend.pop(Q, lease=30)
    assert await other.pop(Q) == []
    assert await other.size(Q) == 0
    assert await other.get_pending(Q, 5) == []


async def test_heartbeat_extends_only_own_claims(backend: SQLiteBackend, other: SQLiteBackend) -> None:
    await backend.append(Q, [rec("a"), rec("b")])
    await backend.pop(Q, 1, worker_id="w1", lease=0.2)
    await backend.pop(Q, 1, worker_id="w2", lease=30)
    assert await backend.heartbeat(Q, ["b", "a", "zzz"], worker_id="w1", lease=30) == ["a"]
    await asyncio.sleep(0.3)
    assert await other.pop(Q) == [], "the extended lease is still live"
    assert await backend.heartbeat(Q, [], worker_id="w1") == []


async def test_heartbeat_after_expiry_but_before_reclaim(backend: SQLiteBackend) -> None:
    await backend.append(Q, [rec("a")])
    await backend.pop(Q, 1, worker_id="w1", lease=0.05)
    await asyncio.sleep(0.1)
    assert await backend.heartbeat(Q, ["a"], worker_id="w1") == ["a"]
    await backend.pop(Q, 1, worker_id="w1", lease=0.05)  # nothing claimable: the lease is live again


async def test_acknowledge(backend: SQLiteBackend) -> None:
    await backend.append(Q, [rec("a"), rec("b")])
    await backend.pop(Q, 1, lease=0.05)
    assert not await backend.acknowledge(Q, "b"), "queued, not claimed"
    assert not await backend.acknowledge(Q, "nope")
    await asyncio.sleep(0.1)
    assert await backend.acknowledge(Q, "a"), "an expired claim can be acknowledged too"
    assert not await backend.acknowledge(Q, "a")
    assert ids(await backend.pop(Q, 5)) == ["b"], "an acknowledged task is never delivered again"
    stats = await backend.get_stats(Q)
    assert stats["processing"] == 1 and stats["pending"] == 0


async def test_blocking_pop_wakes_on_append_from_another_object(
    backend: SQLiteBackend, other: SQLiteBackend
) -> None:
    async def append_later() -> None:
        await asyncio.sleep(0.2)
        await other.append(Q, [rec("late")])

    started = time.monotonic()
    appender = asyncio.ensure_future(append_later())
    popped = await backend.pop(Q, 1, timeout=5)
    await appender
    assert ids(popped) == ["late"]
    assert time.monotonic() - started < 1


async def test_blocking_pop_times_out(backend: SQLiteBackend) -> None:
    started = time.monotonic()
    assert await backend.pop(Q, 1, timeout=0.3) == []
    assert 0.25 < time.monotonic() - started < 2


async def test_blocking_pop_wakes_when_a_lease_expires(backend: SQLiteBackend, other: SQLiteBackend) -> None:
    await backend.append(Q, [rec("a")])
    await backend.pop(Q, lease=0.3)
    started = time.monotonic()
    assert ids(await other.pop(Q, timeout=5)) == ["a"]
    assert time.monotonic() - started < 2


async def test_cancelled_blocking_pop_claims_nothing(backend: SQLiteBackend, other: SQLiteBackend) -> None:
    waiting = asyncio.ensure_future(backend.pop(Q, 1, timeout=10))
    await asyncio.sleep(0.1)
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    await other.append(Q, [rec("a")])
    await asyncio.sleep(0.1)
    assert await other.size(Q) == 1


async def test_cancel_arriving_with_a_wakeup_is_not_swallowed(
    backend: SQLiteBackend, db_path: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The wake-up (a committed task and its notification) and the cancellation land in the same loop
    # iteration: the pop must end at once with CancelledError, not carry on waiting out its 10 s
    # timeout, and claim nothing. (An append through a backend awaits its thread: under load the woken
    # pop could claim before the cancel came, so the task is committed here without yielding.)
    from sheppy_sqlite._listener import notify

    looked = asyncio.Event()
    claim = backend._claim

    async def first_look(*args: Any, **kwargs: Any) -> Any:
        found = await claim(*args, **kwargs)
        looked.set()
        return found

    monkeypatch.setattr(backend, "_claim", first_look)
    waiting = asyncio.ensure_future(backend.pop(Q, 1, timeout=10))
    await asyncio.wait_for(looked.wait(), 10)  # its first look found nothing: it waits now
    with sqlite3.connect(db_path, timeout=5, isolation_level=None) as conn:
        conn.execute(
            "INSERT INTO tasks (queue, id, state, status, data) VALUES (?, 'a', 'queued', 'pending', ?)",
            (Q, '{"id":"a","status":"pending","config":{}}'),
        )
    notify(db_path, Q)
    waiting.cancel()
    started = time.monotonic()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(waiting, 5)
    assert time.monotonic() - started < 1
    assert await backend.size(Q) == 1, "the cancelled pop claimed nothing"


async def test_cancel_racing_a_claim_hands_the_task_back(backend: SQLiteBackend) -> None:
    await backend.append(Q, [rec(f"t{i}") for i in range(50)])
    for _ in range(30):
        popping = asyncio.ensure_future(backend.pop(Q, 1))
        await asyncio.sleep(0)
        popping.cancel()
        try:
            got = await popping
        except asyncio.CancelledError:
            got = []
        for task in got:
            await backend.store_result(Q, done(task))
    await asyncio.sleep(0.1)  # let handed-back claims settle
    stats = await backend.get_stats(Q)
    assert stats["processing"] == 0
    assert stats["pending"] + stats["completed"] == 50


# -- store_result / get_results -----------------------------------------------------------------


async def test_store_result_finished(backend: SQLiteBackend) -> None:
    await backend.append(Q, [rec("a")])
    task = (await backend.pop(Q))[0]
    assert await backend.store_result(Q, done(task, result=42))
    stored = (await backend.get_tasks(Q, ["a"]))["a"]
    assert stored["result"] == 42 and stored["claimed_by"] is None and stored["lease_expires_at"] is None
    assert await backend.store_result(Q, done(task, result=42)), "idempotent"
    stats = await backend.get_stats(Q)
    assert stats["completed"] == 1 and stats["processing"] == 0
    assert not await backend.store_result(Q, done(rec("ghost")))


async def test_store_result_requeue_rules(backend: SQLiteBackend) -> None:
    await backend.append(Q, [rec("a"), rec("b"), rec("c"), rec("d")])
    a, b, c = await backend.pop(Q, 3)
    retry_at = utcnow() + timedelta(hours=1)
    await backend.store_result(Q, {**a, "status": "retrying", "next_retry_at": to_iso(retry_at)})
    await backend.store_result(Q, {**b, "status": "processing"})
    await backend.store_result(Q, {**b, "status": "processing"})
    await backend.store_result(Q, {**c, "status": "scheduled", "scheduled_at": to_iso(retry_at)})
    assert ids(await backend.get_pending(Q, 10)) == ["d", "b"], "re-queued at the tail, once"
    assert (await backend.get_tasks(Q, ["b"]))["b"]["status"] == "pending"
    assert ids(await backend.get_scheduled(Q)) == ["a", "c"]
    assert await backend.next_scheduled_at(Q) == retry_at


async def test_get_results_waits_for_store_result_elsewhere(
    backend: SQLiteBackend, other: SQLiteBackend
) -> None:
    await backend.append(Q, [rec("a"), rec("b")])
    tasks = await other.pop(Q, 2)

    async def finish_later() -> None:
        for task in tasks:
            await asyncio.sleep(0.1)
            await other.store_result(Q, done(task))

    finisher = asyncio.ensure_future(finish_later())
    results = await backend.get_results(Q, ["a", "b", "a"], timeout=5)
    await finisher
    assert sorted(results) == ["a", "b"]
    assert await backend.get_results(Q, []) == {}


async def test_get_results_no_wait_and_timeout(backend: SQLiteBackend) -> None:
    await backend.append(Q, [rec("a")])
    assert await backend.get_results(Q, ["a", "unknown"]) == {}
    with pytest.raises(TimeoutError):
        await backend.get_results(Q, ["a"], timeout=0.2)


async def test_get_results_forever_is_woken_by_cancel(backend: SQLiteBackend, other: SQLiteBackend) -> None:
    await backend.append(Q, [rec("a")])
    waiting = asyncio.ensure_future(backend.get_results(Q, ["a"], timeout=0))
    await asyncio.sleep(0.1)
    cancelled = await other.cancel(Q, "a")
    assert cancelled is not None and cancelled["status"] == "cancelled"
    results = await asyncio.wait_for(waiting, 5)
    assert results["a"]["status"] == "cancelled"


# -- inspection ---------------------------------------------------------------------------------


async def test_inspection(backend: SQLiteBackend) -> None:
    await backend.append(Q, [rec("q1"), rec("q2"), rec("c1"), rec("f1")])
    await backend.schedule(Q, rec("late"), utcnow() + timedelta(hours=2))
    await backend.schedule(Q, rec("soon"), utcnow() + timedelta(hours=1))
    (f1,) = [t for t in await backend.pop(Q, 4) if t["id"] == "f1"]
    await backend.store_result(Q, done(f1, "failed"))
    await backend.append(Q, [rec("q1"), rec("q2")])  # refused duplicates change nothing
    await backend.append("other", [rec("x")])

    assert sorted(await backend.get_tasks(Q, ["q1", "f1", "nope", "q1"])) == ["f1", "q1"]
    assert sorted(ids(await backend.get_all_tasks(Q))) == ["c1", "f1", "late", "q1", "q2", "soon"]
    assert ids(await backend.get_scheduled(Q)) == ["soon", "late"]
    assert await backend.size(Q) == 0  # q1, q2 were claimed by pop(Q, 4) as well
    stats = await backend.get_stats(Q)
    assert stats == {"pending": 0, "processing": 3, "scheduled": 2, "completed": 0, "failed": 1,
                     "cancelled": 0, "crashed": 0, "quarantined": 0}
    assert await backend.get_stats("unknown") == dict.fromkeys(stats, 0)
    assert await backend.list_queues() == {"jobs": 0, "other": 1}
    assert await backend.size("unknown") == 0
    with pytest.raises(BackendInputError):
        await backend.get_pending(Q, 0)


async def test_clear_is_isolated_and_counts(backend: SQLiteBackend) -> None:
    await backend.append(Q, [rec("a"), rec("b")])
    await backend.schedule(Q, rec("s"), utcnow() + timedelta(hours=1))
    await backend.add_cron(Q, "cron1", {"expression": "* * * * *"})
    await backend.acquire_rate_limit(Q, "k", 1, 60, "a")
    await backend.store_workflow(Q, {"id": "w", "pending_task_ids": ["a"]})
    await backend.append("keep", [rec("a")])
    assert await backend.clear(Q) == 4
    assert await backend.get_all_tasks(Q) == []
    assert await backend.get_crons(Q) == []
    assert await backend.get_all_workflows(Q) == []
    assert await backend.acquire_rate_limit(Q, "k", 1, 60, "b") is None, "rate-limit state is gone"
    assert await backend.list_queues() == {"keep": 1}
    assert await backend.size("keep") == 1


# -- scheduling ---------------------------------------------------------------------------------


async def test_pop_scheduled_moves_due_tasks_in_due_order(backend: SQLiteBackend) -> None:
    now = utcnow()
    await backend.append(Q, [rec("queued")])
    await backend.schedule(Q, rec("second"), now - timedelta(seconds=1))
    await backend.schedule(Q, rec("first"), now - timedelta(seconds=2))
    await backend.schedule(Q, rec("future"), now + timedelta(hours=1))
    moved = await backend.pop_scheduled(Q, now)
    assert ids(moved) == ["first", "second"]
    assert all(t["status"] == "pending" for t in moved)
    assert ids(await backend.get_pending(Q, 10)) == ["queued", "first", "second"]
    assert ids(await backend.get_scheduled(Q)) == ["future"]
    assert await backend.pop_scheduled(Q, now) == []
    with pytest.raises(BackendInputError):
        await backend.pop_scheduled(Q, now.replace(tzinfo=None))


async def test_pop_scheduled_moves_once_across_workers(backend: SQLiteBackend, other: SQLiteBackend) -> None:
    past = utcnow() - timedelta(seconds=1)
    for i in range(40):
        await backend.schedule(Q, rec(f"s{i}"), past)
    moved = await asyncio.gather(*(b.pop_scheduled(Q) for b in (backend, other, backend, other)))
    all_moved = [t for batch in moved for t in batch]
    assert sorted(ids(all_moved)) == sorted(f"s{i}" for i in range(40))
    assert await backend.size(Q) == 40


# -- cancel / delete ----------------------------------------------------------------------------


async def test_cancel(backend: SQLiteBackend) -> None:
    await backend.append(Q, [rec("q"), rec("c")])
    await backend.schedule(Q, rec("s"), utcnow() + timedelta(hours=1))
    await backend.pop(Q, 1, lease=0.01)  # "q" claimed (and soon expired)
    await asyncio.sleep(0.05)
    assert await backend.cancel(Q, "q") is None, "claimed, even with an expired lease"
    assert await backend.cancel(Q, "nope") is None
    for task_id in ("c", "s"):
        cancelled = await backend.cancel(Q, task_id)
        assert cancelled is not None and cancelled["status"] == "cancelled" and cancelled["finished_at"]
    assert await backend.cancel(Q, "c") is None, "already finished"
    assert await backend.size(Q) == 0 and await backend.get_scheduled(Q) == []
    assert (await backend.get_stats(Q))["cancelled"] == 2


async def test_delete_task(backend: SQLiteBackend) -> None:
    await backend.append(Q, [rec("a"), rec("b")])
    task = (await backend.pop(Q))[0]
    await backend.store_result(Q, done(task))
    assert await backend.delete_task(Q, "a")
    assert not await backend.delete_task(Q, "a")
    with pytest.raises(TaskStateError):
        await backend.delete_task(Q, "b")
    assert await backend.size(Q) == 1


# -- cron ---------------------------------------------------------------------------------------


async def test_cron(backend: SQLiteBackend) -> None:
    definition = {"expression": "*/5 * * * *", "spec": {"func": "m:f"}}
    assert await backend.add_cron(Q, "c1", definition)
    assert not await backend.add_cron(Q, "c1", {"other": True})
    assert await backend.get_crons(Q) == [definition]
    assert await backend.get_crons("elsewhere") == []
    assert await backend.delete_cron(Q, "c1")
    assert not await backend.delete_cron(Q, "c1")


# -- rate limits --------------------------------------------------------------------------------


async def test_sliding_window(backend: SQLiteBackend, other: SQLiteBackend) -> None:
    assert await backend.acquire_rate_limit(Q, "k", 2, 0.5, "t1") is None
    assert await other.acquire_rate_limit(Q, "k", 2, 0.5, "t2") is None
    wait = await backend.acquire_rate_limit(Q, "k", 2, 0.5, "t3")
    assert wait is not None and 0 < wait <= 0.5
    assert await backend.acquire_rate_limit(Q, "k", 2, 0.5, "t1") is None, "a holder is not charged twice"
    assert await backend.acquire_rate_limit(Q, "other-key", 2, 0.5, "t3") is None
    await asyncio.sleep(wait + 0.01)
    assert await backend.acquire_rate_limit(Q, "k", 2, 0.5, "t3") is None


async def test_fixed_window(backend: SQLiteBackend) -> None:
    period = 0.4
    # Start right after a window boundary so both grants land in one window.
    await asyncio.sleep(period - (time.time() % period) + 0.01)
    assert await backend.acquire_rate_limit(Q, "f", 2, period, "a", "fixed_window") is None
    assert await backend.acquire_rate_limit(Q, "f", 2, period, "a2", "fixed_window") is None
    assert await backend.acquire_rate_limit(Q, "f", 2, period, "a", "fixed_window") is None  # a holder
    wait = await backend.acquire_rate_limit(Q, "f", 2, period, "b", "fixed_window")
    assert wait is not None and 0 < wait <= period
    await asyncio.sleep(wait + 0.01)
    assert await backend.acquire_rate_limit(Q, "f", 2, period, "b", "fixed_window") is None


async def test_rate_limit_grants_never_exceed_the_budget(
    backend: SQLiteBackend, other: SQLiteBackend
) -> None:
    for strategy in ("sliding_window", "fixed_window"):
        outcomes = await asyncio.gather(*(
            (backend if i % 2 else other).acquire_rate_limit(Q, strategy, 5, 60, f"t{i}", strategy)
            for i in range(20)
        ))
        assert sum(o is None for o in outcomes) == 5


@pytest.mark.parametrize(
    ("max_rate", "period", "strategy"), [(0, 1.0, "sliding_window"), (1, 0.0, "fixed_window"), (1, 1.0, "x")]
)
async def test_rate_limit_bad_input(
    backend: SQLiteBackend, max_rate: int, period: float, strategy: str
) -> None:
    with pytest.raises(BackendInputError):
        await backend.acquire_rate_limit(Q, "k", max_rate, period, "t", strategy)


# -- workflows ----------------------------------------------------------------------------------


async def test_workflows(backend: SQLiteBackend, other: SQLiteBackend) -> None:
    wf = {"id": "w1", "version": 1, "pending_task_ids": ["a", "b"], "finished_at": None}
    assert await backend.store_workflow(Q, wf, if_version=0)
    assert not await other.store_workflow(Q, {**wf, "version": 2}, if_version=0), "compare-and-set"
    assert await other.store_workflow(Q, {**wf, "version": 2}, if_version=1)
    assert (await backend.get_workflows(Q, ["w1", "nope"]))["w1"]["version"] == 2
    assert ids(await backend.get_pending_workflows(Q)) == ["w1"]
    assert await backend.mark_workflow_task_complete(Q, "w1", "a") == 1
    assert await backend.mark_workflow_task_complete(Q, "w1", "a") == -1
    assert await backend.mark_workflow_task_complete(Q, "nope", "a") == -1
    assert await other.mark_workflow_task_complete(Q, "w1", "b") == 0
    await backend.store_workflow(Q, {**wf, "version": 3, "completed": True})
    assert await backend.get_pending_workflows(Q) == []
    assert await backend.mark_workflow_task_complete(Q, "w1", "a") == -1, "finished: pending set dropped"
    assert ids(await backend.get_all_workflows(Q)) == ["w1"]
    assert await backend.delete_workflow(Q, "w1")
    assert not await backend.delete_workflow(Q, "w1")


async def test_mark_complete_last_id_seen_once(backend: SQLiteBackend, other: SQLiteBackend) -> None:
    await backend.store_workflow(Q, {"id": "w", "pending_task_ids": [f"t{i}" for i in range(10)]})
    counts = await asyncio.gather(*(
        (backend if i % 2 else other).mark_workflow_task_complete(Q, "w", f"t{i}") for i in range(10)
    ))
    assert sorted(counts) == list(range(10))


async def test_workflow_results(backend: SQLiteBackend) -> None:
    await backend.append(Q, [rec("a", workflow_id="w"), rec("b", workflow_id="w"), rec("c")])
    a, _, c = await backend.pop(Q, 3)
    await backend.store_result(Q, done(a))
    await backend.store_result(Q, done(c))
    assert sorted(await backend.get_workflow_results(Q, "w")) == ["a"]


# -- TTL ----------------------------------------------------------------------------------------


async def test_finished_records_expire(make_backend: Callable[..., SQLiteBackend], db_path: str) -> None:
    backend = make_backend(ttl=0.2, purge_interval=0.1)
    await backend.connect()
    await backend.append(Q, [rec("keep"), rec("short"), rec("forever")])
    keep, short, forever = await backend.pop(Q, 3)
    await backend.store_result(Q, done(keep, config={"ttl": 60}))
    await backend.store_result(Q, done(short))
    await backend.store_result(Q, done(forever, config={"ttl": None}))
    await asyncio.sleep(0.3)
    assert sorted(await backend.get_tasks(Q, ["keep", "short", "forever"])) == ["forever", "keep"]
    assert (await backend.get_stats(Q))["completed"] == 2
    assert not await backend.store_result(Q, done(short)), "an expired record is unknown"
    assert await backend.append(Q, [rec("short")]) == [True], "its id is free again"
    await asyncio.sleep(0.15)
    await backend.size(Q)  # any call after purge_interval purges
    with sqlite3.connect(db_path) as conn:
        left = {row[0] for row in conn.execute("SELECT id FROM tasks")}
    assert left == {"keep", "forever", "short"}


async def test_error_ttl_applies_to_failures(make_backend: Callable[..., SQLiteBackend]) -> None:
    backend = make_backend(ttl=60, error_ttl=0.1)
    await backend.connect()
    await backend.append(Q, [rec("ok"), rec("bad")])
    ok, bad = await backend.pop(Q, 2)
    await backend.store_result(Q, done(ok))
    await backend.store_result(Q, done(bad, "failed"))
    await asyncio.sleep(0.2)
    assert sorted(await backend.get_tasks(Q, ["ok", "bad"])) == ["ok"]


async def test_unfinished_records_never_expire(make_backend: Callable[..., SQLiteBackend]) -> None:
    backend = make_backend(ttl=0.05)
    await backend.connect()
    await backend.append(Q, [rec("a")])
    await asyncio.sleep(0.1)
    assert await backend.size(Q) == 1


# -- process and event-loop life ----------------------------------------------------------------


def test_usable_from_successive_event_loops(db_path: str) -> None:
    backend = SQLiteBackend(db_path)
    asyncio.run(backend.connect())
    try:
        asyncio.run(backend.append(Q, [rec("a")]))
        assert asyncio.run(backend.pop(Q, 1, timeout=0.5))[0]["id"] == "a"
        assert asyncio.run(backend.pop(Q, 1, timeout=0.2)) == []
    finally:
        asyncio.run(backend.disconnect())


def test_process_that_never_disconnects_still_exits(db_path: str) -> None:
    import subprocess
    import sys

    script = (
        "import asyncio\n"
        "from sheppy_sqlite import SQLiteBackend\n"
        "async def main():\n"
        f"    b = SQLiteBackend({db_path!r})\n"
        "    await b.connect()\n"
        "    await b.append('q', [{'id': 'x'}])\n"
        "    await b.pop('q', 1, timeout=0.05)\n"
        "    globals()['kept'] = b  # still referenced at exit, never disconnected\n"
        "asyncio.run(main())\n"
    )
    done = subprocess.run([sys.executable, "-c", script], timeout=60, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    with sqlite3.connect(db_path) as conn:
        assert conn.execute("SELECT count(*) FROM tasks").fetchone()[0] == 1


# -- record JSON ---------------------------------------------------------------------------------


async def test_records_with_lone_surrogates_and_unicode_round_trip(backend: SQLiteBackend) -> None:
    record = rec("s", text="bad \ud800 surrogate", ok="ünï ✓", big=10**40, nested={"x": [1.5, None]})
    assert await backend.append(Q, [record]) == [True]
    stored = await backend.get_tasks(Q, ["s"])
    assert {k: v for k, v in stored["s"].items() if k != "status"} == {
        k: v for k, v in record.items() if k != "status"
    }


@pytest.mark.parametrize(
    "bad", [float("nan"), float("inf"), object(), 10**4400], ids=["nan", "inf", "object", "huge-int"]
)
async def test_records_that_are_not_json_are_refused(backend: SQLiteBackend, bad: object) -> None:
    with pytest.raises(BackendInputError, match="not JSON"):
        await backend.append(Q, [rec("bad", value=bad)])
    assert await backend.get_tasks(Q, ["bad"]) == {}


async def test_strings_that_look_like_nan_are_fine(backend: SQLiteBackend) -> None:
    record = rec("n", text="NaN and -Infinity are words here")
    assert await backend.append(Q, [record]) == [True]
    assert (await backend.get_tasks(Q, ["n"]))["n"]["text"] == record["text"]
