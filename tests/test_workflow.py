"""Workflows: the decorator, replay semantics, queue methods and TestQueue, on the memory backend."""

from __future__ import annotations

import uuid
from collections.abc import Generator
from typing import Annotated, Any

import pytest
import workflows_for_tests as wf
from pydantic import ValidationError

import sheppy_core
from sheppy_core import CURRENT_TASK, Depends, MemoryBackend, Queue, Task, TestQueue, Worker
from sheppy_core import experimental as exp
from sheppy_core._registry import get_workflow_definition
from sheppy_core._workflow import step_id


async def drain(backend: MemoryBackend, queue: str = "q") -> None:
    await Worker(queue, backend, enable_cron_manager=False).work(oneshot=True, register_signal_handlers=False)


# -- the decorator ---------------------------------------------------------------------------------


def test_names_importable_at_top_level_and_from_experimental() -> None:
    assert sheppy_core.workflow is exp.workflow
    assert sheppy_core.Workflow is exp.Workflow
    assert sheppy_core.WorkflowResult is exp.WorkflowResult
    assert {"workflow", "Workflow", "WorkflowResult"} <= set(sheppy_core.__all__)
    assert exp.WorkflowResult._fields == ("workflow", "pending_tasks")


def test_calling_returns_a_record_and_runs_nothing() -> None:
    record = wf.sequential(3)
    assert isinstance(record, sheppy_core.Workflow)
    assert record.func == "workflows_for_tests:sequential"
    assert record.args == (3,)
    assert not record.completed and record.finished_at is None and record.task_order == []


def test_arguments_are_validated_like_task() -> None:
    with pytest.raises(ValidationError):
        wf.sequential("not a number")  # type: ignore[arg-type]
    with pytest.raises(ValidationError):
        wf.sequential()  # type: ignore[call-arg]
    with pytest.raises(ValidationError):
        wf.sequential(1, 2)  # type: ignore[call-arg]
    assert wf.sequential("7").args == (7,)  # type: ignore[arg-type]  # lax mode, as @task


def test_rejects_async_generators_plain_functions_and_injection() -> None:
    async def agen() -> Any:
        yield 1

    def plain() -> int:
        return 1

    def needs_current(current: Task[Any] = CURRENT_TASK) -> Generator[Any, Any, None]:
        yield None

    def needs_dependency(db: Annotated[str, Depends(lambda: "db")]) -> Generator[Any, Any, None]:
        yield None

    for function in (agen, plain, needs_current, needs_dependency):
        with pytest.raises(TypeError):
            sheppy_core.workflow(function)  # type: ignore[arg-type]


def test_registered_by_module_and_name() -> None:
    definition = get_workflow_definition("workflows_for_tests:fan_out_fan_in")
    assert definition is not None and definition.function.__name__ == "fan_out_fan_in"
    # A workflow is never a runnable task.
    from sheppy_core._registry import find_definition

    assert find_definition("workflows_for_tests:fan_out_fan_in") is None


# -- replay semantics through TestQueue ------------------------------------------------------------


def test_fan_out_fan_in_with_deterministic_step_ids() -> None:
    q = TestQueue()
    done = q.process_workflow(wf.fan_out_fan_in(5)).workflow
    assert done.completed and done.final_result == 2 * sum(range(5))
    assert done.finished_at is not None and done.exception is None
    assert done.task_order == [str(step_id(done.id, i)) for i in range(6)]
    steps = q.get_task(done.task_order)
    assert all(t.workflow_id == done.id and t.status == "completed" for t in steps.values())
    assert q.get_pending_workflows() == []


def test_tuple_fan_out_resumes_with_a_tuple() -> None:
    assert TestQueue().process_workflow(wf.tuple_fan_out(1)).workflow.final_result == ["tuple", 2, 3]


def test_failed_step_is_visible_and_the_generator_can_branch() -> None:
    done = TestQueue().process_workflow(wf.failure_branch()).workflow
    assert done.completed
    assert done.final_result == "recovered 2 after ValueError: first try"


def test_unhandled_error_ends_the_workflow_with_the_exception() -> None:
    q = TestQueue()
    done = q.process_workflow(wf.unhandled()).workflow
    assert not done.completed and done.finished_at is not None
    assert done.exception is not None and done.exception.type == "RuntimeError"
    assert done.exception.message == "step ended failed"
    assert done.error == "RuntimeError: step ended failed"
    assert q.get_pending_workflows() == []


@pytest.mark.parametrize(
    ("factory", "words"),
    [(wf.bad_yield, "got int (42)"), (wf.mixed_yield, "list containing: Task, Workflow")],
)
def test_invalid_yields_raise_workflow_error(factory: Any, words: str) -> None:
    done = TestQueue().process_workflow(factory()).workflow
    assert done.exception is not None and done.exception.type == "WorkflowError"
    assert words in done.exception.message


