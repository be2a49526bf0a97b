"""How the pages write numbers, ages, times and values (the Jinja2 filters)."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any, Final

from sheppy_core.backend._base import DEFAULT_COUNT_CAP

__all__ = ["FILTERS", "age", "count", "pretty", "seconds", "when"]


def count(value: int, cap: int = DEFAULT_COUNT_CAP) -> str:
    """``1,234``; ``10,000+`` for a count past the cap."""
    return f"{cap:,}+" if value > cap else f"{value:,}"


def age(value: timedelta | None) -> str:
    """``3 s``, ``4 min``, ``2 h``, ``5 d``; ``—`` for none."""
    if value is None:
        return "—"
    secs = int(value.total_seconds())
    if secs < 120:
        return f"{secs} s"
    if secs < 7200:
        return f"{secs // 60} min"
    if secs < 172_800:
        return f"{secs // 3600} h"
    return f"{secs // 86_400} d"


def seconds(value: float | None) -> str:
    if value is None:
        return "—"
    return f"{value * 1000:.0f} ms" if value < 1 else f"{value:.2f} s"


def when(value: Any) -> str:
    """A stored time as ``2026-01-02 03:04:05Z``; ``—`` for none."""
    if value is None or value == "":
        return "—"
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M:%SZ")
    text = str(value)
    return text.replace("T", " ").split(".")[0].replace("+00:00", "") + ("Z" if "T" in text else "")


def pretty(value: Any) -> str:
    """JSON, indented; ``repr`` for what JSON cannot hold."""
    try:
        return json.dumps(value, indent=2, sort_keys=True, default=str, ensure_ascii=False)
    except (TypeError, ValueError):
        return repr(value)


FILTERS: Final[dict[str, Callable[..., str]]] = {
    "count": count, "age": age, "seconds": seconds, "when": when, "pretty": pretty,
}
