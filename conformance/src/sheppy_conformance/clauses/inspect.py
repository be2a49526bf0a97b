"""get_tasks/get_all_tasks/get_pending/get_scheduled, size, stats.*, list_queues.* and clear.*."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest

from sheppy_conformance._clause import clause
from sheppy_conformance._env import Env
from sheppy_conformance.records import FUNC, LEASE, finished, future, ids, task_record
from sheppy_core.backend import (
    CRON,
    RATE_LIMIT,
    STATS_KEYS,
    WORKFLOWS,
    BackendInputError,
    quarantine_record,
    to_iso,
)
from sheppy_core.models import TaskCron, TaskSpec

__all__ = ["InspectionClauses", "one_of_each"]


async def one_of_each(env: Env, q: str) -> dict[str, dict[str, Any]]:
    """Put one task in every place: queued, claimed, scheduled, and finished with each final status."""
    b = env.backend
    made = {name: task_record(i) for i, name in enumerate(
        ("queued", "claimed", "scheduled", "completed", "failed", "cancelled", "crashed", "quarantined"))}
    finals = [made[s] for s in ("completed", "failed", "crashed", "quarantined")]
    await b.append(q, [made["claimed"], *finals])
    claimed = await b.pop(q, limit=5, lease=30)
    for record, status in zip(claimed[1:4], ("completed", "failed", "crashed"), strict=True):
        await b.store_result(q, finished(record, status=status))
    # What sheppy-core's worker stores for a claimed record that is not a task.
    await b.store_result(q, quarantine_record(claimed[4]["id"], "{}", "not a task"))
    await b.append(q, [made["cancelled"]])
    await b.cancel(q, made["cancelled"]["id"])
    await b.append(q, [made["queued"]])
    await b.schedule(q, made["scheduled"], future(3600))
    return made


class InspectionClauses:
    @clause("get_tasks.lookup")
    async def test_get_tasks_lookup(self, env: Env) -> None:
        q, b = env.queue(), env.backend
        made = await one_of_each(env, q)
        wanted = [r["id"] for r in made.values()]
        got = await b.get_tasks(q, [*wanted, wanted[0], "unknown-id"])
        assert sorted(got) == sorted(wanted)
        assert {name: got[r["id"]]["status"] for name, r in made.items()} == {
            "queued": "pending", "claimed": "processing", "scheduled": "scheduled", "completed": "completed",
            "failed": "failed", "cancelled": "cancelled", "crashed": "crashed", "quarantined": "quarantined"}
        assert await b.get_tasks(q, []) == {}

    @clause("get_all_tasks.all")
    async def test_get_all_tasks_all(self, env: Env) -> None:
        q, b = env.queue(), env.backend
        made = await one_of_each(env, q)
        assert sorted(ids(await b.get_all_tasks(q))) == sorted(r["id"] for r in made.values())
        assert await b.get_all_tasks(env.queue("empty")) == []

    @clause("get_pending.peek")
    async def test_get_pending_peek(self, env: Env) -> None:
        q, b = env.queue(), env.backend
        records = [task_record(i) for i in range(5)]
        await b.append(q, records)
        assert ids(await b.get_pending(q)) == ids(records[:1])
        assert ids(await b.get_pending(q, 3)) == ids(records[:3])
        assert ids(await b.get_pending(q, 50)) == ids(records)
        assert await b.size(q) == 5  # peeking claims nothing
        assert ids(await b.pop(q, lease=30)) == ids(records[:1])
        assert ids(await b.get_pending(q, 50)) == ids(records[1:])
        with pytest.raises(BackendInputError):
            await b.get_pending(q, 0)

    @clause("get_scheduled.order")
    async def test_get_scheduled_order(self, env: Env) -> None:
        q, b = env.queue(), env.backend
        late, early, middle, retry = (task_record(i) for i in range(4))
        await b.schedule(q, late, future(3000))
        await b.schedule(q, early, future(1000))
        await b.schedule(q, middle, future(2000))
        await b.append(q, [retry])
        (claimed,) = await b.pop(q, lease=30)
        await b.store_result(q, dict(claimed, status="retrying", next_retry_at=to_iso(future(1500))))
        got = await b.get_scheduled(q)
        assert ids(got) == [early["id"], retry["id"], middle["id"], late["id"]]
        assert [r["status"] for r in got] == ["scheduled", "retrying", "scheduled", "scheduled"]
        assert await b.get_scheduled(env.queue("empty")) == []
        assert await b.next_scheduled_at(env.queue("empty")) is None

    @clause("size.queued_only")
    async def test_size_queued_only(self, env: Env) -> None:
        q, b = env.queue(), env.backend
        await one_of_each(env, q)
        await b.append(q, [task_record(9)])
        assert await b.size(q) == 2
        assert await b.size(env.queue("unknown")) == 0

    @clause("stats.counts")
    async def test_stats_counts(self, env: Env) -> None:
        q, b = env.queue(), env.backend
        unknown = await b.get_stats(env.queue("unknown"))
        assert set(STATS_KEYS) <= set(unknown)
        assert all(v == 0 for v in unknown.values()), unknown
        await one_of_each(env, q)
        stats = await b.get_stats(q)
        assert set(STATS_KEYS) <= set(stats)
        assert {k: stats[k] for k in STATS_KEYS} == dict.fromkeys(STATS_KEYS, 1)
        assert stats["pending"] == await b.size(q)

    @clause("stats.counts")
    async def test_stats_counts_follow_lease_expiry_and_ack(self, env: Env) -> None:
        q, b = env.queue(), env.backend
        records = [task_record(i) for i in range(3)]
        await b.append(q, records)
        await b.pop(q, limit=2, lease=LEASE)
        assert (await b.get_stats(q))["processing"] == 2
        await b.acknowledge(q, records[0]["id"])
        assert (await b.get_stats(q))["processing"] == 1
        await asyncio.sleep(LEASE + 0.15)
        await b.pop(q, limit=3, lease=30)  # reclaims the expired one and claims the last queued one
        stats = await b.get_stats(q)
        assert (stats["pending"], stats["processing"]) == (0, 2)

    @clause("list_queues.known")
    async def test_list_queues_known(self, env: Env) -> None:
        b = env.backend
        appended, scheduled, other = env.queue("a"), env.queue("s"), env.queue("o")
        await b.append(appended, [task_record(1), task_record(2)])
        await b.schedule(scheduled, task_record(3), future(3600))
        listed = await b.list_queues()
        assert listed.get(appended) == 2
        assert listed.get(scheduled) == 0
        assert other not in listed
        await b.pop(appended, lease=30)
        assert (await b.list_queues()).get(appended) == 1
        await b.clear(appended)
        assert appended not in await b.list_queues()

    @clause("list_queues.known")
    async def test_list_queues_known_only_queues_with_tasks(self, env: Env) -> None:
        # Only appending or scheduling a task makes a queue known; crons, rate limits and workflows
        # alone do not.
        b = env.backend
        only_extras = env.queue("extras")
        if CRON in env.capabilities:
            await b.add_cron(only_extras, "cron-1", _cron())
        if RATE_LIMIT in env.capabilities:
            await b.acquire_rate_limit(only_extras, "k", 1, 60, "t1")
        if WORKFLOWS in env.capabilities:
            await b.store_workflow(only_extras, {"id": "wf-1", "pending_task_ids": []})
        await b.size(only_extras)
        await b.get_stats(only_extras)
        assert only_extras not in await b.list_queues()

    @clause("clear.everything")
    async def test_clear_everything(self, env: Env) -> None:
        q, b = env.queue(), env.backend
        made = await one_of_each(env, q)
        (claimed,) = (await b.get_tasks(q, [made["claimed"]["id"]])).values()
        if CRON in env.capabilities:
            await b.add_cron(q, "cron-1", _cron())
        if RATE_LIMIT in env.capabilities:
            assert await b.acquire_rate_limit(q, "k", 1, 60, "t1") is None
        if WORKFLOWS in env.capabilities:
            await b.store_workflow(q, {"id": "wf-1", "version": 1, "pending_task_ids": ["a"]})
        await b.clear(q)
        assert await b.get_all_tasks(q) == []
        assert await b.get_scheduled(q) == []
        assert all(v == 0 for v in (await b.get_stats(q)).values())
        assert await b.pop_scheduled(q, now=future(7200)) == []
        assert await b.pop(q, limit=10, lease=30) == []
        assert await b.heartbeat(q, [claimed["id"]], worker_id=claimed["claimed_by"]) == []
        assert await b.store_result(q, finished(claimed)) is False
        if CRON in env.capabilities:
            assert await b.get_crons(q) == []
        if RATE_LIMIT in env.capabilities:
            assert await b.acquire_rate_limit(q, "k", 1, 60, "t2") is None, "rate-limit state survived clear"
        if WORKFLOWS in env.capabilities:
            assert await b.get_all_workflows(q) == []

    @clause("clear.isolated")
    async def test_clear_isolated(self, env: Env) -> None:
        q, kept, b = env.queue(), env.queue("kept"), env.backend
        await one_of_each(env, q)
        made = await one_of_each(env, kept)
        before = (await b.get_stats(kept), sorted(ids(await b.get_all_tasks(kept))))
        await b.clear(q)
        assert (await b.get_stats(kept), sorted(ids(await b.get_all_tasks(kept)))) == before
        assert ids(await b.get_scheduled(kept)) == [made["scheduled"]["id"]]
        assert ids(await b.pop(kept, lease=30)) == [made["queued"]["id"]]

    @clause("clear.count")
    async def test_clear_count(self, env: Env) -> None:
        q, b = env.queue(), env.backend
        await one_of_each(env, q)
        crons = 0
        if CRON in env.capabilities:
            await b.add_cron(q, "cron-1", _cron())
            await b.add_cron(q, "cron-2", _cron("*/5 * * * *"))
            crons = 2
        assert await b.clear(q) == 8 + crons
        assert await b.clear(q) == 0


def _cron(expression: str = "* * * * *") -> dict[str, Any]:
    """A cron definition record; the same expression gives an equal record."""
    cron_id = uuid.uuid5(uuid.NAMESPACE_URL, f"sheppy-conformance:{expression}")
    cron = TaskCron(id=cron_id, expression=expression, spec=TaskSpec(func=FUNC, args=(1,)))
    return cron.model_dump(mode="json")
