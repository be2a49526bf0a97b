"""``BackendConformance``: every clause test, as one base class a backend's test-suite subclasses.

A plugin adopts the suite in its own ``tests/test_conformance.py``::

    from sheppy_conformance import BackendConformance
    from sheppy_toy import ToyBackend

    class TestToyBackend(BackendConformance):
        def make_backend(self):
            return ToyBackend.from_url("toy://")

``make_backend`` (or, when it needs other fixtures such as ``tmp_path``, a ``backend_factory`` fixture
returning a zero-argument callable) must return a new, unconnected backend object on the *same store*
at every call: the suite uses several objects to check what concurrent workers see.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import ClassVar

import pytest
import pytest_asyncio

from sheppy_conformance._clause import required_capability
from sheppy_conformance._env import BackendFactory, DropConnection, Env, WriteStoredText, describe_backend
from sheppy_conformance.clauses.behaviour import BehaviourClauses
from sheppy_conformance.clauses.claim import ClaimClauses
from sheppy_conformance.clauses.enqueue import EnqueueClauses
from sheppy_conformance.clauses.inspect import InspectionClauses
from sheppy_conformance.clauses.lifecycle import LifecycleClauses
from sheppy_conformance.clauses.operator import OperatorClauses
from sheppy_conformance.clauses.optional import OptionalClauses
from sheppy_conformance.clauses.results import ResultClauses
from sheppy_conformance.clauses.robust import RobustnessClauses
from sheppy_conformance.clauses.stateful import StatefulClauses
from sheppy_conformance.plugin import RESULTS_KEY, abstract_backend_message, abstract_class_of, suite_key
from sheppy_core.backend import Backend, missing_capability_reason

__all__ = ["BackendConformance"]

_CONNECT_SECONDS = 15.0


class BackendConformance(
    EnqueueClauses,
    ClaimClauses,
    ResultClauses,
    InspectionClauses,
    OperatorClauses,
    LifecycleClauses,
    OptionalClauses,
    RobustnessClauses,
    StatefulClauses,
    BehaviourClauses,
):
    """The whole conformance suite. Subclass it (the name must start with ``Test``) and override
    :meth:`make_backend` or the ``backend_factory`` fixture.

    ``known_failures`` maps clause ids to reasons: those clauses become expected failures, and
    one that starts passing fails with "declared failure now passes" so the list never goes stale.
    Override :meth:`drop_connection` to break the connection for real (kill the client socket, restart
    the server); the default only disconnects and reconnects.
    """

    known_failures: ClassVar[dict[str, str]] = {}

    def make_backend(self) -> Backend:
        """A new, unconnected backend object on the store under test (override this or the fixture)."""
        raise NotImplementedError

    async def drop_connection(self, backend: Backend) -> None:
        """Break ``backend``'s connection between two calls. Default: ``disconnect()`` + ``connect()``."""
        await backend.disconnect()
        await backend.connect()

    write_stored_text: WriteStoredText | None = None
    """Override with an async method ``(backend, queue_name, task_id, text)`` that writes ``text`` into
    the store as the stored record of a queued task, behind the backend's back (a row, hash or file
    entry whose data is ``text``), for ``robust.corrupt_record``. Without it that clause is skipped,
    except for backends offering ``inject_stored_text(queue_name, task_id, text)`` (the memory one)."""

    @pytest.fixture
    def backend_factory(self) -> BackendFactory:
        if type(self).make_backend is BackendConformance.make_backend:
            pytest.fail(f"{type(self).__name__} must override make_backend() or the backend_factory fixture")
        return self.make_backend

    @pytest.fixture
    def sheppy_drop_connection(self) -> DropConnection:
        return self.drop_connection

    @pytest.fixture
    def sheppy_write_stored_text(self) -> WriteStoredText | None:
        return self.write_stored_text

    @pytest.fixture(autouse=True)
    def _sheppy_capability_gate(
        self, request: pytest.FixtureRequest, backend_factory: BackendFactory
    ) -> None:
        try:
            probe = backend_factory()  # unconnected: building a backend does no I/O
        except TypeError as exc:
            # An abstract backend class would fail every test the same way: stop once, naming what is
            # missing.
            cls = abstract_class_of(exc)
            message = abstract_backend_message(cls) if cls is not None else None
            if message is None:
                raise
            pytest.exit(message, returncode=pytest.ExitCode.TESTS_FAILED)
        session_results = request.config.stash.get(RESULTS_KEY, None)
        if session_results is not None:
            results = session_results.suite(suite_key(request.node))
            if not results.backend:
                results.backend = describe_backend(probe)
        needed = required_capability(request.node)
        if needed is not None and needed not in type(probe).capabilities:
            pytest.skip(missing_capability_reason(needed))

    @pytest_asyncio.fixture
    async def env(
        self,
        request: pytest.FixtureRequest,
        backend_factory: BackendFactory,
        sheppy_drop_connection: DropConnection,
        sheppy_write_stored_text: WriteStoredText | None,
    ) -> AsyncIterator[Env]:
        backend = backend_factory()
        await asyncio.wait_for(backend.connect(), _CONNECT_SECONDS)
        await _record_server(request, backend)
        environment = Env(backend_factory, backend, sheppy_drop_connection, sheppy_write_stored_text)
        yield environment
        await environment.close()


async def _record_server(request: pytest.FixtureRequest, backend: Backend) -> None:
    """Put the server's own facts (``server_info()``: its version, the schema version) in the report,
    once per run: a verdict holds for the server it was reached on."""
    session_results = request.config.stash.get(RESULTS_KEY, None)
    if session_results is None:
        return
    results = session_results.suite(suite_key(request.node))
    if "server" in results.backend:
        return
    try:
        info = await asyncio.wait_for(backend.server_info(), _CONNECT_SECONDS)
    except Exception as exc:  # the facts are for the report; their absence is not the backend's failure
        info = {"error": f"server_info() failed: {type(exc).__name__}: {exc}"}
    results.backend["server"] = {str(k): v for k, v in info.items()}
