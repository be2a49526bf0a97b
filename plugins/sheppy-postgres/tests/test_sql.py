"""The shipped SQL files (no server needed)."""

from __future__ import annotations

import re

from sheppy_postgres._sql import load_migrations, load_queries, queries_for

# The named-query parser is the backend kit's (sheppy-core's tests/test_backend_kit.py); what is tested
# here is this package's files.


def test_shipped_queries_all_have_descriptions_and_schema_placeholders() -> None:
    queries = load_queries()
    assert {"claim_tasks", "append", "pop_scheduled", "store_finished", "purge_expired"} <= set(queries)
    for query in queries.values():
        assert query.description, query.name
        # Every table reference is schema-qualified, so the queries work on a caller's connection
        # whatever its search_path (transactional enqueue).
        assert not _UNQUALIFIED.search(query.sql), query.name


_TABLES = (
    "tasks|queues|crons|rate_limit_grants|rate_limit_windows|workflows|workflow_pending|schema_version"
    "|result_waiters"
)
_UNQUALIFIED = re.compile(rf"\b(?:FROM|INTO|UPDATE|JOIN|USING)\s+(?:{_TABLES})\b")


def test_queries_for_substitutes_the_quoted_schema() -> None:
    sql = queries_for('"we""ird"')["size"]
    assert '"we""ird".tasks' in sql
    assert "{schema}" not in sql


def test_migrations_are_numbered_from_one() -> None:
    migrations = load_migrations()
    assert [m.version for m in migrations] == list(range(1, len(migrations) + 1))
    assert migrations[0].name == "initial"
    assert "CREATE TABLE tasks" in migrations[0].sql
