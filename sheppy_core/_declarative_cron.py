"""Declarative cron: ``[[tool.sheppy.cron]]`` tables in ``./pyproject.toml``, kept in the store.

::

    [[tool.sheppy.cron]]
    task = "myapp.tasks:cleanup"      # a @task function
    expression = "*/5 * * * *"
    args = [30]                       # optional
    kwargs = { dry_run = false }      # optional
    queue = "maintenance"             # optional; default: the worker's first queue

Workers re-read the file while they run (every cron-manager pass, at most every
:data:`RELOAD_INTERVAL` seconds unless the file changed) and reconcile each queue involved:

- a declared cron that is not stored is added, marked ``managed_by="pyproject"``;
- a stored ``pyproject`` cron that is no longer declared (removed, or changed — a different expression,
  arguments or task options give a different id) is deleted, with its waiting occurrences (in the same
  step: ``delete_cron``), so an entry put back later resumes on its next slot;
- a declared entry whose task this worker cannot load (its module does not import here, e.g. a worker
  of another deploy) is skipped with a log line, and the stored crons of that task and expression are
  left as they are, with a warning: a worker never deletes what it cannot build;
- crons added by code (``managed_by`` None) are never touched.

Each step is idempotent (``add_cron`` is unique on the cron's deterministic id, deleting twice changes
nothing), so any number of workers may reconcile at the same moment. The cron's task is
built by calling the registered ``@task`` factory, so the decorator's options (retry, timeout, rate
limit, TTL) are kept. Invalid entries are skipped with a log line; a missing or unreadable file changes
nothing.
"""

from __future__ import annotations

import logging
import time
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from pydantic import ValidationError

from sheppy_core.backend import Backend
from sheppy_core.exceptions import ConfigurationError, SheppyError
from sheppy_core.models import TaskCron

__all__ = [
    "MANAGED_BY",
    "CronFile",
    "DeclarativeCrons",
    "DeclaredCron",
    "UnloadedCron",
    "read_cron_file",
    "read_declared_crons",
    "reconcile",
]

logger = logging.getLogger("sheppy.cron")

MANAGED_BY: Final = "pyproject"
RELOAD_INTERVAL: Final = 30.0
"""Seconds between reconciliations when the file did not change (repairs crons deleted by hand)."""


@dataclass(frozen=True)
class DeclaredCron:
    """One valid ``[[tool.sheppy.cron]]`` entry, with the queue it belongs to."""

    queue: str
    cron: TaskCron


@dataclass(frozen=True)
class UnloadedCron:
    """A declared entry whose task this worker cannot load (module not importable here, no such
    function, not a ``@task``): its cron cannot be built, so the stored one is left alone."""

    queue: str
    task: str
    expression: str

    def matches(self, queue: str, cron: TaskCron) -> bool:
        return queue == self.queue and cron.spec.func == self.task and cron.expression == self.expression


@dataclass(frozen=True)
class CronFile:
    """What one read of the file gave: the crons built, and the entries whose task could not load."""

    declared: list[DeclaredCron]
    unloaded: list[UnloadedCron]


class _TaskNotLoaded(ValueError):
    def __init__(self, unloaded: UnloadedCron, reason: str) -> None:
        super().__init__(reason)
        self.unloaded = unloaded


def _cron_from_entry(entry: Mapping[str, Any], default_queue: str) -> DeclaredCron:
    """Build one declared cron; ``ValueError`` (one line) for an invalid entry."""
    from sheppy_core._resolve import build_task, resolve_task_name

    unknown = set(entry) - {"task", "expression", "args", "kwargs", "queue"}
    if unknown:
        raise ValueError(f"unknown key(s) {sorted(unknown)}")
    name, expression = entry.get("task"), entry.get("expression")
    if not isinstance(name, str) or not isinstance(expression, str):
        raise ValueError("needs 'task' (module:function) and 'expression' strings")
    args, kwargs = entry.get("args", []), entry.get("kwargs", {})
    if not isinstance(args, list) or not isinstance(kwargs, dict):
        raise ValueError("'args' must be an array and 'kwargs' a table")
    queue = entry.get("queue", default_queue)
    if not isinstance(queue, str) or not queue:
        raise ValueError("'queue' must be a non-empty string")
    try:
        definition = resolve_task_name(name)  # imports the module the operator declared; @task required
    except ConfigurationError as exc:
        raise _TaskNotLoaded(UnloadedCron(queue, name.strip(), expression), str(exc)) from None
    task = build_task(definition.name, args, kwargs)
    cron = TaskCron(expression=expression, spec=task.spec, config=task.config, managed_by=MANAGED_BY)
    return DeclaredCron(queue, cron)


def read_declared_crons(path: Path, default_queue: str) -> list[DeclaredCron] | None:
    """The valid cron entries of ``path``; None when the file is missing, unreadable or has no
    ``[tool.sheppy]`` table (change nothing).

    An entry that is invalid (bad expression, unknown or non-``@task`` function, arguments that do not
    validate) is skipped with an error log line.
    """
    read = read_cron_file(path, default_queue)
    return None if read is None else read.declared


