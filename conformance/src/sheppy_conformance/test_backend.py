"""The suite as run by ``pytest --pyargs sheppy_conformance --sheppy-backend URL``.

The backend comes from the command line: ``--sheppy-backend URL`` (through the installed plugins'
URL schemes) or ``--sheppy-backend-factory module:callable``; ``--sheppy-drop-connection
module:callable`` supplies a real connection-breaking hook for the reconnect clauses;
``--sheppy-write-stored-text module:callable`` one that writes raw text into the store
(``robust.corrupt_record``).
"""

from __future__ import annotations

import pytest

from sheppy_conformance._env import BackendFactory, DropConnection, WriteStoredText
from sheppy_conformance.plugin import load_callable
from sheppy_conformance.suite import BackendConformance
from sheppy_core import get_backend


@pytest.mark.sheppy_cli_suite
class TestConformance(BackendConformance):
    @pytest.fixture
    def backend_factory(self, request: pytest.FixtureRequest) -> BackendFactory:
        config = request.config
        factory_spec = config.getoption("sheppy_backend_factory")
        if factory_spec:
            factory: BackendFactory = load_callable(factory_spec)
            return factory
        url: str = config.getoption("sheppy_backend")
        return lambda: get_backend(url)

    @pytest.fixture
    def sheppy_drop_connection(self, request: pytest.FixtureRequest) -> DropConnection:
        spec = request.config.getoption("sheppy_drop_connection")
        if spec:
            hook: DropConnection = load_callable(spec)
            return hook
        return self.drop_connection

    @pytest.fixture
    def sheppy_write_stored_text(self, request: pytest.FixtureRequest) -> WriteStoredText | None:
        spec = request.config.getoption("sheppy_write_stored_text")
        if spec:
            hook: WriteStoredText = load_callable(spec)
            return hook
        return None
