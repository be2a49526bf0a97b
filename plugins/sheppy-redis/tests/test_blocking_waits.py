"""Blocking waits and socket timeouts: a blocking ``pop`` waits on the server for as long as it was asked,
whatever the socket timeout (redis-py's default of 5 s or the user's), so an idle worker is quiet; a
server that goes away or stops answering is still reported."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import os
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from redis.asyncio.connection import AbstractConnection
from sheppy_redis import RedisBackend
from sheppy_redis._scripts import Script
from sheppy_redis_testing import RedisServer

from sheppy_core import Worker
from sheppy_core.exceptions import BackendConnectionError

Factory = Callable[..., RedisBackend]

REDIS_PY_SOCKET_TIMEOUT = float(
    inspect.signature(AbstractConnection.__init__).parameters["socket_timeout"].default
)


@pytest.fixture
def claim_calls(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """When each ``pop`` claim script was sent (time.monotonic)."""
    calls: list[float] = []
    original = Script.run

    async def run(self: Script, client: Any, keys: list[str], args: list[Any]) -> Any:
        if self.name == "pop":
            calls.append(time.monotonic())
        return await original(self, client, keys, args)

    monkeypatch.setattr(Script, "run", run)
    return calls


def loud(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        f"{r.levelname} {r.name}: {r.getMessage()}" for r in caplog.records if r.levelno >= logging.WARNING
    ]


async def test_pop_blocking_longer_than_redis_py_default_socket_timeout(backend: RedisBackend) -> None:
    started = time.monotonic()
    assert await backend.pop("idle", timeout=REDIS_PY_SOCKET_TIMEOUT + 1) == []
    assert REDIS_PY_SOCKET_TIMEOUT + 0.9 < time.monotonic() - started < REDIS_PY_SOCKET_TIMEOUT + 4


@pytest.mark.parametrize("where", ["keyword", "url"])
async def test_pop_blocks_on_the_server_past_a_short_socket_timeout(
    where: str, prefix: str, claim_calls: list[float]
) -> None:
    if where == "keyword":
        backend = RedisBackend("redis://127.0.0.1:6379/0", prefix=prefix, socket_timeout=0.2)
    else:
        backend = RedisBackend(f"redis://127.0.0.1:6379/0?socket_timeout=0.2&prefix={prefix}")
    await backend.connect()
    try:
        started = time.monotonic()
        assert await backend.pop("idle", timeout=1.5) == []
        assert 1.4 < time.monotonic() - started < 4
        # One claim before the wait and one after it: the wait was not cut into socket-timeout slices.
        assert len(claim_calls) <= 3, f"{len(claim_calls)} claim attempts in one 1.5 s wait"
        # The short timeout still applies to everything else.
        assert backend._socket_timeout() == 0.2
    finally:
        await backend.disconnect()


async def run_idle_worker(backend: RedisBackend, blocking: float) -> tuple[Worker, asyncio.Task[None]]:
    worker = Worker("idle", backend, enable_scheduler=False, enable_cron_manager=False)
    worker._blocking_timeout = blocking  # sheppy's own tests tune it the same way
    return worker, asyncio.create_task(worker.work(register_signal_handlers=False))


async def test_idle_worker_logs_nothing_over_several_blocking_periods(
    make_backend: Factory, caplog: pytest.LogCaptureFixture, claim_calls: list[float]
) -> None:
    caplog.set_level(logging.INFO)
    worker, running = await run_idle_worker(make_backend(socket_timeout=0.3), blocking=1.0)
    try:
        await asyncio.sleep(4.2)  # the observation window: four blocking periods of 1 s
        assert not running.done()
    finally:
        worker.stop()
        await asyncio.wait_for(running, 10)
    assert loud(caplog) == []
    # It waited on the server for whole periods (a claim before and after each), not in 0.3 s slices.
    assert 3 <= len(claim_calls) <= 12, f"{len(claim_calls)} claim attempts in 4.2 s"


@pytest.fixture
def own_server(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path / "redis")
    server.start()
    yield server
    if server.process is not None:
        os.kill(server.process.pid, signal.SIGCONT)
    server.stop()


async def wait_for_log(caplog: pytest.LogCaptureFixture, fragment: str, seconds: float) -> list[str]:
    deadline = time.monotonic() + seconds
    while not any(fragment in line for line in loud(caplog)):
        if time.monotonic() > deadline:
            raise AssertionError(f"nothing logged with {fragment!r} within {seconds} s: {loud(caplog)}")
        await asyncio.sleep(0.05)
    return loud(caplog)


async def test_idle_worker_still_reports_a_server_that_dies(
    own_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    backend = RedisBackend(own_server.url, prefix="outage", socket_timeout=0.3)
    worker, running = await run_idle_worker(backend, blocking=1.0)
    try:
        await asyncio.sleep(0.5)  # idle in its blocking wait
        assert loud(caplog) == []
        own_server.kill()
        lines = await wait_for_log(caplog, "claiming from queue 'idle' failed", 10)
        assert any("unreachable" in line for line in lines), lines
    finally:
        worker.stop()
        await asyncio.wait_for(running, 10)


async def test_blocking_wait_on_a_server_that_stops_answering_is_reported(
    own_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    assert own_server.process is not None
    backend = RedisBackend(own_server.url, prefix="frozen", socket_timeout=0.3)
    await backend.connect()
    try:
        waiting = asyncio.create_task(backend.pop("idle", timeout=1.0))
        await asyncio.sleep(0.2)
        os.kill(own_server.process.pid, signal.SIGSTOP)  # connections stay open; nothing answers
        started = time.monotonic()
        with pytest.raises(BackendConnectionError, match=r"no reply to a .* s blocking wait"):
            await asyncio.wait_for(waiting, 10)
        assert time.monotonic() - started < 5  # the wait's time plus the grace, not for ever
        os.kill(own_server.process.pid, signal.SIGCONT)
        assert await backend.pop("idle", timeout=0.5) == []  # and it recovers once the server answers
    finally:
        os.kill(own_server.process.pid, signal.SIGCONT)
        await backend.disconnect()


async def test_get_results_times_out_when_the_driver_swallows_the_timeouts_cancellation(
    backend: RedisBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On Python 3.11, ``asyncio.wait_for`` (which redis-py awaits for each write) can swallow a
    cancellation that arrives as the write completes; ``get_results``' deadline must hold all the same
    (seen: ``wait_for(id, timeout=0.01)`` hanging for ever when the subscription was that write)."""
    from redis.asyncio.client import PubSub

    original = PubSub.subscribe

    async def subscribe_swallowing_one_cancel(self: PubSub, *args: Any, **kwargs: Any) -> Any:
        # The timeout's cancellation arrives here and is lost, as in Python 3.11's wait_for.
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.sleep(0.5)
        return await original(self, *args, **kwargs)

    monkeypatch.setattr(PubSub, "subscribe", subscribe_swallowing_one_cancel)
    await backend.connect()
    started = time.monotonic()
    with pytest.raises(TimeoutError, match=r"did not finish within 0\.05 s"):
        await asyncio.wait_for(backend.get_results("q", ["never-added"], timeout=0.05), 10)
    assert time.monotonic() - started < 8
