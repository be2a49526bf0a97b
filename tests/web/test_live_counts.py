"""The dashboard's live counts (``/events``) are pushed from the backend's change feed, not polled.

Each test builds the dashboard with a fallback poll of 60 s, so a ``counts`` event that arrives within a
few seconds of a change can only have been pushed. The change is made through another backend object on
the same store (the same object for memory://, whose store belongs to one object). httpx's
ASGITransport buffers a whole response, so the app is driven here as an ASGI callable: every chunk of
the stream is read as it is sent.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from types import TracebackType
from typing import Any

import pytest

from sheppy_core import MemoryBackend
from sheppy_core.backend import Backend, to_iso, utcnow
from sheppy_core.models import Task, TaskSpec
from sheppy_core.web import create_dashboard

pytest.importorskip("starlette")
pytest.importorskip("jinja2")

QUEUE = "live"
NO_POLL = 60.0
"""The fallback poll of the dashboards under test: longer than any test may take."""
PUSH_WAIT = 5.0
"""How long after a change its ``counts`` event may take to arrive (a loaded host)."""
PUSH_RETRY = 1.0
"""Seconds between two changes made for one expected event (see :meth:`EventStream.pushed_after`)."""
FIRST_EVENT_WAIT = 10.0
POSTGRES_URL = "postgresql://postgres@127.0.0.1:5432/test"
REDIS_URL = "redis://127.0.0.1:6379/0"


def _record(n: int) -> dict[str, Any]:
    return Task(spec=TaskSpec(func="tests.tasks_for_tests:add", args=(n, n))).model_dump(mode="json")


class EventStream:
    """``GET /events`` on an ASGI app, read event by event while the response streams."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self._chunks: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._gone = asyncio.Event()
        self._requested = False
        self._buffer = ""
        self._task: asyncio.Task[None] | None = None

    async def _receive(self) -> dict[str, Any]:
        if not self._requested:
            self._requested = True
            return {"type": "http.request", "body": b"", "more_body": False}
        await self._gone.wait()
        return {"type": "http.disconnect"}

    async def _send(self, message: dict[str, Any]) -> None:
        await self._chunks.put(message)

    async def __aenter__(self) -> EventStream:
        scope = {
            "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET",
            "scheme": "http", "path": "/events", "raw_path": b"/events", "query_string": b"", "root_path": "",
            "headers": [(b"host", b"dash")], "client": ("127.0.0.1", 50000), "server": ("dash", 80),
        }
        self._task = asyncio.ensure_future(self.app(scope, self._receive, self._send))
        start = await asyncio.wait_for(self._chunks.get(), FIRST_EVENT_WAIT)
        assert start["type"] == "http.response.start" and start["status"] == 200, start
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._gone.set()
        assert self._task is not None
        try:
            await asyncio.wait_for(self._task, 5.0)
        except TimeoutError:
            pytest.fail("the event stream did not end within 5 s of the client going away")

    async def next_counts(self, timeout: float) -> dict[str, dict[str, int]]:
        """The data of the next ``counts`` event; TimeoutError when none arrives within ``timeout`` s."""
        deadline = time.monotonic() + timeout
        while "\n\n" not in self._buffer or not self._buffer.startswith("event: counts"):
            if "\n\n" in self._buffer:  # a keep-alive comment: skip it
                self._buffer = self._buffer.split("\n\n", 1)[1]
                continue
            left = deadline - time.monotonic()
            message = await asyncio.wait_for(self._chunks.get(), max(left, 0.001))  # TimeoutError: none
            assert message["type"] == "http.response.body", message
            self._buffer += message.get("body", b"").decode()
        event, self._buffer = self._buffer.split("\n\n", 1)
        data = event.split("data: ", 1)[1]
        counts: dict[str, dict[str, int]] = json.loads(data)
        return counts

    async def counts_until(
        self, wanted: Callable[[dict[str, int]], bool], timeout: float
    ) -> dict[str, int]:
        """The counts of :data:`QUEUE` from the first event that shows ``wanted`` within ``timeout`` s
        (TimeoutError otherwise)."""
        deadline = time.monotonic() + timeout
        while True:
            counts = (await self.next_counts(max(deadline - time.monotonic(), 0.001))).get(QUEUE, {})
            if wanted(counts):
                return counts

    async def pushed_after(
        self, change: Callable[[int], Awaitable[object]], wanted: Callable[[dict[str, int]], bool]
    ) -> dict[str, int]:
        """Make ``change(0)``, then ``change(1)``… once a second until an event shows ``wanted``, within
        :data:`PUSH_WAIT` s of the first change. A change made while the dashboard's wait is still
        subscribing (a SUBSCRIBE or LISTEN round trip) may go unsignalled; the next one may not."""
        first = time.monotonic()
        for attempt in range(int(PUSH_WAIT / PUSH_RETRY)):
            await change(attempt)
            try:
                return await self.counts_until(wanted, PUSH_RETRY)
            except TimeoutError:
                continue
        pytest.fail(f"no counts event within {time.monotonic() - first:.1f} s of the first change "
                    f"(the fallback poll is {NO_POLL} s): nothing was pushed")


