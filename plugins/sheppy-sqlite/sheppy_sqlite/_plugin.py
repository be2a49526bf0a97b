"""The entry point sheppy-core loads (group ``sheppy``): registers ``SQLiteBackend`` for ``sqlite://``."""

from __future__ import annotations

from collections.abc import Callable

from sheppy_core.hookspecs import hookimpl


@hookimpl
def register_backends(register: Callable[..., None]) -> None:
    from sheppy_sqlite._backend import SQLiteBackend

    register(SQLiteBackend)
