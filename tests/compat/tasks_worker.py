"""Tasks, dependencies and middleware for the §10 (injection), §11 (middleware) and §12 (Worker) tests.

Worker and test share one process, so tasks report what happened through module-level dicts keyed by
a per-test ``key`` argument (every test runs on four stores; keys keep the runs apart).
"""

from __future__ import annotations

import asyncio
import threading
from collections import defaultdict
from typing import Annotated, Any

from sheppy_core import CURRENT_TASK, Depends, Queue, Task, task

EVENTS: defaultdict[str, list[str]] = defaultdict(list)
"""What dependencies, middleware and tasks did, in order, per test key."""

RUNNING: defaultdict[str, int] = defaultdict(int)
PEAK: defaultdict[str, int] = defaultdict(int)
RUNS: defaultdict[str, int] = defaultdict(int)
RELEASE: dict[str, asyncio.Event] = {}
"""Set by a test to let its ``blocks_first_run`` task finish."""


# -- §10 dependencies ---------------------------------------------------------------------------


def get_config() -> dict[str, Any]:
    return {"env": "test", "debug": True}


def replacement_config() -> dict[str, Any]:
    return {"env": "overridden", "debug": False}


async def get_async_config() -> dict[str, Any]:
    await asyncio.sleep(0)
    return {"env": "async", "loop_thread": threading.current_thread() is threading.main_thread()}


def get_thread_info() -> dict[str, Any]:
    return {"in_main_thread": threading.current_thread() is threading.main_thread()}


def get_service(config: dict[str, Any] = Depends(get_config)) -> dict[str, Any]:
    return {"service": "svc", "config": config}


def get_stack(service: dict[str, Any] = Depends(get_service)) -> dict[str, Any]:
    return {"stack": service}


def get_seven() -> int:
    return 7


ACTIVE_KEY: dict[str, str] = {"key": ""}
"""The running test's key, for dependencies (they take no task arguments). Tests run one at a time."""


def counted() -> int:
    """Counts its calls (cached per task: one call per task however many parameters use it)."""
    key = ACTIVE_KEY["key"]
    RUNS[key] += 1
    return RUNS[key]


def uses_counted(value: int = Depends(counted)) -> int:
    return value * 10


def sync_resource() -> Any:
    key = ACTIVE_KEY["key"]
    EVENTS[key].append("sync setup")
    try:
        yield {"resource": "sync"}
    finally:
        EVENTS[key].append("sync teardown")


async def async_resource() -> Any:
    key = ACTIVE_KEY["key"]
    EVENTS[key].append("async setup")
    try:
        yield {"resource": "async"}
    finally:
        EVENTS[key].append("async teardown")


# -- §10 tasks ----------------------------------------------------------------------------------


@task
def current_first(current: Task = CURRENT_TASK, x: int = 5, y: int = 6) -> dict[str, Any]:
    return {"task_id": str(current.id), "sum": x + y}


@task
def current_middle(x: int, current: Task = CURRENT_TASK, y: int = 7) -> dict[str, Any]:
    return {"task_id": str(current.id), "sum": x + y}


@task
async def current_last(x: int, y: int, current: Task = CURRENT_TASK) -> dict[str, Any]:
    return {"task_id": str(current.id), "sum": x + y, "status": current.status}


@task
def with_default_dep(value: int, config: dict[str, Any] = Depends(get_config)) -> dict[str, Any]:
    return {"value": value, "config": config}


@task
async def with_annotated_dep(
    value: int, config: Annotated[dict[str, Any], Depends(get_config)]
) -> dict[str, Any]:
    return {"value": value, "config": config}


@task
def with_nested_dep(value: int, stack: dict[str, Any] = Depends(get_stack)) -> dict[str, Any]:
    return {"value": value, "stack": stack}


@task
def with_thread_dep(info: dict[str, Any] = Depends(get_thread_info)) -> dict[str, Any]:
    return info


@task
async def with_async_dep(config: dict[str, Any] = Depends(get_async_config)) -> dict[str, Any]:
    return config


@task
def with_generator_deps(
    key: str,
    sync_value: dict[str, Any] = Depends(sync_resource),
    async_value: dict[str, Any] = Depends(async_resource),
) -> list[Any]:
    EVENTS[key].append("task")
    return [sync_value, async_value]


@task
def with_failing_generator_dep(key: str, sync_value: dict[str, Any] = Depends(sync_resource)) -> None:
    EVENTS[key].append("task")
    raise RuntimeError("task failed while holding the resource")


@task
def with_cached_dep(
    key: str,
    first: int = Depends(counted),
    second: int = Depends(counted),
    via: int = Depends(uses_counted),
) -> list[int]:
    return [first, second, via]


@task
def with_seven(x: int, dep: int = Depends(get_seven)) -> list[int]:
    return [x, dep]


# -- §11 middleware -----------------------------------------------------------------------------


def _key(task_: Task) -> str:
    return str(task_.spec.args[0])


def record_sync(name: str) -> Any:
    def middleware(task_: Task, queue: Queue) -> Any:
        EVENTS[_key(task_)].append(f"pre {name}")
        outcome, exception = yield task_
        EVENTS[_key(outcome)].append(f"post {name} {type(exception).__name__}")
        return outcome

    middleware.__name__ = f"record_sync_{name}"
    return middleware


def record_async(name: str) -> Any:
    async def middleware(task_: Task, queue: Queue) -> Any:
        EVENTS[_key(task_)].append(f"pre {name}")
        outcome, exception = yield task_
        EVENTS[_key(outcome)].append(f"post {name} {type(exception).__name__}")
        yield outcome

    middleware.__name__ = f"record_async_{name}"
    return middleware


