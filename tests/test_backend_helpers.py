"""Helpers sheppy_core.backend gives backend authors."""

from __future__ import annotations

import json
import math

import pytest
import tasks_for_tests as t
from hypothesis import given
from hypothesis import strategies as st

from sheppy_core.backend import record_from_json, record_to_json
from sheppy_core.models import Task


def test_record_from_json_reads_a_task_record_as_json_loads_does() -> None:
    record = t.add(1, 2).model_dump(mode="json")
    text = json.dumps(record)
    assert record_from_json(text) == json.loads(text) == record
    assert record_from_json(text.encode()) == record  # bytes too, as drivers may hand them over
    assert Task.model_validate(record_from_json(text)).model_dump(mode="json") == record


def test_record_from_json_reads_what_only_the_standard_library_can() -> None:
    record = {"lone": "\ud800", "inf": math.inf, "big": 10**40, "nested": {"x": [1.5, None, "ü"]}}
    assert record_from_json(json.dumps(record)) == record
    assert math.isnan(record_from_json('{"x": NaN}')["x"])


def test_record_from_json_refuses_text_that_is_not_json() -> None:
    with pytest.raises(ValueError):  # json.JSONDecodeError is one
        record_from_json('{"unterminated": ')


_json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)


@given(st.dictionaries(st.text(), _json_values, max_size=6))
def test_record_to_json_round_trips_any_json_record(record: dict[str, object]) -> None:
    text = record_to_json(record)
    assert record_from_json(text) == json.loads(text) == record


def test_record_to_json_escapes_only_what_utf8_cannot_hold() -> None:
    assert record_to_json({"a": "ünï ✓"}) == '{"a":"ünï ✓"}'
    lone = {"a": "bad \ud800 surrogate"}
    text = record_to_json(lone)
    text.encode("utf-8")  # storable as UTF-8
    assert record_from_json(text) == lone


def test_record_to_json_refuses_what_could_not_be_read_back() -> None:
    with pytest.raises(ValueError):
        record_to_json({"huge": 10**4400})  # longer than Python's int/str conversion limit
    digits = "7" * 5000  # a long digit run inside a string is fine
    assert record_from_json(record_to_json({"s": digits})) == {"s": digits}
    with pytest.raises(TypeError):
        record_to_json({"x": object()})


def test_record_to_json_nan_is_written_or_refused_as_asked() -> None:
    assert record_to_json({"x": math.inf}) == '{"x":Infinity}'
    with pytest.raises(ValueError):
        record_to_json({"x": math.nan}, allow_nan=False)
    assert record_to_json({"s": "NaN"}, allow_nan=False) == '{"s":"NaN"}'


_digit_runs = st.lists(
    st.tuples(
        st.integers(min_value=0, max_value=1500),
        st.sampled_from(["0", "7", "\u0663"]),  # ASCII and Arabic-Indic decimal digits
        st.text(alphabet=st.sampled_from(['"', ",", "a", "-", "\u00b2"]), min_size=1, max_size=3),
    ),
    max_size=8,
)


@given(_digit_runs)
def test_overlong_digit_runs_are_found_exactly_where_a_regex_finds_them(
    runs: list[tuple[int, str, str]],
) -> None:
    # The windowed search must agree with the plain regex it replaces; 640 is Python's lowest limit.
    import re
    import sys

    from sheppy_core.backend._records import _has_overlong_int

    text = "".join(digit * length + gap for length, digit, gap in runs)
    before = sys.get_int_max_str_digits()
    sys.set_int_max_str_digits(640)
    try:
        expected = len(text) > 640 and re.search(r"\d{641}", text) is not None
        assert _has_overlong_int(text) == expected
    finally:
        sys.set_int_max_str_digits(before)


def test_a_large_batch_with_a_huge_integer_anywhere_is_refused() -> None:
    rows = [[f"id-{i}", "x" * 40, i] for i in range(2000)]
    assert record_from_json(record_to_json(rows)) == rows
    rows[1234][2] = 10**4400
    with pytest.raises(ValueError):
        record_to_json(rows)


def test_digit_runs_at_the_limit_are_judged_right_at_every_offset() -> None:
    import sys

    from sheppy_core.backend._records import _has_overlong_int

    before = sys.get_int_max_str_digits()
    sys.set_int_max_str_digits(640)
    try:
        step = 641 // 2
        for offset in range(step + 2):
            for length, digit in ((640, "5"), (641, "5"), (642, "\u0665"), (700, "9")):
                text = "a" * offset + digit * length + "a" * (offset % 7)
                assert _has_overlong_int(text) == (length > 640), (offset, length)
        mixed = "x" + "1\u0661" * 321 + "x"  # 642 digits, ASCII and Arabic-Indic alternating
        assert _has_overlong_int(mixed)
        assert not _has_overlong_int("x" + "1\u0661" * 320 + "x")  # 640
        assert not _has_overlong_int(("7" * 640 + "\u00b2") * 3)  # superscript two is not decimal
    finally:
        sys.set_int_max_str_digits(before)
