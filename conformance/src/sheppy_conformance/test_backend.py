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
from sheppy_conformance.plugin import cli_backend_factory, load_callable
from sheppy_conformance.suite import BackendConformance


@pytest.mark.sheppy_cli_suite
class TestConformance(BackendConformance):
    @pytest.fixture
    def backend_factory(self, request: pytest.FixtureRequest) -> BackendFactory:
        factory: BackendFactory = cli_backend_factory(request.config)
        return factory

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
