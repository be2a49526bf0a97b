"""Name encoding and JSON text (no server needed)."""

from __future__ import annotations

import json
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sheppy_postgres._records import decode_name, encode_name, notify_key

from sheppy_core.backend import record_from_json as loads
from sheppy_core.backend import record_to_json

_json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)


@pytest.mark.parametrize("name", ["plain", "a\\b", "nul\x00here", "\\0", "\\\x00\\", "", "ünï ✓ {x}"])
def test_encode_name_round_trips(name: str) -> None:
    stored = encode_name(name)
    assert "\x00" not in stored
    assert decode_name(stored) == name


def test_encode_name_is_injective_on_tricky_pairs() -> None:
    assert encode_name("a\x00") != encode_name("a\\0")


def test_dumps_falls_back_to_ascii_for_lone_surrogates() -> None:
    record = {"id": "x", "text": "bad \ud800 surrogate", "ok": "ünï"}
    text = record_to_json(record)
    text.encode("utf-8")
    assert json.loads(text) == record


@given(st.dictionaries(st.text(), _json_values, max_size=6))
def test_dumps_and_loads_round_trip_any_json_record(record: dict[str, object]) -> None:
    text = record_to_json(record)
    text.encode("utf-8")  # storable in a text column, surrogates or not
    assert loads(text) == record
    assert json.loads(text) == record  # and plain JSON for any other reader


def test_loads_reads_what_the_standard_library_wrote() -> None:
    record = {"surrogate": "\ud800", "nan": math.inf, "big": 10**40, "nested": {"x": [1.5, None]}}
    assert loads(json.dumps(record)) == record


def test_notify_key_is_short_and_distinct() -> None:
    long_name = "q" * 10_000
    assert len(notify_key("q", long_name)) == 33
    assert notify_key("q", "a") != notify_key("q", "b") != notify_key("r", "a")


def test_long_names_are_stored_as_a_hash_that_cannot_collide() -> None:
    long_name = "ü" * 600  # 1200 bytes
    stored = encode_name(long_name)
    assert stored.startswith("\\#") and len(stored) == 66
    assert encode_name(long_name + "x") != stored
    assert encode_name("ü" * 250) == "ü" * 250  # 500 bytes: kept as it is
    # An escaped name never starts with a backslash followed by '#'.
    assert not encode_name("\\#" + "0" * 64).startswith("\\#")
