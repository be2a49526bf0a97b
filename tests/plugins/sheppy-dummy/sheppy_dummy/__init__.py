"""A test plugin: a MemoryBackend under the schemes ``dummy://`` and ``clash://``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar, Self

from sheppy_core.backend import CONTRACT_VERSION, MemoryBackend
from sheppy_core.hookspecs import hookimpl


class DummyBackend(MemoryBackend):  # type: ignore[misc, valid-type]
    url_schemes: ClassVar[tuple[str, ...]] = ("dummy", "clash")
    contract_version: ClassVar[int] = CONTRACT_VERSION

    @classmethod
    def from_url(cls, url: str) -> Self:
        backend = cls(instant_processing=False)
        backend.url = url
        return backend


@hookimpl
def register_backends(register: Callable[..., Any]) -> None:
    register(DummyBackend)
