"""Connection setup and schema migrations.

:func:`migrate` brings a database file to the newest schema version. It is idempotent and safe when
several processes connect at the same moment: everything happens inside ``BEGIN IMMEDIATE``, which takes
the file's write lock before anything is read, so exactly one connection applies a given migration and
the others — waiting on the lock within the busy timeout — then find the version already recorded in
``schema_version`` and apply nothing. Schema changes and the version bump commit together, so a crash
never leaves a half-migrated file.
"""

from __future__ import annotations

import json
import sqlite3
import time
from datetime import UTC, datetime

import aiosqlite

from sheppy_core.backend import check_schema_not_newer, listing_key, migrations_to_apply
from sheppy_core.exceptions import BackendError
from sheppy_sqlite._sql import migrations, queries

__all__ = ["LATEST_SCHEMA_VERSION", "configure", "migrate", "schema_version"]

LATEST_SCHEMA_VERSION = len(migrations())

MIN_SQLITE_VERSION = (3, 35, 0)
"""RETURNING (3.35) is used by every claim; JSON functions are built in from 3.38 and present in
practically every earlier build Python ships with."""


def check_sqlite_version() -> None:
    if sqlite3.sqlite_version_info < MIN_SQLITE_VERSION:
        needed = ".".join(map(str, MIN_SQLITE_VERSION))
        raise BackendError(
            f"sheppy-sqlite needs SQLite >= {needed} (for UPDATE ... RETURNING); this Python links "
            f"SQLite {sqlite3.sqlite_version}"
        )


async def _scalar(conn: aiosqlite.Connection, sql: str) -> str:
    """The first column of the first row, as lower-case text."""
    rows = await conn.execute_fetchall(sql)
    return str(next(iter(rows))[0]).lower()


async def configure(conn: aiosqlite.Connection, journal_mode: str, synchronous: str) -> str:
    """Set the per-file journal mode (only when it differs: switching needs an exclusive lock) and the
    per-connection pragmas. Returns the journal mode in effect."""
    current = await _scalar(conn, "PRAGMA journal_mode")
    if current != journal_mode:
        current = await _scalar(conn, f"PRAGMA journal_mode = {journal_mode}")
        if current != journal_mode:
            raise BackendError(f"SQLite refused journal_mode={journal_mode} (it stays {current})")
    # Values were validated against fixed lists; pragmas cannot take bound parameters.
    await conn.execute_fetchall(f"PRAGMA synchronous = {synchronous}")
    return current


async def schema_version(conn: aiosqlite.Connection) -> int:
    await conn.execute_fetchall(queries()["schema_version_table"])
    return int(await _scalar(conn, queries()["schema_version"]))


def stored_listing_key(data: object, migrated_at: datetime) -> int:
    """The listing key of a row stored before schema version 4, from its data (SQL function
    ``sheppy_listing_key``): what ``append`` gives it now, ``migrated_at`` when the data holds no
    readable ``created_at``."""
    try:
        record = json.loads(data) if isinstance(data, str) else None
        return listing_key(record if isinstance(record, dict) else {}, migrated_at)
    except (ValueError, OverflowError, RecursionError):  # one odd row must not fail the upgrade
        return listing_key({}, migrated_at)


async def migrate(conn: aiosqlite.Connection) -> int:
    """Apply the missing migrations in one ``BEGIN IMMEDIATE`` transaction; return the schema version.

    Raises ``BackendError`` when the file was migrated by a newer sheppy-sqlite than this one.
    """
    migrated_at = datetime.now(UTC)
    await conn.create_function("sheppy_listing_key", 1, lambda data: stored_listing_key(data, migrated_at))
    await conn.execute_fetchall("BEGIN IMMEDIATE")
    try:
        version = await schema_version(conn)
        shipped = migrations()
        check_schema_not_newer(version, shipped, "sheppy-sqlite")
        for migration in migrations_to_apply(shipped, version):
            for statement in migration.statements:
                await conn.execute_fetchall(statement)
            await conn.execute_fetchall(
                queries()["record_migration"], {"version": migration.version, "now": time.time()}
            )
            version = migration.version
        await conn.execute_fetchall("COMMIT")
    except BaseException:
        if conn.in_transaction:
            await conn.execute_fetchall("ROLLBACK")
        raise
    return version
