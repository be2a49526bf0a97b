"""The SQL of the backend, kept as SQL: named queries and numbered migrations, read from package files.

``sql/queries.sql`` is a sequence of blocks::

    -- name: claim_tasks
    -- Claim up to $2 claimable tasks of queue $1 ...
    WITH ...

Every query names tables as ``{schema}.table``; :func:`queries_for` replaces ``{schema}`` with the
quoted schema name once per backend, so no identifier is ever built from user input at call time.
Files are read once (``functools.cache``) through :mod:`importlib.resources`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from importlib.resources import files

__all__ = ["Migration", "Query", "load_migrations", "load_queries", "parse_queries", "queries_for"]

SCHEMA_PLACEHOLDER = "{schema}"

_NAME = re.compile(r"^--\s*name:\s*([a-z_][a-z0-9_]*)\s*$")
_MIGRATION = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")


@dataclass(frozen=True)
class Query:
    """One named query: its SQL text and the one-line description under its header."""

    name: str
    description: str
    sql: str


@dataclass(frozen=True)
class Migration:
    """One schema migration: ``version`` from the file name's four-digit prefix."""

    version: int
    name: str
    sql: str


def parse_queries(text: str) -> dict[str, Query]:
    """Parse ``-- name: x`` blocks. Each needs a ``-- description`` line right after its header and a
    non-empty body; names must be unique. Text before the first header (a file comment) is ignored."""
    queries: dict[str, Query] = {}
    name: str | None = None
    description = ""
    body: list[str] = []

    def flush() -> None:
        if name is None:
            return
        sql = "\n".join(body).strip()
        if not description:
            raise ValueError(f"query {name!r} has no '-- description' line after its header")
        if not sql:
            raise ValueError(f"query {name!r} has no SQL")
        if name in queries:
            raise ValueError(f"query {name!r} is defined twice")
        queries[name] = Query(name, description, sql)

    for line in text.splitlines():
        match = _NAME.match(line.strip())
        if match:
            flush()
            name, description, body = match.group(1), "", []
            continue
        if name is None:
            continue
        if not description and not body:
            stripped = line.strip()
            if stripped.startswith("--"):
                description = stripped.lstrip("-").strip()
                continue
            if stripped:
                raise ValueError(f"query {name!r} has no '-- description' line after its header")
            continue
        body.append(line)
    flush()
    return queries


@cache
def load_queries() -> dict[str, Query]:
    """The package's named queries, parsed once."""
    return parse_queries(files("sheppy_postgres").joinpath("sql", "queries.sql").read_text("utf-8"))


@cache
def load_migrations() -> tuple[Migration, ...]:
    """The package's migrations in version order; versions must run 1, 2, 3... without gaps."""
    folder = files("sheppy_postgres").joinpath("sql", "migrations")
    found: list[Migration] = []
    for entry in folder.iterdir():
        match = _MIGRATION.match(entry.name)
        if match:
            found.append(Migration(int(match.group(1)), match.group(2), entry.read_text("utf-8")))
    found.sort(key=lambda m: m.version)
    if [m.version for m in found] != list(range(1, len(found) + 1)):
        raise RuntimeError(f"sheppy_postgres migrations are not numbered 1..n: {[m.version for m in found]}")
    return tuple(found)


def queries_for(quoted_schema: str) -> dict[str, str]:
    """Every named query's SQL with ``{schema}`` replaced by the (already quoted) schema name."""
    return {name: q.sql.replace(SCHEMA_PLACEHOLDER, quoted_schema) for name, q in load_queries().items()}
