"""§14 of sheppy-api.md: the backends a sheppy user constructs by hand, and ``BackendError``.

``MemoryBackend(instant_processing=True, dependency_overrides=None, ttl, error_ttl)``: instant
processing runs ``add()``/``schedule()`` inside the caller, retries included (``memory://`` gives it);
``RedisBackend(url=..., consumer_group=..., ttl=..., error_ttl=..., **redis_kwargs)`` with its ``url``;
the abstract ``Backend`` with sheppy's method names; ``BackendError`` for connection failures.
"""

from __future__ import annotations

import asyncio
import inspect
import time
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import timedelta

import pytest
from compat import tasks_testqueue as t
from compat.support import QUEUE_NAME, REDIS_URL, Store, delete_redis_prefix, work

import sheppy_core
from sheppy_core import Backend, BackendError, MemoryBackend, Queue, Task, Worker
from sheppy_core import backend as backend_module
from sheppy_core import exceptions as exceptions_module
from sheppy_core.backend import DEFAULT_TTL_SECONDS

SHEPPY_BACKEND_METHODS = [
    "connect", "disconnect", "is_connected", "append", "pop", "get_tasks", "get_all_tasks",
    "get_pending", "schedule", "get_scheduled", "pop_scheduled", "store_result", "get_results", "size",
    "clear", "get_stats", "list_queues", "add_cron", "delete_cron", "get_crons", "store_workflow",
    "get_workflows", "get_all_workflows", "get_pending_workflows", "delete_workflow", "acknowledge",
    "acquire_rate_limit",
    "mark_workflow_task_complete",  # 0.0.7
    "cancel", "delete_task", "get_workflow_results", "get_stale_messages", "heartbeat",  # later
]


def _inline_queues() -> list[Callable[[], Queue]]:
    return [lambda: Queue(MemoryBackend(), QUEUE_NAME), lambda: Queue("memory://", QUEUE_NAME)]


INLINE = pytest.mark.parametrize("make_queue", _inline_queues(), ids=["MemoryBackend()", "memory://"])


# -- MemoryBackend: constructor ------------------------------------------------------------------------

def test_memory_backend_constructor() -> None:
    parameters = inspect.signature(MemoryBackend).parameters
    for name in ("instant_processing", "dependency_overrides", "ttl", "error_ttl"):
        assert parameters[name].kind is inspect.Parameter.KEYWORD_ONLY
    assert parameters["instant_processing"].default is True
    assert parameters["dependency_overrides"].default is None
    assert parameters["error_ttl"].default == "inherit"
    # sheppy-core: finished records are kept 30 days by default, as on every bundled backend (sheppy's
    # MemoryBackend keeps them for ever: pass ttl=None for that)
    assert MemoryBackend().ttl == DEFAULT_TTL_SECONDS == 30 * 24 * 3600
    assert MemoryBackend(ttl=None).ttl is None
    with pytest.raises(TypeError):
        MemoryBackend(False)  # type: ignore[misc]  # keyword-only, as sheppy's
    backend = MemoryBackend(instant_processing=False, ttl=60, error_ttl=30)
    assert backend.ttl == 60 and backend.error_ttl == 30
    assert backend.is_connected is False


def test_memory_backend_importable_from_every_place_sheppy_had_it() -> None:
    assert sheppy_core.MemoryBackend is MemoryBackend
    assert backend_module.MemoryBackend is MemoryBackend
    assert issubclass(MemoryBackend, Backend)


# -- MemoryBackend: instant processing -------------------------------------------------------------------

@INLINE
@pytest.mark.parametrize("factory", [t.add_async, t.add_sync])
async def test_inline_add_runs_the_task_in_the_caller(
    factory: Callable[..., Task], make_queue: Callable[[], Queue]
) -> None:
    queue = make_queue()
    task = factory(5, 7)
    assert await queue.add(task) is True
    done = await queue.get_task(task)
    assert done is not None and done.status == "completed" and done.result == 12
    assert await queue.size() == 0
    assert await queue.get_pending() == []


@INLINE
async def test_inline_failure_is_stored(make_queue: Callable[[], Queue]) -> None:
    queue = make_queue()
    task = t.always_fails("inline")
    await queue.add(task)
    done = await queue.get_task(task)
    assert done is not None and done.status == "failed" and done.finished_at is not None
    assert "failure of inline" in str(done.exception)


