"""Mapping sqlite3/aiosqlite exceptions to the contract's errors, so a driver exception never escapes."""

from __future__ import annotations

import sqlite3
from typing import Final

from sheppy_core.exceptions import (
    BackendConnectionError,
    BackendError,
    BackendInputError,
)

__all__ = ["is_busy", "translate"]

# Primary result codes (the low byte of an extended code), from sqlite3.h.
SQLITE_BUSY: Final = 5
SQLITE_LOCKED: Final = 6
SQLITE_READONLY: Final = 8
SQLITE_IOERR: Final = 10
SQLITE_CORRUPT: Final = 11
SQLITE_FULL: Final = 13
SQLITE_CANTOPEN: Final = 14
SQLITE_TOOBIG: Final = 18
SQLITE_NOTADB: Final = 26

_CONNECTION_CODES: Final = frozenset({SQLITE_CANTOPEN, SQLITE_IOERR})
_INPUT_CODES: Final = frozenset({SQLITE_TOOBIG})


def _primary_code(exc: BaseException) -> int | None:
    code = getattr(exc, "sqlite_errorcode", None)
    return code & 0xFF if isinstance(code, int) else None


def is_busy(exc: BaseException) -> bool:
    """True for "database is locked"/"busy": another connection holds a lock the call needs.

    Such a failure rolled the statement back, so the whole operation may safely be tried again.
    """
    if not isinstance(exc, sqlite3.OperationalError):
        return False
    code = _primary_code(exc)
    if code is not None:
        return code in (SQLITE_BUSY, SQLITE_LOCKED)
    message = str(exc).lower()
    return "locked" in message or "busy" in message


def translate(exc: BaseException, operation: str, path: str, busy_timeout_ms: int) -> BackendError:
    """The contract error for a driver exception raised while running ``operation`` on ``path``."""
    where = f"sheppy-sqlite {operation} on {path}"
    if isinstance(exc, UnicodeError):
        # sqlite3 encodes text parameters as UTF-8; a lone surrogate has no such form. The
        # connection is fine: only this input is refused.
        return BackendInputError(f"{where}: SQLite cannot store text without a UTF-8 form: {exc}")
    if isinstance(exc, ValueError) and not isinstance(exc, sqlite3.Error):
        # aiosqlite raises ValueError("Connection closed"/"no active connection").
        return BackendConnectionError(f"{where}: the connection is closed ({exc})")
    if is_busy(exc):
        return BackendError(
            f"{where}: the database stayed locked by another connection for longer than the busy timeout "
            f"({busy_timeout_ms} ms); nothing was changed — retry, or raise ?busy_timeout=..."
        )
    code = _primary_code(exc)
    if code in _CONNECTION_CODES:
        return BackendConnectionError(f"{where}: cannot use the database file: {exc}")
    if code in _INPUT_CODES or isinstance(exc, sqlite3.DataError):
        return BackendInputError(f"{where}: SQLite cannot store this input: {exc}")
    if code == SQLITE_READONLY:
        return BackendError(f"{where}: the database is read-only: {exc}")
    if code in (SQLITE_CORRUPT, SQLITE_NOTADB):
        return BackendError(f"{where}: the file is not a usable SQLite database: {exc}")
    if code == SQLITE_FULL:
        return BackendError(f"{where}: the disk is full: {exc}")
    return BackendError(f"{where}: {type(exc).__name__}: {exc}")
