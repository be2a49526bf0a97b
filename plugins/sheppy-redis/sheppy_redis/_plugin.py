"""Entry point of the ``sheppy`` plugin group: registers :class:`~sheppy_redis.RedisBackend`."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sheppy_core.hookspecs import hookimpl
from sheppy_redis._backend import RedisBackend

__all__ = ["register_backends"]


@hookimpl
def register_backends(register: Callable[..., Any]) -> None:
    """Serve ``redis://``, ``rediss://`` and ``unix://`` with :class:`RedisBackend`."""
    register(RedisBackend)
