"""The capability-dependent clauses: cron.*, rate_limit.* and workflow.*."""

from __future__ import annotations

import asyncio
import math
import time
import uuid
from typing import Any

from sheppy_conformance._clause import clause
from sheppy_conformance._env import Env
from sheppy_conformance.clauses.inspect import _cron
from sheppy_conformance.records import (
    FAR_FUTURE,
    brief,
    finished,
    future,
    raises,
    requeued,
    task_record,
    within,
)
from sheppy_core.backend import CRON, RATE_LIMIT, WORKFLOWS, BackendInputError

__all__ = ["OptionalClauses"]


_CONCURRENT_WRITERS = 8
"""Writers racing on one new id: backend objects on one store (``SHARED_STORE``), else coroutines."""

_RACE_ROUNDS = 10
"""Rounds of each race: a check-then-insert loses only some of them on a real store."""


def _expressions(crons: Any) -> str:
    """The cron definitions a call returned, shown by expression: a whole definition is too long for a
    summary line."""
    if not isinstance(crons, list):
        return brief(crons)
    return brief([c.get("expression", c) if isinstance(c, dict) else c for c in crons])


async def _sleep_to_window_start(period: float) -> None:
    """Sleep until just after a fixed-window boundary, so a test's grants all fall in one window."""
    now = time.time()
    await asyncio.sleep((math.floor(now / period) + 1) * period - now + 0.02)


