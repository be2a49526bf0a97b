"""Helpers sheppy_core.backend gives backend authors."""

from __future__ import annotations

import json
import math

import pytest
import tasks_for_tests as t

from sheppy_core.backend import record_from_json
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
