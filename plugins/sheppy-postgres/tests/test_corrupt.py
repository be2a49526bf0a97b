"""Corrupt rows (``[robust.corrupt_record]``) on the paths the conformance clause does not reach.

A row whose ``data`` is not a task record of its key, written behind the backend's back: a pop fills its
``limit`` with the good tasks behind such rows in the same call, one left claimed by a dead worker is set
aside by the next claimer, and every other read (``get_pending``, ``get_scheduled``, ``pop_scheduled``,
``get_results``, ``cancel``) hands out the quarantine stand-in instead of failing, also for an id long
enough to be stored as a hash.
"""

from __future__ import annotations

import logging
from datetime import timedelta

import asyncpg
import pytest
from sheppy_postgres import PostgresBackend
from sheppy_postgres._config import quote_ident
from sheppy_postgres._records import encode_name

from sheppy_core.backend import QUARANTINED, utcnow

from .conftest import SERVER_URL, task, write_raw_task


async def _sql(query: str, *args: object) -> None:
    conn = await asyncpg.connect(SERVER_URL)
    try:
        await conn.execute(query, *args)
    finally:
        await conn.close()


def _quarantine_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage() for r in caplog.records if r.name == "sheppy.backend" and r.levelno == logging.WARNING
    ]


async def test_pop_fills_its_limit_with_the_good_tasks_behind_corrupt_rows(
    backend: PostgresBackend, schema: str, queue: str, caplog: pytest.LogCaptureFixture
) -> None:
    for i in range(3):
        await write_raw_task(schema, queue, f"bad-{i}", "not json{")
    await backend.append(queue, [task("good-1"), task("good-2")])
    with caplog.at_level(logging.WARNING, "sheppy.backend"):
        claimed = await backend.pop(queue, limit=2, lease=30)
    assert [r["id"] for r in claimed] == ["good-1", "good-2"]
    stats = await backend.get_stats(queue)
    assert (stats[QUARANTINED], stats["processing"], stats["pending"]) == (3, 2, 0), stats
    warnings = _quarantine_warnings(caplog)
    assert len(warnings) == 3 and all(queue in w for w in warnings), warnings
    assert all(f"bad-{i}" in " ".join(warnings) for i in range(3))


async def test_a_corrupt_row_claimed_by_a_dead_worker_is_set_aside_by_the_next_claimer(
    backend: PostgresBackend, schema: str, queue: str
) -> None:
    # What a worker killed between its claim and setting the row aside leaves: claimed, lease passed.
    await write_raw_task(schema, queue, "orphan", "[1, 2")
    await _sql(
        f"UPDATE {quote_ident(schema)}.tasks SET state = 'claimed', status = 'processing', "
        "claimed_by = 'dead-worker', lease_expires_at = now() - interval '1 second', deliveries = 1 "
        "WHERE queue = $1 AND id = $2",
        encode_name(queue), "orphan",
    )
    await backend.append(queue, [task("good")])
    assert [r["id"] for r in await backend.pop(queue, limit=1, lease=30)] == ["good"]
    orphan = (await backend.get_tasks(queue, ["orphan"]))["orphan"]
    assert orphan["status"] == QUARANTINED and orphan["quarantine"]["raw"] == "[1, 2"
    assert (await backend.get_stats(queue))["processing"] == 1


async def test_every_read_hands_out_the_stand_in(backend: PostgresBackend, schema: str, queue: str) -> None:
    await write_raw_task(schema, queue, "queued-bad", "{truncated")
    await write_raw_task(schema, queue, "scheduled-bad", '"a string"')
    past = utcnow() - timedelta(seconds=5)
    await _sql(
        f"UPDATE {quote_ident(schema)}.tasks SET state = 'scheduled', status = 'scheduled', due_at = $3 "
        "WHERE queue = $1 AND id = $2",
        encode_name(queue), "scheduled-bad", past,
    )
    assert [r["id"] for r in await backend.get_pending(queue, 5)] == ["queued-bad"]
    assert (await backend.get_pending(queue, 5))[0]["status"] == QUARANTINED
    scheduled = await backend.get_scheduled(queue)
    assert [(r["id"], r["status"]) for r in scheduled] == [("scheduled-bad", QUARANTINED)]
    moved = await backend.pop_scheduled(queue)
    assert [(r["id"], r["status"]) for r in moved] == [("scheduled-bad", QUARANTINED)]

    # cancel sets it aside (it is never run) and hands out the stand-in, its text kept.
    cancelled = await backend.cancel(queue, "queued-bad")
    assert cancelled is not None and cancelled["status"] == QUARANTINED
    assert cancelled["quarantine"]["raw"] == "{truncated"
    assert await backend.size(queue) == 1  # only scheduled-bad, moved to the queue, is left there
    results = await backend.get_results(queue, ["queued-bad"])
    assert results["queued-bad"]["quarantine"]["raw"] == "{truncated"
    assert (await backend.get_stats(queue))[QUARANTINED] == 1

    # After a pop set the other one aside, get_results hands it out too.
    assert await backend.pop(queue, limit=5, lease=30) == []
    assert (await backend.get_results(queue, ["scheduled-bad"]))["scheduled-bad"]["status"] == QUARANTINED


async def test_a_corrupt_row_under_a_hashed_id_reads_deletes_and_is_set_aside(
    backend: PostgresBackend, schema: str, queue: str
) -> None:
    long_id = "x" * 3000  # over 1000 bytes: stored under a hash of it
    other = "y" * 3000
    await write_raw_task(schema, queue, long_id, "not json{")
    await write_raw_task(schema, queue, other, '{"id": "someone-else"}')
    stand_in = (await backend.get_tasks(queue, [long_id]))[long_id]
    assert stand_in["status"] == QUARANTINED and stand_in["id"] == long_id
    listed = await backend.get_all_tasks(queue)
    assert [r["status"] for r in listed] == [QUARANTINED, QUARANTINED]
    assert await backend.delete_task(queue, long_id) is True
    assert await backend.pop(queue, limit=5, lease=30) == []
    set_aside = (await backend.get_tasks(queue, [other]))[other]
    assert (set_aside["id"], set_aside["status"]) == (other, QUARANTINED)
    assert set_aside["quarantine"]["raw"] == '{"id": "someone-else"}'
    assert (await backend.get_stats(queue))[QUARANTINED] == 1
    assert await backend.delete_task(queue, other) is True
    assert await backend.get_tasks(queue, [long_id, other]) == {}