def yields_nothing(task_: Task, queue: Queue) -> Any:
    EVENTS[_key(task_)].append("pre nothing")
    yield
    EVENTS[_key(task_)].append("post nothing")


def sees_connected_queue(task_: Task, queue: Queue) -> Any:
    EVENTS[_key(task_)].append(f"queue {queue.name} {queue.backend.is_connected}")
    yield


def second_arg_to_five(task_: Task, queue: Queue) -> Any:
    """Pre-phase: replaces the task about to run (its second argument becomes 5)."""
    args = list(task_.spec.args)
    args[1] = 5
    yield task_.model_copy(update={"spec": task_.spec.model_copy(update={"args": tuple(args)})})


def second_arg_to_five_in_place(task_: Task, queue: Queue) -> Any:
    """The in-place way sheppy's own tests change a (frozen) task in a pre-phase."""
    args = list(task_.spec.args)
    args[1] = 5
    task_.spec.__dict__["args"] = tuple(args)
    yield task_


def result_plus_1000(task_: Task, queue: Queue) -> Any:
    outcome, exception = yield task_
    if exception is None:
        return outcome.model_copy(update={"result": outcome.result + 1000})
    return outcome


async def async_result_plus_20(task_: Task, queue: Queue) -> Any:
    outcome, exception = yield task_
    if exception is None:
        outcome.__dict__["result"] += 20  # the in-place way sheppy's own tests use
    yield outcome


def rescues_failure(task_: Task, queue: Queue) -> Any:
    outcome, exception = yield task_
    if exception is not None:
        return outcome.model_copy(
            update={"status": "completed", "result": -1, "exception": None}
        )
    return outcome


def fails_before(task_: Task, queue: Queue) -> Any:
    raise ValueError("pre-phase exploded")
    yield  # pragma: no cover - makes this a generator function


def fails_after(task_: Task, queue: Queue) -> Any:
    yield
    raise ValueError("post-phase exploded")


async def async_fails_after(task_: Task, queue: Queue) -> Any:
    yield
    raise ValueError("async post-phase exploded")


@task(middleware=[record_sync("task-a"), record_async("task-b")])
def mw_recorded(key: str, x: int) -> int:
    EVENTS[key].append("task")
    return x * 2


@task(middleware=[record_sync("task-a")])
def mw_recorded_failing(key: str, x: int) -> int:
    EVENTS[key].append("task")
    raise ValueError("task body failed")


@task(middleware=[yields_nothing, sees_connected_queue])
async def mw_noop(key: str, x: int) -> int:
    return x + 1


@task(middleware=[second_arg_to_five])
def mw_replaced(key: str, x: int) -> int:
    return x * 10


@task(middleware=[second_arg_to_five_in_place])
def mw_replaced_in_place(key: str, x: int) -> int:
    return x * 10


@task(middleware=[async_result_plus_20, result_plus_1000])
def mw_outcome(key: str, x: int) -> int:
    return x


@task(middleware=[rescues_failure])
def mw_rescued(key: str, x: int) -> int:
    raise ValueError("rescued by middleware")


@task(middleware=[fails_before])
def mw_fails_before(key: str, x: int) -> int:
    EVENTS[key].append("task")
    return x


@task(middleware=[fails_after])
def mw_fails_after(key: str, x: int) -> int:
    return x + 100


@task(middleware=[async_fails_after])
async def mw_async_fails_after(key: str, x: int) -> int:
    raise KeyError("original failure")


@task
def plain(key: str, x: int) -> int:
    EVENTS[key].append("task")
    return x


# -- §12 worker ---------------------------------------------------------------------------------


@task
def add(x: int, y: int) -> int:
    return x + y


@task
async def counted_run(key: str) -> int:
    RUNS[key] += 1
    return RUNS[key]


@task
async def concurrent(key: str, limit: int, hold: float = 0.2) -> int:
    """Counts how many of its kind run at once; waits (bounded) for ``limit`` of them to overlap so the
    peak is measured, not left to timing."""
    RUNNING[key] += 1
    PEAK[key] = max(PEAK[key], RUNNING[key])
    try:
        loop = asyncio.get_running_loop()
        until = loop.time() + 5.0
        while RUNNING[key] < limit and loop.time() < until:  # noqa: ASYNC110 - a bounded poll
            await asyncio.sleep(0.01)
        await asyncio.sleep(hold)
        return PEAK[key]
    finally:
        RUNNING[key] -= 1


@task
async def sleeps(seconds: float) -> float:
    await asyncio.sleep(seconds)
    return seconds


@task
async def blocks_first_run(key: str) -> int:
    """The first run waits (up to a minute) for the test's ``RELEASE[key]``; later runs return at once."""
    RUNS[key] += 1
    EVENTS[key].append(f"run {RUNS[key]}")
    if RUNS[key] == 1:
        event = RELEASE.setdefault(key, asyncio.Event())
        await asyncio.wait_for(event.wait(), 60)
    return RUNS[key]


@task(retry=1, retry_delay=0)
def always_fails(key: str) -> None:
    raise ValueError(f"always fails {key}")


@task(retry=1, retry_delay=0)
def fails_once(key: str) -> str:
    RUNS[key] += 1
    if RUNS[key] == 1:
        raise ValueError("first attempt fails")
    return "ok"


def sync_generator_thread_info() -> Any:
    yield {"in_main_thread": threading.current_thread() is threading.main_thread()}


def broken_dependency() -> int:
    raise LookupError("dependency could not be built")


@task
def with_sync_generator_thread_dep(
    info: dict[str, Any] = Depends(sync_generator_thread_info)
) -> dict[str, Any]:
    return info


@task
def with_broken_dep(value: int = Depends(broken_dependency)) -> int:
    return value
