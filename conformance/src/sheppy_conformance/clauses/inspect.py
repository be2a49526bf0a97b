"""get_tasks/get_all_tasks/get_pending/get_scheduled, size, stats.*, list_queues.* and clear.*."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from typing import Any

from sheppy_conformance._clause import clause
from sheppy_conformance._env import Env
from sheppy_conformance.records import (
    FUNC,
    LEASE,
    brief,
    changes,
    finished,
    future,
    ids,
    named,
    raises,
    task_record,
)
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
        names = _names(made)
        wanted = [r["id"] for r in made.values()]
        got = await b.get_tasks(q, [*wanted, wanted[0], "unknown-id"])
        assert sorted(got) == sorted(wanted), (
            f"get_tasks(an id in each state, a duplicate, an unknown id) returned records "
            f"{_difference(named(got, names), list(made))}; [get_tasks.lookup]: one for each id that "
            f"exists, in any state; unknown ids omitted, duplicates collapsed"
        )
        statuses = {name: got[r["id"]]["status"] for name, r in made.items()}
        expected = {
            "queued": "pending", "claimed": "processing", "scheduled": "scheduled", "completed": "completed",
            "failed": "failed", "cancelled": "cancelled", "crashed": "crashed", "quarantined": "quarantined"}
        assert statuses == expected, (
            f"get_tasks returned {sum(statuses[k] != v for k, v in expected.items())} records with another "
            f"status than stored; [get_tasks.lookup]: the record as stored, in any state; as (stored, "
            f"returned): {_changed(expected, statuses)}"
        )
        none_asked = await b.get_tasks(q, [])
        assert none_asked == {}, (
            f"get_tasks(task_ids=[]) returned {brief(none_asked)}; [get_tasks.lookup]: no ids asked, so {{}}"
        )

    @clause("get_all_tasks.all")
    async def test_get_all_tasks_all(self, env: Env) -> None:
        q, b = env.queue(), env.backend
        made = await one_of_each(env, q)
        listed = ids(await b.get_all_tasks(q))
        assert sorted(listed) == sorted(r["id"] for r in made.values()), (
            f"get_all_tasks with a task in each state returned records "
            f"{_difference(named(listed, _names(made)), list(made))}; [get_all_tasks.all]: every stored "
            f"record of the queue, in any state, once"
        )
        empty = await b.get_all_tasks(env.queue("empty"))
        assert empty == [], (
            f"get_all_tasks on a queue never used returned {brief(empty)}; [get_all_tasks.all]: it stores no "
            f"record, so []"
        )

    @clause("get_pending.peek")
    async def test_get_pending_peek(self, env: Env) -> None:
        q, b = env.queue(), env.backend
        records = [task_record(i) for i in range(5)]
        names = {r["id"]: f"#{i}" for i, r in enumerate(records)}
        await b.append(q, records)
        head = ids(await b.get_pending(q))
        assert head == ids(records[:1]), (
            f"get_pending() after appending #0..#4 returned {brief(named(head, names))}; "
            f"[get_pending.peek]: count defaults to 1, the head of the queue: ['#0']"
        )
        first_three = ids(await b.get_pending(q, 3))
        assert first_three == ids(records[:3]), (
            f"get_pending(count=3) returned {brief(named(first_three, names))}; [get_pending.peek]: up to "
            f"count queued records from the head, in claim order: ['#0', '#1', '#2']"
        )
        all_queued = ids(await b.get_pending(q, 50))
        assert all_queued == ids(records), (
            f"get_pending(count=50) with 5 queued returned {brief(named(all_queued, names))}; "
            f"[get_pending.peek]: up to count queued records from the head, in claim order: #0..#4"
        )
        size = await b.size(q)
        assert size == 5, (
            f"size after three get_pending calls is {size}; [get_pending.peek]: peeking claims nothing, so "
            f"all 5 appended are still queued"
        )
        claimed = ids(await b.pop(q, lease=30))
        assert claimed == ids(records[:1]), (
            f"pop() after get_pending claimed {brief(named(claimed, names))}; [get_pending.peek]: peeking "
            f"claims nothing, so pop claims the head: ['#0']"
        )
        unclaimed = ids(await b.get_pending(q, 50))
        assert unclaimed == ids(records[1:]), (
            f"get_pending(count=50) after pop claimed #0 returned {brief(named(unclaimed, names))}; "
            f"[get_pending.peek]: only queued, unclaimed records, from the head in claim order: #1..#4"
        )
        why = "get_pending(count=0) must raise BackendInputError: count < 1 is refused [get_pending.peek]"
        with raises(BackendInputError, why):
            await b.get_pending(q, 0)

    @clause("get_scheduled.order")
    async def test_get_scheduled_order(self, env: Env) -> None:
        q, b = env.queue(), env.backend
        late, early, middle, retry = (task_record(i) for i in range(4))
        names = {r["id"]: name for r, name in zip(
            (late, early, middle, retry), ("late", "early", "middle", "retry"), strict=True)}
        await b.schedule(q, late, future(3000))
        await b.schedule(q, early, future(1000))
        await b.schedule(q, middle, future(2000))
        await b.append(q, [retry])
        (claimed,) = await b.pop(q, lease=30)
        await b.store_result(q, dict(claimed, status="retrying", next_retry_at=to_iso(future(1500))))
        got = await b.get_scheduled(q)
        assert ids(got) == [early["id"], retry["id"], middle["id"], late["id"]], (
            f"get_scheduled returned {brief(named(ids(got), names))}; [get_scheduled.order]: every "
            f"scheduled record (scheduled or retrying), earliest due first: early (+1000 s), retry (+1500 "
            f"s), middle, late"
        )
        statuses = [r["status"] for r in got]
        assert statuses == ["scheduled", "retrying", "scheduled", "scheduled"], (
            f"get_scheduled returned statuses {brief(statuses)}; [get_scheduled.order]: the records as "
            f"stored, 'retrying' for the retry and 'scheduled' for the others"
        )
        empty = await b.get_scheduled(env.queue("empty"))
        assert empty == [], (
            f"get_scheduled on a queue never used returned {brief(empty)}; [get_scheduled.order]: none is "
            f"scheduled, so []"
        )
        next_due = await b.next_scheduled_at(env.queue("empty"))
        assert next_due is None, (
            f"next_scheduled_at on a queue never used returned {next_due!r}; [get_scheduled.order]: none is "
            f"scheduled, so None"
        )

    @clause("size.queued_only")
    async def test_size_queued_only(self, env: Env) -> None:
        q, b = env.queue(), env.backend
        await one_of_each(env, q)
        await b.append(q, [task_record(9)])
        size = await b.size(q)
        assert size == 2, (
            f"size with 2 queued tasks and one claimed, one scheduled and one in each final status is "
            f"{size}; [size.queued_only]: the number of queued, unclaimed tasks, so 2; a length that takes "
            f"in claims, the schedule or finished records counts too many"
        )
        unknown = await b.size(env.queue("unknown"))
        assert unknown == 0, f"size of an unknown queue returned {unknown}; [size.queued_only]: 0 for it"

    @clause("stats.counts")
    async def test_stats_counts(self, env: Env) -> None:
        q, b = env.queue(), env.backend
        unknown = await b.get_stats(env.queue("unknown"))
        assert set(STATS_KEYS) <= set(unknown), (
            f"get_stats of an unknown queue lacks the keys {sorted(set(STATS_KEYS) - set(unknown))}; "
            f"[stats.counts]: at least the keys {', '.join(STATS_KEYS)}"
        )
        assert all(v == 0 for v in unknown.values()), (
            f"get_stats of an unknown queue returned nonzero counts "
            f"{brief({k: v for k, v in unknown.items() if v})}; [stats.counts]: all zero for an unknown queue"
        )
        await one_of_each(env, q)
        stats = await b.get_stats(q)
        assert set(STATS_KEYS) <= set(stats), (
            f"get_stats lacks the keys {sorted(set(STATS_KEYS) - set(stats))}; [stats.counts]: at least the "
            f"keys {', '.join(STATS_KEYS)}"
        )
        counts = {k: stats[k] for k in STATS_KEYS}
        assert counts == dict.fromkeys(STATS_KEYS, 1), (
            f"get_stats with one task in each state returned other counts, as (required, returned): "
            f"{_changed(dict.fromkeys(STATS_KEYS, 1), counts)}; [stats.counts]: each key counts the tasks in "
            f"its state, so 1 each"
        )
        size = await b.size(q)
        assert stats["pending"] == size, (
            f"get_stats gives pending={stats['pending']} but size is {size}; [stats.counts]: pending counts "
            f"the queued tasks, = size"
        )

    @clause("stats.counts")
    async def test_stats_counts_follow_lease_expiry_and_ack(self, env: Env) -> None:
        q, b = env.queue(), env.backend
        records = [task_record(i) for i in range(3)]
        await b.append(q, records)
        await b.pop(q, limit=2, lease=LEASE)
        processing = (await b.get_stats(q))["processing"]
        assert processing == 2, (
            f"get_stats gives processing={processing} after pop(limit=2) claimed 2 of 3; [stats.counts]: "
            f"processing counts the claimed tasks, so 2"
        )
        await b.acknowledge(q, records[0]["id"])
        processing_after_ack = (await b.get_stats(q))["processing"]
        assert processing_after_ack == 1, (
            f"get_stats gives processing={processing_after_ack} after acknowledge of 1 of the 2 claimed; "
            f"[stats.counts]: an acknowledged task is counted by no key, so 1"
        )
        await asyncio.sleep(LEASE + 0.15)
        await b.pop(q, limit=3, lease=30)  # reclaims the expired one and claims the last queued one
        stats = await b.get_stats(q)
        assert (stats["pending"], stats["processing"]) == (0, 2), (
            f"get_stats gives (pending, processing)={(stats['pending'], stats['processing'])} after pop "
            f"reclaimed the expired claim and claimed the last queued task; [stats.counts]: (0, 2); a count "
            f"kept beside the claims drifts when a lease expires: count the claims themselves"
        )

    @clause("list_queues.known")
    async def test_list_queues_known(self, env: Env) -> None:
        b = env.backend
        appended, scheduled, other = env.queue("a"), env.queue("s"), env.queue("o")
        await b.append(appended, [task_record(1), task_record(2)])
        await b.schedule(scheduled, task_record(3), future(3600))
        listed = await b.list_queues()
        assert listed.get(appended) == 2, (
            f"list_queues() gives {listed.get(appended)!r} for a queue with 2 tasks appended; "
            f"[list_queues.known]: {{queue name: size}} for every queue that has had a task appended, so 2"
        )
        assert listed.get(scheduled) == 0, (
            f"list_queues() gives {listed.get(scheduled)!r} for a queue with one task scheduled; "
            f"[list_queues.known]: a queue that has had a task scheduled is listed, with its size 0"
        )
        assert other not in listed, (
            f"list_queues() lists a queue never used, with size {listed.get(other)!r}; [list_queues.known]: "
            f"only queues that have had a task appended or scheduled"
        )
        await b.pop(appended, lease=30)
        size_after_pop = (await b.list_queues()).get(appended)
        assert size_after_pop == 1, (
            f"list_queues() gives {size_after_pop!r} for the queue after pop claimed 1 of its 2 tasks; "
            f"[list_queues.known]: the value is its size, queued unclaimed tasks, so 1"
        )
        await b.clear(appended)
        after_clear = await b.list_queues()
        assert appended not in after_clear, (
            f"list_queues() still lists a cleared queue, with size {after_clear.get(appended)!r}; "
            f"[list_queues.known]: a queue cleared since its last append or schedule is not listed"
        )

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
        listed = await b.list_queues()
        assert only_extras not in listed, (
            f"list_queues() lists, with size {listed.get(only_extras)!r}, a queue that only had crons, rate "
            f"limits, workflows and reads; [list_queues.known]: only appending or scheduling a task makes a "
            f"queue known"
        )

    @clause("clear.everything")
    async def test_clear_everything(self, env: Env) -> None:
        q, b = env.queue(), env.backend
        made = await one_of_each(env, q)
        names = _names(made)
        (claimed,) = (await b.get_tasks(q, [made["claimed"]["id"]])).values()
        if CRON in env.capabilities:
            await b.add_cron(q, "cron-1", _cron())
        if RATE_LIMIT in env.capabilities:
            granted = await b.acquire_rate_limit(q, "k", 1, 60, "t1")
            assert granted is None, (
                f"acquire_rate_limit(max_rate=1) on a fresh key returned {granted!r}; [clear.everything] "
                f"needs the first start granted: None"
            )
        if WORKFLOWS in env.capabilities:
            await b.store_workflow(q, {"id": "wf-1", "version": 1, "pending_task_ids": ["a"]})
        await b.clear(q)
        left = await b.get_all_tasks(q)
        assert left == [], (
            f"get_all_tasks after clear returned {brief(named(ids(left), names))}; [clear.everything]: "
            f"clear deletes task records in every state; state kept under its own key (schedule, claims) "
            f"must go too"
        )
        scheduled = await b.get_scheduled(q)
        assert scheduled == [], (
            f"get_scheduled after clear returned {brief(named(ids(scheduled), names))}; [clear.everything]: "
            f"clear deletes the schedule"
        )
        stats = await b.get_stats(q)
        assert all(v == 0 for v in stats.values()), (
            f"get_stats after clear has nonzero counts {brief({k: v for k, v in stats.items() if v})}; "
            f"[clear.everything]: nothing of the queue is left to count"
        )
        moved = await b.pop_scheduled(q, now=future(7200))
        assert moved == [], (
            f"pop_scheduled(now=+2 h) after clear moved {brief(named(ids(moved), names))}; "
            f"[clear.everything]: clear deletes the schedule"
        )
        popped = await b.pop(q, limit=10, lease=30)
        assert popped == [], (
            f"pop(limit=10) after clear claimed {brief(named(ids(popped), names))}; [clear.everything]: "
            f"clear deletes the queue entries"
        )
        held = await b.heartbeat(q, [claimed["id"]], worker_id=claimed["claimed_by"])
        assert held == [], (
            f"heartbeat for a task claimed before clear returned {brief(named(held, names))}; "
            f"[clear.everything]: clear deletes claims, so none is held"
        )
        stored = await b.store_result(q, finished(claimed))
        assert stored is False, (
            f"store_result for a task claimed before clear returned {stored!r}; [clear.everything]: clear "
            f"deletes its record, so store_result finds none and returns False"
        )
        if CRON in env.capabilities:
            crons = await b.get_crons(q)
            assert crons == [], (
                f"get_crons after clear returned {brief(crons)}; [clear.everything]: clear deletes crons"
            )
        if RATE_LIMIT in env.capabilities:
            granted_again = await b.acquire_rate_limit(q, "k", 1, 60, "t2")
            assert granted_again is None, (
                f"acquire_rate_limit(max_rate=1) after clear returned {granted_again!r}, a deferral; "
                f"[clear.everything]: clear deletes rate-limit state, so the start is granted: None"
            )
        if WORKFLOWS in env.capabilities:
            workflows = await b.get_all_workflows(q)
            assert workflows == [], (
                f"get_all_workflows after clear returned {brief(workflows)}; [clear.everything]: clear "
                f"deletes workflows"
            )

    @clause("clear.isolated")
    async def test_clear_isolated(self, env: Env) -> None:
        q, kept, b = env.queue(), env.queue("kept"), env.backend
        await one_of_each(env, q)
        made = await one_of_each(env, kept)
        names = _names(made)
        before = (await b.get_stats(kept), sorted(ids(await b.get_all_tasks(kept))))
        await b.clear(q)
        after = (await b.get_stats(kept), sorted(ids(await b.get_all_tasks(kept))))
        assert after == before, (
            f"clear of another queue changed this one; [clear.isolated]: other queues are untouched; its "
            f"get_stats as (before, after): {_changed(before[0], after[0])}, its records "
            f"{_difference(named(after[1], names), named(before[1], names))}"
        )
        scheduled = ids(await b.get_scheduled(kept))
        assert scheduled == [made["scheduled"]["id"]], (
            f"get_scheduled after clear of another queue returned {brief(named(scheduled, names))}; "
            f"[clear.isolated]: other queues are untouched, so its schedule is ['scheduled']"
        )
        popped = ids(await b.pop(kept, lease=30))
        assert popped == [made["queued"]["id"]], (
            f"pop after clear of another queue claimed {brief(named(popped, names))}; [clear.isolated]: "
            f"other queues are untouched, so pop claims its queued task: ['queued']"
        )

    @clause("clear.count")
    async def test_clear_count(self, env: Env) -> None:
        q, b = env.queue(), env.backend
        await one_of_each(env, q)
        crons = 0
        if CRON in env.capabilities:
            await b.add_cron(q, "cron-1", _cron())
            await b.add_cron(q, "cron-2", _cron("*/5 * * * *"))
            crons = 2
        removed = await b.clear(q)
        assert removed == 8 + crons, (
            f"clear of 8 task records (one in each state) and {crons} crons returned {removed}; "
            f"[clear.count]: the number of task records plus crons removed, {8 + crons}"
        )
        removed_again = await b.clear(q)
        assert removed_again == 0, (
            f"a second clear returned {removed_again}; [clear.count]: nothing was left to remove, so 0"
        )


def _names(made: dict[str, dict[str, Any]]) -> dict[str, str]:
    """``{id: name}`` for the records of :func:`one_of_each`, to show ids by the state they were put in."""
    return {record["id"]: name for name, record in made.items()}


def _difference(got: list[str], want: list[str]) -> str:
    """How a returned collection differs from the required one, ignoring order (duplicates count)."""
    lacking, extra = Counter(want) - Counter(got), Counter(got) - Counter(want)
    return f"without {brief(sorted(lacking.elements()))} and with extra {brief(sorted(extra.elements()))}"


def _changed(want: dict[str, Any], got: dict[str, Any]) -> str:
    """The keys whose value differs, as ``{key: (required, returned)}``, cut short for a summary line."""
    return brief(changes(want, got))


def _cron(expression: str = "* * * * *") -> dict[str, Any]:
    """A cron definition record; the same expression gives an equal record."""
    cron_id = uuid.uuid5(uuid.NAMESPACE_URL, f"sheppy-conformance:{expression}")
    cron = TaskCron(id=cron_id, expression=expression, spec=TaskSpec(func=FUNC, args=(1,)))
    return cron.model_dump(mode="json")
