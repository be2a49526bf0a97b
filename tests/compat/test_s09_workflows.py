"""§9 "Workflows" of sheppy-api.md (with §18.7 and §19): what a sheppy user's workflow code relies on.

Store tests run on memory, SQLite, Redis and PostgreSQL, driven by a real ``Worker``; the TestQueue
tests at the end need no store. Workflows and tasks are in ``compat/tasks_workflows.py``.
"""

from __future__ import annotations

import asyncio
import inspect
import uuid
from datetime import datetime
from typing import Any

import pytest
from compat import tasks_workflows as t
from compat.support import work
from pydantic import ValidationError

import sheppy_core
import sheppy_core.experimental
from sheppy_core import CURRENT_TASK, Depends, Queue, Task, TestQueue, Worker, workflow
from sheppy_core.experimental import SyncQueue, Workflow, WorkflowResult
from sheppy_core.models import TaskException

STEP_NAMESPACE = uuid.UUID("7005b432-c135-4131-b19e-d3dc89703a9b")


def step_id(workflow_id: uuid.UUID, index: int) -> uuid.UUID:
    return uuid.uuid5(STEP_NAMESPACE, f"{workflow_id}:{index}")


SPELLINGS = ["queue", "experimental"]
"""0.0.7 has the workflow methods on ``Queue``; later sheppy on ``queue.experimental``."""


def api(queue: Queue, spelling: str) -> Any:
    return queue if spelling == "queue" else queue.experimental


# -- names and records (no store) ------------------------------------------------------------------


def test_both_spellings_are_the_same_objects() -> None:
    assert sheppy_core.workflow is sheppy_core.experimental.workflow
    assert sheppy_core.Workflow is sheppy_core.experimental.Workflow
    assert sheppy_core.WorkflowResult is sheppy_core.experimental.WorkflowResult
    from sheppy_core.exceptions import WorkflowError

    assert issubclass(WorkflowError, Exception)


def test_bare_and_called_decorator_and_later_spelling_return_workflows() -> None:
    for made in (t.sequential(1), t.with_parentheses(1), t.later_spelling(1)):
        assert isinstance(made, Workflow)
    assert t.with_parentheses(2).func == "compat.tasks_workflows:with_parentheses"


def test_non_generator_function_is_rejected() -> None:
    with pytest.raises(TypeError, match="generator"):

        @workflow
        def plain() -> int:  # pragma: no cover - never called
            return 5


def test_async_generator_function_is_rejected() -> None:
    with pytest.raises(TypeError, match="async generator"):

        @workflow
        async def agen():  # type: ignore[no-untyped-def]  # pragma: no cover
            yield None


def test_current_task_parameter_is_rejected() -> None:
    with pytest.raises(TypeError, match="CURRENT_TASK"):

        @workflow
        def wants_task(current: Task = CURRENT_TASK):  # type: ignore[no-untyped-def]  # pragma: no cover
            yield t.add(1, 1)


def test_depends_parameter_is_rejected() -> None:
    def dependency() -> int:
        return 1

    with pytest.raises(TypeError, match="dependency injection"):

        @workflow
        def wants_dependency(x: int = Depends(dependency)):  # type: ignore[no-untyped-def]  # pragma: no cover
            yield t.add(x, 1)


def test_calling_validates_arguments_like_a_task() -> None:
    with pytest.raises(ValidationError):
        t.sequential()  # type: ignore[call-arg]
    with pytest.raises(ValidationError):
        t.sequential(1, unknown=2)  # type: ignore[call-arg]
    with pytest.raises(ValidationError):
        t.sequential("not a number")
    assert t.sequential("5").args == (5,)  # type: ignore[arg-type]


def test_calling_runs_nothing() -> None:
    t.GENERATOR_BODY_RUNS.clear()
    made = t.records_its_runs(3)
    assert t.GENERATOR_BODY_RUNS == []
    assert made.task_order == []
    assert made.completed is False


