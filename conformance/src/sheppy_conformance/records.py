"""Task records and small helpers the clause tests share.

Records are real task records as sheppy-core hands them to a backend: ``Task.model_dump(mode="json")``
without the fields at their default values (``id``, ``status``, ``spec``, ``created_at`` always kept).
``full_task_record`` spells every field out, as records written by earlier versions do.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import reprlib
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from sheppy_core.backend import to_iso, utcnow
from sheppy_core.models import Task, TaskSpec

__all__ = [
    "FAR_FUTURE",
    "LEASE",
    "brief",
    "changes",
    "eventually",
    "finished",
    "full_task_record",
    "ids",
    "named",
    "raises",
    "requeued",
    "task_record",
    "within",
]

LEASE = 0.3
"""The short lease (seconds) the lease clauses use, so that expiry tests stay fast."""

FAR_FUTURE = datetime(2100, 1, 1, tzinfo=UTC)
"""A due time no real clock reaches during a test: only an explicit ``now=`` makes it due."""

FUNC = "sheppy_conformance.records:noop"


def noop(*args: Any) -> None:
    """The function the suite's records name (never run by the clause tests)."""


ALWAYS_STORED = frozenset({"id", "status", "spec", "created_at"})

_DEFAULTS = Task(spec=TaskSpec(func=FUNC)).model_dump(mode="json")


def task_record(n: int = 0, **fields: Any) -> dict[str, Any]:
    """A fresh task record with a new id, in the compact form sheppy-core stores; ``n`` is its argument
    so tests can tell records apart."""
    full = full_task_record(n)
    record = {
        k: v for k, v in full.items()
        if k in ALWAYS_STORED or not (type(v) is type(_DEFAULTS[k]) and v == _DEFAULTS[k])
    }
    record.update(fields)
    return record


def full_task_record(n: int = 0, **fields: Any) -> dict[str, Any]:
    """:func:`task_record` with every field spelled out, defaults included."""
    record = Task(spec=TaskSpec(func=FUNC, args=(n,))).model_dump(mode="json")
    record.update(fields)
    return record


def finished(record: dict[str, Any], status: str = "completed", result: Any = None) -> dict[str, Any]:
    """The record a worker would store after a final attempt."""
    done = dict(record)
    done.update(status=status, result=result, finished_at=to_iso(utcnow()))
    return done


def requeued(record: dict[str, Any], status: str = "pending", at: datetime | None = None) -> dict[str, Any]:
    """The record a worker would store to run the task again: now, or at ``at`` (retrying/scheduled)."""
    again = dict(record)
    again.pop("finished_at", None)  # at its default (None): left out, as sheppy-core stores it
    again["status"] = status
    if status == "retrying":
        again["next_retry_at"] = to_iso(at or FAR_FUTURE)
    elif status == "scheduled":
        again["scheduled_at"] = to_iso(at or FAR_FUTURE)
    return again


def ids(records: list[dict[str, Any]]) -> list[str]:
    return [str(r["id"]) for r in records]


def uid() -> str:
    return str(uuid.uuid4())


def future(seconds: float) -> datetime:
    return utcnow() + timedelta(seconds=seconds)


async def within(seconds: float, awaitable: Awaitable[Any]) -> Any:
    """Await with a deadline, so a hanging backend fails with a clear message instead of hanging."""
    # Not asyncio.wait_for: a TimeoutError the call itself raises (get_results) must pass through as is.
    task = asyncio.ensure_future(awaitable)
    done, _ = await asyncio.wait({task}, timeout=seconds)
    if not done:
        task.cancel()
        with contextlib.suppress(BaseException):
            await task
        raise AssertionError(f"backend call did not return within {seconds} s")
    return task.result()


async def eventually(check: Callable[[], Awaitable[bool]], timeout: float, interval: float = 0.05) -> bool:
    """Poll ``check`` until it is true or ``timeout`` passes; returns the last answer."""
    deadline = time.monotonic() + timeout
    while True:
        if await check():
            return True
        if time.monotonic() >= deadline:
            return False
        await asyncio.sleep(interval)


_BRIEF = reprlib.Repr()  # attributes, not keywords: Repr takes keywords only from Python 3.12
_BRIEF.maxstring = _BRIEF.maxother = 60
_BRIEF.maxlist = _BRIEF.maxdict = _BRIEF.maxset = _BRIEF.maxtuple = 6
_BRIEF.maxlevel = 3


def brief(value: Any) -> str:
    """A short repr of what a backend returned, for the first line of a failure message: long lists,
    dicts and strings are cut (``[1, 2, 3, 4, 5, 6, ...]``), so the line stays readable in the summary."""
    return _BRIEF.repr(value)


@contextlib.contextmanager
def raises(
    expected: type[BaseException] | tuple[type[BaseException], ...], why: str, *, match: str | None = None
) -> Iterator[pytest.ExceptionInfo[BaseException]]:
    """``pytest.raises`` whose failure says why in the contract's words: ``why`` is the first line when
    the call returns normally (``"pop(limit=0) must raise BackendInputError [pop.limit]; it returned"``).
    Any other exception propagates unchanged, as with ``pytest.raises``; ``match`` is its regex check
    of the message, whose failure also leads with ``why``."""
    try:
        with pytest.raises(expected) as info:
            yield info
    except pytest.fail.Exception:
        raise AssertionError(f"{why}; it returned normally") from None
    if match is not None and not re.search(match, str(info.value)):
        raise AssertionError(f"{why}; it raised {type(info.value).__name__}({brief(str(info.value))}), "
                             f"whose message does not match {match!r}")


def named(task_ids: Iterable[str], names: dict[str, str]) -> list[str]:
    """The ids by the name the test gave each record (an id it never stored shows as itself), so a
    message reads ``['queued', 'claimed']`` rather than two uuids."""
    return [names.get(task_id, task_id) for task_id in task_ids]


def changes(before: dict[str, Any], after: dict[str, Any]) -> dict[str, tuple[Any, Any]]:
    """The keys whose value differs between two answers (``get_stats``, a record), as
    ``{key: (before, after)}``."""
    return {key: (before.get(key), after.get(key)) for key in {**before, **after}
            if before.get(key) != after.get(key)}
