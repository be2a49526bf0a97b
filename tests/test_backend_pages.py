"""``sheppy_core.backend._pages``: the listing key, the cursor, the argument check and the page builder
every ``list_tasks`` shares — read from the spec in its docstrings, as a backend author would use it."""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from sheppy_core.backend import (
    LISTABLE_STATUSES,
    MAX_PAGE_SIZE,
    STATS_KEYS,
    BackendInputError,
    Listing,
    TaskPage,
    check_listing,
    decode_cursor,
    encode_cursor,
    listing_key,
    micros_to_datetime,
    page_of,
    to_iso,
)

STORED_AT = datetime(2026, 12, 3, 12, 0, 0, 654_321, tzinfo=UTC)


def listing(**arguments: Any) -> Listing:
    given: dict[str, Any] = {"status": None, "func": None, "since": None, "until": None, "cursor": None,
                             "limit": 10}
    given.update(arguments)
    return check_listing(**given)


def record(task_id: str, status: str = "pending", func: str = "app:work", **fields: Any) -> dict[str, Any]:
    return {"id": task_id, "status": status, "spec": {"func": func}, **fields}


# -- listing key ------------------------------------------------------------------------------------


def test_listing_key_is_created_at_in_microseconds_since_the_epoch() -> None:
    created = datetime(2026, 1, 2, 3, 4, 5, 678_901, tzinfo=UTC)
    key = listing_key({"created_at": to_iso(created)}, STORED_AT)
    assert key == int((created - datetime(1970, 1, 1, tzinfo=UTC)).total_seconds()) * 1_000_000 + 678_901
    assert micros_to_datetime(key) == created


def test_listing_key_is_the_same_moment_whatever_the_offset_it_is_written_with() -> None:
    utc = listing_key({"created_at": "2026-06-01T10:00:00.000001Z"}, STORED_AT)
    assert listing_key({"created_at": "2026-06-01T12:00:00.000001+02:00"}, STORED_AT) == utc
    assert listing_key({"created_at": "2026-06-01T10:00:00.000001"}, STORED_AT) == utc  # naive: UTC


def test_listing_key_keeps_microseconds_apart() -> None:
    earlier = listing_key({"created_at": "2026-06-01T10:00:00.000001Z"}, STORED_AT)
    later = listing_key({"created_at": "2026-06-01T10:00:00.000002Z"}, STORED_AT)
    assert later - earlier == 1


def test_listing_key_before_the_epoch_is_negative_and_ordered() -> None:
    before = listing_key({"created_at": "1969-12-31T23:59:59.999999Z"}, STORED_AT)
    assert before == -1
    assert micros_to_datetime(before) == datetime(1969, 12, 31, 23, 59, 59, 999_999, tzinfo=UTC)


@pytest.mark.parametrize("created", [None, 12, "", "yesterday", "2026-13-45T00:00:00Z",
                                     "9999-12-31T23:59:59-05:00", "0001-01-01T00:00:00+05:00"])
def test_listing_key_without_a_readable_created_at_is_the_time_of_storing(created: object) -> None:
    fields = {} if created is None else {"created_at": created}
    assert micros_to_datetime(listing_key(fields, STORED_AT)) == STORED_AT


# -- cursor ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("task_id", ["0b7c3a1e-8d1f-4a47-9d0e-0f6f1b2c3d4e", "a:b:c", "é-ünï-💥", "x" * 300])
@pytest.mark.parametrize("key", [0, 1, -1, 1_796_299_582_611_049, 2**62])
def test_a_cursor_decodes_to_what_it_encodes(key: int, task_id: str) -> None:
    cursor = encode_cursor(key, task_id)
    assert decode_cursor(cursor) == (key, task_id)
    assert re.fullmatch(r"[A-Za-z0-9_-]+", cursor), f"not URL-safe without quoting: {cursor!r}"


@pytest.mark.parametrize("cursor", ["", "!!!", "bm90IGEgY3Vyc29y", "MTIz", "eDp5", "MTo", "é", "%%%%"])
def test_anything_but_a_cursor_is_refused_naming_it(cursor: str) -> None:
    with pytest.raises(BackendInputError, match=r"^invalid cursor .*next_cursor"):
        decode_cursor(cursor)


def test_a_cursor_that_is_not_a_string_is_refused() -> None:
    with pytest.raises(BackendInputError, match="invalid cursor 42"):
        decode_cursor(42)  # type: ignore[arg-type]


# -- check_listing -----------------------------------------------------------------------------------


def test_check_listing_converts_times_to_keys_and_decodes_the_cursor() -> None:
    since = datetime(2026, 1, 1, tzinfo=UTC)
    until = datetime(2026, 1, 2, 2, tzinfo=timezone(timedelta(hours=2)))
    checked = listing(status="retrying", func="app:work", since=since, until=until,
                      cursor=encode_cursor(7, "t-1"), limit=MAX_PAGE_SIZE)
    assert checked == Listing(
        status="retrying", func="app:work", since=listing_key({"created_at": to_iso(since)}, STORED_AT),
        until=listing_key({"created_at": "2026-01-02T00:00:00Z"}, STORED_AT), after=(7, "t-1"),
        limit=MAX_PAGE_SIZE,
    )


