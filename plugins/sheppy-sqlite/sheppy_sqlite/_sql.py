"""The SQL of the backend, kept as SQL: named queries and numbered migrations, read with importlib.resources.

``sql/queries.sql`` holds every statement the backend runs, each under a ``-- name: some_name`` header
followed by ``--`` description lines. ``sql/migrations/NNNN_description.sql`` are the schema versions,
applied in number order by :mod:`sheppy_sqlite._migrations`. Parsing and ordering are the backend kit's
(:func:`sheppy_core.backend.load_named_queries`, :func:`~sheppy_core.backend.load_migrations`); what is
SQLite's own is splitting a migration into the statements ``execute`` takes one at a time.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from functools import cache

from sheppy_core.backend import load_migrations, load_named_queries

__all__ = ["Migration", "migrations", "queries", "split_statements"]

_PACKAGE = "sheppy_sqlite"


@cache
def queries() -> dict[str, str]:
    """The named queries of ``sql/queries.sql``, parsed once: ``{name: SQL}``."""
    return {name: query.sql for name, query in load_named_queries(_PACKAGE).items()}


@dataclass(frozen=True)
class Migration:
    """One schema version: its number, file name and statements."""

    version: int
    name: str
    statements: list[str]

    def __repr__(self) -> str:
        return f"<Migration {self.version} {self.name}>"


def split_statements(script: str) -> list[str]:
    """Split a script into complete statements.

    ``sqlite3.complete_statement`` knows about string literals and ``CREATE TRIGGER ... BEGIN ... END``,
    so a ``;`` inside a trigger body does not end the statement. The statements are run one by one with
    ``execute`` inside the migration transaction: ``executescript`` would commit that transaction first.
    """
    statements: list[str] = []
    pending: list[str] = []
    for line in script.splitlines():
        if not pending and (not line.strip() or line.lstrip().startswith("--")):
            continue
        pending.append(line)
        candidate = "\n".join(pending)
        if sqlite3.complete_statement(candidate):
            statements.append(candidate.strip())
            pending = []
    leftover = "\n".join(pending).strip()
    if leftover and not all(line.lstrip().startswith("--") for line in pending if line.strip()):
        raise ValueError(f"incomplete SQL statement at the end of a migration: {leftover[:80]!r}")
    return statements


@cache
def migrations() -> tuple[Migration, ...]:
    """Every migration shipped with the package, in version order (1, 2, ... without gaps)."""
    return tuple(
        Migration(migration.version, migration.file_name, split_statements(migration.sql))
        for migration in load_migrations(_PACKAGE)
    )