@INLINE
@pytest.mark.parametrize("factory", [t.fails_first_attempt_async, t.fails_first_attempt_sync])
async def test_inline_runs_retries_at_once(
    factory: Callable[..., Task], make_queue: Callable[[], Queue]
) -> None:
    queue = make_queue()
    task = factory()
    started = time.monotonic()
    await queue.add(task)
    done = await queue.get_task(task)
    assert done is not None and done.status == "completed" and done.result == "ok"
    assert done.retry_count == 1
    assert time.monotonic() - started < 20  # the 30 s retry delay was not waited for


@INLINE
async def test_inline_retries_until_they_run_out(make_queue: Callable[[], Queue]) -> None:
    queue = make_queue()
    task = t.always_fails_with_retries("inline")
    await queue.add(task)
    done = await queue.get_task(task)
    assert done is not None and done.status == "failed" and done.retry_count == 2


@INLINE
async def test_inline_runs_many_tasks(make_queue: Callable[[], Queue]) -> None:
    queue = make_queue()
    tasks = [t.add_async(i, i) for i in range(5)]
    assert await queue.add(tasks) == [True] * 5
    everything = await queue.get_all_tasks()
    assert len(everything) == 5 and all(x.status == "completed" for x in everything)
    assert sorted(x.result for x in everything) == [0, 2, 4, 6, 8]


@INLINE
async def test_inline_schedule_runs_the_task_at_once(make_queue: Callable[[], Queue]) -> None:
    queue = make_queue()
    task = t.add_sync(2, 3)
    assert await queue.schedule(task, timedelta(hours=1)) is True
    done = await queue.get_task(task)
    assert done is not None and done.status == "completed" and done.result == 5
    assert await queue.get_scheduled() == []


@INLINE
async def test_inline_wait_for_returns_at_once(make_queue: Callable[[], Queue]) -> None:
    queue = make_queue()
    await queue.add(task := t.add_async(1, 1))
    done = await asyncio.wait_for(queue.wait_for(task), 10)
    assert done is not None and done.result == 2


async def test_inline_uses_the_backends_dependency_overrides() -> None:
    queue = Queue(MemoryBackend(dependency_overrides={t.real_greeting: t.test_greeting}), QUEUE_NAME)
    await queue.add(task := t.greet("Bob"))
    done = await queue.get_task(task)
    assert done is not None and done.result == "hello from the override, Bob"


async def test_without_instant_processing_a_worker_runs_the_tasks() -> None:
    backend = MemoryBackend(instant_processing=False)
    queue = Queue(backend, QUEUE_NAME)
    await queue.add(task := t.add_sync(4, 4))
    assert await queue.size() == 1
    waiting = await queue.get_task(task)
    assert waiting is not None and waiting.finished_at is None
    worker = Worker(QUEUE_NAME, backend)
    await work(worker, max_tasks=1)
    done = await queue.get_task(task)
    assert done is not None and done.result == 8


async def _until_gone(queue: Queue, task: Task, bound: float = 10.0) -> float:
    """Seconds until ``task``'s record disappears (fails the test after ``bound``)."""
    started = time.monotonic()
    while await queue.get_task(task) is not None:
        assert time.monotonic() - started < bound, "the finished record was never removed"
        await asyncio.sleep(0.05)
    return time.monotonic() - started


async def test_memory_ttl_removes_finished_records() -> None:
    queue = Queue(MemoryBackend(ttl=1), QUEUE_NAME)
    await queue.add(task := t.add_sync(1, 1))
    assert await queue.get_task(task) is not None
    await _until_gone(queue, task)


async def test_memory_error_ttl_applies_to_failed_records_only() -> None:
    queue = Queue(MemoryBackend(ttl=None, error_ttl=1), QUEUE_NAME)
    await queue.add([ok := t.add_sync(1, 1), bad := t.always_fails("ttl")])
    await _until_gone(queue, bad)
    kept = await queue.get_task(ok)
    assert kept is not None and kept.status == "completed"


# -- RedisBackend --------------------------------------------------------------------------------------------

@pytest.fixture
async def redis_prefix() -> AsyncIterator[str]:
    prefix = f"compat-s14-{uuid.uuid4().hex[:10]}"
    yield prefix
    await delete_redis_prefix(prefix)


def test_redis_backend_is_the_plugin_class() -> None:
    from sheppy_redis import RedisBackend as PluginRedisBackend

    assert sheppy_core.RedisBackend is PluginRedisBackend
    assert issubclass(sheppy_core.RedisBackend, Backend)


