"""SQL kept as SQL: named queries and numbered migrations shipped as package files.

A SQL backend keeps every statement it runs in ``sql/queries.sql``, each under a header::

    -- name: claim_tasks
    -- Claim up to $2 claimable tasks of queue $1 (a description line, optional).
    WITH ...;

and its schema versions in ``sql/migrations/NNNN_description.sql``. :func:`load_named_queries` and
:func:`load_migrations` read them once through :mod:`importlib.resources`; :func:`migrations_to_apply`
and :func:`check_schema_not_newer` decide what a database at some version still needs. Running the
statements stays the driver's job (its transaction, lock and ``execute``), so the kit does no I/O
beyond reading the package's own files.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from importlib.resources import files
from typing import Protocol, TypeVar

from sheppy_core.exceptions import BackendError

__all__ = [
    "Migration",
    "NamedQuery",
    "check_schema_not_newer",
    "load_migrations",
    "load_named_queries",
    "migrations_to_apply",
    "parse_named_queries",
]

_NAME_HEADER = re.compile(r"^--\s*name:\s*(?P<name>[a-z_][a-z0-9_]*)\s*$")
_MIGRATION_FILE = re.compile(r"^(?P<version>\d{4})_(?P<name>[a-z0-9_]+)\.sql$")


class Versioned(Protocol):
    """Anything with a schema ``version``: a :class:`Migration`, or a driver's own view of one."""

    @property
    def version(self) -> int: ...


VersionedT = TypeVar("VersionedT", bound=Versioned)


@dataclass(frozen=True)
class NamedQuery:
    """One named query: its SQL (comment lines and the trailing ``;`` dropped, ready for ``execute``)
    and the description written under its header ("" when there is none)."""

    name: str
    description: str
    sql: str


@dataclass(frozen=True)
class Migration:
    """One schema version: ``version`` from the file name's four-digit prefix, ``name`` the rest
    (``0003_queue_names.sql`` -> 3, ``"queue_names"``), and the file's text as written."""

    version: int
    name: str
    file_name: str
    sql: str


def _is_comment(line: str) -> bool:
    return line.lstrip().startswith("--")


def parse_named_queries(text: str) -> dict[str, NamedQuery]:
    """Split a queries file into ``{name: NamedQuery}``, in file order.

    A block runs from its ``-- name: x`` header to the next header. The comment lines right under the
    header are its description; every comment line is left out of the SQL. Text before the first
    header (a file comment) is ignored. A name defined twice (the second block would silently shadow
    the first) or a block without SQL raises ``ValueError``.
    """
    found: dict[str, NamedQuery] = {}
    lines = text.splitlines()
    headers = [
        (index, match["name"])
        for index, line in enumerate(lines)
        if (match := _NAME_HEADER.match(line.strip())) is not None
    ]
    for position, (start, name) in enumerate(headers):
        end = headers[position + 1][0] if position + 1 < len(headers) else len(lines)
        block = lines[start + 1 : end]
        description: list[str] = []
        for line in block:
            if not _is_comment(line):
                break
            description.append(line.strip().lstrip("-").strip())
        body = [line for line in block if line.strip() and not _is_comment(line)]
        sql = "\n".join(body).strip().rstrip(";").strip()
        if name in found:
            raise ValueError(f"query {name!r} is defined twice")
        if not sql:
            raise ValueError(f"query {name!r} has no SQL")
        found[name] = NamedQuery(name, " ".join(part for part in description if part), sql)
    return found


@cache
def load_named_queries(package: str, resource: str = "sql/queries.sql") -> dict[str, NamedQuery]:
    """The named queries of ``resource`` inside ``package`` (an importable package name), parsed once."""
    text = files(package).joinpath(*resource.split("/")).read_text(encoding="utf-8")
    return parse_named_queries(text)


@cache
def load_migrations(package: str, folder: str = "sql/migrations") -> tuple[Migration, ...]:
    """Every ``NNNN_name.sql`` file of ``folder`` inside ``package``, in version order.

    Versions must run 1, 2, 3... without a gap or a repeat (``ValueError`` otherwise): a database at
    version ``n`` then needs exactly the files after the ``n``-th. Other files are ignored.
    """
    found: list[Migration] = []
    for entry in files(package).joinpath(*folder.split("/")).iterdir():
        match = _MIGRATION_FILE.match(entry.name)
        if match is not None:
            found.append(
                Migration(int(match["version"]), match["name"], entry.name, entry.read_text(encoding="utf-8"))
            )
    found.sort(key=lambda migration: migration.version)
    if [migration.version for migration in found] != list(range(1, len(found) + 1)):
        raise ValueError(
            f"{package} migrations must be numbered 1..n without gaps, found "
            f"{[migration.file_name for migration in found]}"
        )
    return tuple(found)


def migrations_to_apply(migrations: Sequence[VersionedT], current_version: int) -> list[VersionedT]:
    """The migrations a database at ``current_version`` still needs, in the order to apply them."""
    return [migration for migration in migrations if migration.version > current_version]


def check_schema_not_newer(current_version: int, migrations: Sequence[Versioned], distribution: str) -> None:
    """Refuse a database migrated by a newer release of ``distribution`` than the one running: its
    schema may hold what this code would misread. Raises ``BackendError`` saying to upgrade."""
    latest = migrations[-1].version if migrations else 0
    if current_version > latest:
        raise BackendError(
            f"the database has schema version {current_version}, newer than this {distribution} knows "
            f"({latest}); upgrade {distribution}"
        )
