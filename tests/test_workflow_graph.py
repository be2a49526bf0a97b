"""Which steps a workflow yielded together (``Workflow.step_groups``) and the rows the dashboard draws
from it (``step_rows``): a fan-out is one row, a sequential step a row of its own."""

from __future__ import annotations

import uuid

import workflows_for_tests as wf

from sheppy_core import MemoryBackend, Queue, Worker
from sheppy_core._workflow.model import Workflow, step_rows
from sheppy_core._workflow.replay import replay


async def run_to_the_end(record: Workflow) -> Workflow:
    backend = MemoryBackend()
    queue = Queue(backend, "q")
    started = await queue.add_workflow(record)
    # Oneshot workers until it is finished: each advance queues the next step group.
    for _ in range(10):
        worker = Worker("q", backend, enable_cron_manager=False)
        await worker.work(oneshot=True, register_signal_handlers=False)
        done = await queue.wait_for_workflow(started.workflow, timeout=0)
        if done is not None and done.is_finished:
            return done
    raise AssertionError("the workflow did not finish within 10 worker passes")


async def test_a_fan_out_is_recorded_as_one_group_of_the_steps_it_yielded() -> None:
    done = await run_to_the_end(wf.prepare_fan_out_finish(3))
    assert done.completed and done.final_result == 2 * (0 + 1 + 2)
    assert len(done.task_order) == 5
    # Every advance replays the generator from the start; a replayed yield must not be counted again.
    assert done.step_groups == [1, 3, 1]
    first, fan_out, last = step_rows(done)
    assert first == done.task_order[:1] and fan_out == done.task_order[1:4] and last == done.task_order[4:]


async def test_a_sub_workflow_s_groups_are_inline_in_the_order_the_engine_runs_them() -> None:
    done = await run_to_the_end(wf.nested(1))
    assert done.completed
    # sequential(x) twice in a row is 1+1 steps each; the fan-out of two sub-workflows runs them one
    # after the other, then one last step.
    assert done.step_groups == [1, 1, 1, 1, 1, 1, 1]
    assert [len(row) for row in step_rows(done)] == [1] * 7


async def test_a_fan_out_of_one_step_groups_the_steps_it_yields_after_it() -> None:
    done = await run_to_the_end(wf.fan_out_fan_in(4))
    assert done.step_groups == [4, 1]
    assert [len(row) for row in step_rows(done)] == [4, 1]


async def test_a_run_begun_before_step_groups_counts_its_earlier_steps_one_per_group() -> None:
    done = await run_to_the_end(wf.prepare_fan_out_finish(3))
    # The same run as a record written before the field, stopped after its first step.
    legacy = done.model_copy(update={
        "step_groups": [], "task_order": done.task_order[:1], "step_signatures": done.step_signatures[:1],
        "processed_tasks": {}, "completed": False, "final_result": None, "finished_at": None,
    })
    resumed = replay(legacy, dict(done.processed_tasks)).workflow
    assert resumed.completed and resumed.task_order == done.task_order
    assert resumed.step_groups == [1, 3, 1]


def test_a_record_written_before_step_groups_reads_as_a_chain() -> None:
    steps = [str(uuid.uuid4()) for _ in range(3)]
    old = Workflow.model_validate({"func": "workflows_for_tests:sequential", "task_order": steps})
    assert old.step_groups == []
    assert step_rows(old) == [[s] for s in steps]


def test_steps_the_groups_do_not_cover_read_one_per_row() -> None:
    # Groups that account for fewer steps than task_order holds say nothing of the rest: a chain.
    steps = [str(uuid.uuid4()) for _ in range(5)]
    upgraded = Workflow(func="workflows_for_tests:sequential", task_order=steps, step_groups=[3])
    assert step_rows(upgraded) == [steps[:3], [steps[3]], [steps[4]]]
    assert step_rows(Workflow(func="workflows_for_tests:sequential")) == []


def test_a_stored_record_keeps_its_groups_and_its_repr_is_unchanged() -> None:
    record = Workflow(func="workflows_for_tests:sequential", task_order=["a", "b"], step_groups=[2])
    assert Workflow.model_validate(record.model_dump(mode="json")).step_groups == [2]
    assert repr(record).startswith("Workflow(id=") and "step_groups" not in repr(record)
