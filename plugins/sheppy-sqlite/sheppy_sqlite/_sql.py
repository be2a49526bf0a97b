"""The SQL of the backend, kept as SQL: named queries and numbered migrations, read with importlib.resources.

``sql/queries.sql`` holds every statement the backend runs, each under a ``-- name: some_name`` header
followed by ``--`` description lines. ``sql/migrations/NNNN_description.sql`` are the schema versions,
applied in number order by :mod:`sheppy_sqlite._schema`.
"""

from __future__ import annotations

import re
import sqlite3
from functools import cache
from importlib import resources

__all__ = ["Migration", "migrations", "queries", "split_statements"]

_PACKAGE = "sheppy_sqlite"
_NAME_HEADER = re.compile(r"^--\s*name:\s*(?P<name>[a-z_][a-z0-9_]*)\s*$", re.MULTILINE)
_MIGRATION_FILE = re.compile(r"^(?P<version>\d{4})_[a-z0-9_]+\.sql$")


def parse_queries(text: str) -> dict[str, str]:
    """Split a queries file into ``{name: statement}``.

    Each statement runs from its ``-- name:`` header to the next one; comment lines are dropped and the
    trailing ``;`` removed, so the text can be passed to ``execute``. A duplicate name is an error, since
    the second block would silently shadow the first.
    """
    found: dict[str, str] = {}
    headers = list(_NAME_HEADER.finditer(text))
    for index, header in enumerate(headers):
        end = headers[index + 1].start() if index + 1 < len(headers) else len(text)
        body = text[header.end():end]
        lines = [line for line in body.splitlines() if line.strip() and not line.lstrip().startswith("--")]
        statement = "\n".join(lines).strip().rstrip(";").strip()
        name = header["name"]
        if name in found:
            raise ValueError(f"query {name!r} is defined twice")
        if not statement:
            raise ValueError(f"query {name!r} has no SQL")
        found[name] = statement
    return found


@cache
def queries() -> dict[str, str]:
    """The named queries of ``sql/queries.sql``, parsed once."""
    text = resources.files(_PACKAGE).joinpath("sql", "queries.sql").read_text(encoding="utf-8")
    return parse_queries(text)


class Migration:
    """One schema version: its number, file name and statements."""

    def __init__(self, version: int, name: str, statements: list[str]) -> None:
        self.version = version
        self.name = name
        self.statements = statements

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
    folder = resources.files(_PACKAGE).joinpath("sql", "migrations")
    found: list[Migration] = []
    for entry in folder.iterdir():
        match = _MIGRATION_FILE.match(entry.name)
        if match is None:
            continue
        found.append(Migration(int(match["version"]), entry.name,
                               split_statements(entry.read_text(encoding="utf-8"))))
    found.sort(key=lambda m: m.version)
    expected = list(range(1, len(found) + 1))
    if [m.version for m in found] != expected:
        raise ValueError(f"migrations must be numbered 1..n without gaps, found {[m.name for m in found]}")
    return tuple(found)
