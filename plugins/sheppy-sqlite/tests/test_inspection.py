"""The operator inspection API on SQLite: pages and counts read about ``limit`` rows through indexes,
whatever the number of stored records; existing files migrate to the listing columns.

(The semantics are the conformance suite's list_tasks.*, count_by_status.*, oldest_ready.* and
workers.* clauses, run in test_conformance.py.)
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import sqlite3
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import pytest_asyncio
from sheppy_sqlite import SQLiteBackend, _migrations
from sheppy_sqlite._inspection import count_params, page_query
from sheppy_sqlite._sql import migrations, queries

from sheppy_core.backend import LISTABLE_STATUSES, check_listing, listing_key, to_iso

FINISHED = 20_000
PENDING = 5
PAGE = 50
_TABLE_SCAN = "SELECT count(*) FROM tasks WHERE queue = 'q' AND data LIKE '%x%'"
MAIN_FUNC = "app.tasks:main"
RARE_FUNC = "app.tasks:rare"


def _record(n: int, func: str, created: datetime) -> dict[str, Any]:
    return {"id": f"t{n:06d}", "status": "new", "config": {}, "spec": {"func": func, "args": [n]},
            "created_at": to_iso(created)}


@contextlib.contextmanager
def _raw(path: str) -> Iterator[sqlite3.Connection]:
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        yield conn
    finally:
        conn.close()


def _plan(conn: sqlite3.Connection, sql: str, params: dict[str, Any]) -> list[str]:
    return [str(row[3]) for row in conn.execute(f"EXPLAIN QUERY PLAN {sql}", params)]


def _full_scans(plan: list[str]) -> list[str]:
    """Plan steps that read every row of tasks (or of one of its indexes) or sort what they read."""
    return [step for step in plan if step.startswith("SCAN tasks") or "TEMP B-TREE" in step]


def _vm_steps(conn: sqlite3.Connection, sql: str, params: dict[str, Any]) -> int:
    """SQLite virtual-machine instructions spent running ``sql``: grows with the rows it reads."""
    steps = 0

    def count() -> int:
        nonlocal steps
        steps += 100
        return 0

    conn.set_progress_handler(count, 100)
    try:
        conn.execute(sql, params).fetchall()
    finally:
        conn.set_progress_handler(None, 0)
    return steps


@pytest_asyncio.fixture
async def big_store(make_backend: Callable[..., SQLiteBackend]) -> SQLiteBackend:
    """20,000 completed records of MAIN_FUNC, then 5 pending ones of RARE_FUNC (the newest)."""
    backend = make_backend()
    await backend.connect()
    base = datetime(2026, 1, 1, tzinfo=UTC)
    done = [_record(n, MAIN_FUNC, base + timedelta(milliseconds=n)) for n in range(FINISHED)]
    for start in range(0, FINISHED, 1000):
        await backend.append("q", done[start:start + 1000])
        claimed = await backend.pop("q", 1000, lease=600)
        await asyncio.gather(*(backend.store_result("q", {**r, "status": "completed",
                                                          "finished_at": to_iso(base)}) for r in claimed))
    await backend.append("q", [_record(FINISHED + n, RARE_FUNC, base + timedelta(days=1, seconds=n))
                               for n in range(PENDING)])
    return backend


_NO_FILTERS: dict[str, Any] = {"status": None, "func": None, "since": None, "until": None}

_PAGES: list[tuple[str, dict[str, Any], int]] = [
    ("no filter", {}, PAGE),
    ("status='pending'", {"status": "pending"}, PENDING),
    ("status='completed'", {"status": "completed"}, PAGE),
    ("func=rare", {"func": RARE_FUNC}, PENDING),
    ("func=main", {"func": MAIN_FUNC}, PAGE),
    ("since/until", {"since": datetime(2026, 1, 1, 0, 0, 5, tzinfo=UTC),
                     "until": datetime(2026, 1, 1, 0, 0, 10, tzinfo=UTC)}, PAGE),
]


async def test_pages_read_about_limit_rows_through_indexes(big_store: SQLiteBackend) -> None:
    backend = big_store
    stats = await backend.get_stats("q")
    assert stats["completed"] == FINISHED and stats["pending"] == PENDING
    with _raw(backend.path) as conn:
        full_scan_steps = _vm_steps(conn, _TABLE_SCAN, {})
    for label, filters, size in _PAGES:
        first = await backend.list_tasks("q", limit=PAGE, **filters)
        assert len(first.records) == size, label
        pages = [first]
        if first.next_cursor is not None:
            pages.append(await backend.list_tasks("q", limit=PAGE, cursor=first.next_cursor, **filters))
        for page in pages:
            listing = check_listing(cursor=page.next_cursor, limit=PAGE, **{**_NO_FILTERS, **filters})
            name, params = page_query("q", listing, time.time())
            with _raw(backend.path) as conn:
                plan = _plan(conn, queries()[name], params)
                assert not _full_scans(plan), f"{label}: {name} plans {plan}"
                steps = _vm_steps(conn, queries()[name], params)
            assert steps * 20 < full_scan_steps, (
                f"{label}: {name} ran {steps} VM steps, a scan of the table takes {full_scan_steps}"
            )


async def test_count_by_status_reads_at_most_cap_plus_one_rows_per_status(big_store: SQLiteBackend) -> None:
    backend = big_store
    counts = await backend.count_by_status("q", cap=100)
    assert counts["completed"] == 101 and counts["pending"] == PENDING
    with _raw(backend.path) as conn:
        full_scan_steps = _vm_steps(conn, _TABLE_SCAN, {})
        params = count_params("q", 100, time.time())
        plan = _plan(conn, queries()["count_by_status"], params)
        assert not _full_scans(plan), plan
        assert _vm_steps(conn, queries()["count_by_status"], params) * 20 < full_scan_steps


async def test_oldest_ready_at_reads_the_head_only(big_store: SQLiteBackend) -> None:
    with _raw(big_store.path) as conn:
        plan = _plan(conn, queries()["oldest_ready"], {"queue": "q"})
    assert not _full_scans(plan), plan
    assert await big_store.oldest_ready_at("q") == datetime(2026, 1, 2, tzinfo=UTC)


async def test_version_3_file_migrates_to_listing_columns(
    make_backend: Callable[..., SQLiteBackend], db_path: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Records stored before version 4 get their listing key (created_at) and func from the stored
    data, so pages, filters and cursors cover them as if they had been stored now."""
    base = datetime(2026, 3, 1, 12, 0, 0, 123_456, tzinfo=UTC)
    old_records = [_record(n, MAIN_FUNC if n % 2 else RARE_FUNC, base + timedelta(microseconds=n))
                   for n in range(6)]
    first_three = migrations()[:3]
    with monkeypatch.context() as patch:
        patch.setattr(_migrations, "migrations", lambda: first_three)
        patch.setattr(_migrations, "LATEST_SCHEMA_VERSION", 3)
        old = make_backend()
        await old.connect()
        await old.disconnect()
    # The rows version 3's append and store_result wrote (its statements are gone from queries.sql).
    rows = [("queued", "pending", {**r, "status": "pending"}) for r in old_records[1:]]
    rows.insert(0, ("finished", "completed", {**old_records[0], "status": "completed"}))
    rows.append(("queued", "pending", {"id": "no-created-at", "status": "pending", "config": {}}))
    with _raw(db_path) as conn:
        conn.executemany("INSERT INTO tasks (queue, id, state, status, data) VALUES ('q', ?, ?, ?, ?)",
                         [(r["id"], state, status, json.dumps(r)) for state, status, r in rows])
        conn.execute("INSERT INTO tasks (queue, id, state, status, data) VALUES ('q', 'corrupt', 'queued',"
                     " 'pending', '{not json')")
    migrated_at = datetime.now(UTC)
    backend = make_backend()
    await backend.connect()
    assert (await backend.server_info())["schema_version"] == len(migrations())
    want = [r["id"] for r in reversed(old_records)]
    page = await backend.list_tasks("q", limit=10)
    # Both undated rows get the migration's time as key: newest, ties by id descending.
    assert [r["id"] for r in page.records] == ["no-created-at", "corrupt", *want]
    assert page.records[1]["status"] == "quarantined", "a corrupt row reads as its stand-in"
    assert [r["id"] for r in (await backend.list_tasks("q", func=MAIN_FUNC)).records] == want[0::2]
    assert [r["id"] for r in (await backend.list_tasks("q", status="completed")).records] == ["t000000"]
    walked, cursor = [], None
    while True:
        part = await backend.list_tasks("q", limit=2, until=base + timedelta(seconds=1), cursor=cursor)
        walked += [r["id"] for r in part.records]
        if (cursor := part.next_cursor) is None:
            break
    assert walked == want
    with _raw(db_path) as conn:
        keys = dict(conn.execute("SELECT id, listed_at FROM tasks").fetchall())
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert all(keys[r["id"]] == listing_key(r, migrated_at) for r in old_records)
    assert keys["no-created-at"] >= listing_key({}, migrated_at - timedelta(seconds=5))
    assert keys["corrupt"] >= listing_key({}, migrated_at - timedelta(seconds=5))


