"""append.* and schedule.status/unique: storing and queueing records."""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

from sheppy_conformance._clause import clause
from sheppy_conformance._env import Env
from sheppy_conformance.records import (
    brief,
    changes,
    finished,
    future,
    ids,
    named,
    raises,
    task_record,
    within,
)
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


RACE_ADVICE = "a check-then-insert races: make the insert itself refuse a duplicate id"
"""What a backend that loses a unique-id race must change, in one clause."""


def _one_winner(results: list[bool], call: str, round_number: int, clause_id: str) -> int:
    """The index of the single True among concurrent unique writes; asserts there is exactly one."""
    winners = [i for i, stored in enumerate(results) if stored is True]
    advice = RACE_ADVICE if winners else "one of them must store the new id"
    assert len(winners) == 1, (
        f"{len(winners)} of {len(results)} concurrent {call} calls with the same new id returned True (race "
        f"{round_number + 1} of {RACE_ROUNDS}); [{clause_id}]: exactly one stores it, the others return "
        f"False; {advice}"
    )
    return winners[0]


def _wrong_places(got: list[Any], want: list[Any]) -> str:
    """Where a long returned list differs from the required one: its length, else the wrong positions."""
    if len(got) != len(want):
        return f"{len(got)} entries instead of {len(want)}"
    wrong = [i for i, (item, wanted) in enumerate(zip(got, want, strict=True)) if item != wanted]
    return f"wrong at positions {brief(wrong)}"


def _queued_once(listed: list[str], raced: list[str]) -> str:
    """How a listing of raced ids falls short of each id exactly once (duplicates, missing, unknown)."""
    counts = Counter(listed)
    twice = sum(1 for task_id in raced if counts[task_id] > 1)
    missing = sum(1 for task_id in raced if counts[task_id] == 0)
    unknown = sum(count for task_id, count in counts.items() if task_id not in raced)
    return f"{twice} ids listed more than once, {missing} missing, {unknown} unknown entries"


