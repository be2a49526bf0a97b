"""Argument checks every backend makes the same way: queue names and task ids it can store.

Public through :mod:`sheppy_core.backend` (clause ``[input.unencodable]`` of the contract). A backend
calls :func:`check_queue_name` at the top of every method taking a queue name and
:func:`check_task_id` / :func:`check_task_ids` for ids it is given; ids inside records are checked by
:func:`~sheppy_core.backend.task_id_of`. The checks run before anything is sent to a store, so a
refused call stores nothing and leaves the connection as it was.
"""

from __future__ import annotations

from collections.abc import Iterable

from sheppy_core.exceptions import BackendInputError, TaskStateError

__all__ = [
    "UNFINISHED_DELETE",
    "check_queue_name",
    "check_task_id",
    "check_task_ids",
    "unfinished_delete_error",
]

UNFINISHED_DELETE = "Only finished tasks can be deleted, cancel the task first"
"""sheppy's words for ``delete_task`` of a task that is not finished (its users' tests match them)."""


def _utf8_problem(text: str) -> str | None:
    """Why ``text`` has no UTF-8 form (a lone surrogate), or None. ASCII, the usual case, is free."""
    if text.isascii():
        return None
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        return f"{exc.reason} (U+{ord(text[exc.start]):04X} at position {exc.start})"
    return None


def check_queue_name(queue_name: object) -> str:
    """``queue_name`` if a backend can store it: a non-empty string with a UTF-8 form. Anything else
    — not a string, empty, or holding a lone surrogate such as ``"\\ud800"`` — raises
    ``BackendInputError`` naming the problem. Every other character (``:``, ``*``, NUL, emoji) is fine.
    """
    if not isinstance(queue_name, str):
        raise BackendInputError(f"queue name must be a non-empty string, got {type(queue_name).__name__}")
    if not queue_name:
        raise BackendInputError("queue name '' is empty: give a name such as 'default'")
    problem = _utf8_problem(queue_name)
    if problem is not None:
        raise BackendInputError(f"queue name {queue_name!r} cannot be encoded as UTF-8: {problem}")
    return queue_name


def check_task_id(task_id: object) -> str:
    """``task_id`` as a string if a backend can store and find it again: non-empty, without NUL
    (``"\\x00"``, which C strings and PostgreSQL text cannot hold) and with a UTF-8 form; otherwise
    ``BackendInputError`` naming the problem. A string is returned as the very object given."""
    text = task_id if isinstance(task_id, str) else ("" if task_id is None else str(task_id))
    if not text:
        raise BackendInputError(f"task id must be a non-empty string, got {task_id!r}")
    if "\x00" in text:
        raise BackendInputError(f"task id {text!r} contains NUL ('\\x00'), which backends cannot store")
    problem = _utf8_problem(text)
    if problem is not None:
        raise BackendInputError(f"task id {text!r} cannot be encoded as UTF-8: {problem}")
    return text


def check_task_ids(task_ids: Iterable[object]) -> list[str]:
    """:func:`check_task_id` for each id, in order (a lookup's list of ids)."""
    return [check_task_id(task_id) for task_id in task_ids]


def unfinished_delete_error(
    task_id: str, status: object = None, queue_name: str | None = None
) -> TaskStateError:
    """The ``TaskStateError`` a backend raises when ``delete_task`` meets a task that is not finished
    (``[delete.unfinished]``): sheppy's words first, then which task and its status."""
    where = f" in queue {queue_name!r}" if queue_name is not None else ""
    state = f" (status {status!r})" if status is not None else ""
    return TaskStateError(
        f"{UNFINISHED_DELETE}: task {task_id}{where} is not finished{state}; it was not deleted"
    )
