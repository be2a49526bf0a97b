"""Driving workflows through a queue's store: start, resume (exactly once on any backend), the
recovery watch, and reading and waiting. The package docstring (``sheppy_core._workflow``) explains
why each step is safe to repeat.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from sheppy_core._registry import get_workflow_definition
from sheppy_core._runner import released, rescheduled
from sheppy_core._store import QueueStore
from sheppy_core._workflow.model import (
    DEFAULT_WATCH_INTERVAL,
    WORKFLOW_TASK_NS,
    Workflow,
    WorkflowResult,
)
from sheppy_core._workflow.replay import replay
from sheppy_core.backend import SHARED_STORE, WORKFLOWS, missing_capability
from sheppy_core.exceptions import WorkflowError
from sheppy_core.models import Task, TaskSpec

__all__ = [
    "get_workflows",
    "is_engine_task",
    "resume",
    "run_engine_task",
    "start",
    "step_finished",
    "wait_for",
]

logger = logging.getLogger("sheppy.workflow")

WATCH_FUNC = "sheppy_core._workflow:watch"
RESUME_FUNC = "sheppy_core._workflow:resume"
ENGINE_FUNCS = frozenset({WATCH_FUNC, RESUME_FUNC})
"""Internal task names handled by the engine itself (never looked up in the task registry). Stored
in records: keep them as they are."""

_CAS_ATTEMPTS = 50
_SUBMIT_GRACE = 1.0
"""Seconds after a state was written during which its writer is presumed to be appending its steps: a
recovery re-submits a missing step only after that (or one watch interval, if longer), so it does not
race a writer that is merely slow."""


# -- driving a workflow through a queue ------------------------------------------------------------


def _watches(store: QueueStore) -> bool:
    return SHARED_STORE in store.backend.capabilities


def _engine_task(func: str, workflow_id: str, task_id: uuid.UUID, *args: Any) -> Task[Any]:
    return Task(id=task_id, spec=TaskSpec(func=func, args=(workflow_id, *args)))


def watch_task(workflow_id: str) -> Task[Any]:
    return _engine_task(WATCH_FUNC, workflow_id, uuid.uuid5(WORKFLOW_TASK_NS, f"{workflow_id}:watch"))


def resume_task(workflow_id: str, cause: str) -> Task[Any]:
    return _engine_task(
        RESUME_FUNC, workflow_id, uuid.uuid5(WORKFLOW_TASK_NS, f"{workflow_id}:resume:{cause}")
    )


async def _finished_steps(store: QueueStore, wf: Workflow) -> tuple[dict[str, Task[Any]], set[str]]:
    """Finished step records by id, and the ids of every step record that exists at all."""
    if not wf.task_order:
        return {}, set()
    records = await store.records(list(wf.task_order))
    finished: dict[str, Task[Any]] = {
        task_id: Task.model_validate(record)
        for task_id, record in records.items()
        if record.get("finished_at") is not None
    }
    return finished, set(records)


async def _load(store: QueueStore, workflow_id: str) -> Workflow | None:
    record = (await store.workflows([workflow_id])).get(workflow_id)
    return Workflow.model_validate(record) if record is not None else None


async def _submit(store: QueueStore, tasks: list[Task[Any]]) -> None:
    if tasks:
        # Deterministic ids + unique append: a step is stored and queued once, whoever submits it.
        await store.add(tasks)


async def start(
    store: QueueStore, wf: Workflow, *, watch_interval: float | None = DEFAULT_WATCH_INTERVAL
) -> WorkflowResult:
    """Store ``wf`` and submit its first step group (``Queue.add_workflow``). Adding a workflow whose id
    is already stored changes nothing and returns the stored state."""
    if not isinstance(wf, Workflow):
        raise TypeError(f"add_workflow() takes a Workflow (call your @workflow function), got {wf!r}")
    if watch_interval is not None and watch_interval <= 0:
        raise ValueError("watch_interval must be > 0 (or None to disable the recovery watch)")
    backend = await store.connected()
    if WORKFLOWS not in backend.capabilities:
        raise missing_capability(backend, WORKFLOWS)
    workflow_id = str(wf.id)
    interval = watch_interval if _watches(store) else None
    first = replay(wf.model_copy(update={"watch_interval": interval, "version": 0}), {})
    state = first.workflow.model_copy(update={"version": 1, "updated_at": datetime.now(UTC)})
    if interval is not None and not state.is_finished:
        # Scheduled before the record is stored: whatever happens after this line, a worker will look.
        watch = watch_task(workflow_id)
        await store.schedule(watch, datetime.now(UTC) + timedelta(seconds=interval))
    if not await store.store_workflow(state.model_dump(mode="json"), if_version=0):
        existing = await _load(store, workflow_id)
        if existing is None:  # deleted in between; nothing sensible to return but the attempt
            return WorkflowResult(state, first.pending_tasks)
        return WorkflowResult(existing, [])
    await _submit(store, first.pending_tasks)
    return WorkflowResult(state, first.pending_tasks)


async def resume(
    store: QueueStore, workflow_id: str, *, defer_unregistered: bool = False
) -> WorkflowResult | None:
    """Bring a workflow up to date with its finished steps; idempotent and safe to run concurrently.

    Advances (stores the next state with compare-and-set and submits the next steps) when the current
    step group is finished; otherwise re-submits any step that is missing and stores nothing. Returns
    None for an unknown workflow. ``defer_unregistered``: when the workflow function is not registered
    here (a client cancelling a step), hand the resume to a worker through an internal task instead
    of failing the workflow.
    """
    lost_race = False
    for _ in range(_CAS_ATTEMPTS):
        wf = await _load(store, workflow_id)
        if wf is None or wf.is_finished:
            return None if wf is None else WorkflowResult(wf, [])
        if defer_unregistered and get_workflow_definition(wf.func) is None:
            await store.add([resume_task(workflow_id, f"v{wf.version}")])
            return WorkflowResult(wf, [])
        finished, existing = await _finished_steps(store, wf)
        outcome = replay(wf, finished)
        advanced = outcome.workflow.is_finished or len(outcome.workflow.task_order) != len(wf.task_order)
        if not advanced:
            written = wf.updated_at or wf.created_at
            grace = max(_SUBMIT_GRACE, wf.watch_interval or 0.0)
            settled = (datetime.now(UTC) - written).total_seconds() > grace
            if settled and not lost_race:
                # Steps lost by a crash after an earlier write. Right after a write (or after losing a
                # race) the writer is appending them itself — and if it died, the watch comes back.
                await _submit(store, [t for t in outcome.pending_tasks if str(t.id) not in existing])
            return WorkflowResult(wf, outcome.pending_tasks)
        state = outcome.workflow.model_copy(
            update={"version": wf.version + 1, "updated_at": datetime.now(UTC)}
        )
        if await store.store_workflow(state.model_dump(mode="json"), if_version=wf.version):
            _log_state(store, state)
            await _submit(store, outcome.pending_tasks)
            if state.is_finished and state.watch_interval is not None:
                await _retire_watch(store, workflow_id)
            return WorkflowResult(state, outcome.pending_tasks)
        # Another resume advanced it first; look again.
        lost_race = True
    raise WorkflowError(f"workflow {workflow_id}: gave up after {_CAS_ATTEMPTS} conflicting updates")


async def _retire_watch(store: QueueStore, workflow_id: str) -> None:
    """Remove a finished workflow's watch now rather than when it next fires. A watch that is running
    at this moment cannot be cancelled; it finds the workflow finished and removes itself."""
    watch_id = str(watch_task(workflow_id).id)
    if await store.cancel(watch_id) is not None:
        await store.delete(watch_id)


def _log_state(store: QueueStore, wf: Workflow) -> None:
    if wf.completed:
        logger.info("workflow %s (%s) on queue %r completed", wf.id, wf.func, store.name)
    elif wf.exception is not None:
        logger.error("workflow %s (%s) on queue %r failed: %s", wf.id, wf.func, store.name, wf.exception)
    else:
        logger.debug("workflow %s advanced to step %d", wf.id, len(wf.task_order))


async def step_finished(store: QueueStore, task: Task[Any], *, defer_unregistered: bool = False) -> None:
    """Called once a step's final outcome is stored (completed, failed, crashed, cancelled, timed out).

    Only the caller that removes the group's last pending id resumes the workflow; a failure here is
    logged, not raised — the outcome is stored and the watch (shared stores) resumes the workflow.
    """
    if task.workflow_id is None or task.finished_at is None:
        return
    workflow_id = str(task.workflow_id)
    try:
        remaining = await store.step_done(workflow_id, str(task.id))
        if remaining == 0:
            await resume(store, workflow_id, defer_unregistered=defer_unregistered)
    except Exception:
        logger.exception("resuming workflow %s after step %s failed", workflow_id, task.id)


async def run_engine_task(store: QueueStore, task: Task[Any]) -> Task[Any]:
    """Run an internal workflow task (a watch or a deferred resume) and store its outcome.

    Redelivery after a crash simply runs it again: everything it does is idempotent.
    """
    workflow_id = str(task.spec.args[0]) if task.spec.args else ""
    state = await resume(store, workflow_id) if workflow_id else None
    wf = state.workflow if state is not None else None
    if task.spec.func == WATCH_FUNC and wf is not None and not wf.is_finished:
        interval = wf.watch_interval or DEFAULT_WATCH_INTERVAL
        again = rescheduled(task, datetime.now(UTC) + timedelta(seconds=interval))
        await store.store_result(again)
        return again
    done = released(task, status="completed", finished_at=datetime.now(UTC))
    # Internal bookkeeping is not the user's data: leave no record behind. Shielded, because once the
    # outcome is stored the claim is gone and a heartbeat may cancel this job.
    await asyncio.shield(_store_and_delete(store, done))
    return done


async def _store_and_delete(store: QueueStore, done: Task[Any]) -> None:
    await store.store_result(done)
    await store.delete(str(done.id))


def is_engine_task(task: Task[Any]) -> bool:
    return task.spec.func in ENGINE_FUNCS


# -- reading and waiting ---------------------------------------------------------------------------


async def get_workflows(store: QueueStore, ids: list[str]) -> dict[uuid.UUID, Workflow]:
    records = await store.workflows(ids)
    return {uuid.UUID(k): Workflow.model_validate(v) for k, v in records.items()}


async def wait_for(store: QueueStore, ids: list[str], timeout: float) -> dict[uuid.UUID, Workflow]:
    """Finished workflows among ``ids``, with ``Queue.wait_for``'s timeout rules: 0 waits for ever,
    > 0 raises ``TimeoutError`` unless all finished in time, < 0 returns at once. Unknown ids are not
    waited for. Blocks on the pending steps' results (woken by the store), then polls briefly for the
    resume that follows them."""
    deadline = None if timeout <= 0 else time.monotonic() + timeout
    backoff = 0.01
    while True:
        workflows = await get_workflows(store, ids)
        done = {k: w for k, w in workflows.items() if w.is_finished}
        running = [w for w in workflows.values() if not w.is_finished]
        if timeout < 0 or not running:
            return done
        remaining = math.inf if deadline is None else deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError(f"{len(running)} of {len(ids)} workflow(s) did not finish within {timeout} s")
        pending = [t for w in running for t in w.pending_task_ids]
        started = time.monotonic()
        try:
            await store.results(pending, timeout=min(remaining, 1.0))
        except TimeoutError:
            backoff = 0.01
            continue
        if time.monotonic() - started < 0.005:
            # The steps were already finished: the resume is on its way (or a watch will do it).
            await asyncio.sleep(min(backoff, max(remaining, 0.0)))
            backoff = min(backoff * 2, 0.5)
        else:
            backoff = 0.01
