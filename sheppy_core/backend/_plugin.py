"""The built-in backends, registered through the same hook as third-party plugins."""

from __future__ import annotations

from collections.abc import Callable

from sheppy_core.hookspecs import hookimpl


@hookimpl
def register_backends(register: Callable[..., None]) -> None:
    from sheppy_core.backend._memory import MemoryBackend

    register(MemoryBackend)