def test_every_stats_status_and_retrying_can_be_listed() -> None:
    assert set(LISTABLE_STATUSES) == {*STATS_KEYS, "retrying"}
    for status in LISTABLE_STATUSES:
        assert listing(status=status).status == status


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"status": "running"}, r"status 'running' is not one of pending, .*retrying"),
        ({"status": "Pending"}, r"status 'Pending' is not one of"),
        ({"func": ""}, r"func must be a non-empty string, got ''"),
        ({"func": 3}, r"func must be a non-empty string, got 3"),
        ({"since": datetime(2026, 1, 1)}, r"since must be an aware datetime"),  # naive
        ({"until": "2026-01-01T00:00:00Z"}, r"until must be an aware datetime"),
        ({"since": datetime(9999, 12, 31, 23, tzinfo=timezone(timedelta(hours=-5)))},
         r"since .* is out of range"),
        ({"limit": 0}, rf"limit must be an integer from 1 to {MAX_PAGE_SIZE}, got 0"),
        ({"limit": MAX_PAGE_SIZE + 1}, rf"got {MAX_PAGE_SIZE + 1}"),
        ({"limit": True}, r"limit .* got True"),
        ({"limit": 2.0}, r"limit .* got 2.0"),
        ({"cursor": "garbage!"}, r"invalid cursor 'garbage!'"),
    ],
)
def test_bad_arguments_are_refused_in_one_line_naming_them(arguments: dict[str, Any], message: str) -> None:
    with pytest.raises(BackendInputError, match=message) as raised:
        listing(**arguments)
    assert "\n" not in str(raised.value)


@pytest.mark.parametrize("limit", [1, MAX_PAGE_SIZE])
def test_the_limits_of_limit_are_accepted(limit: int) -> None:
    assert listing(limit=limit).limit == limit


# -- Listing.admits -------------------------------------------------------------------------------------


def test_status_and_func_match_exactly() -> None:
    assert listing(status="failed").admits(5, record("a", status="failed"))
    assert not listing(status="failed").admits(5, record("a", status="crashed"))
    assert listing(func="app:work").admits(5, record("a"))
    assert not listing(func="app:work").admits(5, record("a", func="app:work2"))
    assert not listing(func="app:work", status="pending").admits(5, record("a", status="failed"))


@pytest.mark.parametrize("spec", [None, "app:work", ["app:work"], 7])
def test_a_record_without_a_readable_spec_is_found_by_status_but_never_by_func(spec: object) -> None:
    stand_in: Mapping[str, Any] = {"id": "q", "status": "quarantined", "spec": spec}
    assert listing(status="quarantined").admits(5, stand_in)
    assert not listing(func="app:work").admits(5, stand_in)


def test_since_is_inclusive_and_until_exclusive() -> None:
    moment = datetime(2026, 3, 1, tzinfo=UTC)
    key = listing_key({"created_at": to_iso(moment)}, STORED_AT)
    assert listing(since=moment).admits(key, record("a"))
    assert not listing(since=moment).admits(key - 1, record("a"))
    assert not listing(until=moment).admits(key, record("a"))
    assert listing(until=moment).admits(key - 1, record("a"))


def test_a_cursor_admits_only_what_comes_strictly_after_it_in_listing_order() -> None:
    after = listing(cursor=encode_cursor(100, "m"))
    assert after.admits(100, record("l")), "same key, smaller id: next in order"
    assert not after.admits(100, record("m")), "the cursor's own record"
    assert not after.admits(100, record("n")), "same key, larger id: already shown"
    assert after.admits(99, record("z")), "older key: next whatever its id"
    assert not after.admits(101, record("a")), "newer key: on an earlier (or new first) page"
    assert after.admits(100, record("M")), "code-point order: 'M' < 'm'"


# -- page_of ---------------------------------------------------------------------------------------


def test_a_page_with_more_behind_it_continues_after_its_last_record() -> None:
    keyed = [(30, record("c")), (20, record("b")), (10, record("a"))]
    page = page_of(listing(limit=2), keyed)
    assert [r["id"] for r in page.records] == ["c", "b"]
    assert page.next_cursor is not None and decode_cursor(page.next_cursor) == (20, "b")


@pytest.mark.parametrize("count", [0, 1, 2])
def test_the_last_page_has_no_cursor(count: int) -> None:
    keyed = [(30 - i, record(f"r{i}")) for i in range(count)]
    page = page_of(listing(limit=2), keyed)
    assert page == TaskPage(records=[r for _, r in keyed], next_cursor=None)


def test_a_page_holds_copies_of_the_records() -> None:
    stored = record("a")
    page = page_of(listing(limit=2), [(1, stored)])
    page.records[0]["status"] = "changed"
    assert stored["status"] == "pending"


def test_following_the_cursors_lists_every_record_once_in_order_while_the_store_changes() -> None:
    """The pieces as a backend uses them: admits filters, (key, id) descending orders, page_of pages."""
    store = {f"t{i:02d}": (1_000 + i // 3, record(f"t{i:02d}")) for i in range(10)}  # ties of three

    def page(cursor: str | None) -> TaskPage:
        checked = listing(limit=3, cursor=cursor)
        admitted = sorted(((k, i) for i, (k, r) in store.items() if checked.admits(k, r)), reverse=True)
        return page_of(checked, [(k, store[i][1]) for k, i in admitted[: checked.limit + 1]])

    want = [i for _, i in sorted(((k, i) for i, (k, _) in store.items()), reverse=True)]
    first = page(None)
    del store[first.records[-1]["id"]]  # the record the cursor points at
    store["new"] = (2_000, record("new"))  # newer than every other: only on a new first page
    seen = [r["id"] for r in first.records]
    cursor = first.next_cursor
    while cursor is not None:
        current = page(cursor)
        seen += [r["id"] for r in current.records]
        cursor = current.next_cursor
    assert seen == want