@pytest.fixture(params=["memory", "sqlite", "postgres", "redis"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[tuple[Backend, Backend]]:
    """``(producer, viewer)``: two backend objects on one store (memory: one object)."""
    kind = request.param
    cleanup: list[Callable[[], Any]] = []
    if kind == "memory":
        memory = MemoryBackend(instant_processing=False)
        producer = viewer = memory
    elif kind == "sqlite":
        from sheppy_sqlite import SQLiteBackend

        producer, viewer = SQLiteBackend(tmp_path / "live.db"), SQLiteBackend(tmp_path / "live.db")
    elif kind == "postgres":
        import asyncpg
        from sheppy_postgres import PostgresBackend

        schema = f"sheppy_live_{uuid.uuid4().hex[:12]}"
        url = f"{POSTGRES_URL}?schema={schema}"
        producer, viewer = PostgresBackend(url), PostgresBackend(url)

        async def drop_schema() -> None:
            conn = await asyncpg.connect(POSTGRES_URL)
            try:
                await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
            finally:
                await conn.close()

        cleanup.append(drop_schema)
    else:
        from compat.support import delete_redis_prefix
        from sheppy_redis import RedisBackend

        prefix = f"sheppy-live-{uuid.uuid4().hex[:12]}"
        producer, viewer = RedisBackend(REDIS_URL, prefix=prefix), RedisBackend(REDIS_URL, prefix=prefix)
        cleanup.append(functools.partial(delete_redis_prefix, prefix))
    await producer.connect()
    await viewer.connect()
    try:
        yield producer, viewer
    finally:
        for backend in {id(producer): producer, id(viewer): viewer}.values():
            with contextlib.suppress(Exception):
                await backend.disconnect()
        for step in cleanup:
            await step()


async def test_counts_are_pushed_when_another_client_adds_and_finishes(
    store: tuple[Backend, Backend],
) -> None:
    producer, viewer = store
    await producer.append(QUEUE, [_record(0)])  # the queue exists, so the dashboard lists it
    app = create_dashboard(viewer, events_poll_seconds=NO_POLL)
    async with EventStream(app) as events:
        first = (await events.next_counts(FIRST_EVENT_WAIT))[QUEUE]
        assert first["pending"] == 1, first

        async def add(n: int) -> None:
            await producer.append(QUEUE, [_record(n + 1)])

        added = await events.pushed_after(add, lambda c: c.get("pending", 0) >= 2)
        assert added["completed"] == 0, added

        claimed = await producer.pop(QUEUE, limit=added["pending"], lease=60)
        assert len(claimed) == added["pending"]

        async def finish(n: int) -> None:
            # A retry finishes the next claimed task (storing the last one's result again, if need be).
            record = claimed[min(n, len(claimed) - 1)]
            done = dict(record, status="completed", result=2, finished_at=to_iso(utcnow()))
            assert await producer.store_result(QUEUE, done)

        finished = await events.pushed_after(finish, lambda c: c.get("completed", 0) >= 1)
        assert finished["pending"] == 0 and finished["completed"] >= 1, finished


async def test_a_burst_of_adds_is_coalesced_into_few_recomputations() -> None:
    backend = MemoryBackend(instant_processing=False)
    await backend.connect()
    await backend.append(QUEUE, [_record(0)])
    reads = 0
    count_by_status = backend.count_by_status

    async def counted(queue_name: str, **options: Any) -> dict[str, int]:
        nonlocal reads
        reads += 1
        return await count_by_status(queue_name, **options)

    backend.count_by_status = counted  # type: ignore[method-assign]
    app = create_dashboard(backend, events_poll_seconds=NO_POLL)
    async with EventStream(app) as events:
        await events.next_counts(FIRST_EVENT_WAIT)
        started, before = time.monotonic(), reads
        for n in range(1, 501):
            await backend.append(QUEUE, [_record(n)])
            await asyncio.sleep(0)  # each add is its own event-loop turn, as from many producers
        try:
            last = await events.counts_until(lambda c: c.get("pending") == 501, PUSH_WAIT)
        except TimeoutError:
            pytest.fail(f"the burst's last counts did not arrive within {PUSH_WAIT} s")
        elapsed = time.monotonic() - started
    assert last["pending"] == 501
    # At most one recomputation per 0.25 s of the burst (plus the one that shows its end).
    assert reads - before <= elapsed / 0.25 + 2, (reads - before, elapsed)
