"""Tasks and workflows of the §9 "Workflows" compatibility tests (test_s09_workflows.py)."""

from __future__ import annotations

import asyncio
from collections.abc import Generator
from typing import Any

from pydantic import BaseModel

from sheppy_core import CURRENT_TASK, Task, task, workflow
from sheppy_core.experimental import workflow as experimental_workflow

GENERATOR_BODY_RUNS: list[str] = []
"""Appended to by ``records_its_runs``: proves that calling a workflow runs nothing."""


class Point(BaseModel):
    name: str
    x: int


# -- tasks -----------------------------------------------------------------------------------------


@task
async def add(x: int, y: int) -> int:
    return x + y


@task
def sync_add(x: int, y: int) -> int:
    return x + y


@task(retry=2, retry_delay=0.01)
async def fails_first_attempt(current: Task = CURRENT_TASK) -> str:
    if current.retry_count == 0:
        raise RuntimeError("transient error")
    return "recovered"


@task(retry=1, retry_delay=0.01)
async def always_fails() -> str:
    raise RuntimeError("permanent failure")


@task
async def rollback() -> str:
    return "rolled back"


@task
def divide(x: int, y: int) -> float:
    return x / y


@task
def make_dict() -> dict[str, Any]:
    return {"key": "original", "count": 3}


@task
def pops_key(data: dict[str, Any]) -> dict[str, Any]:
    data.pop("key")
    return data


@task(timeout=0.05)
async def too_slow() -> str:
    await asyncio.sleep(10)
    return "never"


# -- workflows -------------------------------------------------------------------------------------


@workflow
def sequential(x: int):  # type: ignore[no-untyped-def]
    first = yield add(x, 1)
    second = yield add(first.result, 10)
    return second.result


@workflow()
def with_parentheses(x: int):  # type: ignore[no-untyped-def]
    step = yield add(x, x)
    return step.result


@experimental_workflow
def later_spelling(x: int):  # type: ignore[no-untyped-def]
    step = yield add(x, 100)
    return step.result


@workflow
def sync_step(x: int):  # type: ignore[no-untyped-def]
    step = yield sync_add(x, 1)
    return step.result


@workflow
def fan_out(values: list[int]):  # type: ignore[no-untyped-def]
    steps = yield [add(v, 1) for v in values]
    total = yield add(sum(s.result for s in steps), 0)
    return {"sent_type": type(steps).__name__, "total": total.result}


@workflow
def tuple_fan_out():  # type: ignore[no-untyped-def]
    steps = yield add(1, 1), add(2, 2)
    return {"sent_type": type(steps).__name__, "results": [s.result for s in steps]}


@workflow
def empty_list_yield():  # type: ignore[no-untyped-def]
    nothing = yield []
    return {"sent_type": type(nothing).__name__, "length": len(nothing)}


@workflow
def inner(x: int):  # type: ignore[no-untyped-def]
    step = yield add(x, 1)
    return step.result * 10


@workflow
def outer(x: int):  # type: ignore[no-untyped-def]
    from_inner = yield inner(x)
    step = yield add(from_inner, 100)
    return step.result


@workflow
def outer_of_many(x: int):  # type: ignore[no-untyped-def]
    values = yield [inner(x), inner(x + 1)]
    return {"sent_type": type(values).__name__, "values": list(values)}


@workflow
def recovers_by_retry():  # type: ignore[no-untyped-def]
    step = yield fails_first_attempt()
    if step.error:
        return f"error-path:{step.error}"
    return f"ok:{step.result}"


@workflow
def error_branch():  # type: ignore[no-untyped-def]
    step = yield always_fails()
    if step.error:
        undo = yield rollback()
        return f"{step.status}; {step.exception.type}: {step.exception.message}; {undo.result}"
    return "no error"


@workflow
def failed_step_seen():  # type: ignore[no-untyped-def]
    broken = yield divide(1, 0)
    return {"status": broken.status, "error": broken.error, "result": broken.result}


@workflow
def raises_after_step():  # type: ignore[no-untyped-def]
    step = yield add(5, 5)
    raise RuntimeError(f"user code exploded after {step.result}")


@workflow
def raises_before_any_step(flag: int):  # type: ignore[no-untyped-def]
    if flag < 0:
        raise ValueError("negative flag")
    step = yield add(flag, 0)
    return step.result


@workflow
def yields_a_number():  # type: ignore[no-untyped-def]
    yield 42


@workflow
def yields_mixed_list():  # type: ignore[no-untyped-def]
    yield [inner(1), add(1, 2)]


@workflow
def yields_after_step():  # type: ignore[no-untyped-def]
    yield add(1, 1)
    yield "not a task"


@workflow
def empty():  # type: ignore[no-untyped-def]
    if False:
        yield add(0, 0)
    return "immediate"


@workflow
def mutates_results():  # type: ignore[no-untyped-def]
    first = yield make_dict()
    first.result["key"] = "mutated"
    second = yield add(1, 1)
    return second.result


@workflow
def task_args_are_copies():  # type: ignore[no-untyped-def]
    made = yield make_dict()
    data = made.result
    assert data == {"key": "original", "count": 3}, "a replay saw a changed result"
    popped = yield pops_key(data)
    both = yield pops_key(data), pops_key(data)
    return {"data": data, "popped": popped.result, "both": [t.result for t in both]}


@workflow
def annotated_model() -> Generator[Any, Any, Point]:
    yield add(1, 1)
    return Point(name="wf", x="1")  # type: ignore[arg-type]


@workflow
def unannotated_model():  # type: ignore[no-untyped-def]
    yield add(1, 1)
    return Point(name="wf", x=1)


@workflow
def returns_task() -> Generator[Any, Any, Task]:
    step = yield add(1, 2)
    return step


@workflow
def returns_tasks() -> Generator[Any, Any, tuple[int, Task, list[Task]]]:
    one = yield add(1, 2)
    many = yield add(2, 3), add(3, 4)
    return 7, one, many


@workflow
def coerced_int() -> Generator[Any, Any, int]:
    step = yield add(1, 1)
    return str(step.result * 21)


@workflow
def records_its_runs(x: int):  # type: ignore[no-untyped-def]
    GENERATOR_BODY_RUNS.append("ran")
    step = yield add(x, 0)
    return step.result


@workflow
def waits_on_too_slow():  # type: ignore[no-untyped-def]
    step = yield too_slow()
    return {"status": step.status, "type": step.exception.type}


@workflow
def cancellable():  # type: ignore[no-untyped-def]
    step = yield add(2, 2)
    return {"status": step.status, "finished": step.finished_at is not None}


@workflow
def reports_step_state():  # type: ignore[no-untyped-def]
    step = yield add(3, 4)
    kind = step.exception.type if step.exception is not None else None
    return {"status": step.status, "exception": kind, "finished": step.finished_at is not None}


@workflow
def inner_returns_task():  # type: ignore[no-untyped-def]
    step = yield add(1, 1)
    return step


@workflow
def outer_gets_inner_value():  # type: ignore[no-untyped-def]
    value = yield inner_returns_task()
    return {"is_task": isinstance(value, Task), "result": value.result}