def test_workflow_fields_of_a_new_workflow() -> None:
    made = t.sequential(2)
    assert isinstance(made.id, uuid.UUID)
    assert made.func == "compat.tasks_workflows:sequential"
    assert made.args == (2,)
    assert made.kwargs == {}
    assert made.task_order == []
    assert made.completed is False
    assert made.final_result is None
    assert isinstance(made.created_at, datetime) and made.created_at.tzinfo is not None
    assert made.finished_at is None
    assert made.exception is None
    with pytest.warns(DeprecationWarning, match="workflow.exception"):
        assert made.error is None
    # 0.0.7 fields
    assert made.processed_tasks == {}
    assert made.pending_task_ids == []
    assert made.get_stored_task_ids() == {}
    assert made.get_incomplete_task_ids() == []
    assert t.sequential(x=2).kwargs == {"x": 2}
    assert t.sequential(2).id != made.id


def test_repr_starts_with_sheppys_fields() -> None:
    made = t.sequential(2)
    assert repr(made).startswith(
        f"Workflow(id={made.id!r}, func='compat.tasks_workflows:sequential', completed=False, steps=0"
    )


def test_workflow_result_is_a_named_tuple() -> None:
    assert issubclass(WorkflowResult, tuple)
    assert WorkflowResult._fields == ("workflow", "pending_tasks")
    made = t.sequential(1)
    workflow_state, pending = WorkflowResult(made, [])
    assert workflow_state is made and pending == []


def test_record_written_by_0_0_7_is_read() -> None:
    record = {
        "id": str(uuid.uuid4()),
        "func": "compat.tasks_workflows:sequential",
        "args": [1],
        "kwargs": {},
        "task_order": [],
        "processed_tasks": {},
        "pending_task_ids": [],
        "completed": False,
        "final_result": None,
        "error": "RuntimeError: boom",
        "created_at": "2025-01-01T00:00:00+00:00",
        "finished_at": "2025-01-01T00:00:01+00:00",
    }
    old = Workflow.model_validate(record)
    assert old.error == "RuntimeError: boom"
    assert old.exception is not None and old.exception.type == "RuntimeError"
    assert old.exception.message == "boom"


def test_plain_final_result_data_is_left_alone() -> None:
    data = {"__sheppy_task__": "not a task", "nested": [{"__sheppy_task__": {"bogus": 1}}]}
    made = Workflow(func="compat.tasks_workflows:sequential", final_result=data)
    assert made.final_result == data


# -- Queue methods and execution on every store ----------------------------------------------------


@pytest.mark.parametrize("spelling", SPELLINGS)
async def test_add_workflow_stores_it_and_queues_the_first_step(queue: Queue, spelling: str) -> None:
    methods = api(queue, spelling)
    made = t.sequential(2)
    result = await methods.add_workflow(made)

    assert isinstance(result, WorkflowResult)
    assert result.workflow.id == made.id
    assert not result.workflow.completed
    assert result.workflow.error is None and result.workflow.exception is None
    assert len(result.pending_tasks) == 1
    first = result.pending_tasks[0]
    assert first.id == step_id(made.id, 0)
    assert first.spec.func == "compat.tasks_workflows:add"
    assert first.spec.args == (2, 1)
    assert first.workflow_id == made.id
    assert result.workflow.task_order == [str(first.id)]
    assert result.workflow.pending_task_ids == [str(first.id)]
    assert result.workflow.get_incomplete_task_ids() == [first.id]
    assert result.workflow.get_stored_task_ids() == {0: first.id}
    assert await queue.size() == 1

    stored = await methods.get_workflow(made.id)
    assert stored is not None
    assert stored.task_order == result.workflow.task_order
    assert stored.pending_task_ids == [str(first.id)]
    assert [w.id for w in await methods.get_pending_workflows()] == [made.id]
    assert [w.id for w in await methods.get_all_workflows()] == [made.id]
    step = await queue.get_task(first.id)
    assert step is not None and step.workflow_id == made.id


