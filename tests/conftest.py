"""Shared fixtures for the core tests (all against memory://)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from sheppy_core import MemoryBackend, Queue


@pytest.fixture
async def backend() -> AsyncIterator[MemoryBackend]:
    memory = MemoryBackend(instant_processing=False)
    await memory.connect()
    yield memory
    await memory.disconnect()


@pytest.fixture
def queue(backend: MemoryBackend) -> Queue:
    return Queue(backend, "q")
