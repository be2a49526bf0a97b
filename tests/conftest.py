"""Shared fixtures for the core tests (all against memory://)."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator

# pytest-xdist's workers start with COLUMNS=80 and LINES=24; a rich Console made at import would keep
# that width for good, and the CLI's width tests set COLUMNS per command, as a terminal would.
if os.environ.get("PYTEST_XDIST_WORKER"):
    os.environ.pop("COLUMNS", None)
    os.environ.pop("LINES", None)

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