@pytest.mark.parametrize("spelling", SPELLINGS)
async def test_sequential_workflow_completes_with_a_worker(
    queue: Queue, worker: Worker, spelling: str
) -> None:
    methods = api(queue, spelling)
    started = await methods.add_workflow(t.sequential(2))
    await work(worker, max_tasks=2)

    done = await methods.get_workflow(started.workflow.id)
    assert done is not None
    assert done.completed is True
    assert done.error is None and done.exception is None
    assert done.final_result == 13
    assert done.finished_at is not None
    assert done.pending_task_ids == []
    assert done.task_order == [str(step_id(done.id, 0)), str(step_id(done.id, 1))]
    assert await methods.get_pending_workflows() == []
    assert [w.id for w in await methods.get_all_workflows()] == [done.id]

    # 0.0.7's record of the finished steps
    assert set(done.processed_tasks) == set(done.task_order)
    steps = [done.processed_tasks[i] for i in done.task_order]
    assert [s.status for s in steps] == ["completed", "completed"]
    assert [s.result for s in steps] == [3, 13]
    assert all(isinstance(s, Task) for s in steps)


async def test_sync_task_step(queue: Queue, worker: Worker) -> None:
    await queue.add_workflow(t.sync_step(4))
    await work(worker, max_tasks=1)
    (done,) = await queue.get_all_workflows()
    assert done.completed and done.final_result == 5


async def test_fan_out_resumes_with_a_list_then_fans_in(queue: Queue, worker: Worker) -> None:
    started = await queue.add_workflow(t.fan_out([1, 2, 3]))
    assert [p.id for p in started.pending_tasks] == [step_id(started.workflow.id, i) for i in range(3)]
    assert await queue.size() == 3
    await work(worker, max_tasks=4)
    done = await queue.get_workflow(started.workflow.id)
    assert done is not None and done.completed
    assert done.final_result == {"sent_type": "list", "total": 9}
    assert len(done.task_order) == 4


async def test_tuple_yield_resumes_with_a_tuple(queue: Queue, worker: Worker) -> None:
    started = await queue.add_workflow(t.tuple_fan_out())
    assert len(started.pending_tasks) == 2
    await work(worker, max_tasks=2)
    done = await queue.get_workflow(started.workflow.id)
    assert done is not None and done.completed
    assert done.final_result == {"sent_type": "tuple", "results": [2, 4]}


async def test_empty_list_yield_resumes_at_once(queue: Queue) -> None:
    started = await queue.add_workflow(t.empty_list_yield())
    assert started.pending_tasks == []
    assert started.workflow.completed
    assert started.workflow.final_result == {"sent_type": "list", "length": 0}


async def test_sub_workflow_runs_inline(queue: Queue, worker: Worker) -> None:
    started = await queue.add_workflow(t.outer(5))
    # the sub-workflow's first step is a step of the parent
    assert started.pending_tasks[0].id == step_id(started.workflow.id, 0)
    assert started.pending_tasks[0].workflow_id == started.workflow.id
    assert await queue.get_all_workflows() != []
    await work(worker, max_tasks=2)
    done = await queue.get_workflow(started.workflow.id)
    assert done is not None and done.completed
    assert done.final_result == 160  # (5 + 1) * 10 + 100
    assert len(await queue.get_all_workflows()) == 1


async def test_list_of_sub_workflows(queue: Queue, worker: Worker) -> None:
    started = await queue.add_workflow(t.outer_of_many(1))
    await work(worker, max_tasks=2)
    done = await queue.get_workflow(started.workflow.id)
    assert done is not None and done.completed
    assert done.final_result == {"sent_type": "list", "values": [20, 30]}


async def test_sub_workflow_value_is_sent_back_as_returned(queue: Queue, worker: Worker) -> None:
    started = await queue.add_workflow(t.outer_gets_inner_value())
    await work(worker, max_tasks=1)
    done = await queue.get_workflow(started.workflow.id)
    assert done is not None and done.completed
    assert done.final_result == {"is_task": True, "result": 2}


