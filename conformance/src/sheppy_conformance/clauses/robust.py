"""isolation.*, payload.*, reconnect.*, errors.* and connection.*: what breaks backends in production."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any, TypeVar

import pytest

from sheppy_conformance._clause import clause
from sheppy_conformance._env import Env
from sheppy_conformance.clauses.inspect import _cron
from sheppy_conformance.plugin import NO_HOOK_PREFIX
from sheppy_conformance.records import (
    FAR_FUTURE,
    brief,
    finished,
    full_task_record,
    ids,
    raises,
    requeued,
    task_record,
    within,
)
from sheppy_core.backend import (
    CRON,
    QUARANTINED,
    RATE_LIMIT,
    WORKFLOWS,
    Backend,
    BackendConnectionError,
    BackendInputError,
    utcnow,
)

__all__ = ["RobustnessClauses", "tricky_queue_names"]

T = TypeVar("T")

# Names that break naive key building: glob and LIKE wildcards, Redis hash tags, quoting, separators.
_SUFFIXES = ["", ":a", "_a", "*", "x", "%", "_", "{a}", "{a", "a}", "'a'", '"a"', " a", "a b", "ü", "队列",
             "🐑", "a:b:c", "[a]", "?", "\\", "a.b", "a/b", "%25", "a;b", "a--b"]

UNICODE_SAMPLES = [
    "plain ascii", "é à ü ß", "日本語のテキスト", "🐑🐑🐑 👩‍👩‍👧", "عربى RTL", "e\u0301 combining",
    "zero\u200bwidth", "line\u2028separator", "tab\tnewline\n", "NUL\u0000inside", "'\"\\ quotes",
    "\U0010fffd last plane",
]


def tricky_queue_names() -> list[str]:
    base = f"sheppy-conformance-iso-{uuid.uuid4().hex[:8]}"
    return [base + suffix for suffix in _SUFFIXES]


async def _until_connected(call: Callable[[], Awaitable[T]], timeout: float = 10.0) -> T:
    """Retry ``call`` while it raises ``BackendConnectionError`` (the one error allowed after a drop)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        try:
            return await call()
        except BackendConnectionError:
            if asyncio.get_running_loop().time() > deadline:
                raise
            await asyncio.sleep(0.1)


# Stored texts that are not a task record of their key: not JSON, JSON but no object, another id.
CORRUPT_TEXTS = {
    "bad-not-json": "not json{",
    "bad-string": '"just a string"',
    "bad-list": "[1, 2, 3]",
    "bad-other-id": '{"id": "someone-else", "status": "pending"}',
}


async def _write_corrupt(env: Env, queue_name: str, task_id: str, text: str) -> None:
    if env.write_stored_text is not None:
        await env.write_stored_text(env.backend, queue_name, task_id, text)
        return
    inject = getattr(env.backend, "inject_stored_text", None)
    if inject is None:
        pytest.skip(
            f"{NO_HOOK_PREFIX}: supply write_stored_text (BackendConformance attribute or "
            "--sheppy-write-stored-text) to check that a corrupt record does not block a queue"
        )
    inject(queue_name, task_id, text)


def _first_difference(got: Any, want: Any, path: str = "") -> str:
    """Where a JSON value first differs from the one expected, e.g. ``.kwargs.blob differs at character
    1000000``: a payload too large to print is still pinned to the spot a backend changed."""
    if got == want:
        return f"{path} as expected"
    if isinstance(got, dict) and isinstance(want, dict):
        for key in sorted(want.keys() | got.keys(), key=str):
            if key not in got:
                return f"{path}.{key} missing"
            if key not in want:
                return f"{path}.{key} added ({brief(got[key])})"
            if got[key] != want[key]:
                return _first_difference(got[key], want[key], f"{path}.{key}")
    elif isinstance(got, list) and isinstance(want, list):
        for index, (item, wanted) in enumerate(zip(got, want, strict=False)):
            if item != wanted:
                return _first_difference(item, wanted, f"{path}[{index}]")
        if len(got) != len(want):
            return f"{path} with {len(got)} items instead of {len(want)}"
    elif isinstance(got, str) and isinstance(want, str):
        at = next((i for i, (char, wanted) in enumerate(zip(got, want, strict=False)) if char != wanted),
                  min(len(got), len(want)))
        return (f"{path} differing at character {at}: {got[at:at + 12]!r} instead of {want[at:at + 12]!r} "
                f"({len(got)} characters, {len(want)} expected)")
    return f"{path} = {brief(got)} instead of {brief(want)}"


