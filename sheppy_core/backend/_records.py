"""Small helpers for backends that read the few record fields the contract lets them read.

Public through :mod:`sheppy_core.backend`, so a plugin never re-derives due times or retention rules.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, AnyStr, Final

from pydantic_core import PydanticSerializationError, from_json, to_json

from sheppy_core.backend._checks import check_task_id
from sheppy_core.exceptions import BackendInputError

__all__ = [
    "DEFAULT_TTL_SECONDS",
    "ERROR_STATUSES",
    "FINISHED_STATUSES",
    "QUARANTINED",
    "SCHEDULED_STATUSES",
    "STATS_KEYS",
    "decode_record",
    "due_at",
    "expires_at",
    "from_iso",
    "is_finished",
    "is_quarantined",
    "quarantine_record",
    "record_from_json",
    "record_to_json",
    "record_to_json_bytes",
    "retention_seconds",
    "task_id_of",
    "to_iso",
    "utcnow",
]

DEFAULT_TTL_SECONDS: Final = 30 * 24 * 60 * 60.0
"""How long every bundled backend keeps a finished record (any final status, failed ones too) unless
the backend's ``ttl``/``error_ttl`` options or the task's ``ttl``/``error_ttl`` say otherwise: 30 days,
as sheppy 0.0.7's Redis backend. Third-party backends declaring ``TTL`` should default to it as well."""

QUARANTINED: Final = "quarantined"
"""Status of a record set aside because it cannot be read as a task (see :func:`quarantine_record`)."""
FINISHED_STATUSES: Final = frozenset({"completed", "failed", "cancelled", "crashed", QUARANTINED})
ERROR_STATUSES: Final = frozenset({"failed", "cancelled", "crashed", QUARANTINED})
SCHEDULED_STATUSES: Final = frozenset({"scheduled", "retrying"})
STATS_KEYS: Final = (
    "pending", "processing", "scheduled", "completed", "failed", "cancelled", "crashed", QUARANTINED
)


def record_to_json(record: Mapping[str, Any], *, allow_nan: bool = True) -> str:
    """Compact JSON text of a record, for a backend to store: what
    ``json.dumps(record, separators=(",", ":"), allow_nan=allow_nan)`` would store, about four times
    faster (pydantic-core's encoder), and UTF-8 rather than ASCII escapes where it can be.

    The standard library takes over (and raises ``ValueError``/``TypeError`` as it would) for what the
    fast encoder would write differently or what :func:`record_from_json` could not read back: lone
    surrogates (no UTF-8 form: written as escapes), integers longer than Python's int/str conversion
    limit (refused), ``NaN``/``Infinity`` when ``allow_nan`` is false (refused), and objects that are
    not JSON (refused).
    """
    try:
        text = to_json(record).decode()
    except PydanticSerializationError:
        pass
    else:
        if _fast_output_stands(text, allow_nan):
            return text
    return json.dumps(record, separators=(",", ":"), allow_nan=allow_nan)


def record_to_json_bytes(record: Mapping[str, Any], *, allow_nan: bool = True) -> bytes:
    """:func:`record_to_json` as UTF-8 bytes, for a driver that stores bytes: the same output, without
    decoding the fast encoder's bytes to text and encoding them again."""
    try:
        data = to_json(record)
    except PydanticSerializationError:
        pass
    else:
        if _fast_output_stands(data, allow_nan):
            return data
    return json.dumps(record, separators=(",", ":"), allow_nan=allow_nan).encode()


def _fast_output_stands(output: str | bytes, allow_nan: bool) -> bool:
    """Whether pydantic-core's JSON is what the standard library would write (else it takes over).

    Cheap tests first: the tokens can only come from floats, or from inside strings (then the standard
    library writes the same text, only slower)."""
    if not allow_nan:
        if isinstance(output, bytes):
            non_finite = b"NaN" in output or b"Infinity" in output
        else:
            non_finite = "NaN" in output or "Infinity" in output
        if non_finite:
            return False
    return not _has_overlong_int(output)


def _has_overlong_int(output: str | bytes) -> bool:
    """Whether ``output`` has a run of more decimal digits than Python's int/str conversion limit.
    Decimal digits beyond ASCII count too (the rule is the regex's ``\\d``), so UTF-8 output that is not
    ASCII is looked at as text."""
    limit = sys.get_int_max_str_digits()
    if limit <= 0 or len(output) <= limit:
        return False
    if isinstance(output, str):
        return _has_overlong_run(output, limit, str.isdecimal, _DIGITS)
    if output.isascii():
        return _has_overlong_run(output, limit, bytes.isdigit, _ASCII_DIGITS)
    return _has_overlong_int(output.decode())


def _has_overlong_run(
    text: AnyStr, limit: int, is_decimal: Callable[[AnyStr], bool], digits: re.Pattern[AnyStr]
) -> bool:
    """Whether ``text`` has a run of more than ``limit`` ``digits``.

    A regex search for such a run over the whole text costs ~12 ns a character (it retries at every
    digit), which made checking a 10,000-row batch cost more than encoding it. A run of ``limit + 1``
    digits covers at least one whole window of half that length starting at a multiple of it, so only
    windows found all-decimal (``is_decimal``: ``str.isdecimal`` is the same class as the regex's
    ``\\d``, ``bytes.isdigit`` as its ASCII form) are looked at, and only in the span that any such run
    through them must overlap by ``limit + 1`` digits.
    """
    step = (limit + 1) // 2
    for start in range(0, len(text) - step + 1, step):
        if is_decimal(text[start : start + step]):
            span = (max(0, start - limit - 1), start + step + limit + 1)
            if any(run.end() - run.start() > limit for run in digits.finditer(text, *span)):
                return True
    return False