async def test_resume_while_a_step_is_queued_changes_nothing(queue: Queue, worker: Worker) -> None:
    started = await queue.add_workflow(t.sequential(2))
    await work(worker, max_tasks=1)

    halfway = await queue.get_workflow(started.workflow.id)
    assert halfway is not None and not halfway.completed
    assert await queue.size() == 1
    assert halfway.pending_task_ids == [str(step_id(halfway.id, 1))]

    resumed = await queue.resume_workflow(started.workflow.id)
    assert isinstance(resumed, WorkflowResult)
    assert not resumed.workflow.completed
    assert await queue.size() == 1
    assert (await queue._resume_workflow(started.workflow.id)).workflow.task_order == halfway.task_order
    assert await queue.size() == 1

    await work(worker, max_tasks=1)
    done = await queue.get_workflow(started.workflow.id)
    assert done is not None and done.completed and done.final_result == 13

    again = await queue.resume_workflow(done.id)
    assert again.workflow.completed and again.workflow.final_result == 13
    assert again.pending_tasks == []
    assert await queue.size() == 0


async def test_resume_of_an_unknown_workflow_raises(queue: Queue) -> None:
    with pytest.raises(ValueError, match="Workflow not found"):
        await queue.resume_workflow(uuid.uuid4())
    with pytest.raises(ValueError, match="Workflow not found"):
        await queue._resume_workflow(uuid.uuid4())


async def test_racing_resumes_submit_the_next_step_once(queue: Queue) -> None:
    started = await queue.add_workflow(t.sequential(2))
    (claimed,) = await queue._pop_pending()
    finished = claimed.model_copy(
        update={"status": "completed", "result": 3, "finished_at": datetime.now(claimed.created_at.tzinfo)}
    )
    await queue._store_result(finished)
    await asyncio.gather(
        queue.resume_workflow(started.workflow.id), queue.resume_workflow(started.workflow.id)
    )
    assert await queue.size() == 1
    advanced = await queue.get_workflow(started.workflow.id)
    assert advanced is not None and not advanced.completed
    assert len(advanced.task_order) == 2


async def test_retrying_step_does_not_resume_early(queue: Queue, worker: Worker) -> None:
    started = await queue.add_workflow(t.recovers_by_retry())
    await work(worker, max_tasks=2)  # the failed attempt, then the successful retry
    done = await queue.get_workflow(started.workflow.id)
    assert done is not None and done.completed
    assert done.exception is None
    assert done.final_result == "ok:recovered"


async def test_failed_step_is_sent_back_and_takes_the_error_branch(queue: Queue, worker: Worker) -> None:
    started = await queue.add_workflow(t.error_branch())
    await work(worker, max_tasks=3)  # two failed attempts (retry=1), then the rollback step
    done = await queue.get_workflow(started.workflow.id)
    assert done is not None
    assert done.completed is True
    assert done.exception is None and done.error is None
    assert done.final_result == "failed; RuntimeError: permanent failure; rolled back"
    failed_step = await queue.get_task(done.task_order[0])
    assert failed_step is not None and failed_step.status == "failed"


async def test_failed_step_fields_as_the_generator_sees_them(queue: Queue, worker: Worker) -> None:
    started = await queue.add_workflow(t.failed_step_seen())
    await work(worker, max_tasks=1)
    done = await queue.get_workflow(started.workflow.id)
    assert done is not None and done.completed
    assert done.final_result["status"] == "failed"
    assert done.final_result["result"] is None
    assert "division by zero" in done.final_result["error"]


async def test_exception_in_the_generator_fails_the_workflow(queue: Queue, worker: Worker) -> None:
    started = await queue.add_workflow(t.raises_after_step())
    await work(worker, max_tasks=1)
    failed = await queue.get_workflow(started.workflow.id)
    assert failed is not None
    assert failed.completed is False
    assert failed.error == "RuntimeError: user code exploded after 10"
    assert isinstance(failed.exception, TaskException)
    assert failed.exception.type == "RuntimeError"
    assert failed.exception.message == "user code exploded after 10"
    assert failed.finished_at is not None
    assert failed.final_result is None
    assert len(failed.task_order) == 1
    step = await queue.get_task(failed.task_order[0])
    assert step is not None and step.status == "completed" and step.result == 10
    assert await queue.get_pending_workflows() == []


