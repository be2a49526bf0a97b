"""The worker registry is for operators: when the store cannot take a worker's record (server down,
an error, a hang), the worker keeps claiming and running tasks, says so once per outage, and registers
again on the next beat once the store answers."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
import tasks_for_tests as t

from sheppy_core import Queue, Worker
from sheppy_core.backend import MemoryBackend
from sheppy_core.exceptions import BackendConnectionError

LEASE = 3.0


class FlakyRegistry(MemoryBackend):
    """Tasks work; the worker registry fails with ``failure`` while ``down`` (or hangs if ``hang``)."""

    def __init__(self, failure: BaseException | None = None, **options: Any) -> None:
        super().__init__(instant_processing=False, **options)
        self.failure = failure or BackendConnectionError("connection refused (registry test)")
        self.down = True
        self.hang = False
        self.calls = 0

    async def register_worker(self, worker: dict[str, Any], *, ttl: float) -> None:
        self.calls += 1
        if self.hang:
            await asyncio.Event().wait()
        if self.down:
            raise self.failure
        await super().register_worker(worker, ttl=ttl)

    async def unregister_worker(self, worker_id: str) -> bool:
        if self.down:
            raise self.failure
        return await super().unregister_worker(worker_id)


async def wait_for(check: Callable[[], Awaitable[bool]], seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not await check():
        assert time.monotonic() < deadline, f"not within {seconds} s: {what}"
        await asyncio.sleep(0.05)


def registry_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    messages = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    return [message for message in messages if "regist" in message]


@pytest.mark.timeout(90)
@pytest.mark.parametrize(
    "failure",
    [BackendConnectionError("connection refused"), OSError("network unreachable"), RuntimeError("bug")],
)
async def test_a_registry_outage_never_stops_the_worker(
    failure: BaseException, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="sheppy")
    backend = FlakyRegistry(failure)
    await backend.connect()
    queue = Queue(backend, "outage")
    worker = Worker("outage", backend, lease=LEASE, enable_cron_manager=False)
    work = asyncio.create_task(worker.work(register_signal_handlers=False))
    try:
        first = t.add(1, 1)
        await queue.add(first)
        assert await queue.wait_for(first, timeout=20) is not None
        async def beats(count: int) -> bool:
            return backend.calls >= count

        await wait_for(lambda: beats(3), 20, "the worker retrying its registration every beat")
        assert not work.done()
        assert len(registry_warnings(caplog)) == 1, "one warning per outage, not one per beat"
        assert await backend.list_workers() == []

        backend.down = False

        async def registered() -> bool:
            return [w["id"] for w in await backend.list_workers()] == [worker.worker_id]

        await wait_for(registered, 20, "the worker registered again once the store answers")
        assert any("registered again" in r.getMessage() for r in caplog.records)

        backend.down = True  # a second outage is reported again, once
        calls = backend.calls
        await wait_for(lambda: beats(calls + 2), 20, "beats during the second outage")
        assert len(registry_warnings(caplog)) == 2

        second = t.add(2, 2)
        await queue.add(second)
        done = await queue.wait_for(second, timeout=20)
        assert done is not None and done.status == "completed"
    finally:
        worker.stop()
        await asyncio.wait_for(work, 30)  # unregistering fails too: the stop is still clean
    assert worker.stats.processed == 2


@pytest.mark.timeout(90)
async def test_a_registry_that_hangs_does_not_hold_up_the_work() -> None:
    backend = FlakyRegistry()
    backend.hang = True
    await backend.connect()
    queue = Queue(backend, "hang")
    added = t.add(3, 4)
    await queue.add(added)
    worker = Worker("hang", backend, lease=LEASE, enable_cron_manager=False)
    await asyncio.wait_for(worker.work(oneshot=True, register_signal_handlers=False), 60)
    done = await queue.get_task(added)
    assert done is not None and done.status == "completed" and done.result == 7
