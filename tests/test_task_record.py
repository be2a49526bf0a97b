"""The stored form of a task: only what differs from the defaults, read back to the same Task."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import tasks_for_tests as t
from hypothesis import given, settings
from hypothesis import strategies as st

from sheppy_core import Task
from sheppy_core._task_record import ALWAYS_STORED, compact_record, task_record
from sheppy_core.models import AttemptError, TaskConfig, TaskException, TaskSpec

moments = st.datetimes(
    min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1),
    timezones=st.sampled_from([UTC, timezone(timedelta(hours=2))]),
)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=8,
)
configs = st.builds(
    TaskConfig,
    retry=st.integers(0, 3),
    retry_delay=st.sampled_from([1.0, 1, 0.5, [1.0, 2.0], None]),
    timeout=st.sampled_from([None, 2.5]),
    retry_on_timeout=st.booleans(),
    retry_on_crash=st.sampled_from([None, True, False]),
    ttl=st.sampled_from(["inherit", None, 60]),
)
maybe_moment = st.none() | moments
tasks = st.builds(
    Task,
    status=st.sampled_from(["new", "pending", "processing", "scheduled", "retrying", "completed", "failed"]),
    result=st.none() | json_values,
    exception=st.none() | st.builds(TaskException, type=st.just("ValueError"), message=st.text(max_size=5)),
    spec=st.builds(TaskSpec, func=st.just("m:f"), args=st.lists(json_values, max_size=3).map(tuple),
                   kwargs=st.dictionaries(st.text(max_size=4), json_values, max_size=2)),
    config=configs,
    created_at=moments,
    finished_at=maybe_moment,
    scheduled_at=maybe_moment,
    retry_count=st.integers(0, 3),
    next_retry_at=maybe_moment,
    workflow_id=st.none() | st.uuids(),
    cron_id=st.none() | st.uuids(),
    claimed_by=st.none() | st.text(max_size=5),
    lease_expires_at=maybe_moment,
    deliveries=st.integers(0, 2),
    handed_back=st.integers(0, 2),
    attempt_errors=st.lists(
        st.builds(AttemptError, attempt=st.integers(1, 3), status=st.just("failed"),
                  finished_at=moments, exception=st.builds(TaskException, type=st.just("KeyError"))),
        max_size=2,
    ),
    trace_context=st.sampled_from([{}, {"traceparent": "00-" + "1" * 32 + "-" + "2" * 16 + "-01"}]),
)


@settings(max_examples=300, deadline=None)
@given(tasks)
def test_a_stored_task_reads_back_to_the_same_task(task: Task[Any]) -> None:
    record = task_record(task)
    assert Task.model_validate(json.loads(json.dumps(record))) == task


@settings(max_examples=300, deadline=None)
@given(tasks)
def test_the_stored_form_is_the_json_form_without_its_defaults(task: Task[Any]) -> None:
    full = task.model_dump(mode="json")
    record = task_record(task)
    assert record == compact_record(full)
    assert set(record) >= ALWAYS_STORED
    default = Task(spec=TaskSpec(func="-")).model_dump(mode="json")
    for name, value in full.items():
        if name not in record:
            assert value == default[name] and type(value) is type(default[name]), name


def test_a_fresh_no_op_task_stores_only_what_it_is() -> None:
    task = t.add(1, 2)
    record = task_record(task)
    assert record == {
        "id": str(task.id),
        "status": "new",
        "spec": {"func": "tasks_for_tests:add", "args": [1, 2], "kwargs": {}},
        "created_at": task.created_at.isoformat().replace("+00:00", "Z"),
    }
    stored, full = json.dumps(record, separators=(",", ":")), json.dumps(task.model_dump(mode="json"))
    assert len(stored) < 200 < len(full)


def test_options_that_differ_from_the_defaults_are_stored_and_the_rest_are_not() -> None:
    task = t.fails_once("k")  # @task(retry=...) in tasks_for_tests
    record = task_record(task)
    assert record["config"] == {k: v for k, v in task.config.model_dump(mode="json").items()
                                if v != TaskConfig().model_dump(mode="json")[k]}
    assert Task.model_validate(record) == task


def test_a_record_stored_in_full_reads_back_the_same() -> None:
    """Records written before the compact form (every field spelled out) stay readable."""
    task = t.add(1, 2).model_copy(update={"status": "completed", "result": 3,
                                          "finished_at": datetime.now(UTC), "workflow_id": uuid.uuid4()})
    assert Task.model_validate(task.model_dump(mode="json")) == Task.model_validate(task_record(task)) == task
