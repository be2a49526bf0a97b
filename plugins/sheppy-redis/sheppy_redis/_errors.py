"""Turning redis-py's exceptions into the contract's: no driver exception leaves the backend."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from redis import exceptions as redis_errors

from sheppy_core.exceptions import (
    BackendConnectionError,
    BackendError,
    BackendInputError,
    SheppyError,
)

__all__ = ["translate_errors"]


@contextmanager
def translate_errors(operation: str, safe_url: str) -> Iterator[None]:
    """Map what redis-py raises during ``operation`` to BackendConnectionError/InputError/Error.

    ``safe_url`` is the redacted URL; messages never carry a password.
    """
    try:
        yield
    except SheppyError:
        raise
    except UnicodeError as exc:
        # redis-py encodes str arguments as UTF-8; a lone surrogate has no such form (the kit's checks
        # refuse such queue names and ids first; this covers any other string, e.g. a rate-limit key).
        raise BackendInputError(f"{operation}: Redis cannot store text without a UTF-8 form: {exc}") from None
    except (redis_errors.ConnectionError, redis_errors.TimeoutError, OSError) as exc:
        # BusyLoadingError (server still loading its data) is a ConnectionError: retry later.
        raise BackendConnectionError(f"Redis at {safe_url} unreachable during {operation}: {exc}") from None
    except redis_errors.DataError as exc:
        raise BackendInputError(f"{operation}: Redis refused the input: {exc}") from None
    except (redis_errors.RedisError, redis_errors.RedisClusterException) as exc:
        raise BackendError(f"{operation} failed on Redis at {safe_url}: {exc}") from None
