"""The ``@clause`` decorator: ties a test to a contract clause id, a capability and a time limit.

Kept free of sheppy-core and asyncio imports so that the pytest plugin, which reads these marks, stays
cheap to import for projects that never use the suite.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any, TypeVar

import pytest

__all__ = ["CLAUSE_MARK", "DEFAULT_TIMEOUT", "clause", "clause_of", "required_capability"]

F = TypeVar("F", bound=Callable[..., Any])

CLAUSE_MARK = "sheppy_clause"
"""Name of the pytest mark carrying ``(clause_id,)`` and ``requires=<capability or None>``."""

DEFAULT_TIMEOUT = 10.0
"""Seconds a single clause test may take before pytest-timeout fails it (a hanging backend)."""


def clause(
    clause_id: str, *, requires: str | None = None, timeout: float = DEFAULT_TIMEOUT
) -> Callable[[F], F]:
    """Mark a test as checking ``clause_id`` of the Backend contract.

    ``requires`` names the capability the clause depends on; without it the clause is required and may
    never be skipped. Coroutine tests are also marked for pytest-asyncio explicitly, so the suite works
    whatever ``asyncio_mode`` the adopting project uses.
    """
    if clause_id.replace("_", "").replace(".", "").isalnum() is False or "." not in clause_id:
        raise ValueError(f"clause id must look like 'area.rule', got {clause_id!r}")

    def decorate(func: F) -> F:
        marked: Any = pytest.mark.sheppy_clause(clause_id, requires=requires)(func)
        marked = pytest.mark.timeout(timeout)(marked)
        if inspect.iscoroutinefunction(func):
            marked = pytest.mark.asyncio(marked)
        return marked  # type: ignore[no-any-return]

    return decorate


def clause_of(item: pytest.Item) -> str | None:
    """The clause id a collected test checks, or None for tests that are not clauses."""
    mark = item.get_closest_marker(CLAUSE_MARK)
    return str(mark.args[0]) if mark is not None and mark.args else None


def required_capability(item: pytest.Item) -> str | None:
    """The capability a clause test needs, or None when the clause is required of every backend."""
    mark = item.get_closest_marker(CLAUSE_MARK)
    return None if mark is None else mark.kwargs.get("requires")
