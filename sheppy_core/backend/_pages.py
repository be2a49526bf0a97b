"""Paged listing for ``Backend.list_tasks``: the page type, the listing key and the cursor.

Every backend orders a listing the same way — newest first by *listing key*, then by id (descending) —
so the same cursor means the same place on every backend. The listing key of a record is fixed when
``append``/``schedule`` stores it: its ``created_at`` (or the time of storing when it has none that can
be read), as microseconds since the epoch, UTC. ``pop``, ``store_result``, ``cancel`` and quarantining
never change it. A cursor is opaque to callers; backends build and read it with :func:`encode_cursor`
and :func:`decode_cursor`, and store the key in a column / sorted-set score of their own.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from sheppy_core.backend._records import STATS_KEYS, from_iso
from sheppy_core.exceptions import BackendInputError

__all__ = [
    "DEFAULT_PAGE_SIZE",
    "LISTABLE_STATUSES",
    "MAX_PAGE_SIZE",
    "Listing",
    "TaskPage",
    "check_listing",
    "decode_cursor",
    "encode_cursor",
    "listing_key",
    "micros_to_datetime",
    "page_of",
]

DEFAULT_PAGE_SIZE: Final = 50
MAX_PAGE_SIZE: Final = 1000
"""``list_tasks(limit=...)`` beyond this raises ``BackendInputError``: a page is for a screen, not a dump."""

LISTABLE_STATUSES: Final = (*STATS_KEYS, "retrying")
"""The statuses ``list_tasks(status=...)`` filters by: the stored ``status`` field, matched exactly."""

_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class TaskPage:
    """One page of ``list_tasks``: the records (newest first) and the cursor of the next page (None when
    this is the last one)."""

    records: list[dict[str, Any]] = field(default_factory=list)
    next_cursor: str | None = None


def _to_micros(moment: datetime) -> int:
    delta = moment.astimezone(UTC) - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def micros_to_datetime(micros: int) -> datetime:
    """The aware UTC datetime of a listing key."""
    return _EPOCH + timedelta(microseconds=micros)


def listing_key(record: Mapping[str, Any], stored_at: datetime) -> int:
    """The listing key of a record being stored by ``append``/``schedule`` at ``stored_at``: its
    ``created_at`` in microseconds since the epoch (UTC), or ``stored_at``'s when it has none that can
    be read."""
    created = record.get("created_at")
    if isinstance(created, str):
        try:
            return _to_micros(from_iso(created))
        except (ValueError, OverflowError):  # OverflowError: an offset that leaves the datetime range
            pass
    return _to_micros(stored_at)


def encode_cursor(key: int, task_id: str) -> str:
    """The cursor that continues a listing after the record with listing key ``key`` and id ``task_id``."""
    raw = f"{key}:{task_id}".encode("utf-8", "surrogatepass")
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def decode_cursor(cursor: str) -> tuple[int, str]:
    """``(key, task_id)`` of a cursor made by :func:`encode_cursor`; anything else raises
    ``BackendInputError("invalid cursor ...")``."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode("utf-8")
        key, task_id = raw.split(":", 1)
        if not task_id:
            raise ValueError("no id")
        return int(key), task_id
    except (ValueError, TypeError, binascii.Error, UnicodeDecodeError):
        raise BackendInputError(
            f"invalid cursor {cursor!r}: pass the next_cursor of an earlier list_tasks page"
        ) from None


@dataclass(frozen=True)
class Listing:
    """The checked arguments of a ``list_tasks`` call, in the form a backend's query takes: times as
    listing keys (``since`` inclusive, ``until`` exclusive), the cursor decoded."""

    status: str | None
    func: str | None
    since: int | None
    until: int | None
    after: tuple[int, str] | None
    limit: int

    def admits(self, key: int, record: Mapping[str, Any]) -> bool:
        """Whether a record with listing key ``key`` belongs on this listing's pages (filters and
        cursor), for a backend that filters in Python (the memory backend)."""
        if self.status is not None and record.get("status") != self.status:
            return False
        if self.func is not None:
            spec = record.get("spec")
            if not isinstance(spec, Mapping) or spec.get("func") != self.func:
                return False
        if self.since is not None and key < self.since:
            return False
        if self.until is not None and key >= self.until:
            return False
        return self.after is None or (key, str(record.get("id"))) < self.after


def check_listing(
    *,
    status: str | None,
    func: str | None,
    since: datetime | None,
    until: datetime | None,
    cursor: str | None,
    limit: int,
) -> Listing:
    """Check ``list_tasks``' arguments and convert them; bad ones raise ``BackendInputError`` naming the
    problem (an unknown status with the valid ones, a naive time, ``limit`` outside 1..MAX_PAGE_SIZE, a
    cursor that is not one)."""
    if status is not None and status not in LISTABLE_STATUSES:
        raise BackendInputError(
            f"list_tasks() status {status!r} is not one of {', '.join(LISTABLE_STATUSES)}"
        )
    if func is not None and (not isinstance(func, str) or not func):
        raise BackendInputError(f"list_tasks() func must be a non-empty string, got {func!r}")
    keys: list[int | None] = []
    for name, moment in (("since", since), ("until", until)):
        if moment is None:
            keys.append(None)
            continue
        if not isinstance(moment, datetime) or moment.utcoffset() is None:
            raise BackendInputError(f"list_tasks() {name} must be an aware datetime, got {moment!r}")
        try:
            keys.append(_to_micros(moment))
        except OverflowError:
            raise BackendInputError(
                f"list_tasks() {name} {moment.isoformat()} is out of range in UTC"
            ) from None
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_PAGE_SIZE:
        raise BackendInputError(
            f"list_tasks() limit must be an integer from 1 to {MAX_PAGE_SIZE}, got {limit!r}"
        )
    after = decode_cursor(cursor) if cursor is not None else None
    return Listing(status=status, func=func, since=keys[0], until=keys[1], after=after, limit=limit)


def page_of(listing: Listing, keyed: Sequence[tuple[int, Mapping[str, Any]]]) -> TaskPage:
    """The page for ``listing`` from ``(key, record)`` pairs already filtered and in listing order,
    holding at most ``listing.limit + 1`` of them (the extra one tells whether a next page exists)."""
    shown = keyed[: listing.limit]
    more = len(keyed) > listing.limit
    cursor = encode_cursor(shown[-1][0], str(shown[-1][1]["id"])) if more and shown else None
    return TaskPage(records=[dict(r) for _, r in shown], next_cursor=cursor)
