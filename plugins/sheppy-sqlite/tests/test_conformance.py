"""The sheppy-conformance suite against a real SQLite file (one fresh file per test)."""

from __future__ import annotations

from pathlib import Path

import pytest
from sheppy_conformance import BackendConformance
from sheppy_sqlite import SQLiteBackend


class TestSQLiteConformance(BackendConformance):
    @pytest.fixture
    def backend_factory(self, tmp_path: Path) -> object:
        url = f"sqlite:///{tmp_path / 'conformance.db'}"
        return lambda: SQLiteBackend.from_url(url)


class TestSQLiteConformanceThreadOnly(BackendConformance):
    """The same with every statement sent through aiosqlite's thread (``fast_path=false``): the path
    taken when the file is busy, and always with ``synchronous=full``."""

    @pytest.fixture
    def backend_factory(self, tmp_path: Path) -> object:
        url = f"sqlite:///{tmp_path / 'conformance.db'}?fast_path=false"
        return lambda: SQLiteBackend.from_url(url)
