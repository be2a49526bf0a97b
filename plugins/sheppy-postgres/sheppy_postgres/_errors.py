"""Turning asyncpg's exceptions into sheppy-core's, so no driver exception reaches a caller."""

from __future__ import annotations

import asyncio

import asyncpg

from sheppy_core.exceptions import BackendConnectionError, BackendError, BackendInputError

__all__ = ["is_connection_problem", "translate"]

# SQLSTATE classes/codes that mean "the server went away or cannot take us now": retry later.
_CONNECTION_CLASSES = ("08",)  # connection_exception
_CONNECTION_CODES = frozenset({
    "57P01",  # admin_shutdown (pg_ctl stop -m fast)
    "57P02",  # crash_shutdown
    "57P03",  # cannot_connect_now (starting up / shutting down)
    "53300",  # too_many_connections
    "40001",  # serialization_failure: retryable as well
    "40P01",  # deadlock_detected: retryable
})


def is_connection_problem(exc: BaseException) -> bool:
    """True for errors after which the same call may succeed once the server is back."""
    if isinstance(exc, asyncpg.PostgresError):
        code = getattr(exc, "sqlstate", None) or ""
        return code.startswith(_CONNECTION_CLASSES) or code in _CONNECTION_CODES
    if isinstance(exc, asyncpg.exceptions.InternalClientError):
        # Seen when the server ends a session (pg_terminate_backend) while asyncpg had it idle: the
        # connection is unusable, and the pool replaces it.
        return True
    if isinstance(exc, asyncpg.InterfaceError):
        # "connection is closed", "pool is closing", "connection was closed in the middle of operation"
        return "closed" in str(exc) or "closing" in str(exc)
    return isinstance(exc, OSError | asyncio.TimeoutError | TimeoutError | ConnectionError)


def translate(exc: BaseException, action: str, where: str) -> BackendError:
    """The sheppy-core error for a driver failure while doing ``action`` on ``where`` (a redacted URL)."""
    if isinstance(exc, BackendError):
        return exc
    detail = f"{type(exc).__name__}: {exc}"
    if is_connection_problem(exc):
        return BackendConnectionError(f"PostgreSQL backend at {where}: {action} failed, connection lost "
                                      f"or server unreachable ({detail})")
    # Server-side class 22 errors, and asyncpg's client-side DataError (a ValueError) for bad parameters.
    if isinstance(exc, asyncpg.DataError | ValueError):
        return BackendInputError(f"PostgreSQL backend at {where}: {action} rejected its input ({detail})")
    return BackendError(f"PostgreSQL backend at {where}: {action} failed ({detail})")
