"""Task records as the rows of ``tasks`` hold them: JSON text in, records (or their quarantine
stand-ins) out. Shared by the backend's core methods and its optional capabilities."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sheppy_core.backend import BackendInputError, decode_record, record_to_json

__all__ = ["decoded", "decoded_by_id", "dumps", "workflow_finished"]


def dumps(data: Any) -> str:
    """Records as compact JSON (:func:`sheppy_core.backend.record_to_json`); NaN and infinities are
    refused, as SQLite's JSON functions reject them."""
    try:
        return record_to_json(data, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise BackendInputError(f"record is not JSON-serialisable: {exc}") from exc


def workflow_finished(record: dict[str, Any]) -> bool:
    return record.get("finished_at") is not None or record.get("completed") is True


def decoded(rows: Iterable[Any]) -> list[dict[str, Any]]:
    """The records of ``(id, data)`` rows; data that is not a task record reads as its quarantine
    record (robust.corrupt_record), so one bad row never fails a listing."""
    return [decode_record(data, str(task_id)) for task_id, data in rows]


def decoded_by_id(rows: Iterable[Any]) -> dict[str, dict[str, Any]]:
    """:func:`decoded` as ``{id: record}``."""
    return {str(task_id): decode_record(data, str(task_id)) for task_id, data in rows}