async def test_exception_before_any_step_fails_at_add(queue: Queue) -> None:
    result = await queue.add_workflow(t.raises_before_any_step(-1))
    assert result.pending_tasks == []
    assert result.workflow.completed is False
    assert result.workflow.error == "ValueError: negative flag"
    assert result.workflow.finished_at is not None
    stored = await queue.get_workflow(result.workflow.id)
    assert stored is not None and stored.error == "ValueError: negative flag"
    assert await queue.size() == 0


async def test_invalid_yield_fails_the_workflow_at_once(queue: Queue) -> None:
    result = await queue.add_workflow(t.yields_a_number())
    assert result.pending_tasks == []
    assert result.workflow.completed is False
    assert result.workflow.finished_at is not None
    assert result.workflow.error is not None
    assert "Invalid yield" in result.workflow.error
    assert "int" in result.workflow.error
    assert result.workflow.exception is not None and result.workflow.exception.type == "WorkflowError"
    assert result.workflow.error.startswith("WorkflowError: ")
    stored = await queue.get_workflow(result.workflow.id)
    assert stored is not None and stored.error == result.workflow.error
    assert await queue.size() == 0


async def test_mixed_yield_is_invalid(queue: Queue) -> None:
    result = await queue.add_workflow(t.yields_mixed_list())
    assert result.workflow.error is not None
    assert "Invalid yield" in result.workflow.error
    assert "homogeneous" in result.workflow.error


async def test_invalid_yield_after_a_step_fails_on_the_worker(queue: Queue, worker: Worker) -> None:
    started = await queue.add_workflow(t.yields_after_step())
    await work(worker, max_tasks=1)
    failed = await queue.get_workflow(started.workflow.id)
    assert failed is not None and not failed.completed
    assert failed.error is not None and "Invalid yield" in failed.error and "str" in failed.error


async def test_workflow_without_steps_completes_at_add(queue: Queue) -> None:
    result = await queue.add_workflow(t.empty())
    assert result.pending_tasks == []
    assert result.workflow.completed is True
    assert result.workflow.final_result == "immediate"
    assert result.workflow.finished_at is not None
    assert await queue.size() == 0


async def test_mutating_a_result_never_changes_the_stored_step(queue: Queue, worker: Worker) -> None:
    started = await queue.add_workflow(t.mutates_results())
    await work(worker, max_tasks=2)
    done = await queue.get_workflow(started.workflow.id)
    assert done is not None and done.completed and done.final_result == 2
    first = await queue.get_task(done.task_order[0])
    assert first is not None and first.result == {"key": "original", "count": 3}
    assert done.processed_tasks[done.task_order[0]].result == {"key": "original", "count": 3}


async def test_replays_see_fresh_results_and_tasks_copy_their_arguments(
    queue: Queue, worker: Worker
) -> None:
    started = await queue.add_workflow(t.task_args_are_copies())
    await work(worker, max_tasks=4)
    done = await queue.get_workflow(started.workflow.id)
    assert done is not None
    assert done.exception is None, done.error
    assert done.final_result == {
        "data": {"key": "original", "count": 3},
        "popped": {"count": 3},
        "both": [{"count": 3}, {"count": 3}],
    }


async def test_final_result_coerced_through_the_generator_annotation(queue: Queue, worker: Worker) -> None:
    annotated = await queue.add_workflow(t.annotated_model())
    plain = await queue.add_workflow(t.unannotated_model())
    to_int = await queue.add_workflow(t.coerced_int())
    await work(worker, max_tasks=3)
    found = await queue.get_workflow([annotated.workflow.id, plain.workflow.id, to_int.workflow.id])
    assert found[annotated.workflow.id].final_result == t.Point(name="wf", x=1)
    assert isinstance(found[annotated.workflow.id].final_result, t.Point)
    assert found[plain.workflow.id].final_result == {"name": "wf", "x": 1}
    assert found[to_int.workflow.id].final_result == 42


