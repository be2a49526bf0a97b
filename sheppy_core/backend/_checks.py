"""Argument checks every backend makes the same way: queue names and task ids it can store, counts,
aware datetimes and rate-limit arguments.

Public through :mod:`sheppy_core.backend` (clause ``[input.unencodable]`` of the contract). A backend
calls :func:`check_queue_name` at the top of every method taking a queue name and
:func:`check_task_id` / :func:`check_task_ids` for ids it is given; ids inside records are checked by
:func:`~sheppy_core.backend.task_id_of`. :func:`check_count` guards ``pop(limit)`` and
``get_pending(count)``, :func:`check_aware` ``schedule(at)`` and ``pop_scheduled(now)``,
:func:`check_rate_limit` the arguments of ``acquire_rate_limit``, :func:`check_seconds` the timeout of
``wait_for_change``. The checks run before anything is sent to a store, so a refused call stores
nothing and leaves the connection as it was. Each raises ``BackendInputError`` naming the method, the
argument and what it got.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from datetime import datetime

from sheppy_core.exceptions import BackendInputError, TaskStateError

__all__ = [
    "RATE_LIMIT_STRATEGIES",
    "UNFINISHED_DELETE",
    "check_aware",
    "check_count",
    "check_queue_name",
    "check_rate_limit",
    "check_seconds",
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


RATE_LIMIT_STRATEGIES: tuple[str, ...] = ("sliding_window", "fixed_window")
"""The strategies ``acquire_rate_limit`` knows (clauses ``[rate_limit.sliding_window]``/``fixed_window``)."""


def check_count(value: object, name: str, method: str) -> int:
    """``value`` if it is an integer ``>= 1`` (``pop``'s ``limit``, ``get_pending``'s ``count``);
    anything else — a bool, a float, ``0`` — raises ``BackendInputError``."""
    # bool is an int subclass, but ``pop(limit=True)`` is a caller's mistake, not "1".
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise BackendInputError(f"{method}() {name} must be an integer >= 1, got {value!r}")
    return value


def check_seconds(value: object, name: str, method: str) -> float:
    """``value`` as a float if it is a finite number of seconds ``> 0`` (``wait_for_change``'s
    ``timeout``); anything else — ``0``, a negative number, NaN, infinity, a bool — raises
    ``BackendInputError``."""
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or value <= 0
    ):
        raise BackendInputError(f"{method}() {name} must be a finite number of seconds > 0, got {value!r}")
    return float(value)


def check_aware(moment: object, name: str, method: str) -> datetime:
    """``moment`` if it is a timezone-aware ``datetime``; a naive one (or anything else) raises
    ``BackendInputError``: the contract compares times across clients, which needs an offset."""
    if not isinstance(moment, datetime) or moment.utcoffset() is None:
        raise BackendInputError(f"{method}() needs an aware datetime for {name!r}, got {moment!r}")
    return moment


def check_rate_limit(max_rate: object, rate_period: object, strategy: object) -> None:
    """Refuse what ``acquire_rate_limit`` cannot enforce: an unknown ``strategy``, a ``max_rate`` that
    is not an integer ``>= 1``, a ``rate_period`` that is not a finite number of seconds ``> 0``."""
    if strategy not in RATE_LIMIT_STRATEGIES:
        raise BackendInputError(
            f"unknown rate-limit strategy {strategy!r}; use one of {', '.join(RATE_LIMIT_STRATEGIES)}"
        )
    if isinstance(max_rate, bool) or not isinstance(max_rate, int) or max_rate < 1:
        raise BackendInputError(f"rate limit max_rate must be an integer >= 1, got {max_rate!r}")
    if (
        isinstance(rate_period, bool)
        or not isinstance(rate_period, int | float)
        or not math.isfinite(rate_period)
        or rate_period <= 0
    ):
        raise BackendInputError(f"rate limit rate_period must be seconds > 0, got {rate_period!r}")


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
