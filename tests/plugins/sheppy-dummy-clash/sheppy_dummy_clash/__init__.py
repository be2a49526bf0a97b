"""A test plugin that claims ``clash://`` (also served by sheppy-dummy) and serves ``oldver://`` with a
backend built for contract version 0."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

from sheppy_core.backend import CONTRACT_VERSION, MemoryBackend
from sheppy_core.hookspecs import hookimpl


class ClashBackend(MemoryBackend):  # type: ignore[misc, valid-type]
    url_schemes: ClassVar[tuple[str, ...]] = ("clash",)
    contract_version: ClassVar[int] = CONTRACT_VERSION


class OldContractBackend(MemoryBackend):  # type: ignore[misc, valid-type]
    url_schemes: ClassVar[tuple[str, ...]] = ("oldver",)
    contract_version: ClassVar[int] = CONTRACT_VERSION - 1


@hookimpl
def register_backends(register: Callable[..., Any]) -> None:
    register(ClashBackend)
    register(OldContractBackend)
