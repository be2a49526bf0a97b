"""Task functions for tests/test_bad_input.py, imported by name as a user's task module would be."""

from __future__ import annotations

import math
from typing import Any

from pydantic import BaseModel

from sheppy_core import task


class Reading(BaseModel):
    value: float


@task
async def double(x: float) -> float:
    return x * 2


@task
async def total(xs: list[float], weights: dict[str, float] | None = None) -> float:
    return sum(xs)


@task
async def measure(reading: Reading) -> float:
    return reading.value


@task
async def echo(value: Any) -> Any:
    return value


@task
async def options(**settings: Any) -> int:
    return len(settings)


@task
async def infinite() -> float:
    return math.inf


@task
async def untyped_nan():  # type: ignore[no-untyped-def]  # no annotation: the result is inferred
    return {"ratio": math.nan}