async def test_tasks_in_the_final_result_come_back_as_tasks(queue: Queue, worker: Worker) -> None:
    single = await queue.add_workflow(t.returns_task())
    several = await queue.add_workflow(t.returns_tasks())
    await work(worker, max_tasks=4)
    one = await queue.get_workflow(single.workflow.id)
    assert one is not None and one.completed
    assert isinstance(one.final_result, Task)
    assert one.final_result.id == step_id(one.id, 0)
    assert one.final_result.status == "completed" and one.final_result.result == 3
    # a JSON round trip (what every store does) keeps it a Task
    again = Workflow.model_validate(one.model_dump(mode="json"))
    assert isinstance(again.final_result, Task) and again.final_result.result == 3

    many = await queue.get_workflow(several.workflow.id)
    assert many is not None and many.completed
    number, first, pair = many.final_result
    assert number == 7
    assert isinstance(first, Task) and first.result == 3
    assert [p.result for p in pair] == [5, 7] and all(isinstance(p, Task) for p in pair)


async def test_step_ids_are_deterministic_per_workflow_and_index(queue: Queue, worker: Worker) -> None:
    one = await queue.add_workflow(t.sequential(1))
    other = await queue.add_workflow(t.sequential(1))
    assert one.pending_tasks[0].id == step_id(one.workflow.id, 0)
    assert other.pending_tasks[0].id == step_id(other.workflow.id, 0)
    assert one.pending_tasks[0].id != other.pending_tasks[0].id
    await work(worker, max_tasks=4)
    for started in (one, other):
        done = await queue.get_workflow(started.workflow.id)
        assert done is not None
        assert done.task_order == [str(step_id(done.id, 0)), str(step_id(done.id, 1))]


async def test_re_adding_a_stored_workflow_changes_nothing(queue: Queue) -> None:
    made = t.sequential(3)
    await queue.add_workflow(made)
    again = await queue.add_workflow(made)
    assert again.workflow.id == made.id
    assert await queue.size() == 1
    assert len(await queue.get_all_workflows()) == 1


@pytest.mark.parametrize("spelling", SPELLINGS)
async def test_get_workflow_single_and_batch(queue: Queue, spelling: str) -> None:
    methods = api(queue, spelling)
    first = await methods.add_workflow(t.sequential(1))
    second = await methods.add_workflow(t.sequential(2))
    unknown = uuid.uuid4()

    by_object = await methods.get_workflow(first.workflow)
    by_string = await methods.get_workflow(str(first.workflow.id))
    assert by_object is not None and by_string is not None
    assert by_object.id == by_string.id == first.workflow.id
    assert await methods.get_workflow(unknown) is None

    batch = await methods.get_workflow([first.workflow.id, str(second.workflow.id), unknown])
    assert set(batch) == {first.workflow.id, second.workflow.id}
    assert all(isinstance(k, uuid.UUID) for k in batch)
    assert batch[second.workflow.id].args == (2,)
    assert await methods.get_workflow([]) == {}


@pytest.mark.parametrize("spelling", SPELLINGS)
async def test_delete_workflow(queue: Queue, spelling: str) -> None:
    methods = api(queue, spelling)
    started = await methods.add_workflow(t.sequential(2))
    assert await methods.delete_workflow(started.workflow.id) is True
    assert await methods.get_workflow(started.workflow.id) is None
    assert await methods.delete_workflow(started.workflow) is False
    assert await methods.get_all_workflows() == []
    # the step records stay
    assert await queue.get_task(started.pending_tasks[0].id) is not None


@pytest.mark.parametrize("spelling", SPELLINGS)
async def test_wait_for_workflow_while_a_worker_runs(queue: Queue, worker: Worker, spelling: str) -> None:
    methods = api(queue, spelling)
    started = await methods.add_workflow(t.sequential(2))
    running = asyncio.create_task(work(worker, max_tasks=2))
    done = await asyncio.wait_for(methods.wait_for_workflow(started.workflow.id), 60)
    await running
    assert done is not None and done.completed and done.final_result == 13
    assert done.error is None


