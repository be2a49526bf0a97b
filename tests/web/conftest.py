"""Shared by the dashboard's in-process tests: the store a dashboard app reads."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from sheppy_core import MemoryBackend


@pytest.fixture
async def backend() -> AsyncIterator[MemoryBackend]:
    """A connected memory store (processing inline, as ``memory://`` gives)."""
    store = MemoryBackend()
    await store.connect()
    yield store
    await store.disconnect()
