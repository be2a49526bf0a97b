"""The named-query parser and the shipped SQL files (no server needed)."""

from __future__ import annotations

import re

import pytest
from sheppy_postgres._sql import load_migrations, load_queries, parse_queries, queries_for


def test_parse_queries_reads_name_description_and_body() -> None:
    text = """-- a file comment, ignored
-- name: first
-- Does the first thing.
SELECT 1

-- name: second_one
--   Does the second thing.
SELECT *
FROM t
WHERE x = $1
"""
    queries = parse_queries(text)
    assert list(queries) == ["first", "second_one"]
    assert queries["first"].description == "Does the first thing."
    assert queries["first"].sql == "SELECT 1"
    assert queries["second_one"].sql == "SELECT *\nFROM t\nWHERE x = $1"


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("-- name: a\nSELECT 1\n", "no '-- description'"),
        ("-- name: a\n-- Described.\n\n", "no SQL"),
        ("-- name: a\n-- One.\nSELECT 1\n-- name: a\n-- Two.\nSELECT 2\n", "defined twice"),
    ],
)
def test_parse_queries_rejects_malformed_blocks(text: str, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        parse_queries(text)


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
