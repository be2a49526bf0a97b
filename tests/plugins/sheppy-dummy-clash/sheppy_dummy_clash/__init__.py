"""A test plugin that claims ``clash://`` (also served by sheppy-dummy), serves ``oldver://`` with a
backend built for contract version 0 and ``stub://`` with a backend that implements no contract method."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar, Self

from sheppy_core.backend import CONTRACT_VERSION, Backend, MemoryBackend
from sheppy_core.hookspecs import hookimpl


class ClashBackend(MemoryBackend):  # type: ignore[misc, valid-type]
    url_schemes: ClassVar[tuple[str, ...]] = ("clash",)
    contract_version: ClassVar[int] = CONTRACT_VERSION


class OldContractBackend(MemoryBackend):  # type: ignore[misc, valid-type]
    url_schemes: ClassVar[tuple[str, ...]] = ("oldver",)
    contract_version: ClassVar[int] = CONTRACT_VERSION - 1


class StubBackend(Backend):
    """What an author has after the first five minutes: the class and its URL, no contract method."""

    url_schemes: ClassVar[tuple[str, ...]] = ("stub",)
    contract_version: ClassVar[int] = CONTRACT_VERSION

    @classmethod
    def from_url(cls, url: str) -> Self:
        return cls()


@hookimpl
def register_backends(register: Callable[..., Any]) -> None:
    register(ClashBackend)
    register(OldContractBackend)
    register(StubBackend)