def test_redis_backend_constructor_and_attributes() -> None:
    parameters = inspect.signature(sheppy_core.RedisBackend).parameters
    assert parameters["url"].default == "redis://127.0.0.1:6379"
    assert parameters["consumer_group"].default == "workers"
    assert parameters["ttl"].default == 2592000  # 30 days, as sheppy's
    assert parameters["error_ttl"].default == "inherit"
    assert any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values())
    default = sheppy_core.RedisBackend()
    assert default.url == "redis://127.0.0.1:6379" and default.consumer_group == "workers"
    backend = sheppy_core.RedisBackend(
        url=REDIS_URL, consumer_group="pytest", ttl=120, error_ttl=60, socket_timeout=7
    )
    assert backend.url == REDIS_URL
    assert backend.consumer_group == "pytest"
    assert backend.ttl == 120 and backend.error_ttl == 60
    assert backend.is_connected is False
    # sheppy's fixtures build the worker's backend from the queue's
    twin = sheppy_core.RedisBackend(url=backend.url, consumer_group=backend.consumer_group)
    assert twin.url == backend.url and twin.consumer_group == backend.consumer_group


async def test_redis_backend_built_by_hand_runs_tasks(redis_prefix: str) -> None:
    url = f"{REDIS_URL}?prefix={redis_prefix}"
    queue_backend = sheppy_core.RedisBackend(url=url, consumer_group="pytest", socket_timeout=10)
    worker_backend = sheppy_core.RedisBackend(
        url=queue_backend.url, consumer_group=queue_backend.consumer_group
    )
    queue = Queue(queue_backend, QUEUE_NAME)
    try:
        await queue.add(task := t.add_async(20, 22))
        await work(Worker(QUEUE_NAME, worker_backend), max_tasks=1)
        done = await queue.wait_for(task, timeout=30)
        assert done is not None and done.result == 42
    finally:
        for backend in (queue_backend, worker_backend):
            if backend.is_connected:
                await backend.disconnect()


# -- Backend -------------------------------------------------------------------------------------------------

def test_backend_is_abstract() -> None:
    assert inspect.isabstract(Backend)
    with pytest.raises(TypeError):
        Backend()  # type: ignore[abstract]


@pytest.mark.parametrize("name", SHEPPY_BACKEND_METHODS)
def test_backend_has_sheppys_method_names(name: str) -> None:
    member = inspect.getattr_static(Backend, name)
    if name == "is_connected":
        assert isinstance(member, property)
    else:
        assert inspect.iscoroutinefunction(member), f"Backend.{name} is not an async method"


@pytest.mark.parametrize("name", SHEPPY_BACKEND_METHODS)
def test_every_store_has_sheppys_method_names(name: str, backend: Backend) -> None:
    assert hasattr(backend, name)


# -- BackendError --------------------------------------------------------------------------------------------

def test_backend_error_is_one_class_everywhere() -> None:
    assert sheppy_core.BackendError is backend_module.BackendError is exceptions_module.BackendError
    assert issubclass(BackendError, Exception)


@pytest.mark.parametrize(
    "url",
    ["redis://127.0.0.1:1/0", "postgresql://postgres@127.0.0.1:1/test"],
    ids=["redis", "postgres"],
)
async def test_unreachable_server_raises_backend_error_on_first_use(url: str) -> None:
    queue = Queue(url, QUEUE_NAME)  # building the queue does no I/O
    try:
        with pytest.raises(BackendError) as caught:
            await asyncio.wait_for(queue.add(t.add_sync(1, 1)), 30)
        assert isinstance(caught.value, Exception)
        with pytest.raises(BackendError):
            await asyncio.wait_for(queue.size(), 30)
    finally:
        if queue.backend.is_connected:
            await queue.backend.disconnect()


async def test_unusable_sqlite_path_raises_backend_error(tmp_path_factory: pytest.TempPathFactory) -> None:
    missing_dir = tmp_path_factory.mktemp("s14") / "no" / "such" / "dir"
    queue = Queue(f"sqlite:///{missing_dir}/jobs.db", QUEUE_NAME)
    try:
        with pytest.raises(BackendError):
            await asyncio.wait_for(queue.add(t.add_sync(1, 1)), 30)
    finally:
        if queue.backend.is_connected:
            await queue.backend.disconnect()


async def test_a_backend_used_before_connect_raises_backend_error(store: Store, backend: Backend) -> None:
    record = t.add_sync(1, 2).model_dump(mode="json")
    assert backend.is_connected is False
    with pytest.raises(BackendError):
        await backend.append(QUEUE_NAME, [record])
    await backend.connect()
    assert backend.is_connected is True
    assert await backend.append(QUEUE_NAME, [record]) == [True]
    await backend.disconnect()
    assert backend.is_connected is False
