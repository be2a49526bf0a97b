"""The SQL of the backend, kept as SQL: named queries and numbered migrations, read from package files.

``sql/queries.sql`` is a sequence of blocks::

    -- name: claim_tasks
    -- Claim up to $2 claimable tasks of queue $1 ...
    WITH ...

Every query names tables as ``{schema}.table``; :func:`queries_for` replaces ``{schema}`` with the
quoted schema name once per backend, so no identifier is ever built from user input at call time.
Reading and parsing the files is the backend kit's (:func:`sheppy_core.backend.load_named_queries`,
:func:`~sheppy_core.backend.load_migrations`, each read once).
"""

from __future__ import annotations

from sheppy_core.backend import Migration, NamedQuery, load_named_queries
from sheppy_core.backend import load_migrations as _load_package_migrations

__all__ = ["Migration", "load_migrations", "load_queries", "queries_for"]

SCHEMA_PLACEHOLDER = "{schema}"

_PACKAGE = "sheppy_postgres"


def load_queries() -> dict[str, NamedQuery]:
    """The package's named queries."""
    return load_named_queries(_PACKAGE)


def load_migrations() -> tuple[Migration, ...]:
    """The package's migrations in version order (1, 2, 3... without gaps)."""
    return _load_package_migrations(_PACKAGE)


def queries_for(quoted_schema: str) -> dict[str, str]:
    """Every named query's SQL with ``{schema}`` replaced by the (already quoted) schema name."""
    return {name: q.sql.replace(SCHEMA_PLACEHOLDER, quoted_schema) for name, q in load_queries().items()}