def test_sub_workflows_run_inline_and_send_back_their_value() -> None:
    done = TestQueue().process_workflow(wf.nested(1)).workflow
    # sequential(x) = x + 11: 12 + (12 + 13) = 37
    assert done.completed and done.final_result == 37


def test_return_value_is_coerced_through_the_generator_annotation() -> None:
    done = TestQueue().process_workflow(wf.summary(3)).workflow
    assert done.final_result == wf.Summary(count=3, total=3)
    assert TestQueue().process_workflow(wf.fan_out_fan_in(2)).workflow.final_result == 2


def test_workflow_without_steps_completes_at_once() -> None:
    q = TestQueue()
    result = q.add_workflow(wf.no_steps(4))
    assert result.pending_tasks == [] and result.workflow.completed and result.workflow.final_result == 12


def test_non_determinism_is_detected() -> None:
    q = TestQueue()
    wf.knobs["offset"] = 0
    try:
        started = q.add_workflow(wf.nondeterministic())
        wf.knobs["offset"] = 5  # the replay will now yield add(5, 0) where add(0, 0) was submitted
        done = q.process_workflow(started.workflow).workflow
    finally:
        wf.knobs["offset"] = 0
    assert not done.completed and done.exception is not None
    assert done.exception.type == "WorkflowError"
    assert "not deterministic" in done.exception.message and "step 0" in done.exception.message


def test_process_workflow_of_unknown_id_raises() -> None:
    with pytest.raises(ValueError, match="not found"):
        TestQueue().process_workflow(uuid.uuid4())


def test_testqueue_workflow_methods_and_experimental_spelling() -> None:
    q = TestQueue()
    first = q.experimental.add_workflow(wf.sequential(1))
    assert [t.spec.func for t in first.pending_tasks] == ["workflows_for_tests:add"]
    assert q.get_workflow(first.workflow.id) == first.workflow
    assert q.get_pending_workflows() == [first.workflow]
    assert q.wait_for_workflow(first.workflow, timeout=-1) is None
    done = q.experimental.process_workflow(first.workflow.id).workflow
    assert done.final_result == 12
    assert q.experimental.wait_for_workflow(done) == done
    assert q.get_all_workflows() == [done]
    assert q.get_workflow([done.id, uuid.uuid4()]) == {done.id: done}
    assert q.delete_workflow(done) is True
    assert q.experimental.delete_workflow(done) is False
    assert q.get_workflow(done.id) is None


# -- Queue methods ---------------------------------------------------------------------------------


async def test_add_workflow_is_idempotent_and_submits_the_first_group(queue: Queue) -> None:
    record = wf.fan_out_fan_in(3)
    first = await queue.add_workflow(record)
    assert len(first.pending_tasks) == 3 and first.workflow.version == 1
    assert await queue.size() == 3
    again = await queue.experimental.add_workflow(record)
    assert again.pending_tasks == [] and again.workflow == first.workflow
    assert await queue.size() == 3


async def test_queue_methods_and_wait(queue: Queue, backend: MemoryBackend) -> None:
    started = await queue.add_workflow(wf.fan_out_fan_in(4))
    with pytest.raises(TimeoutError):
        await queue.wait_for_workflow(started.workflow, timeout=0.05)
    assert await queue.wait_for_workflow([started.workflow], timeout=-1) == {}
    assert [w.id for w in await queue.experimental.get_pending_workflows()] == [started.workflow.id]
    await drain(backend)
    done = await queue.experimental.wait_for_workflow(started.workflow.id, timeout=1)
    assert done is not None and done.final_result == 12
    assert await queue.wait_for_workflow(str(done.id)) == done  # timeout=0 returns at once when ended
    assert await queue.get_workflow([done.id]) == {done.id: done}
    assert [w.id for w in await queue.get_all_workflows()] == [done.id]
    assert await queue.get_pending_workflows() == []
    assert await queue.wait_for_workflow(uuid.uuid4(), timeout=0) is None  # unknown: no waiting
    assert await queue.resume_workflow(done) == (done, [])
    assert await queue.delete_workflow(done.id) is True
    with pytest.raises(ValueError, match="not found"):
        await queue.resume_workflow(done.id)


async def test_wait_for_workflow_wakes_when_a_worker_finishes_it(
    queue: Queue, backend: MemoryBackend
) -> None:
    import asyncio

    started = await queue.add_workflow(wf.sequential(5))
    waiter = asyncio.create_task(queue.wait_for_workflow(started.workflow, timeout=5))
    await asyncio.sleep(0.02)
    assert not waiter.done()
    await drain(backend)
    done = await waiter
    assert done is not None and done.final_result == 16


async def test_memory_url_runs_workflows_inline() -> None:
    queue = Queue("memory://", "inline")
    result = await queue.add_workflow(wf.fan_out_fan_in(3))
    assert result.workflow.completed and result.workflow.final_result == 6 and result.pending_tasks == []


