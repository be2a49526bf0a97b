"""Resumes stay exactly-once when siblings finish at once, and the watch recovers lost resumes."""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any, ClassVar

import pytest
import workflows_for_tests as wf

from sheppy_core import MemoryBackend, Queue, Worker, _processing, _workflow
from sheppy_core.backend import SHARED_STORE


class RacyMemoryBackend(MemoryBackend):
    """The reference backend, but every call that matters to workflows yields to the event loop first,
    so coroutines of several workers interleave between reading and writing as they would on a
    networked store. Each method itself stays atomic (the contract's guarantee)."""

    def __init__(self) -> None:
        super().__init__(instant_processing=False)
        self.appended: Counter[str] = Counter()  # append calls naming a step id
        self.submitted: Counter[str] = Counter()  # appends that actually stored it
        self.versions: Counter[tuple[str, int]] = Counter()  # successful workflow writes

    @staticmethod
    async def _jitter() -> None:
        await asyncio.sleep(random.uniform(0, 0.001))

    async def append(self, queue_name: str, tasks: list[dict[str, Any]], unique: bool = True) -> list[bool]:
        await self._jitter()
        results = await super().append(queue_name, tasks, unique)
        for record, stored in zip(tasks, results, strict=True):
            if record.get("workflow_id"):
                self.appended[record["id"]] += 1
                self.submitted[record["id"]] += int(stored)
        return results

    async def get_tasks(self, queue_name: str, task_ids: list[str]) -> dict[str, dict[str, Any]]:
        await self._jitter()
        return await super().get_tasks(queue_name, task_ids)

    async def get_workflows(self, queue_name: str, workflow_ids: list[str]) -> dict[str, dict[str, Any]]:
        await self._jitter()
        return await super().get_workflows(queue_name, workflow_ids)

    async def store_workflow(
        self, queue_name: str, workflow_data: dict[str, Any], *, if_version: int | None = None
    ) -> bool:
        await self._jitter()
        stored = await super().store_workflow(queue_name, workflow_data, if_version=if_version)
        if stored:
            self.versions[(str(workflow_data["id"]), int(workflow_data["version"]))] += 1
        return stored

    async def mark_workflow_task_complete(self, queue_name: str, workflow_id: str, task_id: str) -> int:
        await self._jitter()
        return await super().mark_workflow_task_complete(queue_name, workflow_id, task_id)


class SharedRacyBackend(RacyMemoryBackend):
    """Pretends its store outlives a process, so workflows get a recovery watch."""

    capabilities: ClassVar[frozenset[str]] = MemoryBackend.capabilities | {SHARED_STORE}


@pytest.fixture
async def racy() -> AsyncIterator[RacyMemoryBackend]:
    backend = RacyMemoryBackend()
    await backend.connect()
    yield backend
    await backend.disconnect()


async def run_workers(backend: MemoryBackend, count: int, until: Any, **options: Any) -> None:
    """Run ``count`` workers on one backend until ``until`` (a coroutine) returns, then stop them."""
    workers = [Worker("q", backend, enable_cron_manager=False, **options) for _ in range(count)]
    for worker in workers:
        worker._scheduler_polling_interval = 0.02
    jobs = [asyncio.create_task(w.work(register_signal_handlers=False)) for w in workers]
    try:
        await until
    finally:
        for worker in workers:
            worker.stop()
        await asyncio.gather(*jobs)


async def test_several_workers_finishing_siblings_submit_each_step_once(racy: RacyMemoryBackend) -> None:
    queue = Queue(racy, "q")
    started = [await queue.add_workflow(wf.fan_out_fan_in(10)) for _ in range(20)]
    ids = [s.workflow.id for s in started]
    await run_workers(racy, 3, queue.wait_for_workflow(ids, timeout=30), max_concurrent_tasks=10)

    done = await queue.get_workflow(ids)
    assert all(w.completed and w.final_result == 90 for w in done.values()), done
    steps = [t for w in done.values() for t in w.task_order]
    assert len(steps) == 20 * 11
    # The engine submitted every step exactly once: one append call each, and it stored the step.
    assert {s: racy.appended[s] for s in steps} == dict.fromkeys(steps, 1)
    assert {s: racy.submitted[s] for s in steps} == dict.fromkeys(steps, 1)
    # Each workflow was written exactly once per version: start, after the fan-out, at the end.
    for workflow_id in ids:
        assert [racy.versions[(str(workflow_id), v)] for v in (1, 2, 3, 4)] == [1, 1, 1, 0]