async def test_wait_for_workflow_returns_a_failed_workflow(queue: Queue, worker: Worker) -> None:
    started = await queue.add_workflow(t.raises_after_step())
    running = asyncio.create_task(work(worker, max_tasks=1))
    failed = await queue.wait_for_workflow(started.workflow.id, timeout=60)
    await running
    assert failed is not None and not failed.completed
    assert failed.error == "RuntimeError: user code exploded after 10"


async def test_wait_for_workflow_already_finished_returns_at_once(queue: Queue, worker: Worker) -> None:
    started = await queue.add_workflow(t.sequential(2))
    await work(worker, max_tasks=2)
    done = await queue.wait_for_workflow(started.workflow.id, timeout=0.01)
    assert done is not None and done.completed
    immediate = await queue.wait_for_workflow(started.workflow.id, timeout=-1)
    assert immediate is not None and immediate.completed


async def test_wait_for_workflow_timeout_rules(queue: Queue) -> None:
    started = await queue.add_workflow(t.sequential(2))  # no worker drives it
    with pytest.raises(TimeoutError):
        await queue.wait_for_workflow(started.workflow.id, timeout=0.05)
    with pytest.raises(TimeoutError):
        await queue.experimental.wait_for_workflow([started.workflow.id], timeout=0.05)
    assert await queue.wait_for_workflow(started.workflow.id, timeout=-1) is None
    assert await queue.wait_for_workflow([started.workflow.id], timeout=-1) == {}
    # timeout=0 waits without limit
    waiting = asyncio.create_task(queue.wait_for_workflow(started.workflow.id))
    await asyncio.sleep(0.2)
    assert not waiting.done()
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting


async def test_wait_for_workflow_batch(queue: Queue, worker: Worker) -> None:
    first = await queue.add_workflow(t.sequential(1))
    second = await queue.add_workflow(t.sequential(2))
    running = asyncio.create_task(work(worker, max_tasks=4))
    found = await queue.wait_for_workflow([first.workflow.id, second.workflow.id], timeout=60)
    await running
    assert set(found) == {first.workflow.id, second.workflow.id}
    assert found[first.workflow.id].final_result == 12
    assert found[second.workflow.id].final_result == 13


async def test_cancelled_step_resumes_the_workflow(queue: Queue) -> None:
    """§18.7: a cancelled step is a final state; the generator is sent the cancelled task."""
    started = await queue.add_workflow(t.cancellable())
    cancelled = await queue.experimental.cancel(started.pending_tasks[0].id)
    assert cancelled.status == "cancelled"
    done = await queue.wait_for_workflow(started.workflow.id, timeout=30)
    assert done is not None and done.completed
    assert done.final_result == {"status": "cancelled", "finished": True}


async def test_crashed_step_resumes_the_workflow(queue: Queue, worker: Worker) -> None:
    """§18.7/§18.2: a step whose worker died (lease lapsed, retry=0) ends crashed, and the workflow
    goes on with the crashed task instead of stalling."""
    started = await queue.add_workflow(t.reports_step_state())
    (claimed,) = await queue._pop_pending(worker_id="worker-that-dies", lease=0.05)
    assert claimed.id == started.pending_tasks[0].id
    await asyncio.sleep(0.1)  # the dead worker's lease runs out
    running = asyncio.create_task(work(worker, max_tasks=1))
    done = await queue.wait_for_workflow(started.workflow.id, timeout=30)
    await running
    assert done is not None and done.completed
    assert done.final_result == {"status": "crashed", "exception": "WorkerCrashedError", "finished": True}


async def test_timed_out_step_is_sent_back_as_failed(queue: Queue, worker: Worker) -> None:
    started = await queue.add_workflow(t.waits_on_too_slow())
    await work(worker, max_tasks=1)
    done = await queue.get_workflow(started.workflow.id)
    assert done is not None and done.completed
    assert done.final_result == {"status": "failed", "type": "TaskTimeoutError"}


