"""The SQL files: the shipped queries, statement splitting and the migration list (the named-query
parser itself is the backend kit's, tested in sheppy-core's tests/test_backend_sql.py)."""

from __future__ import annotations

import pytest
from sheppy_sqlite._sql import migrations, queries, split_statements


def test_shipped_queries_load() -> None:
    loaded = queries()
    assert {"claim", "store_result", "insert_tasks_unique", "pop_scheduled"} <= set(loaded)
    assert all(not sql.endswith(";") for sql in loaded.values())


def test_split_statements_keeps_trigger_bodies_whole() -> None:
    script = (
        "-- comment\nCREATE TABLE t (x);\n"
        "CREATE TRIGGER tr AFTER INSERT ON t BEGIN\n  INSERT INTO t VALUES (1);\n  SELECT 1;\nEND;\n"
        "INSERT INTO t VALUES ('a;b');\n"
    )
    statements = split_statements(script)
    assert len(statements) == 3
    assert statements[1].startswith("CREATE TRIGGER") and statements[1].endswith("END;")
    assert statements[2] == "INSERT INTO t VALUES ('a;b');"


def test_incomplete_statement_is_an_error() -> None:
    with pytest.raises(ValueError, match="incomplete"):
        split_statements("CREATE TABLE t (x)")


def test_migrations_are_numbered_from_one() -> None:
    found = migrations()
    assert [m.version for m in found] == list(range(1, len(found) + 1))
    assert found[0].name == "0001_initial.sql"
    assert any("CREATE TABLE tasks" in s for s in found[0].statements)
