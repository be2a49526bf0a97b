"""Backends an author has half written, for the suite's stop-once checks (``--sheppy-backend-factory``).

``HalfDone`` implements the connection methods and nothing else; the suite must refuse it before any
clause runs, naming what is missing, instead of erroring in every test.
"""

from __future__ import annotations

from typing import Any

from sheppy_core.backend import CONTRACT_VERSION, Backend


class HalfDone(Backend):
    url_schemes = ("halfdone",)
    contract_version = CONTRACT_VERSION

    def __init__(self) -> None:
        self._connected = False

    async def connect(self) -> None:
        self._connected = True

    async def disconnect(self) -> None:
        self._connected = False

    @property
    def is_connected(self) -> bool:
        return self._connected


def make_half_done() -> Any:
    """A factory function that instantiates the abstract class (fails at each call)."""
    return HalfDone()  # type: ignore[abstract]