def _brief_ids(task_ids: list[str]) -> str:
    """Task ids for a summary line: a uuid cut to its first 8 characters (enough to tell tasks apart)."""
    return brief([task_id if len(task_id) <= 12 else task_id[:8] + "…" for task_id in task_ids])


def _new_ids_appended(call: str, appended: list[bool], count: int) -> str:
    """The message for an append of records with new ids that did not return all True."""
    return (f"{call} returned {brief(appended)}; [append.unique]: a record whose id is new in its queue is "
            f"stored and queued, so append returns {[True] * count}")


async def _claim_all(backend: Backend, queue_name: str, rounds: int = 10) -> list[dict[str, Any]]:
    claimed: list[dict[str, Any]] = []
    for _ in range(rounds):
        got = await backend.pop(queue_name, limit=10, lease=30)
        claimed += got
    return claimed


class RobustnessClauses:
    @clause("robust.corrupt_record", timeout=30)
    async def test_robust_corrupt_record(self, env: Env, caplog: pytest.LogCaptureFixture) -> None:
        q, b = env.queue(), env.backend
        first = task_record(1)
        appended = await b.append(q, [first])
        assert appended == [True], _new_ids_appended("append(q, [first])", appended, 1)
        bad_ids = list(CORRUPT_TEXTS)
        for task_id in bad_ids[:2]:
            await _write_corrupt(env, q, task_id, CORRUPT_TEXTS[task_id])
        middle = [task_record(2), task_record(3)]
        appended = await b.append(q, middle)
        assert appended == [True, True], _new_ids_appended("append(q, two records)", appended, 2)
        for task_id in bad_ids[2:]:
            await _write_corrupt(env, q, task_id, CORRUPT_TEXTS[task_id])
        last = task_record(4)
        appended = await b.append(q, [last])
        assert appended == [True], _new_ids_appended("append(q, [last])", appended, 1)
        good = [first, *middle, last]

        # Reads never fail on them: each is handed out as its quarantine stand-in, raw text kept.
        listed = {r["id"]: r for r in await b.get_all_tasks(q)}
        stored_ids = {*ids(good), *bad_ids}
        assert set(listed) == stored_ids, (
            f"get_all_tasks left out {_brief_ids(sorted(stored_ids - set(listed)))} and listed unknown ids "
            f"{_brief_ids(sorted(set(listed) - stored_ids))}; [robust.corrupt_record]: every read lists each "
            f"stored record, a corrupt one as its quarantine stand-in (decode_record makes it)"
        )
        looked_up = await b.get_tasks(q, bad_ids)
        for task_id, text in CORRUPT_TEXTS.items():
            stand_in = looked_up.get(task_id)
            assert stand_in is not None and stand_in.get("status") == QUARANTINED, (
                f"get_tasks([{task_id!r}]) of a corrupt record (stored text {text!r}) returned "
                f"{brief(stand_in)}; [robust.corrupt_record]: a read hands out its quarantine record (status "
                f"'quarantined') in its place, never fails"
            )
            assert stand_in["quarantine"]["raw"] == text, (
                f"get_tasks([{task_id!r}]) returned a stand-in whose quarantine.raw is "
                f"{brief(stand_in['quarantine']['raw'])}; [robust.corrupt_record]: the stand-in keeps the "
                f"stored text {text!r}"
            )

        # Claims step over them: every good task comes out, in order, none of the corrupt ones.
        with caplog.at_level(logging.WARNING):
            claimed = await _claim_all(b, q)
        assert ids(claimed) == ids(good), (
            f"pop (10 calls, limit=10) claimed {_brief_ids(ids(claimed))}; [robust.corrupt_record]: pop "
            f"claims the good tasks behind corrupt records, in append order, and never hands out a corrupt "
            f"one: it stores the stand-in instead\nclaimed  {ids(claimed)}\nexpected {ids(good)}"
        )
        logged = " ".join(r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING)
        for task_id in bad_ids:
            assert task_id in logged and q in logged, (
                f"pop logged no warning naming both queue {q!r} and corrupt record {task_id!r}; "
                f"[robust.corrupt_record]: pop logs a warning naming queue and id (a CorruptRecordError "
                f"message) for each record it quarantines\nlogged: {logged[:500]!r}"
            )
        stats = await b.get_stats(q)
        assert stats.get(QUARANTINED) == len(bad_ids), (
            f"get_stats counted {stats.get(QUARANTINED)!r} quarantined after pop stepped over {len(bad_ids)} "
            f"corrupt records; [robust.corrupt_record]: get_stats counts them under 'quarantined'\nstats: "
            f"{stats}"
        )
        assert stats["pending"] == 0 and stats["processing"] == len(good), (
            f"get_stats counted pending={stats['pending']}, processing={stats['processing']}; "
            f"[robust.corrupt_record]: the stand-ins are finished records, so only the {len(good)} good "
            f"tasks count, all claimed (pending=0, processing={len(good)})\nstats: {stats}"
        )
        kept = await b.get_tasks(q, bad_ids)
        kept_texts = {t: r["quarantine"]["raw"] for t, r in kept.items()}
        assert kept_texts == CORRUPT_TEXTS, (
            f"after pop, get_tasks of the quarantined records gave stored texts {brief(kept_texts)}; "
            f"[robust.corrupt_record]: a quarantined record keeps the stored text, {brief(CORRUPT_TEXTS)}"
        )
        # Moved aside for good: a lapsed lease or a later pop never brings them back.
        popped_again = await b.pop(q, limit=10)
        assert popped_again == [], (
            f"pop(limit=10) after every good task was claimed returned {_brief_ids(ids(popped_again))}; "
            f"[robust.corrupt_record]: a quarantined record is moved aside for good, no later pop claims it"
        )
        # An operator removes one by id like any finished record.
        deleted = await b.delete_task(q, bad_ids[0])
        assert deleted is True, (
            f"delete_task of quarantined record {bad_ids[0]!r} returned {deleted!r}; "
            f"[robust.corrupt_record]: delete_task deletes a quarantined record like any finished one and "
            f"returns True"
        )
        remaining = await b.get_tasks(q, bad_ids)
        assert bad_ids[0] not in remaining, (
            f"get_tasks still returned {bad_ids[0]!r} after delete_task returned True; "
            f"[robust.corrupt_record]: delete_task deletes a quarantined record"
        )
        stats_after_delete = await b.get_stats(q)
        assert stats_after_delete[QUARANTINED] == len(bad_ids) - 1, (
            f"get_stats counted {stats_after_delete[QUARANTINED]} quarantined after one of {len(bad_ids)} "
            f"was deleted; [robust.corrupt_record]: get_stats counts the {len(bad_ids) - 1} left under "
            f"'quarantined'"
        )

    @clause("robust.corrupt_record", timeout=30)
    async def test_robust_corrupt_record_deleted_before_claim(self, env: Env) -> None:
        q, b = env.queue(), env.backend
        await _write_corrupt(env, q, "bad-unclaimed", "{truncated")
        good = task_record(1)
        await b.append(q, [good])
        # Read as quarantined (finished), so deleting it works before any pop moved it aside.
        deleted = await b.delete_task(q, "bad-unclaimed")
        assert deleted is True, (
            f"delete_task of a corrupt record no pop had touched returned {deleted!r}; "
            f"[robust.corrupt_record]: it reads as its quarantine record (finished), so delete_task deletes "
            f"it and returns True"
        )
        claimed = ids(await _claim_all(b, q, rounds=3))
        assert claimed == [good["id"]], (
            f"pop (3 calls) claimed {_brief_ids(claimed)} after the corrupt record was deleted; "
            f"[robust.corrupt_record]: the one good task {_brief_ids([good['id']])} is claimed, nothing else"
        )
        left = await b.get_tasks(q, ["bad-unclaimed"])
        assert left == {}, (
            f"get_tasks(['bad-unclaimed']) returned {brief(left)} after delete_task returned True; "
            f"[robust.corrupt_record]: delete_task deletes a quarantined record"
        )

    @clause("isolation.queue_names", timeout=20)
    async def test_isolation_queue_names(self, env: Env) -> None:
        b = env.backend
        names = [env.use_queue(n) for n in tricky_queue_names()]
        shared_id = str(uuid.uuid4())
        own = {name: task_record(i) for i, name in enumerate(names)}
        for name in names:
            appended = await b.append(name, [own[name], task_record(-1, id=shared_id)])
            assert appended == [True, True], (
                f"append to queue {name!r} of its own task and one whose id other queues hold too returned "
                f"{appended}; [isolation.queue_names]: ids are unique only within a queue, so both are "
                f"stored (True, True); build keys from the queue name as it is, never sanitised"
            )
        listed = await b.list_queues()
        for name in names:
            assert listed.get(name) == 2, (
                f"list_queues() gave queue {name!r} size {listed.get(name)!r}; [isolation.queue_names]: each "
                f"queue is listed with its own 2 tasks, whatever characters its name holds"
            )
            stored = sorted(ids(await b.get_all_tasks(name)))
            assert stored == sorted([own[name]["id"], shared_id]), (
                f"get_all_tasks({name!r}) returned {len(stored)} tasks {_brief_ids(stored)}; "
                f"[isolation.queue_names]: queues never see each other's tasks, so it holds its own 2 "
                f"{_brief_ids(sorted([own[name]['id'], shared_id]))}"
            )
            size = await b.size(name)
            assert size == 2, (
                f"size({name!r}) returned {size}; [isolation.queue_names]: queues never see each other's "
                f"tasks, so it counts its own 2"
            )
        first = names[0]
        claimed = await b.pop(first, limit=2, lease=30)
        assert ids(claimed) == [own[first]["id"], shared_id], (
            f"pop({first!r}, limit=2) claimed {_brief_ids(ids(claimed))}; [isolation.queue_names]: it claims "
            f"that queue's own 2 tasks in append order, {_brief_ids([own[first]['id'], shared_id])}"
        )
        await b.store_result(first, finished(claimed[1]))
        for name in names[1:]:
            stats = await b.get_stats(name)
            counts = (stats["pending"], stats["processing"], stats["completed"])
            assert counts == (2, 0, 0), (
                f"get_stats({name!r}) counted (pending, processing, completed) = {counts} after a claim and "
                f"a result in queue {first!r}; [isolation.queue_names]: other queues are untouched, (2, 0, 0)"
            )
            pending = ids(await b.get_pending(name, 5))
            assert pending == [own[name]["id"], shared_id], (
                f"get_pending({name!r}, 5) returned {_brief_ids(pending)} after a claim of the same id in "
                f"queue {first!r}; [isolation.queue_names]: its own 2 tasks stay queued, "
                f"{_brief_ids([own[name]['id'], shared_id])}"
            )
        await b.clear(names[3])  # "...*": a glob-style clear must not take the others
        for name in names[:3] + names[4:]:
            left = len(await b.get_all_tasks(name))
            assert left == 2, (
                f"get_all_tasks({name!r}) returned {left} tasks after clear({names[3]!r}); "
                f"[isolation.queue_names]: clear takes only its own queue; match the name exactly, never as "
                f"a glob or LIKE pattern"
            )
        await self._isolation_of_extras(env, names)

    async def _isolation_of_extras(self, env: Env, names: list[str]) -> None:
        b = env.backend
        for name in names:
            if CRON in env.capabilities:
                added = await b.add_cron(name, "same-cron", _cron())
                assert added is True, (
                    f"add_cron({name!r}, 'same-cron') returned {added!r} while other queues hold that cron "
                    f"id; [isolation.queue_names]: queues never see each other's crons, so it is stored "
                    f"(True)"
                )
            if RATE_LIMIT in env.capabilities:
                wait = await b.acquire_rate_limit(name, "same-key", 1, 60, "t")
                assert wait is None, (
                    f"acquire_rate_limit({name!r}, 'same-key', 1 per 60 s) returned {wait!r} while other "
                    f"queues used that key; [isolation.queue_names]: queues never see each other's rate "
                    f"limits, so the first start is granted (None)"
                )
            if WORKFLOWS in env.capabilities:
                stored = await b.store_workflow(name, {"id": "same-wf", "q": name}, if_version=0)
                assert stored is True, (
                    f"store_workflow({name!r}, 'same-wf', if_version=0) returned {stored!r} while other "
                    f"queues hold that workflow id; [isolation.queue_names]: queues never see each other's "
                    f"workflows, so it is new there (version 0) and stored (True)"
                )
        for name in names:
            if CRON in env.capabilities:
                crons = len(await b.get_crons(name))
                assert crons == 1, (
                    f"get_crons({name!r}) returned {crons} crons; [isolation.queue_names]: each queue lists "
                    f"only the 1 cron added to it"
                )
            if WORKFLOWS in env.capabilities:
                owners = [w["q"] for w in await b.get_all_workflows(name)]
                assert owners == [name], (
                    f"get_all_workflows({name!r}) returned workflows stored in queues {brief(owners)}; "
                    f"[isolation.queue_names]: each queue lists only its own workflow"
                )

    @clause("payload.large", timeout=20)
    async def test_payload_large(self, env: Env) -> None:
        q, b = env.queue(), env.backend
        blob = "x" * 1_000_000 + "🐑"
        record = task_record(1)
        record["spec"]["kwargs"] = {"blob": blob, "items": list(range(10_000))}
        appended = await b.append(q, [record])
        assert appended == [True], _new_ids_appended("append of a 1 MB record", appended, 1)
        (claimed,) = await b.pop(q, lease=30)
        assert claimed["spec"] == record["spec"], (
            f"pop returned the 1 MB record with spec{_first_difference(claimed['spec'], record['spec'])}; "
            f"[payload.large]: a 1 MB payload is stored and handed back equal"
        )
        await b.store_result(q, finished(claimed, result={"echo": blob}))
        got = (await b.get_results(q, [record["id"]]))[record["id"]]
        assert got["result"] == {"echo": blob} and got["spec"] == record["spec"], (
            f"get_results returned the 1 MB record with "
            f"result{_first_difference(got['result'], {'echo': blob})} and "
            f"spec{_first_difference(got['spec'], record['spec'])}; [payload.large]: a 1 MB payload and "
            f"result are stored and handed back equal"
        )

    @clause("payload.unicode")
    async def test_payload_unicode(self, env: Env) -> None:
        q, b = env.queue(), env.backend
        record = task_record(1)
        record["spec"]["kwargs"] = {s: s for s in UNICODE_SAMPLES}
        record["spec"]["args"] = list(UNICODE_SAMPLES)
        await b.append(q, [record])
        looked_up = (await b.get_tasks(q, [record["id"]]))[record["id"]]["spec"]
        assert looked_up == record["spec"], (
            f"get_tasks returned the record with spec{_first_difference(looked_up, record['spec'])}; "
            f"[payload.unicode]: a payload may hold any unicode (NUL, combining marks, U+2028, the last "
            f"plane) and is handed back equal"
        )
        (claimed,) = await b.pop(q, lease=30)
        assert claimed["spec"] == record["spec"], (
            f"pop returned the record with spec{_first_difference(claimed['spec'], record['spec'])}; "
            f"[payload.unicode]: a payload holding any unicode is handed back equal"
        )
        await b.store_result(q, finished(claimed, result=UNICODE_SAMPLES))
        result = (await b.get_results(q, [record["id"]]))[record["id"]]["result"]
        assert result == UNICODE_SAMPLES, (
            f"get_results returned the record with result{_first_difference(result, UNICODE_SAMPLES)}; "
            f"[payload.unicode]: a result holding any unicode is stored and handed back equal"
        )

    @clause("payload.compact")
    async def test_payload_compact(self, env: Env) -> None:
        q, b = env.queue(), env.backend
        compact = {k: v for k, v in task_record(1).items() if k in ("id", "status", "spec", "created_at")}
        full = full_task_record(2)
        what = "a record holding only id, status, spec and created_at (every other field at its default)"
        appended = await b.append(q, [compact, full])
        assert appended == [True, True], _new_ids_appended("append of a compact and a full record",
                                                           appended, 2)
        looked_up = await b.get_tasks(q, [compact["id"], full["id"]])
        for record in (compact, full):
            got = looked_up.get(record["id"])
            assert got is not None and got["spec"] == record["spec"] and got.get("finished_at") is None, (
                f"get_tasks returned {brief(got)} for {brief(record)}; [payload.compact]: {what} and a "
                f"record with every field spelled out are both stored, unfinished, and handed back equal"
            )
        claimed = await b.pop(q, 2, lease=30)
        assert ids(claimed) == [compact["id"], full["id"]], (
            f"pop(limit=2) claimed {ids(claimed)}; [payload.compact]: {what} is claimed like any other, in "
            f"append order"
        )
        # The compact one is retried: due at once, it comes back to the queue; then both finish.
        await b.store_result(q, requeued(claimed[0], "retrying", at=utcnow()))
        await b.store_result(q, finished(claimed[1]))
        moved = await within(10, b.pop_scheduled(q, utcnow() + timedelta(seconds=1)))
        assert ids(moved) == [compact["id"]], (
            f"pop_scheduled moved {ids(moved)}; [payload.compact]: {what}, stored as retrying and due, moves "
            f"back into the queue"
        )
        (again,) = await b.pop(q, lease=30)
        await b.store_result(q, finished(again, result=7))
        results = await b.get_results(q, [compact["id"], full["id"]])
        both = {compact["id"], full["id"]}
        assert results.get(compact["id"], {}).get("result") == 7 and set(results) == both, (
            f"get_results returned {brief(results)}; [payload.compact]: {what} is retried and finished like "
            f"a record with every field spelled out"
        )

    @clause("reconnect.recovers", timeout=30)
    async def test_reconnect_recovers(self, env: Env) -> None:
        q, b = env.queue(), env.backend
        queued = [task_record(i) for i in range(5)]
        scheduled = task_record(9)
        appended = await b.append(q, queued)
        assert appended == [True] * 5, _new_ids_appended("append(q, 5 records)", appended, 5)
        (claimed,) = await b.pop(q, lease=30)
        stored_result = await b.store_result(q, finished(claimed, result="kept"))
        assert stored_result is True, (
            f"store_result of a claimed task's finished record returned {stored_result!r}; "
            f"[store_result.finished]: the record of a known task is stored (True)"
        )
        scheduled_ok = await b.schedule(q, scheduled, FAR_FUTURE)
        assert scheduled_ok is True, (
            f"schedule of a record with a new id returned {scheduled_ok!r}; [schedule.unique]: it is stored "
            f"(True)"
        )
        await within(10, env.drop_connection(b))
        # Nothing acknowledged as stored is lost; calls fail only with BackendConnectionError meanwhile.
        stored = await _until_connected(lambda: b.get_all_tasks(q))
        acknowledged = sorted([*ids(queued), scheduled["id"]])
        assert sorted(ids(stored)) == acknowledged, (
            f"after a dropped connection get_all_tasks lists {len(stored)} of the {len(acknowledged)} tasks "
            f"acknowledged as stored, lost {_brief_ids(sorted(set(acknowledged) - set(ids(stored))))}; "
            f"[reconnect.recovers]: a reconnect never loses a task an earlier call acknowledged as stored; "
            f"keep tasks in the store, not in connection state"
        )
        results = await _until_connected(lambda: b.get_results(q, [claimed["id"]]))
        assert results[claimed["id"]]["result"] == "kept", (
            f"after a dropped connection get_results gave result {brief(results[claimed['id']]['result'])}; "
            f"[reconnect.recovers]: a result stored before the drop is kept, 'kept'"
        )
        size = await _until_connected(lambda: b.size(q))
        assert size == 4, (
            f"after a dropped connection size returned {size}; [reconnect.recovers]: the 4 tasks queued "
            f"before the drop are still queued"
        )
        await within(10, env.drop_connection(b))
        late = task_record(10)
        await _until_connected(lambda: b.append(q, [late]))
        pending = ids(await _until_connected(lambda: b.get_pending(q, 10)))
        assert pending == [*ids(queued[1:]), late["id"]], (
            f"after a second dropped connection get_pending(10) returned {_brief_ids(pending)}; "
            f"[reconnect.recovers]: the 4 tasks queued before it and the one appended after it are queued, "
            f"in append order"
        )
        scheduled_ids = ids(await b.get_scheduled(q))
        assert scheduled_ids == [scheduled["id"]], (
            f"after two dropped connections get_scheduled returned {_brief_ids(scheduled_ids)}; "
            f"[reconnect.recovers]: the task scheduled before them is still scheduled, "
            f"{_brief_ids([scheduled['id']])}"
        )

    @clause("reconnect.recovers", timeout=30)
    async def test_reconnect_recovers_peer_sees_data(self, env: Env) -> None:
        q, b = env.queue(), env.backend
        records = [task_record(i) for i in range(3)]
        await b.append(q, records)
        await within(10, env.drop_connection(b))
        other = await env.peer()
        claimed = ids(await _until_connected(lambda: other.pop(q, limit=5, lease=30)))
        assert claimed == ids(records), (
            f"after the first backend's connection dropped, pop(limit=5) on a second backend claimed "
            f"{_brief_ids(claimed)}; [reconnect.recovers]: the 3 tasks acknowledged as stored are in the "
            f"store for every client, in append order"
        )

    @clause("errors.not_connected")
    async def test_errors_not_connected(self, env: Env) -> None:
        q = env.queue()
        fresh = env.factory()
        assert fresh.is_connected is False, (
            f"is_connected of a backend built but never connected is {fresh.is_connected!r}; "
            f"[errors.not_connected]: it is True only between connect() and disconnect()"
        )
        calls: list[Callable[[], Awaitable[Any]]] = [
            lambda: fresh.append(q, [task_record(1)]), lambda: fresh.pop(q), lambda: fresh.size(q),
            lambda: fresh.get_stats(q), lambda: fresh.list_queues()]
        names = ["append", "pop", "size", "get_stats", "list_queues"]
        for name, call in zip(names, calls, strict=True):
            with raises(BackendConnectionError,
                        f"{name} before connect() must raise BackendConnectionError [errors.not_connected]"):
                await within(5, call())
        await fresh.connect()
        try:
            assert fresh.is_connected is True, (
                f"is_connected after connect() is {fresh.is_connected!r}; [errors.not_connected]: it is True "
                f"between a successful connect() and disconnect()"
            )
            await fresh.append(q, [task_record(2)])
        finally:
            await fresh.disconnect()
        assert fresh.is_connected is False, (
            f"is_connected after disconnect() is {fresh.is_connected!r}; [errors.not_connected]: it is False "
            f"once disconnect() returned"
        )
        for name, call in zip(names, calls, strict=True):
            with raises(BackendConnectionError,
                        f"{name} after disconnect() must raise BackendConnectionError "
                        f"[errors.not_connected]"):
                await within(5, call())

    @clause("connection.idempotent")
    async def test_connection_idempotent(self, env: Env) -> None:
        q, b = env.queue(), env.backend
        await b.connect()  # connecting a connected backend does nothing
        assert b.is_connected, (
            f"is_connected after a second connect() is {b.is_connected!r}; [connection.idempotent]: "
            f"connecting a connected backend does nothing"
        )
        await b.append(q, [task_record(1)])
        await b.disconnect()
        await b.disconnect()
        assert not b.is_connected, (
            f"is_connected after disconnect() twice is {b.is_connected!r}; [connection.idempotent]: "
            f"disconnect is idempotent and leaves the backend disconnected"
        )
        await b.connect()
        await b.connect()
        size = await b.size(q)  # stored data is untouched by disconnect
        assert size == 1, (
            f"size after disconnect() and connect() returned {size}; [connection.idempotent]: stored data is "
            f"untouched by disconnect, the 1 task appended before it is still queued"
        )
        async with env.factory() as scoped:
            assert scoped.is_connected, (
                f"is_connected inside 'async with backend' is {scoped.is_connected!r}; "
                f"[connection.idempotent]: entering the block connects"
            )
        assert not scoped.is_connected, (
            f"is_connected after leaving 'async with backend' is {scoped.is_connected!r}; "
            f"[connection.idempotent]: leaving the block disconnects"
        )

    @clause("errors.input")
    async def test_errors_input(self, env: Env) -> None:
        q, b = env.queue(), env.backend
        refused: dict[str, Callable[[], Awaitable[Any]]] = {
            "append('', [record])": lambda: b.append("", [task_record(1)]),
            "pop('')": lambda: b.pop(""),
            "size('')": lambda: b.size(""),
            "append(q, [a record without id])": lambda: b.append(q, [{"status": "new"}]),
        }
        for name, call in refused.items():
            with raises(BackendInputError, f"{name} must raise BackendInputError: an empty queue name or a "
                                           f"record without id is input the backend cannot accept "
                                           f"[errors.input]"):
                await call()
        size = await b.size(q)
        assert size == 0, (
            f"size after append(q, [a record without id]) was refused returned {size}; [errors.input]: the "
            f"refused record is not queued"
        )

    @clause("input.unencodable", timeout=20)
    async def test_input_unencodable_queue_name(self, env: Env) -> None:
        b = env.backend
        bad = "sheppy-conformance-\ud800"  # a lone surrogate: no UTF-8 form, no store can hold it
        record, now = task_record(1), utcnow()
        some_id = record["id"]
        calls: dict[str, Callable[[], Awaitable[Any]]] = {
            "append": lambda: b.append(bad, [record]),
            "schedule": lambda: b.schedule(bad, task_record(2), FAR_FUTURE),
            "pop": lambda: b.pop(bad),
            "acknowledge": lambda: b.acknowledge(bad, some_id),
            "heartbeat": lambda: b.heartbeat(bad, [some_id]),
            "store_result": lambda: b.store_result(bad, finished(record)),
            "get_results": lambda: b.get_results(bad, [some_id]),
            "get_tasks": lambda: b.get_tasks(bad, [some_id]),
            "get_all_tasks": lambda: b.get_all_tasks(bad),
            "get_pending": lambda: b.get_pending(bad),
            "get_scheduled": lambda: b.get_scheduled(bad),
            "next_scheduled_at": lambda: b.next_scheduled_at(bad),
            "size": lambda: b.size(bad),
            "get_stats": lambda: b.get_stats(bad),
            "pop_scheduled": lambda: b.pop_scheduled(bad, now),
            "cancel": lambda: b.cancel(bad, some_id),
            "delete_task": lambda: b.delete_task(bad, some_id),
            "clear": lambda: b.clear(bad),
        }
        if CRON in env.capabilities:
            calls["add_cron"] = lambda: b.add_cron(bad, "cron-id", _cron())
            calls["get_crons"] = lambda: b.get_crons(bad)
        if RATE_LIMIT in env.capabilities:
            calls["acquire_rate_limit"] = lambda: b.acquire_rate_limit(bad, "key", 1, 60, some_id)
        if WORKFLOWS in env.capabilities:
            calls["store_workflow"] = lambda: b.store_workflow(bad, {"id": "wf"})
            calls["get_all_workflows"] = lambda: b.get_all_workflows(bad)
        wrong = await _refusals(calls, "UTF-8")
        assert not wrong, (
            f"{len(wrong)} of {len(calls)} methods did not refuse queue name {bad!r} with a "
            f"BackendInputError naming 'UTF-8'; [input.unencodable]: every method refuses a queue name "
            f"without a UTF-8 form before anything reaches the store: call "
            f"sheppy_core.backend.check_queue_name first{_refusal_details(wrong)}"
        )
        queues = await b.list_queues()
        assert bad not in queues, (
            f"list_queues() lists {bad!r} after every call on it was refused; [input.unencodable]: nothing "
            f"of a refused call is stored"
        )
        # Refused before reaching the store: the backend object still works.
        q = env.queue()
        appended = await b.append(q, [task_record(3)])
        assert appended == [True], (
            f"append to a good queue after the refusals returned {brief(appended)}; [input.unencodable]: the "
            f"backend stays usable after refusing input, so a new record is stored and queued ([True])"
        )
        size = await b.size(q)
        assert size == 1, (
            f"size of a good queue after the refusals returned {size}; [input.unencodable]: the backend "
            f"stays usable, the 1 task just appended is queued"
        )

    @clause("input.unencodable")
    async def test_input_unencodable_task_id(self, env: Env) -> None:
        q, b = env.queue(), env.backend
        for bad_id, problem in (("nul\x00inside", "NUL"), ("lone\udc80surrogate", "UTF-8")):
            calls = _calls_with_task_id(b, q, bad_id)
            wrong = await _refusals(calls, problem)
            assert not wrong, (
                f"{len(wrong)} of {len(calls)} methods did not refuse task id {bad_id!r} with a "
                f"BackendInputError naming {problem!r}; [input.unencodable]: a task id with NUL or without a "
                f"UTF-8 form is refused before anything reaches the store: use "
                f"sheppy_core.backend.task_id_of / check_task_id{_refusal_details(wrong)}"
            )
            stored = await b.get_all_tasks(q)
            assert stored == [], (
                f"get_all_tasks returned {_brief_ids(ids(stored))} after every call with task id {bad_id!r} "
                f"was refused; [input.unencodable]: nothing of a refused call is stored, not even the good "
                f"records of its batch"
            )
        good = task_record(3)
        appended = await b.append(q, [good])
        assert appended == [True], (
            f"append of a good record after the refusals returned {brief(appended)}; [input.unencodable]: "
            f"the backend stays usable after refusing input, so a new record is stored and queued ([True])"
        )
        found = list(await b.get_tasks(q, [good["id"]]))
        assert found == [good["id"]], (
            f"get_tasks of the good record appended after the refusals returned ids {_brief_ids(found)}; "
            f"[input.unencodable]: the backend stays usable, the record is stored"
        )


