"""append.* and schedule.status/unique: storing and queueing records."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from sheppy_conformance._clause import clause
from sheppy_conformance._env import Env
from sheppy_conformance.records import finished, future, ids, task_record, within
from sheppy_core.backend import TRANSACTIONAL_ENQUEUE, BackendInputError, NotSupportedError, from_iso

__all__ = ["EnqueueClauses"]


CONCURRENT_WRITERS = 8
"""Writers racing on one new id: backend objects on one store (``SHARED_STORE``), else coroutines."""

RACE_ROUNDS = 10
"""Rounds of each race: a check-then-insert loses only some of them on a real store."""


def _args(record: dict[str, Any]) -> list[Any]:
    return list(record["spec"]["args"])


def _copies(record: dict[str, Any], count: int) -> list[dict[str, Any]]:
    """``count`` records with ``record``'s id, the i-th with argument i: the stored one names its writer."""
    return [dict(record, spec=dict(record["spec"], args=[i])) for i in range(count)]


def _one_winner(results: list[bool], call: str, round_number: int) -> int:
    """The index of the single True among concurrent unique writes; asserts there is exactly one."""
    winners = [i for i, stored in enumerate(results) if stored is True]
    assert len(winners) == 1, (
        f"round {round_number}: {len(winners)} of {len(results)} concurrent {call} calls with the same new "
        f"id returned True; with unique=True exactly one may store it (the others must return False)"
    )
    return winners[0]


