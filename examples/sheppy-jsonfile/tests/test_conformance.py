"""The whole sheppy-core Backend contract, run against JsonFileBackend."""

from collections.abc import Callable
from pathlib import Path

import pytest
from sheppy_conformance import BackendConformance
from sheppy_jsonfile import JsonFileBackend


class TestJsonFileBackend(BackendConformance):
    @pytest.fixture
    def backend_factory(self, tmp_path: Path) -> Callable[[], JsonFileBackend]:
        # Every call: a new object on the same file, as a second worker process would have.
        return lambda: JsonFileBackend(tmp_path / "store.json")
