"""Rate-limit budgets as plain data, for backends that keep them in Python (memory, SQLite).

A key's budget is the starts it made, and the starts it *reserved* for deferred tasks, by task id:
``{task_id: start time}`` (Unix seconds). A deferral reserves its start at once, in the same atomic
step, so a deferred task that comes back at its time is granted without being counted again, and a
task deferred after it queues behind it: no deferred task is pushed back by one deferred earlier, and a
burst does not come back all at once. Each deferral gets the later of "when the budget frees up"
(counting the reservations) and "the previous reservation + ``rate_period / max_rate``" (sheppy's
stagger).

Backends written in another language (the Redis script, the PostgreSQL function) follow the same steps.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

__all__ = ["FixedWindow", "take_fixed_window", "take_sliding_window"]

_MIN_WAIT = 0.001


@dataclass
class FixedWindow:
    """One key's fixed-window budget: the current window began at ``start`` (None: no window open);
    ``starts`` holds the starts made or reserved in it and in later windows."""

    start: float | None = None
    starts: dict[str, float] = field(default_factory=dict)


def _staggered(slot: float, starts: dict[str, float], max_rate: int, period: float, now: float) -> float:
    """No sooner than ``slot``, nor than the latest pending reservation + ``period / max_rate``."""
    latest = max(starts.values(), default=now)
    if latest > now:
        slot = max(slot, latest + period / max_rate)
    return max(slot, now + _MIN_WAIT)


def _held(starts: dict[str, float], task_id: str, now: float) -> float | bool | None:
    """For a task that already holds a start: None (granted again, not charged twice) or the seconds
    until its reservation; False for a task holding none."""
    if task_id not in starts:
        return False
    at = starts[task_id]
    return None if at <= now else max(at - now, _MIN_WAIT)


def take_sliding_window(
    starts: dict[str, float], max_rate: int, period: float, task_id: str, now: float
) -> float | None:
    """``[rate_limit.sliding_window]``: updates ``starts`` in place; None if granted, else the seconds
    until the start reserved for ``task_id``."""
    for holder in [t for t, at in starts.items() if at <= now - period]:
        del starts[holder]
    held = _held(starts, task_id, now)
    if held is not False:
        return held
    if len(starts) < max_rate:
        starts[task_id] = now
        return None
    # The budget frees up when the max_rate-th latest start (or reservation) leaves the window.
    frees = sorted(starts.values())[-max_rate] + period
    slot = _staggered(frees, starts, max_rate, period, now)
    starts[task_id] = slot
    return slot - now


def window_index(at: float, start: float, period: float) -> int:
    """Which window (0: the one beginning at ``start``) the time ``at`` falls in."""
    return math.floor((at - start) / period + 1e-9)


def take_fixed_window(
    window: FixedWindow, max_rate: int, period: float, task_id: str, now: float
) -> float | None:
    """``[rate_limit.fixed_window]``: updates ``window`` in place; None if granted, else the seconds
    until the start reserved for ``task_id``.

    As sheppy's, a window begins with the first start after the previous window ended; while
    reservations reach into later windows, those follow one another without a gap.
    """
    if window.start is not None and now >= window.start + period:
        current = window.start + window_index(now, window.start, period) * period
        if any(at >= current for at in window.starts.values()):
            window.start = current
            window.starts = {t: at for t, at in window.starts.items() if at >= current}
        else:
            window.start = None
            window.starts = {}
    held = _held(window.starts, task_id, now)
    if held is not False:
        return held
    if window.start is None:
        window.start = now
    start = window.start
    if sum(1 for at in window.starts.values() if at < start + period) < max_rate:
        window.starts[task_id] = now
        return None
    slot = _staggered(start + period, window.starts, max_rate, period, now)
    while True:
        index = window_index(slot, start, period)
        taken = sum(1 for at in window.starts.values() if window_index(at, start, period) == index)
        if taken < max_rate:
            break
        slot = start + (index + 1) * period
    window.starts[task_id] = slot
    return slot - now