def _calls_with_task_id(b: Backend, q: str, bad_id: str) -> dict[str, Callable[[], Awaitable[Any]]]:
    good, bad = task_record(1), task_record(2, id=bad_id)
    return {
        "append": lambda: b.append(q, [good, bad]),
        "append(unique=False)": lambda: b.append(q, [bad], unique=False),
        "schedule": lambda: b.schedule(q, bad, FAR_FUTURE),
        "store_result": lambda: b.store_result(q, finished(bad)),
        "get_tasks": lambda: b.get_tasks(q, [good["id"], bad_id]),
        "get_results": lambda: b.get_results(q, [bad_id]),
        "heartbeat": lambda: b.heartbeat(q, [bad_id]),
        "acknowledge": lambda: b.acknowledge(q, bad_id),
        "cancel": lambda: b.cancel(q, bad_id),
        "delete_task": lambda: b.delete_task(q, bad_id),
    }


def _refusal_details(wrong: dict[str, str]) -> str:
    """What each method that did not refuse did, one per line below a message's summary line."""
    return "".join(f"\n  {name}: {outcome}" for name, outcome in wrong.items())


async def _refusals(calls: dict[str, Callable[[], Awaitable[Any]]], problem: str) -> dict[str, str]:
    """``{method: what happened}`` for the calls that did not raise a BackendInputError naming ``problem``."""
    wrong: dict[str, str] = {}
    for name, call in calls.items():
        try:
            outcome = await within(5, call())
        except BackendInputError as exc:
            if problem not in str(exc):
                wrong[name] = f"BackendInputError without {problem!r}: {exc}"
        except Exception as exc:  # a driver's exception, or another BackendError: the clause fails
            wrong[name] = f"{type(exc).__name__}: {exc}"
        else:
            wrong[name] = f"returned {str(outcome)[:80]}"
    return wrong
