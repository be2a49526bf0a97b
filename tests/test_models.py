from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from sheppy_core.exceptions import TaskFailedError, TaskTimeoutError
from sheppy_core.models import Task, TaskConfig, TaskCron, TaskException, TaskSpec


def test_task_defaults() -> None:
    task = Task(spec=TaskSpec(func="m:f"))
    assert task.status == "new"
    assert isinstance(task.id, uuid.UUID)
    assert task.created_at.tzinfo is not None
    assert task.deliveries == 0 and task.claimed_by is None
    assert not task.is_retriable and not task.should_retry


def test_record_written_by_sheppy_007_is_readable() -> None:
    legacy = {
        "id": str(uuid.uuid4()),
        "status": "failed",
        "result": None,
        "error": "ValueError: bad input",
        "finished_at": "2025-01-01T00:00:00",
        "spec": {"func": "app.tasks:f", "args": [1], "kwargs": {}, "middleware": ["os:system"]},
        "config": {
            "retry": 1,
            "retry_delay": 1.0,
            "timeout": None,
            "retry_on_timeout": False,
            "rate_limit": None,
        },
        "created_at": "2025-01-01T00:00:00",
        "scheduled_at": None,
        "retry_count": 1,
        "last_retry_at": None,
        "next_retry_at": None,
        "workflow_id": None,
    }
    task = Task.model_validate(legacy)
    assert task.exception is not None and task.exception.type == "ValueError"
    assert task.error == "ValueError: bad input"
    assert task.finished_at == datetime(2025, 1, 1, tzinfo=UTC)  # naive read as UTC
    assert "middleware" not in task.spec.model_dump()


def test_spec_and_config_reject_unknown_keys() -> None:
    with pytest.raises(ValidationError):
        TaskSpec.model_validate({"func": "m:f", "surprise": 1})
    with pytest.raises(ValidationError):
        TaskConfig.model_validate({"retries": 3})
    # Any func builds (as in sheppy); only registered @task functions ever run (test_safe_execution).
    assert TaskSpec(func="no_colon").func == "no_colon"


def test_retry_delay_per_attempt() -> None:
    assert TaskConfig().delay_for(0) == 1.0
    assert TaskConfig(retry_delay=2.5).delay_for(7) == 2.5
    config = TaskConfig(retry_delay=[1, 5, 30])
    assert [config.delay_for(n) for n in range(5)] == [1, 5, 30, 30, 30]
    with pytest.raises(ValidationError):
        TaskConfig(retry_delay=[])


def test_task_exception_round_trip_without_imports() -> None:
    try:
        raise TaskTimeoutError("exceeded timeout of 1 seconds")
    except TaskTimeoutError as exc:
        record = TaskException.from_exception(exc)
    assert record.traceback and "TaskTimeoutError" in record.traceback
    assert isinstance(record.to_exception(), TaskTimeoutError)
    assert isinstance(TaskException(type="KeyError", message="'k'", args=("k",)).to_exception(), KeyError)
    # A class from a module nobody imported is never imported to rebuild it.
    foreign = TaskException(type="Boom", module="some.unimported.module", message="x")
    rebuilt = foreign.to_exception()
    assert isinstance(rebuilt, TaskFailedError) and rebuilt.original_type == "some.unimported.module:Boom"
    assert str(foreign) == "Boom: x"


def test_cron_ids_are_deterministic() -> None:
    spec = TaskSpec(func="m:f", args=(1,))
    one = TaskCron(expression="*/5 * * * *", spec=spec)
    two = TaskCron(expression="*/5 * * * *", spec=spec)
    assert one.id != two.id and one.deterministic_id == two.deterministic_id
    assert TaskCron(expression="0 * * * *", spec=spec).deterministic_id != one.deterministic_id
    start = datetime(2026, 1, 1, 0, 1, tzinfo=UTC)
    assert one.next_run(start) == datetime(2026, 1, 1, 0, 5, tzinfo=UTC)
    assert one.create_task(start).id == two.create_task(start).id
    assert one.create_task(start).cron_id == one.deterministic_id
    with pytest.raises(ValidationError, match="is not a valid cron expression"):
        TaskCron(expression="every minute", spec=spec)


@pytest.mark.parametrize(
    ("expression", "problem"),
    [
        ("*/61 * * * *", "step 61 in the minute field"),
        ("*/60 * * * *", "step 60 in the minute field"),
        ("0 */25 * * *", "step 25 in the hour field"),
        ("0 0 */32 * *", "step 32 in the day-of-month field"),
        ("0 0 1 */13 *", "step 13 in the month field"),
        ("0 0 1 */12 *", "step 12 in the month field"),
        ("0 0 * * */8", "step 8 in the day-of-week field"),
        ("0 0 * * */7", "step 7 in the day-of-week field"),
        ("* * * * * */60", "step 60 in the second field"),
        ("0 0 31 2 *", "never fires"),
        ("0 0 30,31 2 *", "never fires"),
    ],
)
def test_an_impossible_cron_expression_is_refused_naming_the_problem(expression: str, problem: str) -> None:
    # croniter accepts these: */61 fires only at minute 0 (not "every 61 minutes"), Feb 31 never comes.
    with pytest.raises(ValidationError, match=problem) as info:
        TaskCron(expression=expression, spec=TaskSpec(func="m:f"))
    assert expression in str(info.value)


@pytest.mark.parametrize(
    "expression",
    ["*/59 * * * *", "0 */23 * * *", "0 0 */30 * *", "0 0 1 */11 *", "0 0 * * */6", "0 0 29 2 *",
     "*/30 * * * * */59", "10-50/20 * * * *", "@hourly", "0 0 L * *", "0 0 * * MON-FRI", "0 0 * * 1#2"],
)
def test_possible_cron_expressions_stay_valid(expression: str) -> None:
    assert TaskCron(expression=expression, spec=TaskSpec(func="m:f")).expression == expression


def test_repr_shows_the_useful_fields() -> None:
    task = Task(
        spec=TaskSpec(func="m:f", args=(1,)),
        retry_count=2,
        exception=TaskException(type="ValueError", message="bad"),
    )
    text = repr(task)
    assert "m:f" in text and "retry_count=2" in text and "ValueError: bad" in text