class OptionalClauses:
    # -- cron ------------------------------------------------------------------------------------

    @clause("cron.unique", requires=CRON)
    async def test_cron_unique(self, env: Env) -> None:
        q, b = env.queue(), env.backend
        cron = _cron()
        added = await b.add_cron(q, "det-1", cron)
        assert added is True, f"add_cron of a new id returned {added!r}; [cron.unique]: True when stored"
        added_again = await b.add_cron(q, "det-1", _cron("*/5 * * * *"))
        assert added_again is False, (
            f"add_cron of an id that exists returned {added_again!r}; [cron.unique]: False (and no change) "
            f"if that id exists in the queue; an overwrite makes every worker re-add and fire the cron"
        )
        crons = await b.get_crons(q)
        assert crons == [cron], (
            f"get_crons after a refused add_cron of an existing id returned {_expressions(crons)}; "
            f"[cron.unique]: no change, the first definition {_expressions([cron])} stays"
        )
        other = await env.peer()
        added_by_peer = await other.add_cron(q, "det-1", cron)
        assert added_by_peer is False, (
            f"add_cron from a second backend object of an id that exists returned {added_by_peer!r}; "
            f"[cron.unique]: False if that id exists in the queue, whichever client stored it"
        )

    @clause("cron.unique", requires=CRON, timeout=30)
    async def test_cron_unique_under_concurrency(self, env: Env) -> None:
        """Adders (objects on one store, or coroutines on one object) add the same new id at once, round
        after round: one True per round, and the stored definition is the winner's."""
        q = env.queue()
        adders = await env.peers(_CONCURRENT_WRITERS)
        definitions = [_cron(f"{minute} * * * *") for minute in range(_CONCURRENT_WRITERS)]
        won = []
        for round_number in range(_RACE_ROUNDS):
            det = f"det-{round_number}"
            calls = [a.add_cron(q, det, d) for a, d in zip(adders, definitions, strict=True)]
            results = list(await within(10, asyncio.gather(*calls)))
            winners = [i for i, added in enumerate(results) if added is True]
            assert len(winners) == 1, (
                f"{len(winners)} concurrent add_cron of one new id returned True; exactly one adder may "
                f"store it, the others get False; a check-then-insert races: make the insert itself refuse "
                f"an existing id [cron.unique]"
                f"\nround {round_number + 1} of {_RACE_ROUNDS}, {len(results)} adders: {brief(results)}"
            )
            won.append(definitions[winners[0]])
        key = lambda c: c["expression"]  # noqa: E731
        crons = await env.backend.get_crons(q)
        assert sorted(crons, key=key) == sorted(won, key=key), (
            f"get_crons after {_RACE_ROUNDS} add_cron races returned {_expressions(sorted(crons, key=key))}; "
            f"[cron.unique]: the winners' definitions, one per id, {_expressions(sorted(won, key=key))}"
        )

    @clause("cron.delete", requires=CRON)
    async def test_cron_delete(self, env: Env) -> None:
        q, b = env.queue(), env.backend
        await b.add_cron(q, "det-1", _cron())
        await b.add_cron(q, "det-2", _cron("*/5 * * * *"))
        deleted = await b.delete_cron(q, "det-1")
        assert deleted is True, (
            f"delete_cron of a stored cron returned {deleted!r}; "
            f"[cron.delete]: True if the definition existed"
        )
        deleted_again = await b.delete_cron(q, "det-1")
        assert deleted_again is False, (
            f"a second delete_cron of the same cron returned {deleted_again!r}; "
            f"[cron.delete]: False when the definition does not exist"
        )
        deleted_unknown = await b.delete_cron(q, "unknown")
        assert deleted_unknown is False, (
            f"delete_cron of an unknown id returned {deleted_unknown!r}; "
            f"[cron.delete]: False when the definition does not exist"
        )
        crons = await b.get_crons(q)
        assert crons == [_cron("*/5 * * * *")], (
            f"get_crons after delete_cron of one of two crons returned {_expressions(crons)}; "
            f"[cron.delete]: only the other one stays, ['*/5 * * * *']"
        )
        added_back = await b.add_cron(q, "det-1", _cron())
        assert added_back is True, (
            f"add_cron of a deleted cron's id returned {added_back!r}; "
            f"[cron.delete]: the definition is removed, so the id can be added again"
        )

    @clause("cron.delete", requires=CRON)
    async def test_cron_delete_takes_its_waiting_occurrences(self, env: Env) -> None:
        """Deleting a cron deletes, in the same step, its occurrences still scheduled; its queued,
        claimed, retrying and finished occurrences, other crons' and other tasks are left alone."""
        q, b = env.queue(), env.backend
        cron_id, other_cron = str(uuid.uuid4()), str(uuid.uuid4())
        await b.add_cron(q, cron_id, _cron())
        await b.add_cron(q, other_cron, _cron("*/5 * * * *"))
        waiting = [task_record(i, cron_id=cron_id) for i in range(3)]
        for record in waiting:
            scheduled = await b.schedule(q, record, FAR_FUTURE)
            assert scheduled, (
                f"schedule of a new occurrence returned {scheduled!r}; [cron.delete] needs it stored "
                f"(see [schedule.status])"
            )
        claimed, retrying, done = (task_record(i, cron_id=cron_id) for i in (10, 11, 12))
        for record in (claimed, retrying, done):
            await b.append(q, [record])
            (taken,) = await b.pop(q, lease=30)
            assert taken["id"] == record["id"], (
                f"pop after append of {record['id']} to a queue with nothing else queued returned "
                f"{taken['id']}; [cron.delete] needs the only queued task claimed (see [pop.fifo])"
            )
            if record is retrying:
                await b.store_result(q, requeued(taken, status="retrying"))
            elif record is done:
                await b.store_result(q, finished(taken))
        queued = task_record(13, cron_id=cron_id)
        await b.schedule(q, queued, future(-60))
        moved = [r["id"] for r in await b.pop_scheduled(q)]
        assert moved == [queued["id"]], (
            f"pop_scheduled with one occurrence due a minute ago returned {brief(moved)}; [cron.delete] "
            f"needs exactly it moved to the queue, [{queued['id']!r}] (see [schedule.due_moved])"
        )
        others = [task_record(20, cron_id=other_cron), task_record(21)]
        for record in others:
            await b.schedule(q, record, FAR_FUTURE)

        deleted = await b.delete_cron(q, cron_id)
        assert deleted is True, (
            f"delete_cron of a stored cron returned {deleted!r}; "
            f"[cron.delete]: True if the definition existed"
        )
        gone = [r["id"] for r in waiting]
        still_stored = await b.get_tasks(q, gone)
        assert still_stored == {}, (
            f"after delete_cron, get_tasks of its 3 scheduled occurrences returned {len(still_stored)} "
            f"(statuses {brief(sorted(str(r.get('status')) for r in still_stored.values()))}); "
            f"[cron.delete]: its waiting occurrences are deleted in the same atomic step, not cancelled: "
            f"nothing of them stays"
        )
        kept = {r["id"]: r for r in (claimed, retrying, done, queued, *others)}
        statuses = {t: r["status"] for t, r in (await b.get_tasks(q, list(kept))).items()}
        want_statuses = {
            claimed["id"]: "processing", retrying["id"]: "retrying", done["id"]: "completed",
            queued["id"]: "pending", others[0]["id"]: "scheduled", others[1]["id"]: "scheduled",
        }
        assert statuses == want_statuses, (
            f"after delete_cron, the statuses of its claimed/retrying/finished/queued occurrences and of "
            f"other tasks are {brief(sorted(statuses.values()))}; [cron.delete]: they are left as they are, "
            f"{brief(sorted(want_statuses.values()))}\ngot {statuses}\nwant {want_statuses}"
        )
        scheduled_ids = sorted(r["id"] for r in await b.get_scheduled(q))
        want_scheduled = sorted([retrying["id"], *(r["id"] for r in others)])
        assert scheduled_ids == want_scheduled, (
            f"get_scheduled after delete_cron returned {len(scheduled_ids)} ids; [cron.delete]: only the "
            f"retrying occurrence and the other tasks stay scheduled, {len(want_scheduled)} ids"
            f"\ngot {scheduled_ids}\nwant {want_scheduled}"
        )
        scheduled_count = (await b.get_stats(q))["scheduled"]
        assert scheduled_count == 3, (
            f"get_stats after delete_cron counts {scheduled_count} scheduled; [cron.delete]: 3 stay "
            f"(the retrying occurrence and the two other tasks), the deleted occurrences are not counted"
        )
        crons = await b.get_crons(q)
        assert crons == [_cron("*/5 * * * *")], (
            f"get_crons after delete_cron of one of two crons returned {_expressions(crons)}; "
            f"[cron.delete]: only the other one stays, ['*/5 * * * *']"
        )
        # Deleted, not kept as cancelled: the cron added back schedules the same slots again.
        added_back = await b.add_cron(q, cron_id, _cron())
        assert added_back is True, (
            f"add_cron of a deleted cron's id returned {added_back!r}; "
            f"[cron.delete]: the definition is removed, so the id can be added again"
        )
        rescheduled = await b.schedule(q, waiting[0], FAR_FUTURE)
        assert rescheduled is True, (
            f"schedule of a deleted occurrence's id returned {rescheduled!r}; [cron.delete]: occurrences are "
            f"deleted, not cancelled, so the same ids can be scheduled again when the cron is added back"
        )

    @clause("cron.delete", requires=CRON)
    async def test_cron_delete_of_an_unknown_cron_changes_nothing(self, env: Env) -> None:
        q, b = env.queue(), env.backend
        orphan = task_record(1, cron_id=str(uuid.uuid4()))
        await b.schedule(q, orphan, FAR_FUTURE)
        deleted = await b.delete_cron(q, orphan["cron_id"])
        assert deleted is False, (
            f"delete_cron of an id with no definition returned {deleted!r}; [cron.delete]: False when the "
            f"definition does not exist"
        )
        scheduled_ids = [r["id"] for r in await b.get_scheduled(q)]
        assert scheduled_ids == [orphan["id"]], (
            f"get_scheduled after delete_cron of an unknown cron returned {brief(scheduled_ids)}; "
            f"[cron.delete]: False changes nothing, the task with that cron_id stays scheduled, "
            f"[{orphan['id']!r}]"
        )

    @clause("cron.list", requires=CRON)
    async def test_cron_list(self, env: Env) -> None:
        q, b = env.queue(), env.backend
        crons_before = await b.get_crons(q)
        assert crons_before == [], (
            f"get_crons of a new queue returned {_expressions(crons_before)}; [cron.list]: every stored cron "
            f"definition of the queue, none yet"
        )
        crons = {f"det-{i}": _cron(expr) for i, expr in enumerate(("* * * * *", "0 * * * *", "0 0 * * 1"))}
        for det, cron in crons.items():
            await b.add_cron(q, det, cron)
        listed = await b.get_crons(q)
        by_expression = lambda c: c["expression"]  # noqa: E731
        want = sorted(crons.values(), key=by_expression)
        listed_sorted = sorted(listed, key=by_expression)
        assert listed_sorted == want, (
            f"get_crons after add_cron of 3 crons returned {_expressions(listed_sorted)}; "
            f"[cron.list]: every stored cron definition of the queue, as stored, {_expressions(want)}"
        )
        other_crons = await b.get_crons(env.queue("other"))
        assert other_crons == [], (
            f"get_crons of another queue returned {_expressions(other_crons)}; [cron.list]: the definitions "
            f"of that queue only, none"
        )

    # -- rate limits -----------------------------------------------------------------------------

    @clause("rate_limit.sliding_window", requires=RATE_LIMIT)
    async def test_rate_limit_sliding_window(self, env: Env) -> None:
        q, b = env.queue(), env.backend
        for task_id in ("t1", "t2", "t3"):
            grant = await b.acquire_rate_limit(q, "key", 3, 0.8, task_id)
            assert grant is None, (
                f"acquire_rate_limit(max_rate=3, rate_period=0.8) for {task_id} returned {grant!r}; "
                f"[rate_limit.sliding_window]: granted (None) while fewer than 3 starts are in the "
                f"trailing 0.8 s"
            )
        wait = await b.acquire_rate_limit(q, "key", 3, 0.8, "t4")
        assert wait is not None and 0 < wait <= 0.8, (
            f"a 4th acquire_rate_limit(max_rate=3, rate_period=0.8) in the window returned {wait!r}; "
            f"[rate_limit.sliding_window]: refused, with the seconds (> 0, <= 0.8) until its reserved start"
        )
        # A holder is not charged twice.
        regrant = await b.acquire_rate_limit(q, "key", 3, 0.8, "t2")
        assert regrant is None, (
            f"acquire_rate_limit again for t2, which holds a start in the window, returned {regrant!r}; "
            f"[rate_limit.sliding_window]: granted again without using another start (a redelivery is not "
            f"charged twice)"
        )
        # Keys are separate.
        other_key = await b.acquire_rate_limit(q, "other-key", 3, 0.8, "t4")
        assert other_key is None, (
            f"acquire_rate_limit of another key, with no starts, returned {other_key!r}; "
            f"[rate_limit.sliding_window]: each key has its own budget, so it is granted"
        )
        await asyncio.sleep(wait + 0.05)
        # The first three grants have left the window: three new starts fit, a fourth does not.
        for task_id in ("t4", "t5", "t6"):
            grant = await b.acquire_rate_limit(q, "key", 3, 0.8, task_id)
            assert grant is None, (
                f"acquire_rate_limit for {task_id} after the first 3 starts left the 0.8 s window returned "
                f"{grant!r}; [rate_limit.sliding_window]: granted while fewer than 3 starts are in the window"
            )
        fourth = await b.acquire_rate_limit(q, "key", 3, 0.8, "t7")
        assert fourth is not None, (
            "acquire_rate_limit for t7 with 3 starts already in the trailing 0.8 s returned None (granted); "
            "[rate_limit.sliding_window]: granted only while fewer than max_rate=3 starts are in the window"
        )

    @clause("rate_limit.fixed_window", requires=RATE_LIMIT)
    async def test_rate_limit_fixed_window(self, env: Env) -> None:
        q, b = env.queue(), env.backend
        period = 0.5
        await _sleep_to_window_start(period)
        for task_id in ("t1", "t2"):
            grant = await b.acquire_rate_limit(q, "key", 2, period, task_id, strategy="fixed_window")
            assert grant is None, (
                f"acquire_rate_limit(max_rate=2, rate_period={period}, fixed_window) for {task_id} at a "
                f"window's start returned {grant!r}; [rate_limit.fixed_window]: up to 2 starts per window "
                f"are granted"
            )
        wait = await b.acquire_rate_limit(q, "key", 2, period, "t3", strategy="fixed_window")
        window_end = (math.floor(time.time() / period) + 1) * period
        assert wait is not None, (
            f"a 3rd acquire_rate_limit(max_rate=2, rate_period={period}, fixed_window) in one window "
            f"returned None (granted); [rate_limit.fixed_window]: at most max_rate=2 starts per window"
        )
        off_by = time.time() + wait - window_end
        assert 0 < wait <= period and abs(off_by) < 0.15, (
            f"a refused acquire_rate_limit(fixed_window, rate_period={period}) returned a wait of "
            f"{wait!r} s, {off_by:+.3f} s from the window's end; [rate_limit.fixed_window]: the seconds "
            f"(> 0) until the reserved start, which is when the next window begins"
        )
        await asyncio.sleep(wait + 0.02)
        reserved = await b.acquire_rate_limit(q, "key", 2, period, "t3", strategy="fixed_window")
        assert reserved is None, (
            f"acquire_rate_limit for t3 after its returned wait of {wait:.3f} s returned {reserved!r}; "
            f"[rate_limit.fixed_window]: a later call for the task from that moment on is granted "
            f"(its start was reserved)"
        )

    @clause("rate_limit.atomic", requires=RATE_LIMIT)
    async def test_rate_limit_atomic(self, env: Env) -> None:
        q = env.queue()
        takers = await env.peers(4)
        for strategy in ("sliding_window", "fixed_window"):
            calls = [takers[i % 4].acquire_rate_limit(q, strategy, 5, 60, f"t{i}", strategy=strategy)
                     for i in range(25)]
            granted = [r for r in await within(10, asyncio.gather(*calls)) if r is None]
            # A fixed window may roll over during the burst: at most one window's budget twice.
            assert len(granted) == 5 or (strategy == "fixed_window" and len(granted) <= 10), (
                f"{len(granted)} of 25 concurrent acquire_rate_limit(max_rate=5, rate_period=60, {strategy}) "
                f"from 4 clients were granted; [rate_limit.atomic]: grants and reservations never exceed the "
                f"budget of 5 (a fixed window rolling over mid-burst: 10 at most); a read-then-write of the "
                f"count races: take the start in one atomic step"
            )

    @clause("rate_limit.input", requires=RATE_LIMIT)
    async def test_rate_limit_input(self, env: Env) -> None:
        q, b = env.queue(), env.backend
        for args, strategy in (((0, 1.0), "sliding_window"), ((1, 0.0), "fixed_window"),
                               ((1, 1.0), "leaky_bucket")):
            max_rate, rate_period = args
            why = (f"acquire_rate_limit(max_rate={max_rate}, rate_period={rate_period}, "
                   f"strategy={strategy!r}) must raise BackendInputError [rate_limit.input]: an unknown "
                   f"strategy, max_rate < 1 or rate_period <= 0 is refused")
            with raises(BackendInputError, why):
                await b.acquire_rate_limit(q, "key", *args, task_id="t", strategy=strategy)

    # -- workflows -------------------------------------------------------------------------------

    @clause("workflow.store", requires=WORKFLOWS)
    async def test_workflow_store(self, env: Env) -> None:
        q, b = env.queue(), env.backend
        first: dict[str, Any] = {"id": "wf", "version": 1, "pending_task_ids": ["a", "b"]}
        stored = await b.store_workflow(q, first)
        assert stored is True, (
            f"store_workflow of a new workflow (if_version=None) returned {stored!r}; [workflow.store]: "
            f"the record is stored"
        )
        second = dict(first, version=2, pending_task_ids=["b", "c"])
        replaced = await b.store_workflow(q, second)
        assert replaced is True, (
            f"store_workflow (if_version=None) over a stored workflow returned {replaced!r}; "
            f"[workflow.store]: the record replaces any stored one"
        )
        got = await b.get_workflows(q, ["wf"])
        assert got == {"wf": second}, (
            f"get_workflows after store_workflow replaced a workflow returned {brief(got)}; "
            f"[workflow.store]: the record replaces any stored one, {brief({'wf': second})}"
        )
        # The set was replaced.
        remaining = await b.mark_workflow_task_complete(q, "wf", "a")
        assert remaining == -1, (
            f"mark_workflow_task_complete of 'a', dropped from pending_task_ids by the replacing record, "
            f"returned {remaining!r}; [workflow.store]: the stored pending_task_ids replace the pending set, "
            f"so 'a' is not in it (-1)"
        )
        remaining = await b.mark_workflow_task_complete(q, "wf", "c")
        assert remaining == 1, (
            f"mark_workflow_task_complete of 'c' with pending set ['b', 'c'] returned {remaining!r}; "
            f"[workflow.store]: the replacing record's pending_task_ids are the pending set, 1 remains"
        )
        finished_workflow = dict(second, version=3, completed=True)
        stored = await b.store_workflow(q, finished_workflow)
        assert stored is True, (
            f"store_workflow of a completed record over a stored workflow returned {stored!r}; "
            f"[workflow.store]: the record replaces any stored one"
        )
        # Finished: the pending set is dropped.
        remaining = await b.mark_workflow_task_complete(q, "wf", "b")
        assert remaining == -1, (
            f"mark_workflow_task_complete of 'b' after the workflow was stored completed returned "
            f"{remaining!r}; [workflow.store]: once finished the pending set is dropped (-1)"
        )
        every_workflow = await b.get_all_workflows(q)
        assert every_workflow == [finished_workflow], (
            f"get_all_workflows returned {brief(every_workflow)}; [workflow.store]: the last stored record, "
            f"as stored, {brief([finished_workflow])}"
        )

    @clause("workflow.cas", requires=WORKFLOWS)
    async def test_workflow_cas(self, env: Env) -> None:
        q, b = env.queue(), env.backend
        record: dict[str, Any] = {"id": "wf", "version": 1, "pending_task_ids": []}
        # A missing record is version 0.
        written = await b.store_workflow(q, record, if_version=1)
        assert written is False, (
            f"store_workflow(if_version=1) of a workflow not stored yet returned {written!r}; "
            f"[workflow.cas]: a missing record counts as version 0, so the versions differ (False)"
        )
        written = await b.store_workflow(q, record, if_version=0)
        assert written is True, (
            f"store_workflow(if_version=0) of a workflow not stored yet returned {written!r}; "
            f"[workflow.cas]: a missing record counts as version 0, so it is written (True)"
        )
        written = await b.store_workflow(q, dict(record, version=2), if_version=0)
        assert written is False, (
            f"store_workflow(if_version=0) over a stored version 1 returned {written!r}; [workflow.cas]: "
            f"written only if the stored version equals if_version (False)"
        )
        writers = await env.peers(5)
        writes = [w.store_workflow(q, dict(record, version=2, writer=i), if_version=1)
                  for i, w in enumerate(writers)]
        results = await within(10, asyncio.gather(*writes))
        assert sorted(results) == [False] * 4 + [True], (
            f"{list(results).count(True)} of 5 concurrent store_workflow(if_version=1) over version 1 "
            f"returned True; [workflow.cas]: the compare-and-set is atomic, exactly one writer wins; "
            f"a read-then-write races: make the write itself check the version\nresults: {brief(results)}"
        )
        stored = (await b.get_workflows(q, ["wf"]))["wf"]
        assert stored["version"] == 2 and stored["writer"] == results.index(True), (
            f"after 5 concurrent compare-and-sets, get_workflows returned version {stored.get('version')!r} "
            f"by writer {stored.get('writer')!r}; [workflow.cas]: the record of the one writer that got "
            f"True, writer {results.index(True)}, version 2"
        )
        unversioned = {"id": "wf2"}
        await b.store_workflow(q, unversioned)
        written = await b.store_workflow(q, dict(unversioned, version=1), if_version=0)
        assert written is True, (
            f"store_workflow(if_version=0) over a stored record without a version field returned "
            f"{written!r}; [workflow.cas]: a missing version field counts as 0, so it is written (True)"
        )

    @clause("workflow.cas", requires=WORKFLOWS, timeout=30)
    async def test_workflow_cas_create_under_concurrency(self, env: Env) -> None:
        """Creators store the same new workflow with ``if_version=0`` at once, round after round: a
        missing record is version 0 for exactly one of them; the stored record is the winner's."""
        q, b = env.queue(), env.backend
        creators = await env.peers(_CONCURRENT_WRITERS)
        for round_number in range(_RACE_ROUNDS):
            workflow_id = f"wf-{round_number}"
            records = [{"id": workflow_id, "version": 1, "pending_task_ids": [], "writer": i}
                       for i in range(len(creators))]
            calls = [c.store_workflow(q, r, if_version=0) for c, r in zip(creators, records, strict=True)]
            results = list(await within(10, asyncio.gather(*calls)))
            winners = [i for i, stored in enumerate(results) if stored is True]
            assert len(winners) == 1, (
                f"{len(winners)} concurrent store_workflow(if_version=0) of a new workflow returned True; "
                f"exactly one creator may win; an upsert is not a create-if-absent [workflow.cas]"
                f"\nround {round_number + 1} of {_RACE_ROUNDS}, {len(results)} creators: {brief(results)}"
            )
            stored = (await b.get_workflows(q, [workflow_id]))[workflow_id]
            assert stored["writer"] == winners[0], (
                f"get_workflows after a create race returned creator {stored.get('writer')!r}'s record, but "
                f"creator {winners[0]}'s store_workflow(if_version=0) returned True (round {round_number}); "
                f"[workflow.cas]: the stored record is the winner's, a loser writes nothing"
            )

    @clause("workflow.get", requires=WORKFLOWS)
    async def test_workflow_get(self, env: Env) -> None:
        q, b = env.queue(), env.backend
        records = [{"id": f"wf{i}", "version": 1, "pending_task_ids": [], "data": "é🐑"} for i in range(3)]
        for record in records:
            await b.store_workflow(q, record)
        got = await b.get_workflows(q, ["wf0", "wf2", "missing"])
        want = {"wf0": records[0], "wf2": records[2]}
        assert got == want, (
            f"get_workflows(['wf0', 'wf2', 'missing']) returned {brief(got)}; [workflow.get]: {{id: record}} "
            f"for the stored workflows among the ids, as stored, {brief(want)}"
        )
        other_queue = await b.get_workflows(env.queue("other"), ["wf0"])
        assert other_queue == {}, (
            f"get_workflows(['wf0']) on another queue returned {brief(other_queue)}; [workflow.get]: only "
            f"that queue's workflows, none"
        )

    @clause("workflow.pending", requires=WORKFLOWS)
    async def test_workflow_pending(self, env: Env) -> None:
        q, b = env.queue(), env.backend
        await b.store_workflow(q, {"id": "open", "pending_task_ids": ["a"], "finished_at": None})
        finished_at = "2026-01-01T00:00:00Z"
        await b.store_workflow(q, {"id": "done", "pending_task_ids": [], "finished_at": finished_at})
        await b.store_workflow(q, {"id": "completed", "pending_task_ids": [], "completed": True})
        pending_ids = [w["id"] for w in await b.get_pending_workflows(q)]
        assert pending_ids == ["open"], (
            f"get_pending_workflows returned {brief(pending_ids)}; [workflow.pending]: every unfinished "
            f"workflow (finished_at null and completed not true), ['open']"
        )
        all_ids = sorted(w["id"] for w in await b.get_all_workflows(q))
        assert all_ids == ["completed", "done", "open"], (
            f"get_all_workflows returned {brief(all_ids)}; [workflow.pending]: every stored workflow record, "
            f"finished or not, ['completed', 'done', 'open']"
        )

    @clause("workflow.delete", requires=WORKFLOWS)
    async def test_workflow_delete(self, env: Env) -> None:
        q, b = env.queue(), env.backend
        await b.store_workflow(q, {"id": "wf", "pending_task_ids": ["a"]})
        deleted = await b.delete_workflow(q, "wf")
        assert deleted is True, (
            f"delete_workflow of a stored workflow returned {deleted!r}; "
            f"[workflow.delete]: True if it existed"
        )
        deleted_again = await b.delete_workflow(q, "wf")
        assert deleted_again is False, (
            f"a second delete_workflow of the same workflow returned {deleted_again!r}; [workflow.delete]: "
            f"False when it does not exist"
        )
        got = await b.get_workflows(q, ["wf"])
        assert got == {}, (
            f"get_workflows of a deleted workflow returned {brief(got)}; "
            f"[workflow.delete]: the record is deleted"
        )
        remaining = await b.mark_workflow_task_complete(q, "wf", "a")
        assert remaining == -1, (
            f"mark_workflow_task_complete of a deleted workflow's pending id returned {remaining!r}; "
            f"[workflow.delete]: its pending set is deleted with it (-1)"
        )
        pending = await b.get_pending_workflows(q)
        assert pending == [], (
            f"get_pending_workflows after delete_workflow returned {brief(pending)}; [workflow.delete]: "
            f"the deleted workflow is gone, none"
        )

    @clause("workflow.mark_complete", requires=WORKFLOWS)
    async def test_workflow_mark_complete(self, env: Env) -> None:
        q = env.queue()
        pending = [f"t{i}" for i in range(12)]
        await env.backend.store_workflow(q, {"id": "wf", "pending_task_ids": pending})
        markers = await env.peers(4)
        calls = [markers[i % 4].mark_workflow_task_complete(q, "wf", t) for i, t in enumerate(pending)]
        remaining = await within(10, asyncio.gather(*calls))
        assert sorted(remaining) == list(range(12)), (
            f"12 concurrent mark_workflow_task_complete of a 12-id pending set returned "
            f"{brief(sorted(remaining))}; [workflow.mark_complete]: atomic, each removal sees a distinct "
            f"remaining count (0..11), exactly one sees 0; a read-then-write of the set races: remove and "
            f"count in one atomic step"
        )
        removed_again = await env.backend.mark_workflow_task_complete(q, "wf", "t0")
        assert removed_again == -1, (
            f"mark_workflow_task_complete of an id already removed returned {removed_again!r}; "
            f"[workflow.mark_complete]: -1 if the id was not in the set, so each id is counted once"
        )
        unknown = await env.backend.mark_workflow_task_complete(q, "unknown", "t0")
        assert unknown == -1, (
            f"mark_workflow_task_complete on an unknown workflow returned {unknown!r}; "
            f"[workflow.mark_complete]: -1 for an unknown workflow"
        )

    @clause("workflow.results", requires=WORKFLOWS)
    async def test_workflow_results(self, env: Env) -> None:
        q, b = env.queue(), env.backend
        wf = "7d8a4a7e-0000-4000-8000-000000000001"
        done, running, alien = task_record(1, workflow_id=wf), task_record(2, workflow_id=wf), task_record(3)
        await b.append(q, [done, running, alien])
        claimed = await b.pop(q, limit=3, lease=30)
        await b.store_result(q, finished(claimed[0], result="r1"))
        await b.store_result(q, finished(claimed[2], result="r3"))
        got = await b.get_workflow_results(q, wf)
        result_of_done = got[done["id"]].get("result") if done["id"] in got else None
        assert list(got) == [done["id"]] and got[done["id"]]["result"] == "r1", (
            f"get_workflow_results returned ids {brief(list(got))} (result of the finished one: "
            f"{brief(result_of_done)}); [workflow.results]: {{id: record}} of every finished task record of "
            f"the workflow, only [{done['id']!r}] with result 'r1'"
        )
