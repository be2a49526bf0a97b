"""The entry point sheppy-core loads (group ``sheppy``): it registers the backend for ``jsonfile://``."""

from __future__ import annotations

from collections.abc import Callable

from sheppy_core.hookspecs import hookimpl
from sheppy_jsonfile._backend import JsonFileBackend


@hookimpl
def register_backends(register: Callable[..., None]) -> None:
    register(JsonFileBackend)
