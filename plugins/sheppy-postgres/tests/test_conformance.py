"""The sheppy-conformance suite against PostgreSQL: every clause, every declared capability."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from urllib.parse import parse_qs, urlsplit

import asyncpg
import pytest
from sheppy_conformance import BackendConformance
from sheppy_postgres import PostgresBackend

from sheppy_core.backend import Backend

from .conftest import SERVER_URL, url_for, write_raw_task


class TestPostgresBackend(BackendConformance):
    @pytest.fixture
    def backend_factory(self, schema: str) -> Callable[[], PostgresBackend]:
        # Each object gets its own application_name, so drop_connection can find its server sessions.
        return lambda: PostgresBackend.from_url(
            url_for(schema, pool_max=4, application_name=f"sheppy-conf-{uuid.uuid4().hex[:10]}")
        )

    async def drop_connection(self, backend: Backend) -> None:
        """Kill the backend's server sessions for real (pool and LISTEN connections)."""
        assert isinstance(backend, PostgresBackend)
        name = parse_qs(urlsplit(backend.config.url).query)["application_name"][0]
        conn = await asyncpg.connect(SERVER_URL)
        try:
            await conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1", name
            )
        finally:
            await conn.close()

    async def write_stored_text(self, backend: Backend, queue_name: str, task_id: str, text: str) -> None:
        """Insert a queued row whose data is ``text``, at the tail, with plain SQL (robust.corrupt_record)."""
        assert isinstance(backend, PostgresBackend)
        await write_raw_task(backend.schema, queue_name, task_id, text)