class EnqueueClauses:
    @clause("append.connection")
    async def test_append_connection_is_a_keyword_of_append_and_schedule(self, env: Env) -> None:
        q, b = env.queue(), env.backend
        queued, scheduled = task_record(1), task_record(2)
        # ``connection=None`` is the contract's default on every backend: nothing changes.
        assert await b.append(q, [queued], connection=None) == [True]
        assert await b.schedule(q, scheduled, future(3600), connection=None) is True
        assert set(await b.get_tasks(q, ids([queued, scheduled]))) == set(ids([queued, scheduled]))
        if TRANSACTIONAL_ENQUEUE in type(b).capabilities:
            return  # what a transaction of the store is, only the backend's own tests know
        other, later = task_record(3), task_record(4)
        with pytest.raises(NotSupportedError, match="transactional_enqueue"):
            await b.append(q, [other], connection=object())
        with pytest.raises(NotSupportedError, match="transactional_enqueue"):
            await b.schedule(q, later, future(3600), connection=object())
        assert await b.get_tasks(q, ids([other, later])) == {}

    @clause("append.status")
    async def test_append_status(self, env: Env) -> None:
        q, b = env.queue(), env.backend
        records = [task_record(1), task_record(2)]
        assert records[0]["status"] == "new"
        assert await b.append(q, records) == [True, True]
        stored = await b.get_tasks(q, ids(records))
        for original in records:
            got = stored[original["id"]]
            assert got["status"] == "pending"
            # Everything the backend does not own comes back equal.
            for key in ("spec", "config", "created_at", "result", "retry_count", "workflow_id"):
                assert got[key] == original[key], key

    @clause("append.unique")
    async def test_append_unique_in_every_state(self, env: Env) -> None:
        q, b = env.queue(), env.backend
        queued, claimed, scheduled, done = (task_record(i) for i in range(4))
        await b.append(q, [claimed, done])
        await b.pop(q, limit=2, lease=30)
        await b.store_result(q, finished(done))
        await b.append(q, [queued])
        await b.schedule(q, scheduled, future(3600))
        before = await b.get_stats(q)
        copies = [dict(r, spec=dict(r["spec"], args=[99])) for r in (queued, claimed, scheduled, done)]
        assert await b.append(q, copies) == [False] * 4
        assert await b.get_stats(q) == before
        stored = await b.get_tasks(q, ids(copies))
        assert {t: (_args(r), r["status"]) for t, r in stored.items()} == {
            queued["id"]: ([0], "pending"),
            claimed["id"]: ([1], "processing"),
            scheduled["id"]: ([2], "scheduled"),
            done["id"]: ([3], "completed"),
        }

    @clause("append.unique")
    async def test_append_unique_first_of_a_batch_wins(self, env: Env) -> None:
        q, b = env.queue(), env.backend
        first = task_record(1)
        second = dict(first, spec=dict(first["spec"], args=[2]))
        assert await b.append(q, [first, second]) == [True, False]
        assert await b.size(q) == 1
        assert _args((await b.get_tasks(q, [first["id"]]))[first["id"]]) == [1]

    @clause("append.unique", timeout=30)
    async def test_append_unique_under_concurrency(self, env: Env) -> None:
        """Writers append the same new id at once, round after round: one True per round, one record
        (the winner's), queued once."""
        q, b = env.queue(), env.backend
        writers = await env.peers(CONCURRENT_WRITERS)
        stored_ids: list[str] = []
        for round_number in range(RACE_ROUNDS):
            copies = _copies(task_record(), CONCURRENT_WRITERS)
            task_id = copies[0]["id"]
            calls = [w.append(q, [c]) for w, c in zip(writers, copies, strict=True)]
            results = [r[0] for r in await within(10, asyncio.gather(*calls))]
            winner = _one_winner(results, "append(unique=True)", round_number)
            stored = (await b.get_tasks(q, [task_id]))[task_id]
            assert _args(stored) == [winner], (
                f"round {round_number}: the stored record is writer {_args(stored)}'s, but writer "
                f"{winner}'s append returned True"
            )
            stored_ids.append(task_id)
        pending = ids(await b.get_pending(q, 10 * RACE_ROUNDS))
        assert sorted(pending) == sorted(stored_ids), (
            f"after {RACE_ROUNDS} races each id must be queued exactly once; queued: {pending}"
        )
        assert await b.size(q) == RACE_ROUNDS

    @clause("append.replace")
    async def test_append_replace_queued_claimed_scheduled(self, env: Env) -> None:
        q, b = env.queue(), env.backend
        head, claimed, scheduled = task_record(1), task_record(2), task_record(3)
        await b.append(q, [head, claimed])
        await b.pop(q, worker_id="old", lease=30)  # claims head
        await b.schedule(q, scheduled, future(3600))
        replacements = [dict(r, spec=dict(r["spec"], args=[10 + i])) for i, r in enumerate((head, scheduled))]
        assert await b.append(q, replacements, unique=False) == [True, True]
        # The old claim and the schedule entry are gone; every id is queued exactly once, at the tail.
        assert await b.heartbeat(q, [head["id"]], worker_id="old", lease=30) == []
        assert await b.get_scheduled(q) == []
        assert await b.size(q) == 3
        stats = await b.get_stats(q)
        assert (stats["processing"], stats["scheduled"], stats["pending"]) == (0, 0, 3)
        popped = await b.pop(q, limit=10, lease=30)
        assert ids(popped) == [claimed["id"], head["id"], scheduled["id"]]
        assert [_args(r) for r in popped] == [[2], [10], [11]]
        assert popped[1]["deliveries"] == 1

    @clause("append.replace")
    async def test_append_replace_finished_requeues_it(self, env: Env) -> None:
        q, b = env.queue(), env.backend
        record = task_record(1)
        await b.append(q, [record])
        await b.pop(q, lease=30)
        await b.store_result(q, finished(record))
        assert await b.append(q, [task_record(5, id=record["id"])], unique=False) == [True]
        stats = await b.get_stats(q)
        assert (stats["pending"], stats["completed"]) == (1, 0)
        assert _args((await b.pop(q, lease=30))[0]) == [5]

    @clause("append.batch")
    async def test_append_batch(self, env: Env) -> None:
        q, b = env.queue(), env.backend
        assert await b.append(q, []) == []
        existing = task_record(0)
        await b.append(q, [existing])
        batch = [task_record(i) for i in range(1, 40)]
        mixed = [*batch[:20], existing, *batch[20:]]
        assert await b.append(q, mixed) == [True] * 20 + [False] + [True] * 19
        assert await b.size(q) == 40
        assert ids(await b.get_pending(q, 100)) == [existing["id"], *ids(batch)]

    @clause("append.fifo")
    async def test_append_fifo(self, env: Env) -> None:
        q, b = env.queue(), env.backend
        records = [task_record(i) for i in range(12)]
        for chunk in (records[:1], records[1:5], records[5:6], records[6:]):
            await b.append(q, chunk)
        popped = [r for _ in records for r in await b.pop(q, lease=30)]
        assert ids(popped) == ids(records)

    @clause("schedule.status")
    async def test_schedule_status(self, env: Env) -> None:
        q, b = env.queue(), env.backend
        record, at = task_record(1), future(3600)
        assert await b.schedule(q, record, at) is True
        stored = (await b.get_tasks(q, [record["id"]]))[record["id"]]
        assert stored["status"] == "scheduled"
        # Backends may keep times to the millisecond.
        assert abs((from_iso(stored["scheduled_at"]) - at).total_seconds()) < 0.001
        assert await b.size(q) == 0
        assert (await b.get_stats(q))["scheduled"] == 1
        assert ids(await b.get_scheduled(q)) == [record["id"]]
        with pytest.raises(BackendInputError):
            await b.schedule(q, task_record(2), at.replace(tzinfo=None))

    @clause("schedule.unique")
    async def test_schedule_unique(self, env: Env) -> None:
        q, b = env.queue(), env.backend
        queued, scheduled = task_record(1), task_record(2)
        await b.append(q, [queued])
        await b.schedule(q, scheduled, future(3600))
        assert await b.schedule(q, dict(queued, spec=dict(queued["spec"], args=[9])), future(60)) is False
        assert await b.schedule(q, scheduled, future(7200)) is False
        assert await b.size(q) == 1
        assert ids(await b.get_scheduled(q)) == [scheduled["id"]]
        # unique=False: the queued one is moved to the schedule, replaced.
        replacement = dict(queued, spec=dict(queued["spec"], args=[9]))
        assert await b.schedule(q, replacement, future(60), unique=False) is True
        assert await b.size(q) == 0
        assert ids(await b.get_scheduled(q)) == [queued["id"], scheduled["id"]]
        assert _args((await b.get_tasks(q, [queued["id"]]))[queued["id"]]) == [9]

    @clause("schedule.unique", timeout=30)
    async def test_schedule_unique_under_concurrency(self, env: Env) -> None:
        """Writers schedule the same new id at once, round after round: one True per round, one record
        (the winner's), scheduled once."""
        q, b = env.queue(), env.backend
        writers = await env.peers(CONCURRENT_WRITERS)
        stored_ids: list[str] = []
        at = future(3600)
        for round_number in range(RACE_ROUNDS):
            copies = _copies(task_record(), CONCURRENT_WRITERS)
            task_id = copies[0]["id"]
            calls = [w.schedule(q, c, at) for w, c in zip(writers, copies, strict=True)]
            results = list(await within(10, asyncio.gather(*calls)))
            winner = _one_winner(results, "schedule(unique=True)", round_number)
            stored = (await b.get_tasks(q, [task_id]))[task_id]
            assert _args(stored) == [winner], (
                f"round {round_number}: the stored record is writer {_args(stored)}'s, but writer "
                f"{winner}'s schedule returned True"
            )
            stored_ids.append(task_id)
        scheduled = ids(await b.get_scheduled(q))
        assert sorted(scheduled) == sorted(stored_ids), (
            f"after {RACE_ROUNDS} races each id must be scheduled exactly once; scheduled: {scheduled}"
        )
        assert (await b.get_stats(q))["scheduled"] == RACE_ROUNDS
        assert await b.size(q) == 0
