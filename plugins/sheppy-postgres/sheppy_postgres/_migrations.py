"""Applying the numbered migrations of ``sql/migrations/`` to a schema.

Many workers may start at the same moment against an empty database. They all run
:func:`apply_migrations`; a transaction-scoped advisory lock keyed on the schema name makes them take
turns, so the first creates everything and the others find the work done. The lock is taken before
``CREATE SCHEMA`` because even ``IF NOT EXISTS`` races between sessions.
"""

from __future__ import annotations

from typing import Any

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from sheppy_core.backend import migrations_to_apply
from sheppy_postgres._config import quote_ident
from sheppy_postgres._sql import load_migrations

__all__ = ["LOCK_NAMESPACE", "apply_migrations", "latest_version"]

LOCK_NAMESPACE = 0x5368_6570  # "Shep": first key of pg_advisory_xact_lock(int, int)
"""Advisory locks of sheppy-postgres use this first key; the second is a hash of the schema name."""


def latest_version() -> int:
    """The schema version this package brings."""
    migrations = load_migrations()
    return migrations[-1].version if migrations else 0


async def apply_migrations(
    conn: asyncpg.Connection[Any] | PoolConnectionProxy[Any], schema: str
) -> tuple[int, list[int]]:
    """Bring ``schema`` up to date on ``conn``; return ``(version now, versions applied here)``.

    Runs in one transaction: either every pending migration is applied or none is.
    """
    quoted = quote_ident(schema)
    applied: list[int] = []
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1, hashtext($2))", LOCK_NAMESPACE, schema)
        await conn.execute(f"CREATE SCHEMA IF NOT EXISTS {quoted}")
        # Unqualified names in the migration files land in this schema; SET LOCAL ends with the
        # transaction, so the connection goes back to the pool unchanged.
        await conn.execute(f"SET LOCAL search_path TO {quoted}")
        await conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_version ("
            " version integer PRIMARY KEY,"
            " name text NOT NULL,"
            " applied_at timestamptz NOT NULL DEFAULT now())"
        )
        current: int = await conn.fetchval("SELECT coalesce(max(version), 0) FROM schema_version")
        for migration in migrations_to_apply(load_migrations(), current):
            await conn.execute(migration.sql)
            await conn.execute(
                "INSERT INTO schema_version (version, name) VALUES ($1, $2)",
                migration.version,
                migration.name,
            )
            applied.append(migration.version)
            current = migration.version
    return current, applied
