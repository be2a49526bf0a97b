"""Task records on the wire: what the client sends to the scripts and how it reads their replies.

A record is stored as a hash: field ``r`` is the JSON of the record as the caller gave it; the other
fields are JSON values the backend wrote (``status``, ``claimed_by``, ``lease_expires_at``,
``deliveries``, ``finished_at``, ``scheduled_at``); fields starting with ``_`` are internal. So scripts
change a claim without ever parsing the payload.

Scripts hand a record back as one JSON text: ``r`` with the backend's fields appended before its
closing brace (``record_json`` in ``_common.lua``). :func:`json.loads` keeps the last of duplicate keys
(documented behaviour), so those fields override the body's.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sheppy_core.backend import (
    FINISHED_STATUSES,
    LISTABLE_STATUSES,
    due_at,
    is_finished,
    listing_key,
    retention_seconds,
    task_id_of,
)
from sheppy_core.exceptions import BackendInputError

__all__ = [
    "Encoded",
    "decode_record",
    "encode_json",
    "encode_record",
    "epoch_ms",
    "func_of",
    "index_fields",
    "listed_status",
    "listing_member_key",
    "member_listing_key",
    "read_record",
    "retention_ms",
]

_LISTING_KEY_OFFSET = 1 << 63
"""Added to a listing key (signed microseconds) before it is written as 16 hex digits: the index's
members sort by bytes, so the digits must sort as the numbers do, negative ones included."""


def listing_member_key(key: int) -> str:
    """The 16 hex digits a listing key takes at the front of its index members (see ``_common.lua``)."""
    return f"{key + _LISTING_KEY_OFFSET:016x}"


def member_listing_key(member: bytes) -> int:
    """The listing key at the front of an index member."""
    return int(member[:16], 16) - _LISTING_KEY_OFFSET


def listed_status(record: dict[str, Any]) -> str:
    """The record's status as the index files it: one ``list_tasks`` filters by, else ''."""
    status = record.get("status")
    return status if isinstance(status, str) and status in LISTABLE_STATUSES else ""


def func_of(record: dict[str, Any]) -> str:
    """The record's ``spec.func``, as the listing index files it ('' for none)."""
    spec = record.get("spec")
    func = spec.get("func") if isinstance(spec, dict) else None
    return func if isinstance(func, str) else ""


def index_fields(record: dict[str, Any], stored_at: datetime) -> tuple[str, str]:
    """What the listing index keeps of a record being stored: its listing key (16 hex digits) and its
    ``spec.func`` ('' for none)."""
    return listing_member_key(listing_key(record, stored_at)), func_of(record)


def epoch_ms(moment: datetime) -> float:
    return moment.timestamp() * 1000.0


def retention_ms(record: dict[str, Any], ttl: float | None, error_ttl: float | str | None) -> float:
    """How long a finished record is kept, in ms; -1 for ever."""
    seconds = retention_seconds(record, ttl, error_ttl)
    return -1.0 if seconds is None else seconds * 1000.0


_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))
"""One encoder for every record: ``json.dumps`` with options builds a new one per call."""


def _dumps(value: Any) -> bytes:
    try:
        text = _ENCODER.encode(value)
    except (TypeError, ValueError) as exc:
        raise BackendInputError(f"record is not JSON-serialisable: {exc}") from exc
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        # Lone surrogates cannot be UTF-8: let JSON escape them instead.
        return json.dumps(value, separators=(",", ":")).encode("ascii")


def encode_json(value: Any) -> bytes:
    """Compact UTF-8 JSON of a value the backend stores as given (``BackendInputError`` if it is not
    JSON-serialisable)."""
    return _dumps(value)


@dataclass(frozen=True)
class Encoded:
    """A record ready for a script: id, body, and the few values scripts need without parsing it."""

    id: str
    body: bytes
    deliveries: int
    cancel_retention_ms: float
    workflow_id: str
    record: dict[str, Any]

    def args(self) -> list[Any]:
        """The five per-record script arguments: id, body, deliveries, cancel retention, workflow id."""
        return [self.id, self.body, self.deliveries, self.cancel_retention_ms, self.workflow_id]

    def packed(self, stored_at: datetime) -> bytes:
        """The record in ``append.lua``'s packed form: a header line, then id, workflow id, func and
        body."""
        task_id = self.id.encode("utf-8", "surrogatepass")
        workflow = self.workflow_id.encode("utf-8", "surrogatepass")
        member_key, func_text = index_fields(self.record, stored_at)
        func = func_text.encode("utf-8", "surrogatepass")
        rc = self.cancel_retention_ms
        sizes = f"{len(task_id)} {self.deliveries} {rc!r} {len(workflow)} {len(self.body)}"
        head = f"{sizes} {member_key} {len(func)}\n".encode("ascii")
        return b"".join((head, task_id, workflow, func, self.body))

    def func(self) -> str:
        return func_of(self.record)

    def finished_bucket(self) -> str:
        status = self.record.get("status")
        return status if isinstance(status, str) and status in FINISHED_STATUSES else "other"

    @property
    def finished(self) -> bool:
        return is_finished(self.record)

    def due_ms(self) -> float:
        return epoch_ms(due_at(self.record))


def encode_record(
    record: dict[str, Any], ttl: float | None, error_ttl: float | str | None
) -> Encoded:
    """Validate and serialise one record (``BackendInputError`` for a record without id or not JSON)."""
    if not isinstance(record, dict):
        raise BackendInputError(f"a task record must be a dict, got {type(record).__name__}")
    task_id = task_id_of(record)
    if record.get("id") is not task_id:  # task_id_of returns the very str when "id" is one
        record = {**record, "id": task_id}
    try:
        deliveries = int(record.get("deliveries") or 0)
    except (TypeError, ValueError):
        raise BackendInputError(f"task {task_id}: 'deliveries' must be an integer") from None
    workflow = record.get("workflow_id")
    # retention_seconds reads only "status" and "config": no need to copy the whole record.
    cancelled = {"status": "cancelled", "config": record.get("config")}
    return Encoded(
        id=task_id,
        body=_dumps(record),
        deliveries=deliveries,
        cancel_retention_ms=retention_ms(cancelled, ttl, error_ttl),
        workflow_id=str(workflow) if workflow else "",
        record=record,
    )


def read_record(text: bytes, task_id: str) -> dict[str, Any] | None:
    """The record of key ``task_id`` from a script's reply, or None when it cannot be read as a task
    (not JSON, not an object, or another ``id``): the caller sets it aside (see
    :func:`sheppy_core.backend.decode_record`, which it then applies to the stored body)."""
    try:
        record = json.loads(text)
    except (ValueError, RecursionError):
        return None
    if isinstance(record, dict) and (record.get("id") == task_id or str(record.get("id")) == task_id):
        return record
    return None


def decode_record(text: bytes | None) -> dict[str, Any] | None:
    """A record from a script's reply (one JSON text, see the module docstring); None for nil."""
    if text is None:
        return None
    record: dict[str, Any] = json.loads(text)
    return record
