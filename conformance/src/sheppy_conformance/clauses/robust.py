"""isolation.*, payload.*, reconnect.*, errors.* and connection.*: what breaks backends in production."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import pytest

from sheppy_conformance._clause import clause
from sheppy_conformance._env import Env
from sheppy_conformance.clauses.inspect import _cron
from sheppy_conformance.records import FAR_FUTURE, finished, ids, task_record, within
from sheppy_core.backend import (
    CRON,
    RATE_LIMIT,
    WORKFLOWS,
    BackendConnectionError,
    BackendInputError,
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


class RobustnessClauses:
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
