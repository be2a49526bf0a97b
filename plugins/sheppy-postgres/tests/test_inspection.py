"""The operator inspection API on PostgreSQL: what the conformance clauses cannot see.

A page of ``list_tasks`` (each filter, with and without a cursor) and ``count_by_status`` read about
``limit`` (``cap + 1``) rows through an index, whatever the number of finished records, checked with
``EXPLAIN (ANALYZE, FORMAT JSON)`` after ``ANALYZE`` under both custom and generic plans (asyncpg's
prepared statements switch to the generic one); stores of the previous schema version get the listing
columns filled by migration 0005; expired workers are deleted, not only hidden.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
import uuid
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import asyncpg
import pytest
from sheppy_postgres import PostgresBackend
from sheppy_postgres._config import quote_ident
from sheppy_postgres._sql import load_migrations

from sheppy_core.backend import check_listing, to_iso, utcnow

from .conftest import SERVER_URL, drop_schema, finished, new_schema_name, url_for

FINISHED = 20_000
COMMON, RARE = "jobs:common", "jobs:rare"
LIMIT = 50


def _record(n: int, func: str, created_at: str | None = None) -> dict[str, Any]:
    record: dict[str, Any] = {"id": f"t-{n:06d}", "status": "new", "spec": {"func": func, "args": [n]}}
    record["created_at"] = created_at or to_iso(utcnow() - timedelta(seconds=FINISHED - n))
    return record


def _nodes(plan: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield plan
    for child in plan.get("Plans", []):
        yield from _nodes(child)


async def _explain(
    conn: asyncpg.Connection[Any], sql: str, args: list[Any], mode: str
) -> list[dict[str, Any]]:
    """The plan nodes that read table ``tasks`` when ``sql`` runs with ``args`` under ``plan_cache_mode``
    ``mode``, as executed (ANALYZE)."""
    statement = await conn.prepare(sql)
    types = [t.name for t in statement.get_parameters()]
    # EXECUTE takes no bind parameters: the arguments go in as literals, quoted by the server.
    literals = [
        f"{await conn.fetchval('SELECT quote_nullable($1::text)', None if a is None else str(a))}::{t}"
        for a, t in zip(args, types, strict=True)
    ]
    name = f"p_{uuid.uuid4().hex[:8]}"
    await conn.execute(f"SET plan_cache_mode = {mode}")
    await conn.execute(f"PREPARE {name} ({', '.join(types)}) AS {sql}")
    try:
        text = await conn.fetchval(f"EXPLAIN (ANALYZE, FORMAT JSON) EXECUTE {name} ({', '.join(literals)})")
    finally:
        await conn.execute(f"DEALLOCATE {name}")
        await conn.execute("RESET plan_cache_mode")
    return [n for n in _nodes(json.loads(text)[0]["Plan"]) if n.get("Relation Name") == "tasks"]


async def _function_query(conn: asyncpg.Connection[Any], schema: str, function: str) -> str:
    """The query a plpgsql function of ``schema`` runs with ``RETURN QUERY EXECUTE $q$...$q$``, its table
    names qualified."""
    source = await conn.fetchval(
        "SELECT prosrc FROM pg_proc WHERE proname = $1 AND pronamespace = $2::regnamespace",
        function, quote_ident(schema),
    )
    query = re.search(r"\$q\$(.*)\$q\$", source, re.DOTALL)
    assert query is not None, f"function {function} runs no $q$ query"
    return query.group(1).replace(" FROM tasks", f" FROM {quote_ident(schema)}.tasks")


def _rows_read(node: dict[str, Any]) -> int:
    per_loop = node["Actual Rows"] + node.get("Rows Removed by Filter", 0) + node.get(
        "Rows Removed by Index Recheck", 0
    )
    return int(per_loop * node["Actual Loops"])


def _check_reads(label: str, nodes: list[dict[str, Any]], most: int, *, indexed: bool = True) -> None:
    """Each node reads at most ``most`` rows; ``indexed``: none scans the table, and one is a scan of a
    listing index (the claimed rows come through the index of claims, however the planner reads it)."""
    assert nodes, f"{label}: the plan reads no table tasks"
    if indexed:
        kinds = [(n["Node Type"], n.get("Index Name")) for n in nodes]
        assert not any(kind == "Seq Scan" for kind, _ in kinds), f"{label}: a Seq Scan on tasks: {kinds}"
        assert any(str(index).startswith("tasks_listing") for _, index in kinds), (
            f"{label}: no scan of a listing index: {kinds}"
        )
    for node in nodes:
        assert _rows_read(node) <= most, (
            f"{label}: read {_rows_read(node)} rows of tasks through {node.get('Index Name')}, "
            f"expected at most {most}"
        )


@pytest.fixture(scope="module")
def big_store() -> Iterator[tuple[str, str]]:
    """A schema with queue ``big``: 20,000 completed records of COMMON, then 3 claimed and 3 pending of
    COMMON and 2 pending of RARE (the newest), analysed."""
    schema = new_schema_name()

    async def fill() -> None:
        async with PostgresBackend.from_url(url_for(schema)) as backend:
            for start in range(0, FINISHED, 2_000):
                await backend.append("big", [_record(n, COMMON) for n in range(start, start + 2_000)])
                claimed = await backend.pop("big", limit=2_000, lease=60)
                await asyncio.gather(*(backend.store_result("big", finished(r)) for r in claimed))
            await backend.append("big", [_record(FINISHED + n, COMMON) for n in range(3)])
            assert len(await backend.pop("big", limit=3, lease=600)) == 3
            await backend.append("big", [_record(FINISHED + 3 + n, COMMON) for n in range(3)])
            await backend.append("big", [_record(FINISHED + 6 + n, RARE) for n in range(2)])
        conn = await asyncpg.connect(SERVER_URL)
        try:
            await conn.execute(f"ANALYZE {quote_ident(schema)}.tasks")
        finally:
            await conn.close()

    asyncio.run(fill())
    yield schema, url_for(schema)
    asyncio.run(drop_schema(schema))


@pytest.mark.timeout(300)
@pytest.mark.parametrize("mode", ["force_custom_plan", "force_generic_plan"])
async def test_a_page_reads_about_limit_rows_through_an_index(big_store: tuple[str, str], mode: str) -> None:
    schema, url = big_store
    async with PostgresBackend.from_url(url) as backend:
        first = await backend.list_tasks("big", limit=LIMIT)
        newest = [r["id"] for r in first.records[:8]]
        assert newest == [f"t-{FINISHED + n:06d}" for n in range(7, -1, -1)], newest
        assert first.next_cursor is not None
        day = utcnow() - timedelta(seconds=FINISHED // 2)
        cases = {
            "no filter": {},
            "no filter, second page": {"cursor": first.next_cursor},
            "status=completed": {"status": "completed"},
            "status=pending (5 among 20,000)": {"status": "pending"},
            "status=processing (3 claimed)": {"status": "processing"},
            "status=failed (none)": {"status": "failed"},
            "func=common": {"func": COMMON},
            "func=rare (2 among 20,000)": {"func": RARE},
            "func=common, status=pending": {"func": COMMON, "status": "pending"},
            "since and until": {"since": day - timedelta(seconds=100), "until": day},
            "status=completed, until, second page": {"status": "completed", "until": day,
                                                     "cursor": first.next_cursor},
        }
        conn = await asyncpg.connect(SERVER_URL)
        try:
            for label, filters in cases.items():
                listing = check_listing(**{"status": None, "func": None, "since": None, "until": None,
                                           "cursor": None, "limit": LIMIT, **filters})
                name, args = backend._listing_statement(backend._queue("big"), listing)
                sql, plan = backend._sql[name], mode
                if name == "list_tasks_by_status_func":  # a function that plans its query for each call
                    sql, plan = await _function_query(conn, schema, name), "force_custom_plan"
                nodes = await _explain(conn, sql, args, plan)
                _check_reads(f"list_tasks({label}), {mode}", nodes, LIMIT + 1 + 5)
            cap = 100
            count_sql = backend._sql["count_by_status"]
            nodes = await _explain(conn, count_sql, [backend._queue("big"), cap + 1], mode)
            # Where nearly every row matches, a sequential scan that stops after cap + 1 rows is as cheap.
            _check_reads(f"count_by_status(cap={cap}), {mode}", nodes, cap + 1, indexed=False)
            # oldest_ready_at is the default of the contract: the head read by get_pending(q, 1).
            nodes = await _explain(conn, backend._sql["get_pending"], [backend._queue("big"), 1], mode)
            assert [(n["Node Type"], n.get("Index Name"), _rows_read(n)) for n in nodes] == [
                ("Index Scan", "tasks_claimable_queued", 1)], f"oldest_ready_at's head read, {mode}: {nodes}"
        finally:
            await conn.close()
        counts = await backend.count_by_status("big", cap=cap)
        assert (counts["completed"], counts["pending"], counts["processing"]) == (cap + 1, 5, 3), counts
        assert [r["id"] for r in (await backend.list_tasks("big", func=RARE)).records] == [
            f"t-{FINISHED + 7:06d}", f"t-{FINISHED + 6:06d}"]
        claimed = (await backend.list_tasks("big", status="processing", func=COMMON)).records
        assert [(r["id"], r["status"]) for r in claimed] == [
            (f"t-{FINISHED + n:06d}", "processing") for n in (2, 1, 0)]
        pending = await backend.list_tasks("big", status="pending", limit=3)
        rest = await backend.list_tasks("big", status="pending", limit=3, cursor=pending.next_cursor)
        assert len(pending.records) + len(rest.records) == 5 and rest.next_cursor is None


async def _schema_at_version_4(schema: str) -> asyncpg.Connection[Any]:
    """A connection with ``search_path`` on ``schema``, migrated to version 4 as the previous release
    left it."""
    conn = await asyncpg.connect(SERVER_URL)
    await conn.execute(f"CREATE SCHEMA {quote_ident(schema)}")
    await conn.execute(f"SET search_path TO {quote_ident(schema)}")
    await conn.execute(
        "CREATE TABLE schema_version (version integer PRIMARY KEY, name text NOT NULL,"
        " applied_at timestamptz NOT NULL DEFAULT now())"
    )
    for migration in load_migrations():
        if migration.version <= 4:
            await conn.execute(migration.sql)
            await conn.execute("INSERT INTO schema_version (version, name) VALUES ($1, $2)",
                               migration.version, migration.name)
    return conn


async def test_migration_fills_the_listing_of_existing_stores() -> None:
    schema = new_schema_name()
    base = (utcnow() - timedelta(hours=2)).replace(microsecond=654_321)
    rows = {
        "old": (json.dumps(_record(1, COMMON, to_iso(base))), "finished", "completed"),
        "naive": (json.dumps(_record(2, RARE, base.replace(tzinfo=None).isoformat())), "queued", "pending"),
        "newer": (json.dumps(_record(3, COMMON, to_iso(base + timedelta(minutes=1)))), "queued", "pending"),
        "no-created-at": (json.dumps({"id": "t-000004", "spec": {"func": RARE}}), "queued", "pending"),
        "corrupt": ("not json{", "queued", "pending"),
        "bad-time": (json.dumps({"id": "t-000006", "created_at": "soon", "spec": "x"}), "queued", "pending"),
    }
    ids = {"old": "t-000001", "naive": "t-000002", "newer": "t-000003", "no-created-at": "t-000004",
           "corrupt": "t-000005", "bad-time": "t-000006"}
    names = {v: k for k, v in ids.items()}
    conn = await _schema_at_version_4(schema)
    try:
        await conn.execute("INSERT INTO queues (queue, name) VALUES ('q', 'q')")
        for label, (data, state, status) in rows.items():
            await conn.execute(
                "INSERT INTO tasks (queue, id, state, status, data) VALUES ('q', $1, $2, $3, $4)",
                ids[label], state, status, data,
            )
        before_migration = utcnow()
        async with PostgresBackend.from_url(url_for(schema)) as backend:
            # A worker of the previous release, still running during a rolling upgrade, inserts a row
            # without the new columns: it is listed by the time it was stored.
            await conn.execute(
                "INSERT INTO tasks (queue, id, state, status, data) VALUES ('q', 'late', 'queued', 'pending',"
                " $1)", json.dumps({"id": "late", "created_at": to_iso(base - timedelta(days=1))}),
            )
            listed = [names.get(r["id"], r["id"]) for r in (await backend.list_tasks("q")).records]
            # No readable created_at: listed by the time of the migration (ties by id), after the late row
            # and before the rest, by created_at (a naive one taken as UTC, as from_iso does).
            assert listed == ["late", "bad-time", "corrupt", "no-created-at", "newer", "naive", "old"], listed
            early = {"until": base + timedelta(microseconds=1), "since": base}
            assert [names.get(r["id"]) for r in (await backend.list_tasks("q", **early)).records] == [
                "naive", "old"]
            recent = [names.get(r["id"], r["id"]) for r in
                      (await backend.list_tasks("q", since=before_migration - timedelta(seconds=1))).records]
            assert sorted(recent) == sorted(["late", "no-created-at", "corrupt", "bad-time"]), recent
            rare = [names.get(r["id"]) for r in (await backend.list_tasks("q", func=RARE)).records]
            assert rare == ["no-created-at", "naive"], rare
            common = [names.get(r["id"]) for r in (await backend.list_tasks("q", func=COMMON)).records]
            assert common == ["newer", "old"], common
            completed = await backend.list_tasks("q", status="completed")
            assert [names.get(r["id"]) for r in completed.records] == ["old"], completed
    finally:
        await conn.close()
        await drop_schema(schema)


async def test_expired_workers_are_deleted_by_the_listing(backend: PostgresBackend, schema: str) -> None:
    worker_id = f"w-{uuid.uuid4().hex[:8]}"
    await backend.register_worker({"id": worker_id, "host": "h"}, ttl=0.2)
    deadline = time.monotonic() + 10
    while any(w["id"] == worker_id for w in await backend.list_workers()):
        assert time.monotonic() < deadline, "a worker with ttl=0.2 s still listed after 10 s"
        await asyncio.sleep(0.05)
    conn = await asyncpg.connect(SERVER_URL)
    try:
        workers = f"{quote_ident(schema)}.workers"
        left = await conn.fetchval(f"SELECT count(*) FROM {workers} WHERE id = $1", worker_id)
    finally:
        await conn.close()
    assert left == 0, "list_workers hides an expired worker but leaves its row behind"


async def test_worker_ids_of_any_length_and_backslashes(backend: PostgresBackend) -> None:
    ids = [f"w-{uuid.uuid4().hex[:8]}-" + "x" * 3000, f"w-{uuid.uuid4().hex[:8]}-\\0-\\"]
    for worker_id in ids:
        await backend.register_worker({"id": worker_id, "n": 1}, ttl=30)
    try:
        listed = [w for w in await backend.list_workers() if w["id"] in ids]
        assert listed == [{"id": i, "n": 1} for i in sorted(ids)]
    finally:
        assert [await backend.unregister_worker(i) for i in ids] == [True, True]


async def test_claims_and_heartbeats_write_no_entry_in_the_listing_indexes(
    backend: PostgresBackend, schema: str, queue: str
) -> None:
    """The claim path stays as cheap as before migration 0005: the listing indexes leave claimed rows out,
    so claiming 4,000 tasks and extending their leases does not grow them by a page."""
    listing = ("tasks_listing", "tasks_listing_status", "tasks_listing_func")
    records = [_record(n, COMMON) for n in range(4_000)]
    await backend.append(queue, records)
    conn = await asyncpg.connect(SERVER_URL)

    async def sizes() -> dict[str, int]:
        size = "SELECT pg_relation_size($1::regclass)"
        return {name: await conn.fetchval(size, f"{quote_ident(schema)}.{name}")
                for name in (*listing, "tasks_claimable_expired")}

    try:
        before = await sizes()
        claimed = []
        while len(claimed) < len(records):
            claimed += await backend.pop(queue, limit=1_000, lease=60)
        ids = [r["id"] for r in claimed]
        assert len(await backend.heartbeat(queue, ids, lease=120)) == len(ids)
        after = await sizes()
    finally:
        await conn.close()
    assert after["tasks_claimable_expired"] > before["tasks_claimable_expired"], "no claim was indexed"
    grown = {name: (before[name], after[name]) for name in listing if after[name] != before[name]}
    assert not grown, f"claims wrote entries in listing indexes (bytes before, after): {grown}"