def read_cron_file(path: Path, default_queue: str) -> CronFile | None:
    """Like :func:`read_declared_crons`, also telling which entries were skipped because their task
    could not be loaded here (:class:`UnloadedCron`)."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, tomllib.TOMLDecodeError) as exc:
        logger.error("declarative cron: cannot read %s (%s); crons left as they are", path, exc)
        return None
    tool = data.get("tool", {})
    table = tool.get("sheppy") if isinstance(tool, dict) else None
    if not isinstance(table, dict):
        # No [tool.sheppy] at all: this file does not manage crons (a project without sheppy settings
        # must not remove crons another project declared on a shared queue).
        return None
    entries = table.get("cron", [])
    if not isinstance(entries, list):
        logger.error("declarative cron: [tool.sheppy] cron in %s must be an array of tables", path)
        return None
    declared: list[DeclaredCron] = []
    unloaded: list[UnloadedCron] = []
    for index, entry in enumerate(entries):
        if not isinstance(entry, dict):
            logger.error("declarative cron: entry %d in %s is not a table; skipped", index + 1, path)
            continue
        try:
            declared.append(_cron_from_entry(entry, default_queue))
        except ValidationError as exc:
            problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
            logger.error(
                "declarative cron: entry %d (%s) skipped: %s", index + 1, entry.get("task"), problems
            )
        except _TaskNotLoaded as exc:
            unloaded.append(exc.unloaded)
            logger.error("declarative cron: entry %d (%s) skipped: %s", index + 1, entry.get("task"), exc)
        except (ValueError, SheppyError) as exc:
            logger.error("declarative cron: entry %d (%s) skipped: %s", index + 1, entry.get("task"), exc)
    return CronFile(declared, unloaded)


async def reconcile(
    backend: Backend,
    declared: Sequence[DeclaredCron],
    queues: Sequence[str],
    unloaded: Sequence[UnloadedCron] = (),
) -> dict[str, int]:
    """Make the ``pyproject``-managed crons of ``queues`` (plus those ``declared`` names) match.

    A stored cron that an ``unloaded`` entry may stand for (same queue, task and expression) is kept.
    Returns counts: ``added``, ``removed`` (with their waiting occurrences), ``kept`` (left alone
    because their entry's task cannot be loaded here).
    """
    wanted: dict[str, dict[str, TaskCron]] = {name: {} for name in queues}
    for item in declared:
        wanted.setdefault(item.queue, {})[str(item.cron.deterministic_id)] = item.cron
    for entry in unloaded:
        wanted.setdefault(entry.queue, {})
    counts = {"added": 0, "removed": 0, "kept": 0}
    for queue, crons in wanted.items():
        stored: dict[str, TaskCron] = {}
        for record in await backend.get_crons(queue):
            try:
                found = TaskCron.model_validate(record)
            except ValidationError:
                continue
            stored[str(found.deterministic_id)] = found
        for cron_id, cron in crons.items():
            if cron_id not in stored and await backend.add_cron(queue, cron_id, cron.model_dump(mode="json")):
                counts["added"] += 1
                logger.info(
                    "declarative cron: added %s %s to queue %r", cron.expression, cron.spec.func, queue
                )
        for cron_id, stored_cron in stored.items():
            if stored_cron.managed_by != MANAGED_BY or cron_id in crons:
                continue
            if any(entry.matches(queue, stored_cron) for entry in unloaded):
                counts["kept"] += 1
                logger.warning(
                    "declarative cron: %s %s in queue %r is declared but its task cannot be loaded by this "
                    "worker; the stored cron is left as it is",
                    stored_cron.expression, stored_cron.spec.func, queue,
                )
                continue
            # Its waiting occurrences go with it, in the same step.
            if await backend.delete_cron(queue, cron_id):
                counts["removed"] += 1
                logger.info("declarative cron: removed %s from queue %r (no longer declared)", cron_id, queue)
    return counts


@dataclass
class DeclarativeCrons:
    """Per-worker state: re-reads ``path`` when it changes, or every :data:`RELOAD_INTERVAL` seconds."""

    path: Path = field(default_factory=lambda: Path.cwd() / "pyproject.toml")
    interval: float = RELOAD_INTERVAL
    _signature: tuple[float, int] | None = None
    _last: float = float("-inf")

    def _stat(self) -> tuple[float, int] | None:
        try:
            info = self.path.stat()
        except OSError:
            return None
        return (info.st_mtime, info.st_size)

    async def maybe_reconcile(self, backend: Backend, queues: Sequence[str]) -> dict[str, int] | None:
        """Reconcile if the file changed or the interval passed; None when nothing was done."""
        signature = self._stat()
        if signature is None:
            return None
        if signature == self._signature and time.monotonic() - self._last < self.interval:
            return None
        read = read_cron_file(self.path, queues[0])
        if read is None:
            return None
        counts = await reconcile(backend, read.declared, queues, read.unloaded)
        self._signature, self._last = signature, time.monotonic()
        return counts
