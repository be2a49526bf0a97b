"""Name encoding and JSON text (no server needed)."""

from __future__ import annotations

import json

import pytest
from sheppy_postgres._records import decode_name, dumps, encode_name, notify_key


@pytest.mark.parametrize("name", ["plain", "a\\b", "nul\x00here", "\\0", "\\\x00\\", "", "ünï ✓ {x}"])
def test_encode_name_round_trips(name: str) -> None:
    stored = encode_name(name)
    assert "\x00" not in stored
    assert decode_name(stored) == name


def test_encode_name_is_injective_on_tricky_pairs() -> None:
    assert encode_name("a\x00") != encode_name("a\\0")


def test_dumps_falls_back_to_ascii_for_lone_surrogates() -> None:
    record = {"id": "x", "text": "bad \ud800 surrogate", "ok": "ünï"}
    text = dumps(record)
    text.encode("utf-8")
    assert json.loads(text) == record


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