_DIGITS: Final = re.compile(r"\d+")
_ASCII_DIGITS: Final = re.compile(rb"\d+")


def record_from_json(text: str | bytes) -> Any:
    """Parse stored JSON text, e.g. a record: pydantic-core's parser, about twice as fast as the
    standard library's on a task record, which matters on a worker's claim path.

    ``NaN`` and ``Infinity`` are read as floats, as ``json.loads`` reads them. pydantic-core rejects a
    lone surrogate escape (``"\\ud800"``, which ``json.dumps`` writes for such strings): that text is
    read by ``json.loads`` instead, so anything the standard library wrote reads back the same.
    """
    try:
        return from_json(text, allow_inf_nan=True)
    except ValueError:
        return json.loads(text)


def quarantine_record(
    task_id: str, raw: str | bytes | None, reason: str, *, at: datetime | None = None
) -> dict[str, Any]:
    """The record that stands in for a stored one that cannot be read as a task.

    A finished record with ``status="quarantined"``: it leaves the queue, schedule and claims for good,
    is counted under ``quarantined`` by ``get_stats``, can be read by id and deleted like any finished
    record, and keeps the stored text as it was (``quarantine.raw``) so an operator can inspect or
    repair it. ``raw`` bytes that are not UTF-8 are kept with backslash escapes.
    """
    text = raw.decode("utf-8", "backslashreplace") if isinstance(raw, bytes) else raw
    moment = to_iso(at or utcnow())
    return {
        "id": task_id,
        "status": QUARANTINED,
        "finished_at": moment,
        "quarantine": {"reason": reason, "raw": text, "quarantined_at": moment},
    }


def is_quarantined(record: Mapping[str, Any]) -> bool:
    return record.get("status") == QUARANTINED


def decode_record(text: str | bytes | None, task_id: str) -> dict[str, Any]:
    """Read a stored record's JSON text without ever failing: the record, or — for text that is not
    a JSON object whose ``id`` is ``task_id`` — the :func:`quarantine_record` that stands in for it.

    Backends use it on every read path (``get_tasks``, ``get_all_tasks``, ``get_results``, ...), so one
    corrupt record never fails a listing; ``pop`` additionally stores the stand-in (see the contract's
    ``[robust.corrupt_record]``). Check with :func:`is_quarantined`.
    """
    if text is None:
        return quarantine_record(task_id, None, "the stored record is empty")
    try:
        record = record_from_json(text)
    except (ValueError, RecursionError) as exc:
        return quarantine_record(task_id, text, f"the stored record is not JSON: {exc}")
    if not isinstance(record, dict):
        return quarantine_record(
            task_id, text, f"the stored record is JSON {type(record).__name__}, not an object"
        )
    if str(record.get("id")) != task_id:
        return quarantine_record(
            task_id, text, f"the stored record's id is {record.get('id')!r}, not its key {task_id!r}"
        )
    return record


def utcnow() -> datetime:
    return datetime.now(UTC)


def to_iso(moment: datetime) -> str:
    """An aware datetime as the ISO 8601 string pydantic writes (``...Z`` for UTC)."""
    if moment.tzinfo is None:
        raise BackendInputError(f"naive datetime {moment!r}: times must carry a timezone")
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def from_iso(value: str | datetime) -> datetime:
    """Parse a record's time field; naive values are taken as UTC (records of older writers)."""
    moment = value if isinstance(value, datetime) else datetime.fromisoformat(value.replace("Z", "+00:00"))
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def task_id_of(record: dict[str, Any]) -> str:
    """The record's ``id`` as a string, or ``BackendInputError`` for a record without one or with an
    id no backend can store (NUL, no UTF-8 form: :func:`~sheppy_core.backend.check_task_id`)."""
    task_id = record.get("id") if isinstance(record, dict) else None
    if not task_id:
        raise BackendInputError(f"task record has no 'id': {str(record)[:200]}")
    return check_task_id(task_id)


def is_finished(record: dict[str, Any]) -> bool:
    return record.get("finished_at") is not None


def due_at(record: dict[str, Any]) -> datetime:
    """When a waiting record becomes claimable: ``next_retry_at`` for a retry, else ``scheduled_at``,
    else now."""
    field = "next_retry_at" if record.get("status") == "retrying" else "scheduled_at"
    value = record.get(field) or record.get("scheduled_at") or record.get("next_retry_at")
    return from_iso(value) if value else utcnow()


def retention_seconds(
    record: dict[str, Any], default_ttl: float | None, default_error_ttl: float | str | None = "inherit"
) -> float | None:
    """How long a finished record is kept, in seconds (None: for ever).

    Precedence for failed/cancelled/crashed records: task ``error_ttl``, task ``ttl``, backend
    ``error_ttl``, backend ``ttl``; for other finished records: task ``ttl``, then backend ``ttl``.
    A task value of ``"inherit"`` (or a missing key) falls through to the next; an explicit task
    ``null`` means "keep for ever".
    """
    config = record.get("config") or {}
    chain: list[Any] = []
    if record.get("status") in ERROR_STATUSES:
        chain += [config.get("error_ttl", "inherit"), config.get("ttl", "inherit"), default_error_ttl]
    else:
        chain += [config.get("ttl", "inherit")]
    chain.append(default_ttl)
    for value in chain:
        if value == "inherit":
            continue
        return None if value is None else float(value)
    return None


def expires_at(
    record: dict[str, Any], default_ttl: float | None, default_error_ttl: float | str | None
) -> datetime | None:
    """When a finished record expires, or None."""
    seconds = retention_seconds(record, default_ttl, default_error_ttl)
    if seconds is None:
        return None
    return utcnow() + timedelta(seconds=seconds)
