"""sheppy's public names import from sheppy_core, and each deliberate difference (sheppy-api.md §18)
has a test here or in the module it concerns (noted per item)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest
import tasks_for_tests as t

import sheppy_core
from sheppy_core import MemoryBackend, Queue, Worker

# The names sheppy users import: tests/compat/test_s02_names.py.


def test_redis_backend_name_points_to_the_plugin_or_says_what_to_install() -> None:
    from sheppy_core._plugins import backend_class_for_scheme

    if backend_class_for_scheme("redis") is None:
        with pytest.raises(ImportError, match="pip install sheppy-redis"):
            _ = sheppy_core.RedisBackend
    else:
        assert "redis" in sheppy_core.RedisBackend.url_schemes


# §18.1 executing whatever a message names: tests/test_safe_execution.py
# §18.2 crash recovery within seconds:
#   tests/test_worker.py::test_expired_lease_is_redelivered_and_recorded_as_crash
# §18.6 claims tracked in the store: tests/test_worker.py::test_lost_lease_stops_the_task_here


async def test_18_10_retry_refuses_a_task_still_waiting(queue: Queue) -> None:
    task = t.add(1, 1)
    await queue.add(task)
    with pytest.raises(ValueError):
        await queue.retry(task, force=True)


async def test_18_11_n_plus_one_attempts_then_failed() -> None:
    queue = Queue("memory://", "compat-11")
    before = t.calls["always_fails"]
    task = t.always_fails()
    await queue.add(task)
    done = await queue.get_task(task)
    assert done is not None and done.status == "failed" and t.calls["always_fails"] - before == 3


async def test_18_12_size_counts_only_tasks_waiting_to_be_claimed(
    queue: Queue, backend: MemoryBackend
) -> None:
    await queue.add([t.add(1, 1), t.add(2, 2)])
    await backend.pop("q")
    assert await queue.size() == 1


async def test_18_13_statuses_say_what_is_happening(queue: Queue, backend: MemoryBackend) -> None:
    task = t.sleeper(0.3)
    await queue.add(task)
    assert (await queue.get_task(task)).status == "pending"  # type: ignore[union-attr]
    worker = Worker("q", backend)
    job = asyncio.create_task(worker.work(register_signal_handlers=False))
    await asyncio.sleep(0.1)
    running = await queue.get_task(task)
    assert running is not None and running.status == "processing" and running.claimed_by == worker.worker_id
    done = await queue.wait_for(task, timeout=5)
    assert done is not None and done.status == "completed" and done.finished_at is not None
    assert done.finished_at <= datetime.now(UTC)
    worker.stop()
    await job


def test_18_8_tracebacks_carry_no_locals() -> None:
    from sheppy_core.models import TaskException

    def leak() -> None:
        secret = "hunter2"  # noqa: F841
        raise RuntimeError("boom")

    try:
        leak()
    except RuntimeError as exc:
        record = TaskException.from_exception(exc)
    assert record.traceback is not None and "hunter2" not in record.traceback
