"""Task functions of the §9 chaining, §13 TestQueue/SyncQueue and §14 backend compatibility tests."""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

from sheppy_core import CURRENT_TASK, Depends, Task, task, workflow


@task
async def add_async(x: int, y: int) -> int:
    return x + y


@task
def add_sync(x: int, y: int) -> int:
    return x + y


@task(retry=2, retry_delay=30)
async def fails_first_attempt_async(current: Task = CURRENT_TASK) -> str:
    """Fails on its first attempt only; the 30 s delay shows whether a delay is waited for."""
    if current.retry_count == 0:
        raise RuntimeError("first attempt fails")
    return "ok"


@task(retry=2, retry_delay=30)
def fails_first_attempt_sync(current: Task = CURRENT_TASK) -> str:
    if current.retry_count == 0:
        raise RuntimeError("first attempt fails")
    return "ok"


@task(retry=2, retry_delay=[20, 40])
def always_fails_with_retries(label: str) -> None:
    raise ValueError(f"failure of {label}")


@task
def always_fails(label: str) -> None:
    raise ValueError(f"failure of {label}")


@task
async def chain_one_async(x: int, asynchronous: bool = True) -> Task:
    """Returns one follow-up task (sheppy's chaining): x + 2x."""
    return add_async(x, x * 2) if asynchronous else add_sync(x, x * 2)


@task
def chain_one_sync(x: int, asynchronous: bool = True) -> Task:
    return add_async(x, x * 2) if asynchronous else add_sync(x, x * 2)


@task
async def chain_many_async(x: int, asynchronous: bool = True) -> list[Task]:
    """Returns two follow-up tasks: x + 2x and x + (x + 2)."""
    factory = add_async if asynchronous else add_sync
    return [factory(x, x * 2), factory(x, x + 2)]


@task
def chain_many_sync(x: int, asynchronous: bool = True) -> list[Task]:
    factory = add_async if asynchronous else add_sync
    return [factory(x, x * 2), factory(x, x + 2)]


@task
def chain_fails_after_building(x: int) -> Task:
    """Builds a follow-up task and then fails: nothing may be chained."""
    add_sync(x, x)
    raise RuntimeError("parent failed")


@task(retry=1, retry_delay=0.05)
def chain_after_one_failure(x: int, current: Task = CURRENT_TASK) -> Task:
    """Fails once, then chains: the follow-up is queued only by the successful attempt."""
    if current.retry_count == 0:
        raise RuntimeError("transient")
    return add_sync(x, 1)


# -- middleware --------------------------------------------------------------------------------

def add_hundred_to_result(task_record, queue):  # type: ignore[no-untyped-def]
    """Per-task middleware: leaves the call alone, adds 100 to a completed task's result."""
    finished, _exception = yield
    if finished.status == "completed":
        return finished.model_copy(update={"result": finished.result + 100})
    return finished


def double_first_argument(task_record, queue):  # type: ignore[no-untyped-def]
    """Per-task middleware: doubles the first positional argument before the call."""
    args = list(task_record.spec.args)
    args[0] = args[0] * 2
    spec = task_record.spec.model_copy(update={"args": args})
    yield task_record.model_copy(update={"spec": spec})


@task(middleware=[add_hundred_to_result])
def add_with_result_middleware(x: int, y: int) -> int:
    return x + y


@task(middleware=[double_first_argument, add_hundred_to_result])
def add_with_two_middlewares(x: int, y: int) -> int:
    return x + y


worker_middleware_calls: list[str] = []


def recording_worker_middleware(task_record, queue):  # type: ignore[no-untyped-def]
    """Worker middleware: records the task it saw (TestQueue must not apply it)."""
    worker_middleware_calls.append(str(task_record.id))
    yield


# -- dependency injection ----------------------------------------------------------------------

def real_greeting() -> str:
    return "hello from production"


def test_greeting() -> str:
    return "hello from the override"


test_greeting.__test__ = False  # type: ignore[attr-defined]


@task
def greet(name: str, greeting: str = Depends(real_greeting)) -> str:
    return f"{greeting}, {name}"


# -- rate limits -------------------------------------------------------------------------------

@task(rate_limit={"max_rate": 1, "rate_period": 3600})
def once_per_hour(x: int) -> int:
    return x


# -- self reference ----------------------------------------------------------------------------

@task
def own_id(current: Task = CURRENT_TASK) -> str:
    return str(current.id)


# -- workflows (SyncQueue's workflow methods) --------------------------------------------------

@task
def double(x: int) -> int:
    return 2 * x


@workflow
def add_then_double(x: int, y: int) -> Generator[Any, Any, int]:
    added = yield add_sync(x, y)
    doubled = yield double(added.result)
    return int(doubled.result)