def test_memory_url_runs_a_workflow_inline() -> None:
    async def scenario() -> Workflow | None:
        queue = Queue("memory://", "workflow-inline")
        started = await queue.add_workflow(t.sequential(2))
        return await queue.get_workflow(started.workflow.id)

    done = asyncio.run(scenario())
    assert done is not None and done.completed and done.final_result == 13


def test_syncqueue_runs_workflows_on_memory_url() -> None:
    with SyncQueue("memory://", name="wf-syncqueue") as q:
        started = q.add_workflow(t.sequential(2))
        assert isinstance(started, WorkflowResult)
        stored = q.get_workflow(started.workflow.id)
        assert stored is not None and stored.completed and stored.final_result == 13
        waited = q.wait_for_workflow(started.workflow.id)
        assert waited is not None and waited.final_result == 13
        assert q.delete_workflow(started.workflow.id) is True


# -- TestQueue -------------------------------------------------------------------------------------


@pytest.mark.parametrize("spelling", ["testqueue", "experimental"])
def test_testqueue_process_workflow_returns_a_workflow_result(spelling: str) -> None:
    q = TestQueue(name="wf-testqueue")
    methods = q if spelling == "testqueue" else q.experimental
    result = methods.process_workflow(t.sequential(2))
    assert isinstance(result, WorkflowResult)
    assert result.workflow.completed
    assert result.workflow.final_result == 13
    assert result.pending_tasks == []
    stored = methods.get_workflow(result.workflow.id)
    assert stored is not None and stored.completed


def test_testqueue_process_workflow_with_retry_and_error_branch() -> None:
    q = TestQueue()
    assert q.process_workflow(t.recovers_by_retry()).workflow.final_result == "ok:recovered"
    branch = q.experimental.process_workflow(t.error_branch())
    assert branch.workflow.completed
    assert branch.workflow.final_result == "failed; RuntimeError: permanent failure; rolled back"


def test_testqueue_process_workflow_of_a_failing_workflow() -> None:
    q = TestQueue()
    failed = q.process_workflow(t.raises_after_step())
    assert not failed.workflow.completed
    assert failed.workflow.error == "RuntimeError: user code exploded after 10"
    invalid = q.process_workflow(t.yields_a_number())
    assert invalid.workflow.error is not None and "Invalid yield" in invalid.workflow.error


def test_testqueue_add_workflow_then_process_all() -> None:
    q = TestQueue()
    started = q.add_workflow(t.fan_out([1, 2]))
    assert isinstance(started, WorkflowResult)
    assert len(started.pending_tasks) == 2
    assert q.size() == 2
    processed = q.process_all()
    assert len(processed) == 3
    done = q.get_workflow(started.workflow.id)
    assert done is not None and done.completed
    assert done.final_result == {"sent_type": "list", "total": 5}
    assert q.get_pending_workflows() == []
    assert [w.id for w in q.experimental.get_all_workflows()] == [done.id]
    assert q.experimental.wait_for_workflow(done.id, timeout=1) is not None
    assert q.delete_workflow(done.id) is True
    assert q.experimental.delete_workflow(done.id) is False


def test_testqueue_sub_workflow_and_sync_step() -> None:
    q = TestQueue()
    assert q.process_workflow(t.outer(5)).workflow.final_result == 160
    assert q.process_workflow(t.sync_step(1)).workflow.final_result == 2


def test_testqueue_resume_of_an_existing_workflow() -> None:
    q = TestQueue()
    started = q.experimental.add_workflow(t.sequential(1))
    q.process_next()
    assert q.experimental._resume_workflow(started.workflow.id).workflow.task_order == [
        str(step_id(started.workflow.id, 0)),
        str(step_id(started.workflow.id, 1)),
    ]
    assert q.process_workflow(started.workflow).workflow.final_result == 12


def test_signatures_match_sheppy() -> None:
    parameters = inspect.signature(TestQueue.process_workflow).parameters
    assert list(parameters)[:2] == ["self", "workflow"]
    assert list(inspect.signature(Queue.wait_for_workflow).parameters) == ["self", "workflow", "timeout"]
