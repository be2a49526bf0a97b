"""Workflows: a plain generator orchestrates tasks, and the store remembers where it is.

A ``@workflow`` function yields tasks; ``yield t`` resumes with the *finished* task, ``yield [t1, t2]``
fans out and resumes with all of them, ``yield sub_workflow(...)`` runs another workflow inline and
resumes with its return value. Nothing keeps a generator alive between steps: execution is **replay**.
Whenever a step group finishes, the generator is run again from the start and every finished step is
fed back in order, until it reaches a step that is not finished yet (the workflow waits) or returns
(the workflow completes) or raises (the workflow fails).

Step ids are deterministic (``uuid5`` of the workflow id and the step index, as sheppy), so a replay
names the same tasks again and re-submitting one is harmless (``append`` with ``unique=True``). The
record stores a signature (function and a digest of the arguments) per step; a replay that yields a
different task at a known index fails the workflow with :class:`WorkflowError` instead of diverging.

How resumes stay exactly-once on any backend (only the ``Backend`` contract is used, never a lock in
one process's memory):

1. A step's outcome is stored first (``store_result``), then ``mark_workflow_task_complete`` removes it
   from the workflow's pending set. The contract guarantees that exactly one caller sees 0, and since
   every sibling stores before it marks, that caller sees every result of the group.
2. The resume replays and writes the next state with ``store_workflow(if_version=v)``: a
   compare-and-set. Only a resume that *advances* the workflow writes; if two resumes race (a recovery
   and a normal one), one wins and the other re-reads and finds nothing left to do.
3. The next step group is appended after the winning write, with deterministic ids.

A process can die between any two of those calls (SIGKILL after ``store_result`` and before the mark,
or after the write and before the append). On a backend whose store outlives a process
(``SHARED_STORE``), each workflow therefore has a **watch**: an internal task scheduled every
``watch_interval`` seconds while the workflow runs. It runs the same idempotent resume (advance if the
current group is finished, re-submit steps that are missing) and completes once the workflow has ended.
Being a queued task it is itself at-least-once: a worker killed while running it hands it on through its
expired lease. Internal tasks are recognised by the processor before the registry is consulted and are
deleted when done.

The package: ``model`` (the ``Workflow`` record, ``WorkflowResult``, the ``@workflow`` decorator),
``replay`` (pure: the next state from the finished steps), ``engine`` (driving workflows through a
``QueueStore``: start, resume, the watch, waiting). Workflow functions are registered in
``sheppy_core._registry`` beside tasks.
"""

from sheppy_core._workflow.engine import (
    ENGINE_FUNCS,
    RESUME_FUNC,
    WATCH_FUNC,
    get_workflows,
    is_engine_task,
    resume,
    resume_task,
    run_engine_task,
    start,
    step_finished,
    wait_for,
    watch_task,
)
from sheppy_core._workflow.model import (
    DEFAULT_WATCH_INTERVAL,
    WORKFLOW_TASK_NS,
    Workflow,
    WorkflowRef,
    WorkflowResult,
    workflow,
    workflow_id_of,
)
from sheppy_core._workflow.replay import replay, step_id, step_signature

__all__ = [
    "DEFAULT_WATCH_INTERVAL",
    "ENGINE_FUNCS",
    "RESUME_FUNC",
    "WATCH_FUNC",
    "WORKFLOW_TASK_NS",
    "Workflow",
    "WorkflowRef",
    "WorkflowResult",
    "get_workflows",
    "is_engine_task",
    "replay",
    "resume",
    "resume_task",
    "run_engine_task",
    "start",
    "step_finished",
    "step_id",
    "step_signature",
    "wait_for",
    "watch_task",
    "workflow",
    "workflow_id_of",
]
