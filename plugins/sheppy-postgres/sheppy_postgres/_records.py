"""Between task records (dicts) and table rows.

Names: PostgreSQL ``text`` cannot hold NUL, and the contract allows any string as a queue name or id.
:func:`escape_name` escapes reversibly (``\\`` → ``\\\\``, NUL → ``\\0``), so every name is stored and
compared in one canonical form; names without either character are stored as they are. Names too long
for an index key are stored as a hash (:func:`encode_name`).

Records: the ``data`` column holds the JSON a client wrote. The claim columns are laid over it on
read (:func:`row_to_record`): ``status`` always, ``claimed_by``/``lease_expires_at`` while a claim
exists, ``deliveries`` once known. That keeps claims and heartbeats from rewriting large payloads.
"""

from __future__ import annotations

import hashlib
from functools import lru_cache
from typing import Any

import asyncpg

from sheppy_core.backend import decode_record, is_quarantined, record_from_json, to_iso

__all__ = ["decode_name", "encode_name", "escape_name", "int_or_none", "notify_key", "row_to_record"]


_MAX_KEY_BYTES = 1000
"""Longer stored names are replaced by a hash: b-tree keys (and so primary keys) hold ~2700 bytes."""
_HASHED = "\\#"
"""Prefix of a hashed stored name (never the start of an escaped one)."""


def escape_name(name: str) -> str:
    """``name`` with ``\\`` and NUL escaped, so PostgreSQL text can hold it; reversible."""
    if "\\" in name or "\x00" in name:
        return name.replace("\\", "\\\\").replace("\x00", "\\0")
    return name


def encode_name(name: str) -> str:
    """The stored form (the key) of a queue name, task id, cron id, workflow id or rate-limit key.

    :func:`escape_name`, or for names over 1000 bytes ``\\#`` and a SHA-256 of it — which cannot
    collide with an escaped name, where a backslash is only ever followed by another or by ``0``.
    """
    escaped = escape_name(name)
    if len(escaped) > _MAX_KEY_BYTES // 4:  # only then can it exceed the limit (4 bytes per char)
        raw = escaped.encode("utf-8", "surrogatepass")
        if len(raw) > _MAX_KEY_BYTES:
            return _HASHED + hashlib.sha256(raw).hexdigest()
    return escaped


def decode_name(stored: str) -> str:
    """Inverse of :func:`escape_name`."""
    if "\\" not in stored:
        return stored
    out: list[str] = []
    chars = iter(stored)
    for ch in chars:
        if ch == "\\":
            nxt = next(chars, "")
            out.append("\x00" if nxt == "0" else nxt)
        else:
            out.append(ch)
    return "".join(out)


def int_or_none(value: Any) -> int | None:
    """``value`` if it is an int (not a bool), else None: for record fields stored in int columns."""
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def row_to_record(row: asyncpg.Record, task_id: str | None = None) -> dict[str, Any]:
    """A task row (id, status, data, claimed_by, lease_expires_at, deliveries) as the record it stands for.

    Never raises on the stored text: data that is not a JSON object whose ``id`` is the row's key reads
    as its quarantine stand-in (:func:`~sheppy_core.backend.decode_record`), claim columns left off.
    ``task_id``: the id the caller asked for, when it knows it; a stand-in then carries it (a hashed
    key cannot be decoded, so one that pop stored under such a key names the key).
    """
    record = decode_record(row["data"], _id_of(row["id"], row["data"]))
    if is_quarantined(record):
        if task_id is not None:
            record["id"] = task_id
        return record
    record["status"] = row["status"]
    if row["claimed_by"] is not None:
        record["claimed_by"] = row["claimed_by"]
        record["lease_expires_at"] = to_iso(row["lease_expires_at"])
    if row["deliveries"] is not None:
        record["deliveries"] = row["deliveries"]
    return record


def _id_of(stored: str, data: str) -> str:
    """The task id of a row's key. A hashed key (an id over 1000 bytes) only says whether an id matches
    it: the record's own ``id`` if it does, else the key itself (the record then reads as quarantined,
    unless it is a stand-in that pop stored under that key, which names the key)."""
    if not stored.startswith(_HASHED):
        return decode_name(stored)
    try:
        claimed = record_from_json(data).get("id")
    except (ValueError, RecursionError, AttributeError):
        return stored
    return str(claimed) if claimed is not None and encode_name(str(claimed)) == stored else stored


@lru_cache(maxsize=4096)
def notify_key(kind: str, stored_queue: str) -> str:
    """The NOTIFY payload for ``kind`` (``q``: tasks to claim, ``r``: results) of a queue.

    A hash keeps it short whatever the queue name (payloads are limited to 8000 bytes) and still
    tells queues apart, so a waiter is only woken for its own queue.
    """
    digest = hashlib.md5(stored_queue.encode("utf-8", "surrogatepass"), usedforsecurity=False)
    return kind + digest.hexdigest()