class EnqueueClauses:
    @clause("append.connection")
    async def test_append_connection_is_a_keyword_of_append_and_schedule(self, env: Env) -> None:
        q, b = env.queue(), env.backend
        queued, scheduled = task_record(1), task_record(2)
        # ``connection=None`` is the contract's default on every backend: nothing changes.
        appended = await b.append(q, [queued], connection=None)
        assert appended == [True], (
            f"append(q, [new record], connection=None) returned {brief(appended)}; [append.connection]: "
            f"connection=None is the default on every backend, so the new record is stored and queued: [True]"
        )
        scheduled_ok = await b.schedule(q, scheduled, future(3600), connection=None)
        assert scheduled_ok is True, (
            f"schedule(q, new record, at, connection=None) returned {scheduled_ok!r}; [append.connection]: "
            f"connection=None is the default on every backend, so the new record is stored: True"
        )
        found = set(await b.get_tasks(q, ids([queued, scheduled])))
        names = {queued["id"]: "appended", scheduled["id"]: "scheduled"}
        assert found == set(ids([queued, scheduled])), (
            "get_tasks after append/schedule with connection=None found "
            f"{brief(sorted(named(found, names)))}; [append.connection]: connection=None changes nothing, "
            "so both records are stored"
        )
        if TRANSACTIONAL_ENQUEUE in type(b).capabilities:
            return  # what a transaction of the store is, only the backend's own tests know
        other, later = task_record(3), task_record(4)
        refusal = "without TRANSACTIONAL_ENQUEUE must raise NotSupportedError naming transactional_enqueue"
        with raises(NotSupportedError, f"append(connection=object()) {refusal} [append.connection]",
                    match="transactional_enqueue"):
            await b.append(q, [other], connection=object())
        with raises(NotSupportedError, f"schedule(connection=object()) {refusal} [append.connection]",
                    match="transactional_enqueue"):
            await b.schedule(q, later, future(3600), connection=object())
        leftover = await b.get_tasks(q, ids([other, later]))
        assert leftover == {}, (
            f"get_tasks found {brief(named(leftover, {other['id']: 'appended', later['id']: 'scheduled'}))} "
            f"after append/schedule refused connection=object(); [append.connection]: a backend without "
            f"TRANSACTIONAL_ENQUEUE accepts only connection=None and stores nothing for anything else"
        )

    @clause("append.status")
    async def test_append_status(self, env: Env) -> None:
        q, b = env.queue(), env.backend
        records = [task_record(1), task_record(2)]
        assert records[0]["status"] == "new", (
            f"the suite's task_record() made status {records[0]['status']!r}; [append.status] is judged on "
            f"records that arrive as sheppy-core hands them over, status 'new'"
        )
        appended = await b.append(q, records)
        assert appended == [True, True], (
            f"append(q, two new records) returned {brief(appended)}; [append.status]: a record with a new id "
            f"is stored and queued, True for each: [True, True]"
        )
        stored = await b.get_tasks(q, ids(records))
        for original in records:
            got = stored[original["id"]]
            assert got["status"] == "pending", (
                f"get_tasks after append shows status {brief(got['status'])}; [append.status]: a queued "
                f"record is stored with status 'pending'"
            )
            # Everything the backend does not own comes back equal.
            for key in ("spec", "config", "created_at", "result", "retry_count", "workflow_id"):
                assert got.get(key) == original.get(key), (
                    f"get_tasks after append shows {key}={brief(got.get(key))} where the appended record "
                    f"had {brief(original.get(key))}; [append.status]: append stores the record as given, "
                    f"setting only status"
                )

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
        appended = await b.append(q, copies)
        assert appended == [False] * 4, (
            f"append(q, new records with the ids of a queued, claimed, scheduled and finished task) returned "
            f"{brief(appended)}; [append.unique]: an id that exists in any state is neither stored nor "
            f"queued: [False, False, False, False]"
        )
        after = await b.get_stats(q)
        assert after == before, (
            f"get_stats changed {brief(changes(before, after))} (before, after) on append of 4 existing "
            f"ids; [append.unique]: a record whose id exists is neither stored nor queued"
        )
        stored = await b.get_tasks(q, ids(copies))
        found = {t: (_args(r), r["status"]) for t, r in stored.items()}
        kept = {
            queued["id"]: ([0], "pending"),
            claimed["id"]: ([1], "processing"),
            scheduled["id"]: ([2], "scheduled"),
            done["id"]: ([3], "completed"),
        }
        names = {
            queued["id"]: "queued", claimed["id"]: "claimed", scheduled["id"]: "scheduled", done["id"]: "done"
        }
        assert found == kept, (
            f"after append of duplicates get_tasks shows (args, status) "
            f"{brief(dict(zip(named(found, names), found.values(), strict=True)))}; [append.unique]: the "
            f"stored record is unchanged: {brief(dict(zip(named(kept, names), kept.values(), strict=True)))}"
        )

    @clause("append.unique")
    async def test_append_unique_first_of_a_batch_wins(self, env: Env) -> None:
        q, b = env.queue(), env.backend
        first = task_record(1)
        second = dict(first, spec=dict(first["spec"], args=[2]))
        appended = await b.append(q, [first, second])
        assert appended == [True, False], (
            f"append(q, [record, record with the same id]) returned {brief(appended)}; [append.unique]: two "
            f"records with the same id in one call: the first wins: [True, False]"
        )
        size = await b.size(q)
        assert size == 1, (
            f"size() is {size} after append of two records with one id; [append.unique]: the second is "
            f"neither stored nor queued, so the id is queued once: 1"
        )
        kept = _args((await b.get_tasks(q, [first["id"]]))[first["id"]])
        assert kept == [1], (
            f"get_tasks shows args {brief(kept)} after append of two records with one id; [append.unique]: "
            f"the first wins, its args are [1]"
        )

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
            winner = _one_winner(results, "append(unique=True)", round_number, "append.unique")
            stored = (await b.get_tasks(q, [task_id]))[task_id]
            written_by = _args(stored)
            assert written_by == [winner], (
                f"writer {winner}'s append(unique=True) returned True but get_tasks shows writer "
                f"{brief(written_by)}'s record (race {round_number + 1} of {RACE_ROUNDS}); [append.unique]: "
                f"an append that returns False leaves the stored record unchanged; {RACE_ADVICE}"
            )
            stored_ids.append(task_id)
        pending = ids(await b.get_pending(q, 10 * RACE_ROUNDS))
        assert sorted(pending) == sorted(stored_ids), (
            f"get_pending after {RACE_ROUNDS} append(unique=True) races lists {len(pending)} entries "
            f"({_queued_once(pending, stored_ids)}); [append.unique]: each raced id is queued exactly once; "
            f"{RACE_ADVICE}"
        )
        size = await b.size(q)
        assert size == RACE_ROUNDS, (
            f"size() is {size} after {RACE_ROUNDS} append(unique=True) races of one new id each; "
            f"[append.unique]: each id is queued once: {RACE_ROUNDS}; {RACE_ADVICE}"
        )

    @clause("append.replace")
    async def test_append_replace_queued_claimed_scheduled(self, env: Env) -> None:
        q, b = env.queue(), env.backend
        head, claimed, scheduled = task_record(1), task_record(2), task_record(3)
        await b.append(q, [head, claimed])
        await b.pop(q, worker_id="old", lease=30)  # claims head
        await b.schedule(q, scheduled, future(3600))
        replacements = [dict(r, spec=dict(r["spec"], args=[10 + i])) for i, r in enumerate((head, scheduled))]
        replaced = await b.append(q, replacements, unique=False)
        assert replaced == [True, True], (
            f"append(unique=False) of a claimed and a scheduled id returned {brief(replaced)}; "
            f"[append.replace]: the record replaces the stored one and is queued: [True, True]"
        )
        # The old claim and the schedule entry are gone; every id is queued exactly once, at the tail.
        extended = await b.heartbeat(q, [head["id"]], worker_id="old", lease=30)
        assert extended == [], (
            f"heartbeat(worker_id='old') of the replaced claimed id returned {brief(extended)}; "
            "[append.replace]: append(unique=False) drops any claim for that id, so the old claimant's "
            "heartbeat reports it lost: []"
        )
        names = {head["id"]: "#1", claimed["id"]: "#2", scheduled["id"]: "#3"}
        still_scheduled = await b.get_scheduled(q)
        assert still_scheduled == [], (
            f"get_scheduled() lists {brief(named(ids(still_scheduled), names))} after append(unique=False) "
            "of the scheduled #3; [append.replace]: its schedule entry is dropped, it is never queued and "
            "scheduled at once"
        )
        size = await b.size(q)
        assert size == 3, (
            f"size() is {size} after append(unique=False) of a claimed and a scheduled id beside one queued; "
            f"[append.replace]: the task is queued, never twice: 3"
        )
        stats = await b.get_stats(q)
        placed = (stats["processing"], stats["scheduled"], stats["pending"])
        assert placed == (0, 0, 3), (
            f"get_stats() shows (processing, scheduled, pending) = {placed} after append(unique=False) of a "
            "claimed and a scheduled id; [append.replace]: their claim and schedule entry are dropped: "
            "(0, 0, 3)"
        )
        popped = await b.pop(q, limit=10, lease=30)
        assert ids(popped) == [claimed["id"], head["id"], scheduled["id"]], (
            f"pop(limit=10) returned {brief(named(ids(popped), names))}; [append.replace]: a replaced task "
            "is queued at the tail: #2 (left queued), then the replaced #1 (was claimed) and #3 (was "
            "scheduled): ['#2', '#1', '#3']"
        )
        popped_args = [_args(r) for r in popped]
        assert popped_args == [[2], [10], [11]], (
            f"pop(limit=10) returned records with args {brief(popped_args)}; [append.replace]: the new "
            f"record replaces the stored one: [[2], [10], [11]]"
        )
        assert popped[1]["deliveries"] == 1, (
            f"the replaced claimed task was popped with deliveries={brief(popped[1]['deliveries'])}; "
            f"[append.replace]: the new record replaces the stored one and this is its first claim: 1"
        )

    @clause("append.replace")
    async def test_append_replace_finished_requeues_it(self, env: Env) -> None:
        q, b = env.queue(), env.backend
        record = task_record(1)
        await b.append(q, [record])
        await b.pop(q, lease=30)
        await b.store_result(q, finished(record))
        replaced = await b.append(q, [task_record(5, id=record["id"])], unique=False)
        assert replaced == [True], (
            f"append(unique=False) of a finished id returned {brief(replaced)}; [append.replace]: the record "
            f"replaces the finished one and is queued: [True]"
        )
        stats = await b.get_stats(q)
        counts = (stats["pending"], stats["completed"])
        assert counts == (1, 0), (
            f"get_stats() shows (pending, completed) = {counts} after append(unique=False) of a finished id; "
            f"[append.replace]: the record replaces the finished one and is queued: (1, 0)"
        )
        again = _args((await b.pop(q, lease=30))[0])
        assert again == [5], (
            f"pop() returned a record with args {brief(again)}; [append.replace]: the queued record is the "
            f"replacement, args [5]"
        )

    @clause("append.batch")
    async def test_append_batch(self, env: Env) -> None:
        q, b = env.queue(), env.backend
        empty = await b.append(q, [])
        assert empty == [], f"append(q, []) returned {brief(empty)}; [append.batch]: an empty list returns []"
        existing = task_record(0)
        await b.append(q, [existing])
        batch = [task_record(i) for i in range(1, 40)]
        mixed = [*batch[:20], existing, *batch[20:]]
        appended = await b.append(q, mixed)
        each = [True] * 20 + [False] + [True] * 19
        assert appended == each, (
            f"append(q, 40 records, the 21st an existing id) returned {brief(appended)}, "
            f"{_wrong_places(appended, each)}; [append.batch]: one bool per record in order, each stored on "
            f"its own: True for the 39 new ids, False at position 20"
        )
        size = await b.size(q)
        assert size == 40, (
            f"size() is {size} after append of 39 new ids and one existing; [append.batch]: each new record "
            f"is stored and queued, the existing one is not: 40"
        )
        pending = ids(await b.get_pending(q, 100))
        appended_order = [existing["id"], *ids(batch)]
        assert pending == appended_order, (
            f"get_pending(100) returned {_wrong_places(pending, appended_order)} against the append order; "
            f"[append.batch]: records are queued in list order, after the one appended before"
        )

    @clause("append.fifo")
    async def test_append_fifo(self, env: Env) -> None:
        q, b = env.queue(), env.backend
        records = [task_record(i) for i in range(12)]
        for chunk in (records[:1], records[1:5], records[5:6], records[6:]):
            await b.append(q, chunk)
        popped = [r for _ in records for r in await b.pop(q, lease=30)]
        names = {r["id"]: f"#{i}" for i, r in enumerate(records)}
        assert ids(popped) == ids(records), (
            f"12 pop() calls after appending #0..#11 in four calls claimed {named(ids(popped), names)}; "
            f"[append.fifo]: tasks are claimed in the order they were appended"
        )

    @clause("schedule.status")
    async def test_schedule_status(self, env: Env) -> None:
        q, b = env.queue(), env.backend
        record, at = task_record(1), future(3600)
        scheduled_ok = await b.schedule(q, record, at)
        assert scheduled_ok is True, (
            f"schedule(q, new record, in 1 h) returned {scheduled_ok!r}; [schedule.status]: a record with a "
            f"new id is stored: True"
        )
        stored = (await b.get_tasks(q, [record["id"]]))[record["id"]]
        assert stored["status"] == "scheduled", (
            f"get_tasks after schedule shows status {brief(stored['status'])}; [schedule.status]: stored "
            f"with status 'scheduled'"
        )
        # Backends may keep times to the millisecond.
        drift = abs((from_iso(stored["scheduled_at"]) - at).total_seconds())
        assert drift < 0.001, (
            f"get_tasks after schedule(at={at.isoformat()}) shows "
            f"scheduled_at={brief(stored['scheduled_at'])}, {drift:.6f} s off; [schedule.status]: "
            "scheduled_at is set to at (to the millisecond)"
        )
        size = await b.size(q)
        assert size == 0, (
            f"size() is {size} after schedule(q, record, in 1 h); [schedule.status]: schedule keeps the "
            f"record out of the queue until at: 0"
        )
        counted = (await b.get_stats(q))["scheduled"]
        assert counted == 1, (
            f"get_stats() counts scheduled={counted} after one schedule; [schedule.status]: the record is "
            f"stored as scheduled: 1"
        )
        listed = ids(await b.get_scheduled(q))
        assert listed == [record["id"]], (
            f"get_scheduled() lists {brief(named(listed, {record['id']: 'scheduled'}))}; [schedule.status]: "
            f"it lists the one scheduled record: ['scheduled']"
        )
        with raises(BackendInputError,
                    "schedule(q, record, at=<naive at>) must raise BackendInputError [schedule.status]"):
            await b.schedule(q, task_record(2), at.replace(tzinfo=None))

    @clause("schedule.unique")
    async def test_schedule_unique(self, env: Env) -> None:
        q, b = env.queue(), env.backend
        queued, scheduled = task_record(1), task_record(2)
        await b.append(q, [queued])
        await b.schedule(q, scheduled, future(3600))
        names = {queued["id"]: "queued", scheduled["id"]: "scheduled"}
        of_queued = await b.schedule(q, dict(queued, spec=dict(queued["spec"], args=[9])), future(60))
        assert of_queued is False, (
            f"schedule(unique=True) of a queued id returned {of_queued!r}; [schedule.unique]: False and no "
            f"change when the id exists"
        )
        of_scheduled = await b.schedule(q, scheduled, future(7200))
        assert of_scheduled is False, (
            f"schedule(unique=True) of a scheduled id returned {of_scheduled!r}; [schedule.unique]: False "
            f"and no change when the id exists"
        )
        size = await b.size(q)
        assert size == 1, (
            f"size() is {size} after schedule(unique=True) of a queued and a scheduled id; "
            f"[schedule.unique]: no change, the queued task stays queued: 1"
        )
        listed = ids(await b.get_scheduled(q))
        assert listed == [scheduled["id"]], (
            f"get_scheduled() lists {brief(named(listed, names))} after schedule(unique=True) of existing "
            f"ids; [schedule.unique]: no change: ['scheduled']"
        )
        # unique=False: the queued one is moved to the schedule, replaced.
        replacement = dict(queued, spec=dict(queued["spec"], args=[9]))
        replaced = await b.schedule(q, replacement, future(60), unique=False)
        assert replaced is True, (
            f"schedule(unique=False) of a queued id returned {replaced!r}; [schedule.unique]: with "
            f"unique=False the record replaces the stored one: True"
        )
        size = await b.size(q)
        assert size == 0, (
            f"size() is {size} after schedule(unique=False) of the queued id; [schedule.unique]: the record "
            f"replaces its queue entry: 0"
        )
        listed = ids(await b.get_scheduled(q))
        assert listed == [queued["id"], scheduled["id"]], (
            f"get_scheduled() lists {brief(named(listed, names))} after schedule(unique=False) of the "
            "queued id in 60 s; [schedule.unique]: it is scheduled once, in due order: "
            "['queued', 'scheduled']"
        )
        kept = _args((await b.get_tasks(q, [queued["id"]]))[queued["id"]])
        assert kept == [9], (
            f"get_tasks shows args {brief(kept)} after schedule(unique=False); [schedule.unique]: the record "
            f"replaces the stored one: [9]"
        )

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
            winner = _one_winner(results, "schedule(unique=True)", round_number, "schedule.unique")
            stored = (await b.get_tasks(q, [task_id]))[task_id]
            written_by = _args(stored)
            assert written_by == [winner], (
                f"writer {winner}'s schedule(unique=True) returned True but get_tasks shows writer "
                f"{brief(written_by)}'s record (race {round_number + 1} of {RACE_ROUNDS}); "
                f"[schedule.unique]: a schedule that returns False makes no change; {RACE_ADVICE}"
            )
            stored_ids.append(task_id)
        scheduled = ids(await b.get_scheduled(q))
        assert sorted(scheduled) == sorted(stored_ids), (
            f"get_scheduled after {RACE_ROUNDS} schedule(unique=True) races lists {len(scheduled)} entries "
            f"({_queued_once(scheduled, stored_ids)}); [schedule.unique]: each raced id is scheduled exactly "
            f"once; {RACE_ADVICE}"
        )
        counted = (await b.get_stats(q))["scheduled"]
        assert counted == RACE_ROUNDS, (
            f"get_stats() counts scheduled={counted} after {RACE_ROUNDS} schedule(unique=True) races of one "
            f"new id each; [schedule.unique]: each id is stored once: {RACE_ROUNDS}; {RACE_ADVICE}"
        )
        size = await b.size(q)
        assert size == 0, (
            f"size() is {size} after {RACE_ROUNDS} schedule(unique=True) races; [schedule.status]: schedule "
            f"keeps the records out of the queue until their time: 0"
        )
