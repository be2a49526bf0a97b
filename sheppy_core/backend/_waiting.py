"""The two waits of the contract, for backends that poll: :func:`wait_for_finished` (``get_results``
with a timeout) and :func:`poll_for_claim` (``pop`` with a timeout, for ``BLOCKING_POP``).

Both poll the store; a backend with a notification channel (LISTEN/NOTIFY, pub/sub, an in-process
event) passes it as ``wake`` so that a notification ends a poll's sleep at once. ``wake`` is either an
``asyncio.Event``-like object (``wait()`` and ``clear()``: cleared before each read, so a notification
arriving during the read is not lost) or an async callable ``wait(seconds)`` that returns when woken or
when the seconds are up (whichever comes first; it may also return early for no reason).
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Protocol, TypeVar

from sheppy_core.backend._checks import check_task_ids

__all__ = ["Wake", "poll_for_claim", "wait_for_finished"]

T = TypeVar("T")


class _EventLike(Protocol):
    def wait(self) -> Awaitable[object]: ...

    def clear(self) -> None: ...


Wake = _EventLike | Callable[[float], Awaitable[object]]
"""An ``asyncio.Event``-like object, or an async ``wait(seconds)``."""


def _check_poll(poll: float) -> None:
    if not (isinstance(poll, int | float) and math.isfinite(poll) and poll > 0):
        raise ValueError(f"poll must be a finite number of seconds > 0, got {poll!r}")


def _armed(wake: Wake | None) -> None:
    """Ready ``wake`` for the next sleep: before a read, so a notification during the read counts."""
    if wake is not None and not callable(wake):
        wake.clear()


async def _sleep(seconds: float, wake: Wake | None) -> None:
    if wake is None:
        await asyncio.sleep(seconds)
    elif callable(wake):
        await wake(seconds)
    else:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(wake.wait(), seconds)


async def wait_for_finished(
    read_finished: Callable[[list[str]], Awaitable[Mapping[str, dict[str, Any]]]],
    task_ids: list[str],
    timeout: float | None,
    *,
    wake: Wake | None = None,
    poll: float = 0.05,
) -> dict[str, dict[str, Any]]:
    """``get_results``'s wait: ``{id: record}`` of the finished ones among ``task_ids``.

    ``read_finished(ids)`` reads the store once and returns ``{id: record}`` for those of ``ids`` that
    are finished (unknown and unfinished ids left out). The ids are checked
    (:func:`~sheppy_core.backend.check_task_ids`) and duplicates collapsed first; an empty list returns
    ``{}`` at once. Timeouts as the contract's ``get_results`` says:

    - ``None`` or negative: one read, no waiting;
    - ``0``: read every ``poll`` seconds (or when ``wake`` wakes) until all are finished;
    - ``> 0``: the same for at most ``timeout`` seconds, then ``TimeoutError("<n> of <m> task(s) did
      not finish within <timeout> s")``.

    With ``wake`` (see the module docstring) ``poll`` only bounds what a missed notification costs, so
    it can be long (a second or so). Cancelling the caller cancels the wait; nothing is left behind.
    """
    _check_poll(poll)
    if not task_ids:
        return {}
    wanted = list(dict.fromkeys(check_task_ids(task_ids)))
    deadline = None
    if timeout is not None and timeout >= 0:
        deadline = math.inf if timeout == 0 else time.monotonic() + timeout
    while True:
        _armed(wake)
        read = await read_finished(wanted)
        found = {task_id: record for task_id, record in read.items() if task_id in wanted}
        if deadline is None or len(found) == len(wanted):
            return found
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            missing = len(wanted) - len(found)
            raise TimeoutError(f"{missing} of {len(wanted)} task(s) did not finish within {timeout} s")
        await _sleep(min(poll, remaining), wake)


async def poll_for_claim(
    claim: Callable[[], Awaitable[list[T]]],
    timeout: float | None,
    *,
    wake: Wake | None = None,
    poll: float = 0.02,
) -> list[T]:
    """A blocking ``pop`` made of non-blocking claims: ``await claim()`` until it returns a non-empty
    list (returned), or ``[]`` once ``timeout`` seconds have passed.

    ``timeout`` as the contract's ``pop`` says: ``None`` or ``<= 0`` claims once and returns what it
    got; ``> 0`` claims, then every ``poll`` seconds (or as soon as ``wake`` wakes), the last time at
    the deadline. Cancelling the caller while it waits claims nothing: this loop only awaits
    ``claim()`` and sleeps, and shields nothing. A cancellation that arrives while ``claim()`` itself
    runs is ``claim``'s business: it must roll back or hand back a claim its caller will never receive
    (``[pop.cancel_mid_claim]``).

    What the conformance suite expects of the wake-up (``[pop.wakes_promptly]``): an idle
    ``pop(timeout=...)`` must return a task appended by another coroutine or backend object a median
    of at most 50 ms after ``append`` returned (``WAKE_MEDIAN_BOUND``). Polling every 20 ms (the
    default: about 10 ms at the median on a loaded 2-core machine) passes; every 100 ms (about 70 ms)
    does not. Every idle waiter then queries the store 50 times a second, so a backend with a
    notification channel should pass it as ``wake`` and poll rarely. Each waiter polls by itself, so
    ``n`` waiters and ``n`` appended tasks all wake (``[pop.wakes_all]``).
    """
    _check_poll(poll)
    if timeout is None or timeout <= 0:
        return await claim()
    deadline = time.monotonic() + timeout
    while True:
        _armed(wake)
        claimed = await claim()
        if claimed:
            return claimed
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return []
        await _sleep(min(poll, remaining), wake)