async def test_concurrent_completion_of_all_siblings_resumes_exactly_once(
    racy: RacyMemoryBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    queue = Queue(racy, "q")
    started = await queue.add_workflow(wf.fan_out_fan_in(10))
    claimed = await racy.pop("q", 10)
    outcomes = []
    # Each step's outcome is stored, its resume held back, so that all ten resumes then race.
    async def held_back(store: Any, outcome: Any) -> None:
        return None

    monkeypatch.setattr(_processing, "_resume_workflow", held_back)
    for record in claimed:
        outcome, _ = await _processing.TaskProcessor()._process(queue.store, _task(record))
        outcomes.append(outcome)
    monkeypatch.undo()
    # Every sibling is stored; now all of them report completion at once.
    await asyncio.gather(*(_workflow.step_finished(queue.store, o) for o in outcomes))
    workflow_id = str(started.workflow.id)
    assert racy.versions[(workflow_id, 2)] == 1
    fan_in = str(_workflow.step_id(started.workflow.id, 10))
    assert racy.appended[fan_in] == 1 and racy.submitted[fan_in] == 1
    current = await queue.get_workflow(started.workflow)
    assert current is not None and current.pending_task_ids == [fan_in]


async def test_racing_resumes_advance_once(
    racy: RacyMemoryBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    queue = Queue(racy, "q")
    started = await queue.add_workflow(wf.fan_out_fan_in(10))

    async def held_back(store: Any, outcome: Any) -> None:
        return None

    monkeypatch.setattr(_processing, "_resume_workflow", held_back)
    for record in await racy.pop("q", 10):
        await _processing.TaskProcessor()._process(queue.store, _task(record))
    monkeypatch.undo()
    # No mark at all: ten recoveries (watches, redeliveries) race to resume the same workflow.
    workflow_id = str(started.workflow.id)
    results = await asyncio.gather(*(_workflow.resume(queue.store, workflow_id) for _ in range(10)))
    assert {r.workflow.version for r in results if r is not None} == {2}
    assert racy.versions[(str(started.workflow.id), 2)] == 1
    fan_in = str(_workflow.step_id(started.workflow.id, 10))
    assert racy.submitted[fan_in] == 1


async def test_watch_recovers_resumes_lost_in_a_crash(monkeypatch: pytest.MonkeyPatch) -> None:
    backend = SharedRacyBackend()
    await backend.connect()
    queue = Queue(backend, "q")

    async def killed_before_marking(queue: Queue, task: Any, **_: Any) -> None:
        return None  # as if the process died right after storing the step's outcome

    monkeypatch.setattr(_processing, "step_finished", killed_before_marking)
    started = await queue.add_workflow(wf.fan_out_fan_in(3), watch_interval=0.05)
    watch_id = str(_workflow.watch_task(str(started.workflow.id)).id)
    assert [t.id for t in await queue.get_scheduled()] == [_uuid(watch_id)]
    await run_workers(backend, 2, queue.wait_for_workflow(started.workflow, timeout=10))
    done = await queue.get_workflow(started.workflow)
    assert done is not None and done.completed and done.final_result == 6
    assert all(backend.submitted[s] == 1 for s in done.task_order)
    # The watch completed and removed itself.
    assert await queue.get_task(watch_id) is None
    await backend.disconnect()


async def test_watch_resubmits_steps_lost_after_the_state_was_written(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    backend = SharedRacyBackend()
    await backend.connect()
    queue = Queue(backend, "q")
    real_submit = _workflow.engine._submit
    lost: list[str] = []

    async def crash_once(store: Any, tasks: list[Any]) -> None:
        if tasks and not lost and tasks[0].spec.func.endswith(":total"):
            lost.append(str(tasks[0].id))  # the state is stored, the fan-in step never appended
            return
        await real_submit(store, tasks)

    monkeypatch.setattr(_workflow.engine, "_submit", crash_once)
    started = await queue.add_workflow(wf.fan_out_fan_in(3), watch_interval=0.05)
    await run_workers(backend, 1, queue.wait_for_workflow(started.workflow, timeout=10))
    done = await queue.get_workflow(started.workflow)
    assert lost and done is not None and done.completed and done.final_result == 6
    assert backend.submitted[lost[0]] == 1
    await backend.disconnect()


def _task(record: dict[str, Any]) -> Any:
    from sheppy_core import Task

    return Task.model_validate(record)


def _uuid(value: str) -> Any:
    import uuid

    return uuid.UUID(value)
