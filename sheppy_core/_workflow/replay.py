"""Replay: run a workflow's generator from the start against the finished steps known now.

Pure: given a ``Workflow`` record and its finished step records it computes the next state and the
steps to submit; it never reads or writes a store (``engine`` does that).
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from pydantic import TypeAdapter

from sheppy_core._registry import get_workflow_definition
from sheppy_core._task import validate_arguments
from sheppy_core._workflow.model import WORKFLOW_TASK_NS, Workflow, WorkflowResult, typed_final_result
from sheppy_core.exceptions import WorkflowError
from sheppy_core.models import Task, TaskException

__all__ = ["replay", "step_id", "step_signature"]

_ANY: TypeAdapter[Any] = TypeAdapter(Any)


def step_id(workflow_id: uuid.UUID | str, index: int) -> uuid.UUID:
    return uuid.uuid5(WORKFLOW_TASK_NS, f"{workflow_id}:{index}")


def step_signature(task: Task[Any]) -> str:
    payload = json.dumps([list(task.spec.args), task.spec.kwargs], sort_keys=True, default=str)
    return f"{task.spec.func}#{hashlib.sha256(payload.encode()).hexdigest()[:16]}"


def _describe(signature: str) -> str:
    func, _, digest = signature.partition("#")
    return f"{func} (arguments digest {digest})"


class _Pending(Exception):
    """Internal: the replay reached a step group that is not finished."""

    def __init__(self, tasks: list[Task[Any]]) -> None:
        super().__init__()
        self.tasks = tasks


@dataclass
class _Replay:
    """One replay of a workflow against the finished step records known now."""

    workflow: Workflow
    finished: dict[str, Task[Any]]
    order: list[str] = field(init=False)
    signatures: list[str] = field(init=False)
    processed: dict[str, Task[Any]] = field(init=False)
    groups: list[int] = field(init=False)
    index: int = 0

    def __post_init__(self) -> None:
        self.order = list(self.workflow.task_order)
        self.signatures = list(self.workflow.step_signatures)
        self.processed = {}
        self.groups = list(self.workflow.step_groups)

    def run(self) -> WorkflowResult:
        """The workflow's next state; never raises for a failing workflow (that is a state too)."""
        wf = self.workflow
        try:
            value = self._coerce(wf.func, self._run_workflow(wf.func, wf.args, wf.kwargs))
            if self.index < len(self.order):
                raise WorkflowError(
                    f"workflow {wf.func} ({wf.id}) is not deterministic: it returned after "
                    f"{self.index} step(s) on replay, but an earlier run submitted {len(self.order)}"
                )
        except _Pending as pending:
            return WorkflowResult(self._state(pending=pending.tasks), pending.tasks)
        except Exception as exc:
            return WorkflowResult(self._state(exception=exc), [])
        return WorkflowResult(self._state(result=value), [])

    def _state(
        self,
        *,
        pending: list[Task[Any]] | None = None,
        result: Any = None,
        exception: BaseException | None = None,
    ) -> Workflow:
        update: dict[str, Any] = {
            "task_order": self.order,
            "step_signatures": self.signatures,
            "processed_tasks": self.processed,
            "step_groups": self.groups,
        }
        if pending is not None:
            update["pending_task_ids"] = [str(t.id) for t in pending]
        else:
            update["pending_task_ids"] = []
            update["finished_at"] = datetime.now(UTC)
            if exception is None:
                update["completed"] = True
                # What the caller gets back reads like a stored record: typed by the annotation.
                update["final_result"] = typed_final_result(self.workflow.func, result)
            else:
                update["exception"] = TaskException.from_exception(exception)
        return self.workflow.model_copy(update=update)

    def _run_workflow(self, func: str, args: Sequence[Any], kwargs: dict[str, Any]) -> Any:
        definition = get_workflow_definition(func)
        if definition is None:
            raise WorkflowError(
                f"{func!r} is not a registered @workflow in this process, so it cannot be replayed. "
                f"Import the module that defines it in the worker (sheppy work --import MODULE)."
            )
        call_args, call_kwargs = validate_arguments(definition, tuple(args), dict(kwargs), at_run=True)
        generator = definition.function(*call_args, **call_kwargs)
        try:
            to_send: Any = None
            while True:
                try:
                    yielded = generator.send(to_send)
                except StopIteration as stop:
                    return stop.value
                to_send = self._handle(yielded)
        finally:
            generator.close()

    @staticmethod
    def _coerce(func: str, value: Any) -> Any:
        """A return value as stored: validated by the ``Generator`` annotation, then made JSON."""
        definition = get_workflow_definition(func)
        if definition is None or definition.return_adapter is None:
            return _ANY.dump_python(value, mode="json")
        return definition.return_adapter.dump_python(
            definition.return_adapter.validate_python(value), mode="json"
        )

    def _handle(self, yielded: Any) -> Any:
        items: list[Any]
        wrap: type[list[Any]] | type[tuple[Any, ...]] | None
        if isinstance(yielded, (list, tuple)):
            items, wrap = list(yielded), type(yielded)
        else:
            items, wrap = [yielded], None
        if items and all(isinstance(i, Workflow) for i in items):
            values = []
            for sub in items:
                definition = get_workflow_definition(sub.func)
                # The sub-workflow's return value goes back as is (validated by its annotation, if any).
                value = self._run_workflow(sub.func, sub.args, sub.kwargs)
                if definition is not None and definition.return_adapter is not None:
                    value = definition.return_adapter.validate_python(value)
                values.append(value)
            return wrap(values) if wrap is not None else values[0]
        if all(isinstance(i, Task) for i in items):
            results: list[Task[Any]] = []
            waiting: list[Task[Any]] = []
            known = len(self.order)
            for item in items:
                step = self._step(item)
                done = self.finished.get(str(step.id))
                if done is not None:
                    self.processed[str(step.id)] = done
                    # A copy: what the generator does to a result never reaches the stored records.
                    results.append(done.model_copy(deep=True))
                else:
                    waiting.append(step)
            self._count_group(known)
            if waiting:
                raise _Pending(waiting)
            return wrap(results) if wrap is not None else results[0]
        if wrap is None:
            got = f"{type(yielded).__name__} ({yielded!r:.80})"
        else:
            got = f"{wrap.__name__} containing: {', '.join(sorted({type(i).__name__ for i in items}))}"
        raise WorkflowError(
            "Invalid yield in workflow: expected a Task, a Workflow, or a homogeneous list or tuple of "
            f"one of those, got {got}"
        )

    def _count_group(self, known: int) -> None:
        """Record the steps this yield added to ``order`` beyond the ``known`` ones as one group: once,
        on the replay that first submits them (replays of it add none)."""
        added = len(self.order) - known
        if added:
            # A run begun before step_groups existed: its earlier steps count one per group.
            self.groups.extend([1] * (known - sum(self.groups)))
            self.groups.append(added)

    def _step(self, task: Task[Any]) -> Task[Any]:
        index = self.index
        self.index += 1
        signature = step_signature(task)
        expected_id = str(step_id(self.workflow.id, index))
        if index < len(self.order):
            if self.signatures[index : index + 1] and self.signatures[index] != signature:
                raise WorkflowError(
                    f"workflow {self.workflow.func} ({self.workflow.id}) is not deterministic: step "
                    f"{index} was {_describe(self.signatures[index])} on an earlier run, but the "
                    f"replay yielded {_describe(signature)}. A workflow must yield the same tasks in the "
                    f"same order for the same results (no randomness, clock or outside state)."
                )
            expected_id = self.order[index]
        else:
            self.order.append(expected_id)
            self.signatures.append(signature)
        return task.model_copy(
            update={"id": uuid.UUID(expected_id), "workflow_id": self.workflow.id, "status": "new"}
        )


def replay(workflow_record: Workflow, finished: dict[str, Task[Any]]) -> WorkflowResult:
    """Run ``workflow_record``'s generator against ``finished`` step records (``{id: Task}``)."""
    return _Replay(workflow_record, finished).run()