def test_unfiltered_listing_reads_every_status_the_column_holds() -> None:
    """The unfiltered page merges one stream per status value: every listable status and ''."""
    streams = set(re.findall(r"status = '([^']*)'", queries()["list_tasks"]))
    assert streams == {*LISTABLE_STATUSES, ""}


async def test_a_finished_record_with_an_odd_status_is_listed(backend: SQLiteBackend) -> None:
    await backend.append("q", [{"id": "odd", "status": "new", "config": {}}, {"id": "ok", "config": {}}])
    for claimed in await backend.pop("q", 2, lease=60):
        status = "exploded" if claimed["id"] == "odd" else "completed"
        finished_at = to_iso(datetime.now(UTC))
        await backend.store_result("q", {**claimed, "status": status, "finished_at": finished_at})
    listed = {r["id"]: r["status"] for r in (await backend.list_tasks("q")).records}
    assert listed == {"odd": "exploded", "ok": "completed"}
    assert [r["id"] for r in (await backend.list_tasks("q", status="completed")).records] == ["ok"]


async def test_oldest_ready_at_of_a_corrupt_head_is_now(backend: SQLiteBackend) -> None:
    with _raw(backend.path) as conn:
        conn.execute("INSERT INTO tasks (queue, id, state, status, data) VALUES ('q', 'bad', 'queued', "
                     "'pending', '[1, 2]')")
    before = datetime.now(UTC)
    got = await backend.oldest_ready_at("q")
    assert got is not None and before <= got <= datetime.now(UTC)