async def test_step_records_carry_the_workflow_id(queue: Queue, backend: MemoryBackend) -> None:
    started = await queue.add_workflow(wf.sequential(1))
    await drain(backend)
    steps = await backend.get_workflow_results("q", str(started.workflow.id))
    assert sorted(steps) == sorted(str(step_id(started.workflow.id, i)) for i in range(2))


# -- every final state resumes ---------------------------------------------------------------------


async def test_timed_out_step_resumes_the_workflow(queue: Queue, backend: MemoryBackend) -> None:
    from sheppy_core import task

    @task(timeout=0.05)
    async def too_slow() -> None:
        import asyncio

        await asyncio.sleep(1)

    @sheppy_core.workflow
    def times_out() -> Generator[Any, Any, str]:
        step = yield too_slow()
        return f"{step.status}:{step.exception.type}"

    started = await queue.add_workflow(times_out())
    await drain(backend)
    done = await queue.wait_for_workflow(started.workflow, timeout=1)
    assert done is not None and done.final_result == "failed:TaskTimeoutError"


async def test_crashed_step_resumes_the_workflow(queue: Queue, backend: MemoryBackend) -> None:
    started = await queue.add_workflow(wf.waits_on_nap(0.01))
    # A worker claims the step and dies: the lease runs out and the next claim finds deliveries > 1.
    await backend.pop("q", 1, lease=0.01)
    import asyncio

    await asyncio.sleep(0.03)
    await drain(backend)
    done = await queue.wait_for_workflow(started.workflow, timeout=1)
    assert done is not None and done.final_result == "crashed"


async def test_cancelled_only_step_ends_the_workflow(queue: Queue) -> None:
    started = await queue.add_workflow(wf.waits_on_nap(10))
    cancelled = await queue.cancel(started.pending_tasks[0])
    assert cancelled.status == "cancelled"
    done = await queue.wait_for_workflow(started.workflow, timeout=1)
    assert done is not None and done.completed and done.final_result == "cancelled"


async def test_cancelled_sibling_lets_the_group_finish(queue: Queue, backend: MemoryBackend) -> None:
    started = await queue.add_workflow(wf.cancel_one_of_two(10))
    nap_step = next(t for t in started.pending_tasks if t.spec.func.endswith(":nap"))
    await queue.experimental.cancel(nap_step)
    await drain(backend)
    done = await queue.wait_for_workflow(started.workflow, timeout=1)
    assert done is not None and done.final_result == ["cancelled", "completed"]


async def test_cancel_where_the_workflow_is_not_registered_hands_the_resume_to_a_worker(
    queue: Queue, backend: MemoryBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sheppy_core import _registry

    started = await queue.add_workflow(wf.waits_on_nap(10))
    hidden = dict(_registry._workflows)
    monkeypatch.delitem(_registry._workflows, "workflows_for_tests:waits_on_nap")
    await queue.cancel(started.pending_tasks[0])
    assert (await queue.get_workflow(started.workflow)).finished_at is None  # type: ignore[union-attr]
    internal = await queue.get_pending()
    assert [t.spec.func for t in internal] == ["sheppy_core._workflow:resume"]
    monkeypatch.setattr(_registry, "_workflows", hidden)  # the worker process has it registered
    await drain(backend)
    done = await queue.wait_for_workflow(started.workflow, timeout=1)
    assert done is not None and done.final_result == "cancelled"
    # Internal bookkeeping leaves no record behind.
    assert all(not t.spec.func.startswith("sheppy_core.") for t in await queue.get_all_tasks())


async def test_worker_without_the_workflow_registered_fails_it_clearly(
    queue: Queue, backend: MemoryBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sheppy_core import _registry

    started = await queue.add_workflow(wf.sequential(1))
    monkeypatch.delitem(_registry._workflows, "workflows_for_tests:sequential")
    await drain(backend)
    done = await queue.wait_for_workflow(started.workflow, timeout=1)
    assert done is not None and not done.completed and done.exception is not None
    assert done.exception.type == "WorkflowError" and "not a registered @workflow" in done.exception.message


def test_reads_sheppy_0_0_7_records() -> None:
    legacy = {
        "id": str(uuid.uuid4()),
        "func": "workflows_for_tests:sequential",
        "args": [1],
        "kwargs": {},
        "task_order": [],
        "processed_tasks": [],
        "pending_task_ids": [],
        "completed": False,
        "final_result": None,
        "error": "ValueError: bad input",
        "created_at": "2025-01-01T00:00:00Z",
        "finished_at": "2025-01-01T00:00:01Z",
    }
    record = sheppy_core.Workflow.model_validate(legacy)
    assert record.exception is not None and record.exception.type == "ValueError"
    assert record.error == "ValueError: bad input" and record.is_finished
    assert "failed" in repr(record)


def test_final_result_is_coerced_when_read_back() -> None:
    done = TestQueue().process_workflow(wf.summary(2)).workflow
    stored = done.model_dump(mode="json")
    assert stored["final_result"] == {"count": 2, "total": 1}
    assert sheppy_core.Workflow.model_validate(stored).final_result == wf.Summary(count=2, total=1)
