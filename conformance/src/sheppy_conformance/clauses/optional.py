"""The capability-dependent clauses: cron.*, rate_limit.* and workflow.*."""

from __future__ import annotations

import asyncio
import math
import time
import uuid
from typing import Any

import pytest

from sheppy_conformance._clause import clause
from sheppy_conformance._env import Env
from sheppy_conformance.clauses.inspect import _cron
from sheppy_conformance.records import FAR_FUTURE, finished, future, requeued, task_record, within
from sheppy_core.backend import CRON, RATE_LIMIT, WORKFLOWS, BackendInputError

__all__ = ["OptionalClauses"]


_CONCURRENT_WRITERS = 8
"""Writers racing on one new id: backend objects on one store (``SHARED_STORE``), else coroutines."""

_RACE_ROUNDS = 10
"""Rounds of each race: a check-then-insert loses only some of them on a real store."""


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
        assert await b.add_cron(q, "det-1", cron) is True
        assert await b.add_cron(q, "det-1", _cron("*/5 * * * *")) is False
        assert await b.get_crons(q) == [cron]
        other = await env.peer()
        assert await other.add_cron(q, "det-1", cron) is False

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
                f"round {round_number}: {len(winners)} of {len(results)} concurrent add_cron calls with the "
                f"same new id returned True; exactly one may store it (the others must return False)"
            )
            won.append(definitions[winners[0]])
        key = lambda c: c["expression"]  # noqa: E731
        crons = await env.backend.get_crons(q)
        assert sorted(crons, key=key) == sorted(won, key=key), (
            f"after {_RACE_ROUNDS} races the stored crons must be the winners' definitions, one per id"
        )

    @clause("cron.delete", requires=CRON)
    async def test_cron_delete(self, env: Env) -> None:
        q, b = env.queue(), env.backend
        await b.add_cron(q, "det-1", _cron())
        await b.add_cron(q, "det-2", _cron("*/5 * * * *"))
        assert await b.delete_cron(q, "det-1") is True
        assert await b.delete_cron(q, "det-1") is False
        assert await b.delete_cron(q, "unknown") is False
        assert await b.get_crons(q) == [_cron("*/5 * * * *")]
        assert await b.add_cron(q, "det-1", _cron()) is True

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
            assert await b.schedule(q, record, FAR_FUTURE)
        claimed, retrying, done = (task_record(i, cron_id=cron_id) for i in (10, 11, 12))
        for record in (claimed, retrying, done):
            await b.append(q, [record])
            (taken,) = await b.pop(q, lease=30)
            assert taken["id"] == record["id"]
            if record is retrying:
                await b.store_result(q, requeued(taken, status="retrying"))
            elif record is done:
                await b.store_result(q, finished(taken))
        queued = task_record(13, cron_id=cron_id)
        await b.schedule(q, queued, future(-60))
        assert [r["id"] for r in await b.pop_scheduled(q)] == [queued["id"]]
        others = [task_record(20, cron_id=other_cron), task_record(21)]
        for record in others:
            await b.schedule(q, record, FAR_FUTURE)

        assert await b.delete_cron(q, cron_id) is True
        gone = [r["id"] for r in waiting]
        assert await b.get_tasks(q, gone) == {}, "a deleted cron's scheduled occurrences are still stored"
        kept = {r["id"]: r for r in (claimed, retrying, done, queued, *others)}
        statuses = {t: r["status"] for t, r in (await b.get_tasks(q, list(kept))).items()}
        assert statuses == {
            claimed["id"]: "processing", retrying["id"]: "retrying", done["id"]: "completed",
            queued["id"]: "pending", others[0]["id"]: "scheduled", others[1]["id"]: "scheduled",
        }
        assert sorted(r["id"] for r in await b.get_scheduled(q)) == sorted(
            [retrying["id"], *(r["id"] for r in others)]
        )
        assert (await b.get_stats(q))["scheduled"] == 3
        assert await b.get_crons(q) == [_cron("*/5 * * * *")]
        # Deleted, not kept as cancelled: the cron added back schedules the same slots again.
        assert await b.add_cron(q, cron_id, _cron()) is True
        assert await b.schedule(q, waiting[0], FAR_FUTURE) is True

    @clause("cron.delete", requires=CRON)
    async def test_cron_delete_of_an_unknown_cron_changes_nothing(self, env: Env) -> None:
        q, b = env.queue(), env.backend
        orphan = task_record(1, cron_id=str(uuid.uuid4()))
        await b.schedule(q, orphan, FAR_FUTURE)
        assert await b.delete_cron(q, orphan["cron_id"]) is False
        assert [r["id"] for r in await b.get_scheduled(q)] == [orphan["id"]]

    @clause("cron.list", requires=CRON)
    async def test_cron_list(self, env: Env) -> None:
        q, b = env.queue(), env.backend
        assert await b.get_crons(q) == []
        crons = {f"det-{i}": _cron(expr) for i, expr in enumerate(("* * * * *", "0 * * * *", "0 0 * * 1"))}
        for det, cron in crons.items():
            await b.add_cron(q, det, cron)
        listed = await b.get_crons(q)
        by_expression = lambda c: c["expression"]  # noqa: E731
        assert sorted(listed, key=by_expression) == sorted(crons.values(), key=by_expression)
        assert await b.get_crons(env.queue("other")) == []

    # -- rate limits -----------------------------------------------------------------------------

    @clause("rate_limit.sliding_window", requires=RATE_LIMIT)
    async def test_rate_limit_sliding_window(self, env: Env) -> None:
        q, b = env.queue(), env.backend
        for task_id in ("t1", "t2", "t3"):
            assert await b.acquire_rate_limit(q, "key", 3, 0.8, task_id) is None, task_id
        wait = await b.acquire_rate_limit(q, "key", 3, 0.8, "t4")
        assert wait is not None and 0 < wait <= 0.8, wait
        assert await b.acquire_rate_limit(q, "key", 3, 0.8, "t2") is None  # a holder is not charged twice
        assert await b.acquire_rate_limit(q, "other-key", 3, 0.8, "t4") is None  # keys are separate
        await asyncio.sleep(wait + 0.05)
        # The first three grants have left the window: three new starts fit, a fourth does not.
        for task_id in ("t4", "t5", "t6"):
            assert await b.acquire_rate_limit(q, "key", 3, 0.8, task_id) is None, task_id
        assert await b.acquire_rate_limit(q, "key", 3, 0.8, "t7") is not None

    @clause("rate_limit.fixed_window", requires=RATE_LIMIT)
    async def test_rate_limit_fixed_window(self, env: Env) -> None:
        q, b = env.queue(), env.backend
        period = 0.5
        await _sleep_to_window_start(period)
        assert await b.acquire_rate_limit(q, "key", 2, period, "t1", strategy="fixed_window") is None
        assert await b.acquire_rate_limit(q, "key", 2, period, "t2", strategy="fixed_window") is None
        wait = await b.acquire_rate_limit(q, "key", 2, period, "t3", strategy="fixed_window")
        window_end = (math.floor(time.time() / period) + 1) * period
        assert wait is not None, "a third start was granted in a window of two"
        assert 0 < wait <= period and abs(time.time() + wait - window_end) < 0.15, wait
        await asyncio.sleep(wait + 0.02)
        assert await b.acquire_rate_limit(q, "key", 2, period, "t3", strategy="fixed_window") is None

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
                strategy, len(granted))

    @clause("rate_limit.input", requires=RATE_LIMIT)
    async def test_rate_limit_input(self, env: Env) -> None:
        q, b = env.queue(), env.backend
        for args, strategy in (((0, 1.0), "sliding_window"), ((1, 0.0), "fixed_window"),
                               ((1, 1.0), "leaky_bucket")):
            with pytest.raises(BackendInputError):
                await b.acquire_rate_limit(q, "key", *args, task_id="t", strategy=strategy)

    # -- workflows -------------------------------------------------------------------------------

    @clause("workflow.store", requires=WORKFLOWS)
    async def test_workflow_store(self, env: Env) -> None:
        q, b = env.queue(), env.backend
        first: dict[str, Any] = {"id": "wf", "version": 1, "pending_task_ids": ["a", "b"]}
        assert await b.store_workflow(q, first) is True
        second = dict(first, version=2, pending_task_ids=["b", "c"])
        assert await b.store_workflow(q, second) is True
        assert await b.get_workflows(q, ["wf"]) == {"wf": second}
        assert await b.mark_workflow_task_complete(q, "wf", "a") == -1  # the set was replaced
        assert await b.mark_workflow_task_complete(q, "wf", "c") == 1
        assert await b.store_workflow(q, dict(second, version=3, completed=True)) is True
        assert await b.mark_workflow_task_complete(q, "wf", "b") == -1  # finished: pending set dropped
        assert await b.get_all_workflows(q) == [dict(second, version=3, completed=True)]

    @clause("workflow.cas", requires=WORKFLOWS)
    async def test_workflow_cas(self, env: Env) -> None:
        q, b = env.queue(), env.backend
        record: dict[str, Any] = {"id": "wf", "version": 1, "pending_task_ids": []}
        assert await b.store_workflow(q, record, if_version=1) is False  # missing record is version 0
        assert await b.store_workflow(q, record, if_version=0) is True
        assert await b.store_workflow(q, dict(record, version=2), if_version=0) is False
        writers = await env.peers(5)
        writes = [w.store_workflow(q, dict(record, version=2, writer=i), if_version=1)
                  for i, w in enumerate(writers)]
        results = await within(10, asyncio.gather(*writes))
        assert sorted(results) == [False] * 4 + [True]
        stored = (await b.get_workflows(q, ["wf"]))["wf"]
        assert stored["version"] == 2 and stored["writer"] == results.index(True)
        unversioned = {"id": "wf2"}
        await b.store_workflow(q, unversioned)
        assert await b.store_workflow(q, dict(unversioned, version=1), if_version=0) is True

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
                f"round {round_number}: {len(winners)} of {len(results)} concurrent "
                f"store_workflow(if_version=0) calls creating the same new workflow returned True; the "
                f"compare-and-set must let exactly one create it"
            )
            stored = (await b.get_workflows(q, [workflow_id]))[workflow_id]
            assert stored["writer"] == winners[0], (
                f"round {round_number}: the stored workflow is writer {stored['writer']}'s, but writer "
                f"{winners[0]}'s store_workflow returned True"
            )

    @clause("workflow.get", requires=WORKFLOWS)
    async def test_workflow_get(self, env: Env) -> None:
        q, b = env.queue(), env.backend
        records = [{"id": f"wf{i}", "version": 1, "pending_task_ids": [], "data": "é🐑"} for i in range(3)]
        for record in records:
            await b.store_workflow(q, record)
        assert await b.get_workflows(q, ["wf0", "wf2", "missing"]) == {"wf0": records[0], "wf2": records[2]}
        assert await b.get_workflows(env.queue("other"), ["wf0"]) == {}

    @clause("workflow.pending", requires=WORKFLOWS)
    async def test_workflow_pending(self, env: Env) -> None:
        q, b = env.queue(), env.backend
        await b.store_workflow(q, {"id": "open", "pending_task_ids": ["a"], "finished_at": None})
        finished_at = "2026-01-01T00:00:00Z"
        await b.store_workflow(q, {"id": "done", "pending_task_ids": [], "finished_at": finished_at})
        await b.store_workflow(q, {"id": "completed", "pending_task_ids": [], "completed": True})
        assert [w["id"] for w in await b.get_pending_workflows(q)] == ["open"]
        assert sorted(w["id"] for w in await b.get_all_workflows(q)) == ["completed", "done", "open"]

    @clause("workflow.delete", requires=WORKFLOWS)
    async def test_workflow_delete(self, env: Env) -> None:
        q, b = env.queue(), env.backend
        await b.store_workflow(q, {"id": "wf", "pending_task_ids": ["a"]})
        assert await b.delete_workflow(q, "wf") is True
        assert await b.delete_workflow(q, "wf") is False
        assert await b.get_workflows(q, ["wf"]) == {}
        assert await b.mark_workflow_task_complete(q, "wf", "a") == -1
        assert await b.get_pending_workflows(q) == []

    @clause("workflow.mark_complete", requires=WORKFLOWS)
    async def test_workflow_mark_complete(self, env: Env) -> None:
        q = env.queue()
        pending = [f"t{i}" for i in range(12)]
        await env.backend.store_workflow(q, {"id": "wf", "pending_task_ids": pending})
        markers = await env.peers(4)
        calls = [markers[i % 4].mark_workflow_task_complete(q, "wf", t) for i, t in enumerate(pending)]
        remaining = await within(10, asyncio.gather(*calls))
        assert sorted(remaining) == list(range(12)), "each removal must see a distinct remaining count"
        assert await env.backend.mark_workflow_task_complete(q, "wf", "t0") == -1
        assert await env.backend.mark_workflow_task_complete(q, "unknown", "t0") == -1

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
        assert list(got) == [done["id"]] and got[done["id"]]["result"] == "r1"
