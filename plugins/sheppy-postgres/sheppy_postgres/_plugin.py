"""The entry point of sheppy-postgres: registers the backend for ``postgresql://`` and ``postgres://``."""

from __future__ import annotations

from collections.abc import Callable

from sheppy_core.hookspecs import hookimpl


@hookimpl
def register_backends(register: Callable[..., None]) -> None:
    from sheppy_postgres._backend import PostgresBackend

    register(PostgresBackend)
