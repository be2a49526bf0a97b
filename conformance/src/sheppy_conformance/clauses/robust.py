"""isolation.*, payload.*, reconnect.*, errors.* and connection.*: what breaks backends in production."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import pytest

from sheppy_conformance._clause import clause
from sheppy_conformance._env import Env
from sheppy_conformance.clauses.inspect import _cron
from sheppy_conformance.plugin import NO_HOOK_PREFIX
from sheppy_conformance.records import FAR_FUTURE, finished, ids, task_record, within
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
        assert await b.append(q, [first]) == [True]
        bad_ids = list(CORRUPT_TEXTS)
        for task_id in bad_ids[:2]:
            await _write_corrupt(env, q, task_id, CORRUPT_TEXTS[task_id])
        middle = [task_record(2), task_record(3)]
        assert await b.append(q, middle) == [True, True]
        for task_id in bad_ids[2:]:
            await _write_corrupt(env, q, task_id, CORRUPT_TEXTS[task_id])
        last = task_record(4)
        assert await b.append(q, [last]) == [True]
        good = [first, *middle, last]

        # Reads never fail on them: each is handed out as its quarantine stand-in, raw text kept.
        listed = {r["id"]: r for r in await b.get_all_tasks(q)}
        assert set(listed) == {*ids(good), *bad_ids}, (
            f"get_all_tasks must list every stored record, corrupt ones as stand-ins; got {sorted(listed)}"
        )
        looked_up = await b.get_tasks(q, bad_ids)
        for task_id, text in CORRUPT_TEXTS.items():
            stand_in = looked_up.get(task_id)
            assert stand_in is not None and stand_in.get("status") == QUARANTINED, (
                f"get_tasks of corrupt record {task_id!r} (stored text {text!r}) must return its "
                f"quarantine record (status 'quarantined'), got {stand_in!r}"
            )
            assert stand_in["quarantine"]["raw"] == text, "the stand-in must keep the stored text"

        # Claims step over them: every good task comes out, in order, none of the corrupt ones.
        with caplog.at_level(logging.WARNING):
            claimed = await _claim_all(b, q)
        assert ids(claimed) == ids(good), (
            f"pop must claim the good tasks behind corrupt records (in order) and never return a corrupt "
            f"one; claimed {ids(claimed)}, expected {ids(good)}"
        )
        logged = " ".join(r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING)
        for task_id in bad_ids:
            assert task_id in logged and q in logged, (
                f"pop must log a warning naming queue {q!r} and corrupt record {task_id!r}; logged: "
                f"{logged[:500]!r}"
            )
        stats = await b.get_stats(q)
        assert stats.get(QUARANTINED) == len(bad_ids), (
            f"get_stats must count {len(bad_ids)} quarantined: {stats}"
        )
        assert stats["pending"] == 0 and stats["processing"] == len(good), stats
        kept = await b.get_tasks(q, bad_ids)
        assert {t: r["quarantine"]["raw"] for t, r in kept.items()} == CORRUPT_TEXTS, (
            "a quarantined record keeps the stored text"
        )
        # Moved aside for good: a lapsed lease or a later pop never brings them back.
        assert await b.pop(q, limit=10) == []
        # An operator removes one by id like any finished record.
        assert await b.delete_task(q, bad_ids[0]) is True
        assert bad_ids[0] not in await b.get_tasks(q, bad_ids)
        assert (await b.get_stats(q))[QUARANTINED] == len(bad_ids) - 1

    @clause("robust.corrupt_record", timeout=30)
    async def test_robust_corrupt_record_deleted_before_claim(self, env: Env) -> None:
        q, b = env.queue(), env.backend
        await _write_corrupt(env, q, "bad-unclaimed", "{truncated")
        good = task_record(1)
        await b.append(q, [good])
        # Read as quarantined (finished), so deleting it works before any pop moved it aside.
        assert await b.delete_task(q, "bad-unclaimed") is True
        assert ids(await _claim_all(b, q, rounds=3)) == [good["id"]]
        assert await b.get_tasks(q, ["bad-unclaimed"]) == {}

    @clause("isolation.queue_names", timeout=20)
    async def test_isolation_queue_names(self, env: Env) -> None:
        b = env.backend
        names = [env.use_queue(n) for n in tricky_queue_names()]
        shared_id = str(uuid.uuid4())
        own = {name: task_record(i) for i, name in enumerate(names)}
        for name in names:
            assert await b.append(name, [own[name], task_record(-1, id=shared_id)]) == [True, True], name
        listed = await b.list_queues()
        for name in names:
            assert listed.get(name) == 2, name
            assert sorted(ids(await b.get_all_tasks(name))) == sorted([own[name]["id"], shared_id]), name
            assert await b.size(name) == 2, name
        first = names[0]
        claimed = await b.pop(first, limit=2, lease=30)
        assert ids(claimed) == [own[first]["id"], shared_id]
        await b.store_result(first, finished(claimed[1]))
        for name in names[1:]:
            stats = await b.get_stats(name)
            assert (stats["pending"], stats["processing"], stats["completed"]) == (2, 0, 0), name
            assert ids(await b.get_pending(name, 5)) == [own[name]["id"], shared_id], name
        await b.clear(names[3])  # "...*": a glob-style clear must not take the others
        for name in names[:3] + names[4:]:
            assert len(await b.get_all_tasks(name)) == 2, name
        await self._isolation_of_extras(env, names)

    async def _isolation_of_extras(self, env: Env, names: list[str]) -> None:
        b = env.backend
        for name in names:
            if CRON in env.capabilities:
                assert await b.add_cron(name, "same-cron", _cron()) is True, name
            if RATE_LIMIT in env.capabilities:
                assert await b.acquire_rate_limit(name, "same-key", 1, 60, "t") is None, name
            if WORKFLOWS in env.capabilities:
                assert await b.store_workflow(name, {"id": "same-wf", "q": name}, if_version=0) is True, name
        for name in names:
            if CRON in env.capabilities:
                assert len(await b.get_crons(name)) == 1, name
            if WORKFLOWS in env.capabilities:
                assert [w["q"] for w in await b.get_all_workflows(name)] == [name]

    @clause("payload.large", timeout=20)
    async def test_payload_large(self, env: Env) -> None:
        q, b = env.queue(), env.backend
        blob = "x" * 1_000_000 + "🐑"
        record = task_record(1)
        record["spec"]["kwargs"] = {"blob": blob, "items": list(range(10_000))}
        assert await b.append(q, [record]) == [True]
        (claimed,) = await b.pop(q, lease=30)
        assert claimed["spec"] == record["spec"]
        await b.store_result(q, finished(claimed, result={"echo": blob}))
        got = (await b.get_results(q, [record["id"]]))[record["id"]]
        assert got["result"] == {"echo": blob} and got["spec"] == record["spec"]

    @clause("payload.unicode")
    async def test_payload_unicode(self, env: Env) -> None:
        q, b = env.queue(), env.backend
        record = task_record(1)
        record["spec"]["kwargs"] = {s: s for s in UNICODE_SAMPLES}
        record["spec"]["args"] = list(UNICODE_SAMPLES)
        await b.append(q, [record])
        assert (await b.get_tasks(q, [record["id"]]))[record["id"]]["spec"] == record["spec"]
        (claimed,) = await b.pop(q, lease=30)
        assert claimed["spec"] == record["spec"]
        await b.store_result(q, finished(claimed, result=UNICODE_SAMPLES))
        assert (await b.get_results(q, [record["id"]]))[record["id"]]["result"] == UNICODE_SAMPLES

    @clause("reconnect.recovers", timeout=30)
    async def test_reconnect_recovers(self, env: Env) -> None:
        q, b = env.queue(), env.backend
        queued = [task_record(i) for i in range(5)]
        scheduled = task_record(9)
        assert await b.append(q, queued) == [True] * 5
        (claimed,) = await b.pop(q, lease=30)
        assert await b.store_result(q, finished(claimed, result="kept")) is True
        assert await b.schedule(q, scheduled, FAR_FUTURE) is True
        await within(10, env.drop_connection(b))
        # Nothing acknowledged as stored is lost; calls fail only with BackendConnectionError meanwhile.
        stored = await _until_connected(lambda: b.get_all_tasks(q))
        assert sorted(ids(stored)) == sorted([*ids(queued), scheduled["id"]])
        results = await _until_connected(lambda: b.get_results(q, [claimed["id"]]))
        assert results[claimed["id"]]["result"] == "kept"
        assert await _until_connected(lambda: b.size(q)) == 4
        await within(10, env.drop_connection(b))
        late = task_record(10)
        await _until_connected(lambda: b.append(q, [late]))
        assert ids(await _until_connected(lambda: b.get_pending(q, 10))) == [*ids(queued[1:]), late["id"]]
        assert ids(await b.get_scheduled(q)) == [scheduled["id"]]

    @clause("reconnect.recovers", timeout=30)
    async def test_reconnect_recovers_peer_sees_data(self, env: Env) -> None:
        q, b = env.queue(), env.backend
        records = [task_record(i) for i in range(3)]
        await b.append(q, records)
        await within(10, env.drop_connection(b))
        other = await env.peer()
        assert ids(await _until_connected(lambda: other.pop(q, limit=5, lease=30))) == ids(records)

    @clause("errors.not_connected")
    async def test_errors_not_connected(self, env: Env) -> None:
        q = env.queue()
        fresh = env.factory()
        assert fresh.is_connected is False
        calls: list[Callable[[], Awaitable[Any]]] = [
            lambda: fresh.append(q, [task_record(1)]), lambda: fresh.pop(q), lambda: fresh.size(q),
            lambda: fresh.get_stats(q), lambda: fresh.list_queues()]
        for call in calls:
            with pytest.raises(BackendConnectionError):
                await within(5, call())
        await fresh.connect()
        try:
            assert fresh.is_connected is True
            await fresh.append(q, [task_record(2)])
        finally:
            await fresh.disconnect()
        assert fresh.is_connected is False
        for call in calls:
            with pytest.raises(BackendConnectionError):
                await within(5, call())

    @clause("connection.idempotent")
    async def test_connection_idempotent(self, env: Env) -> None:
        q, b = env.queue(), env.backend
        await b.connect()  # connecting a connected backend does nothing
        assert b.is_connected
        await b.append(q, [task_record(1)])
        await b.disconnect()
        await b.disconnect()
        assert not b.is_connected
        await b.connect()
        await b.connect()
        assert await b.size(q) == 1  # stored data is untouched by disconnect
        async with env.factory() as scoped:
            assert scoped.is_connected
        assert not scoped.is_connected

    @clause("errors.input")
    async def test_errors_input(self, env: Env) -> None:
        q, b = env.queue(), env.backend
        for call in (lambda: b.append("", [task_record(1)]), lambda: b.pop(""), lambda: b.size(""),
                     lambda: b.append(q, [{"status": "new"}])):
            with pytest.raises(BackendInputError):
                await call()
        assert await b.size(q) == 0

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
            f"a queue name without a UTF-8 form ({bad!r}) must raise BackendInputError naming the problem "
            f"(mention 'UTF-8'; sheppy_core.backend.check_queue_name does it) from every method: {wrong}"
        )
        assert bad not in await b.list_queues()
        # Refused before reaching the store: the backend object still works.
        q = env.queue()
        assert await b.append(q, [task_record(3)]) == [True]
        assert await b.size(q) == 1

    @clause("input.unencodable")
    async def test_input_unencodable_task_id(self, env: Env) -> None:
        q, b = env.queue(), env.backend
        for bad_id, problem in (("nul\x00inside", "NUL"), ("lone\udc80surrogate", "UTF-8")):
            wrong = await _refusals(_calls_with_task_id(b, q, bad_id), problem)
            assert not wrong, (
                f"task id {bad_id!r} must raise BackendInputError naming the problem (mention {problem!r}; "
                f"sheppy_core.backend.task_id_of / check_task_id do it): {wrong}"
            )
            stored = await b.get_all_tasks(q)
            assert stored == [], (
                f"a refused call must store nothing, not even the good records of its batch: {ids(stored)}"
            )
        good = task_record(3)
        assert await b.append(q, [good]) == [True]
        assert list(await b.get_tasks(q, [good["id"]])) == [good["id"]]


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
