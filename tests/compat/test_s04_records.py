"""§4 of sheppy-api.md: the task records — ``Task``, ``TaskSpec``, ``TaskConfig``, ``TaskCron``,
``TaskException`` and the status values."""

from __future__ import annotations

import subprocess
import sys
import uuid
import warnings
from datetime import UTC, datetime, timedelta
from typing import Any, get_args

import pytest
from compat import tasks_models as t
from compat.support import work
from pydantic import ValidationError

from sheppy_core import Queue, Task, Worker
from sheppy_core.exceptions import TaskFailedError, TaskTimeoutError
from sheppy_core.models import TaskConfig, TaskCron, TaskException, TaskSpec, TaskStatus

MODULE = "compat.tasks_models"


def spec_of(name: str) -> TaskSpec:
    return TaskSpec(func=f"{MODULE}:{name}")


def capture(exc: BaseException) -> TaskException:
    try:
        raise exc
    except BaseException as raised:
        return TaskException.from_exception(raised)


# -- 4.1 Task ----------------------------------------------------------------------------------------


def test_task_fields_and_defaults() -> None:
    before = datetime.now(UTC)
    record = Task(spec=TaskSpec(func="m:f"))
    assert isinstance(record.id, uuid.UUID) and record.id.version == 4
    assert record.status == "new"
    assert record.result is None and record.exception is None
    assert record.config == TaskConfig()
    assert record.created_at.tzinfo is not None and before <= record.created_at <= datetime.now(UTC)
    assert record.finished_at is None and record.scheduled_at is None
    assert record.retry_count == 0 and record.last_retry_at is None and record.next_retry_at is None
    assert record.workflow_id is None and record.cron_id is None


def test_a_task_is_frozen() -> None:
    record = t.add_sync(1, 2)
    changes = [("status", "completed"), ("completed", True), ("error", "x"), ("config", TaskConfig())]
    for field, value in changes:
        with pytest.raises(ValidationError, match="Instance is frozen"):
            setattr(record, field, value)
    with pytest.raises(ValidationError, match="Instance is frozen"):
        record.spec.func = "other:f"  # type: ignore[misc]
    with pytest.raises(ValidationError, match="Instance is frozen"):
        record.config.retry = 5  # type: ignore[misc]
    with pytest.raises(TypeError, match="does not support item assignment"):
        record.spec.args[0] = 5  # type: ignore[index]


def test_is_retriable_and_should_retry() -> None:
    plain, retried = t.add_sync(1, 2), t.retry_only()
    assert plain.is_retriable is False and plain.should_retry is False
    assert retried.is_retriable is True and retried.should_retry is True
    # Internals update records in place despite frozen=True; sheppy's tests do the same.
    retried.__dict__["retry_count"] = 1
    assert retried.should_retry is True
    retried.__dict__["retry_count"] = 2
    assert retried.should_retry is False and retried.is_retriable is True


def test_completed_is_deprecated_and_follows_the_status() -> None:
    record = t.add_sync(1, 2)
    with pytest.warns(DeprecationWarning, match="task.completed is deprecated"):
        assert record.completed is False
    done = Task(spec=record.spec, status="completed", result=3, finished_at=datetime.now(UTC))
    with pytest.warns(DeprecationWarning, match="task.completed is deprecated"):
        assert done.completed is True


def test_error_is_the_deprecated_string_of_the_exception() -> None:
    record = t.add_sync(1, 2)
    with pytest.warns(DeprecationWarning, match="task.error is deprecated"):
        assert record.error is None
    failed = Task(spec=record.spec, status="failed", exception=capture(ValueError("bad input")))
    with pytest.warns(DeprecationWarning, match="task.error is deprecated"):
        assert failed.error == "ValueError: bad input"


def test_is_terminal() -> None:
    spec = TaskSpec(func="m:f")
    error = TaskException(type="ValueError", message="x")
    now = datetime.now(UTC)
    assert Task(spec=spec).is_terminal is False
    assert Task(spec=spec, status="completed", finished_at=now).is_terminal is True
    assert Task(spec=spec, status="failed", exception=error, finished_at=now).is_terminal is True
    retrying = Task(spec=spec, config=TaskConfig(retry=2), status="retrying", exception=error, retry_count=1)
    assert retrying.is_terminal is False
    spent = Task(spec=spec, config=TaskConfig(retry=2), status="failed", exception=error, retry_count=2,
                 finished_at=now)
    assert spent.is_terminal is True
    # sheppy-core (§18.7): a cancelled task is terminal too.
    assert Task(spec=spec, status="cancelled", finished_at=now).is_terminal is True


def test_repr_and_str_show_the_useful_fields() -> None:
    record = t.add_sync(1, 2)
    text = repr(record)
    for part in (str(record.id), f"{MODULE}:add_sync", "(1, 2)", "{}", "'new'", "error=None"):
        assert part in text, part
    assert "retry_count" not in text
    assert str(record) == text
    failed = Task(
        spec=record.spec,
        status="failed",
        retry_count=2,
        exception=TaskException(type="ValueError", message="bad"),
    )
    assert "retry_count=2" in repr(failed) and "ValueError: bad" in repr(failed)


def test_a_0_0_7_record_reads_fine() -> None:
    legacy = {
        "id": str(uuid.uuid4()),
        "completed": False,
        "error": "ValueError: legacy failure",
        "result": None,
        "spec": {"func": f"{MODULE}:add_sync", "args": [1, 2], "kwargs": {}, "return_type": "builtins.int",
                 "middleware": ["some.module:middleware"]},
        "config": {"retry": 0, "retry_delay": 1.0},
        "created_at": "2025-01-01T00:00:00",
        "finished_at": "2025-01-01T00:00:01",
        "scheduled_at": None,
        "retry_count": 0,
        "last_retry_at": None,
        "next_retry_at": None,
    }
    record = Task.model_validate(legacy)
    assert record.spec.func == f"{MODULE}:add_sync" and record.spec.args == (1, 2)
    assert "middleware" not in record.spec.model_dump()  # ignored, never resolved
    assert record.created_at.tzinfo is not None
    # Kept: the legacy error becomes the exception (see the migration notes), and the record is failed.
    assert record.exception is not None and str(record.exception) == "ValueError: legacy failure"
    assert record.status == "failed"
    done = Task.model_validate(legacy | {"completed": True, "error": None, "result": 3})
    assert done.status == "completed" and done.result == 3 and done.exception is None


def test_later_records_with_exception_and_cron_id_read_fine() -> None:
    cron_id = uuid.uuid4()
    record = Task.model_validate({
        "spec": {"func": "m:f"},
        "status": "crashed",
        "exception": {"type": "WorkerCrashedError", "module": "sheppy.exceptions", "message": "gone",
                      "args": [], "traceback": None},
        "cron_id": str(cron_id),
        "config": {"ttl": 60, "error_ttl": None, "retry_on_crash": True},
    })
    assert record.status == "crashed" and record.cron_id == cron_id
    assert record.config.ttl == 60 and record.config.error_ttl is None
    assert record.config.retry_on_crash is True


# -- Task[R]: generic over the result -------------------------------------------------------------------


def test_a_bare_task_accepts_any_result() -> None:
    class Anything:
        pass

    value = Anything()
    assert Task(spec=spec_of("untyped"), result=value).result is value


def test_a_parametrised_task_validates_its_result() -> None:
    assert Task[int](spec=spec_of("add_sync"), result=1).result == 1
    assert Task[int](spec=spec_of("add_sync"), result=None).result is None
    with pytest.raises(ValidationError):
        Task[int](spec=spec_of("add_sync"), result="nope")


def test_a_parametrised_task_coerces_a_model_result() -> None:
    record = Task[t.Status](spec=spec_of("returns_status"), result={"code": 1, "message": "m"})
    assert isinstance(record.result, t.Status) and record.result.code == 1
    # Also when the function named is not a task at all: the parameter alone decides.
    other = Task[t.Status](spec=TaskSpec(func=""), result={"code": 2, "message": "m"})
    assert isinstance(other.result, t.Status)


def test_model_validate_of_a_parametrised_task() -> None:
    data = Task[int](spec=spec_of("add_sync"), result=42).model_dump(mode="json")
    assert Task[int].model_validate(data).result == 42
    as_model = Task[t.Status].model_validate(data | {"result": {"code": 3, "message": "m"}})
    assert isinstance(as_model.result, t.Status)
    bad = Task(spec=spec_of("untyped"), result="nope").model_dump(mode="json")
    with pytest.raises(ValidationError):
        Task[int].model_validate(bad)


# -- 4.2 TaskSpec and TaskConfig -----------------------------------------------------------------------


def test_taskspec_construction_is_permissive() -> None:
    assert TaskSpec(func="").func == ""
    assert TaskSpec(func="no_colon").func == "no_colon"
    spec = TaskSpec(func="m:f", args=[1, 2], kwargs={"k": "v"})  # type: ignore[arg-type]
    assert spec.args == (1, 2) and spec.kwargs == {"k": "v"}
    assert TaskSpec(func="m:f").args == () and TaskSpec(func="m:f").kwargs == {}


def test_taskspec_and_taskconfig_reject_unknown_keys_but_ignore_legacy_middleware() -> None:
    with pytest.raises(ValidationError):
        TaskSpec.model_validate({"func": "m:f", "surprise": 1})
    with pytest.raises(ValidationError):
        TaskConfig.model_validate({"retries": 3})
    assert TaskSpec.model_validate({"func": "m:f", "middleware": ["a.b:c"]}) == TaskSpec(func="m:f")


def test_taskconfig_defaults() -> None:
    config = TaskConfig()
    assert config.retry == 0 and config.retry_delay == 1.0 and config.timeout is None
    assert config.retry_on_timeout is False and config.rate_limit is None
    assert not config.retry_on_crash
    assert config.ttl == "inherit" and config.error_ttl == "inherit"


def test_taskconfig_validation() -> None:
    with pytest.raises(ValidationError, match="retry_delay list cannot be empty"):
        TaskConfig(retry_delay=[])
    with pytest.raises(ValidationError):
        TaskConfig(retry=-1)
    with pytest.raises(ValidationError):
        TaskConfig(ttl=0)
    assert TaskConfig(retry="3").retry == 3  # type: ignore[arg-type]
    assert TaskConfig(retry_delay=[1, 2]).retry_delay == [1.0, 2.0]


def test_rate_limit_reads_like_sheppys_typed_dict() -> None:
    limit = TaskConfig(rate_limit={"max_rate": 2, "rate_period": 5}).rate_limit  # type: ignore[arg-type]
    assert limit is not None
    assert limit["max_rate"] == 2 and limit["rate_period"] == 5 and limit.get("strategy") == "sliding_window"
    with pytest.raises(KeyError):
        limit["bogus"]
    with pytest.raises(ValidationError):
        TaskConfig(rate_limit={"max_rate": 0, "rate_period": 5})  # type: ignore[arg-type]


# -- TaskCron -------------------------------------------------------------------------------------------


VALID_EXPRESSIONS = [
    "* * * * *", "1 1 1 1 1", "*/5 * * * *", "0 0 * * *", "0 0 * * 0", "0 0 * * 7", "0 0 1 * *",
    "0 0 1 1 *", "15 2 * * *", "0 */4 * * *", "0 9-17 * * 1-5", "0 9-17 * * mon",
    "@hourly", "@daily", "@weekly", "@monthly", "@yearly", "@annually",
]


@pytest.mark.parametrize("expression", VALID_EXPRESSIONS)
def test_taskcron_constructs_for_every_valid_expression(expression: str) -> None:
    cron = TaskCron(expression=expression, spec=TaskSpec(func=""), config=TaskConfig())
    start = datetime(2026, 1, 1, tzinfo=UTC)
    assert cron.next_run(start) > start


@pytest.mark.parametrize(
    "expression",
    ["doggo", 42, "", "* * * *", "60 * * * *", "* 24 * * *", "* * 32 * *", "* * * 13 *", "* * * * 8",
     "* * * * bob", "@invalid", "*/0 * * * *", None, 3.14, ["* * * * *"], {"cron": "* * * * *"}],
)
def test_taskcron_refuses_an_invalid_expression(expression: Any) -> None:
    with pytest.raises(ValidationError):
        TaskCron(expression=expression, spec=TaskSpec(func=""), config=TaskConfig())


def test_an_invalid_expression_says_so() -> None:
    with pytest.raises(ValidationError, match="doggo is not a valid cron expression"):
        TaskCron(expression="doggo", spec=TaskSpec(func="m:f"), config=TaskConfig())


@pytest.mark.parametrize(
    ("expression", "spec", "config"),
    [
        ("* * * * *", {"func": "task.simple"}, {}),
        ("* * * * *", {"func": "module.function"}, {"retry": 3}),
        ("0 0 * * *", {"func": "daily.task", "args": [1, 2, 3]}, {}),
        ("@hourly", {"func": "process", "kwargs": {"key": "value"}}, {"retry_delay": 5.0}),
        ("*/5 * * * *", {"func": "monitor", "args": ["prod"]}, {"retry": 1, "retry_delay": [1.0, 2.0]}),
    ],
)
def test_taskcron_deterministic_id(expression: str, spec: dict[str, Any], config: dict[str, Any]) -> None:
    one = TaskCron(expression=expression, spec=spec, config=config)  # type: ignore[arg-type]
    two = TaskCron(expression=expression, spec=spec, config=config)  # type: ignore[arg-type]
    assert one != two and one.id != two.id
    assert one.deterministic_id == two.deterministic_id
    others = [
        TaskCron(expression="*/5 9 * * *", spec=spec, config=config),  # type: ignore[arg-type]
        TaskCron(expression=expression, spec={"func": "different_func"}, config=config),  # type: ignore[arg-type]
        TaskCron(expression=expression, spec=spec, config={"retry": "42"}),  # type: ignore[arg-type]
    ]
    assert len({one.id, two.id, *(o.id for o in others)}) == 5
    assert len({one.deterministic_id, two.deterministic_id, *(o.deterministic_id for o in others)}) == 4


def test_cron_ids_of_tasks_without_a_retry_delay_are_unchanged_by_its_default() -> None:
    # Ids stored before retry_delay defaulted to 1.0 (it was None) stay the same.
    old_style = TaskCron.model_validate({"expression": "@daily", "spec": {"func": "m:f"},
                                         "config": {"retry_delay": None}})
    new_style = TaskCron(expression="@daily", spec=TaskSpec(func="m:f"), config=TaskConfig())
    assert old_style.deterministic_id == new_style.deterministic_id


async def test_a_cron_stored_before_the_retry_delay_default_is_still_found(queue: Queue) -> None:
    # Written as sheppy-core stored it when an unset retry_delay was None: the same task made now
    # (retry_delay 1.0) names the same cron, so it is not added twice and delete_cron finds it.
    record = t.add_sync(1, 2)
    old_config = record.config.model_dump(mode="json") | {"retry_delay": None}
    stored = TaskCron(expression="@daily", spec=record.spec, config=TaskConfig.model_validate(old_config))
    assert stored.config.retry_delay is None
    assert await queue.get_crons() == []  # also connects the queue's backend
    stored_id = str(stored.deterministic_id)
    assert await queue.backend.add_cron(queue.name, stored_id, stored.model_dump(mode="json"))
    assert await queue.add_cron(t.add_sync(1, 2), "@daily") is False
    assert len(await queue.get_crons()) == 1
    assert await queue.delete_cron(t.add_sync(1, 2), "@daily") is True
    assert await queue.get_crons() == []


def test_cron_occurrences_have_deterministic_ids() -> None:
    cron = TaskCron(expression="*/5 * * * *", spec=TaskSpec(func="m:f", args=(1,)), config=TaskConfig())
    twin = TaskCron(expression="*/5 * * * *", spec=TaskSpec(func="m:f", args=(1,)), config=TaskConfig())
    start = datetime(2026, 1, 1, 0, 5, tzinfo=UTC)
    assert cron.create_task(start).id == twin.create_task(start).id
    assert cron.create_task(start).id != cron.create_task(start + timedelta(minutes=5)).id
    assert cron.create_task(start).cron_id == cron.deterministic_id
    assert cron.next_run(datetime(2026, 1, 1, 0, 1, tzinfo=UTC)) == start


# -- 4.3 TaskException ------------------------------------------------------------------------------------


def test_from_exception_captures_everything() -> None:
    record = capture(ValueError("bad input", 42))
    assert record.type == "ValueError" and record.module == "builtins"
    assert record.message == str(ValueError("bad input", 42))
    assert record.args == ("bad input", 42)
    assert record.traceback is not None and "ValueError" in record.traceback
    assert __file__.split("/")[-1] in record.traceback  # the frame that raised it


def test_from_exception_of_a_custom_class() -> None:
    record = capture(t.CustomTaskError("oops", 5))
    assert record.type == "CustomTaskError" and record.module == MODULE
    assert record.args == ("oops", 5) and record.message == str(t.CustomTaskError("oops", 5))


def test_arguments_json_cannot_carry_become_their_repr() -> None:
    class NotSerializable:
        pass

    record = capture(ValueError(NotSerializable()))
    assert isinstance(record.args[0], str) and "NotSerializable" in record.args[0]
    assert TaskException.model_validate_json(record.model_dump_json()) == record


def test_to_exception_rebuilds_builtin_and_imported_classes() -> None:
    rebuilt = capture(ValueError("bad input", 42)).to_exception()
    assert type(rebuilt) is ValueError and rebuilt.args == ("bad input", 42)
    custom = capture(t.CustomTaskError("oops", 5)).to_exception()
    assert isinstance(custom, t.CustomTaskError) and custom.args == ("oops", 5)
    timeout = capture(TaskTimeoutError("too slow")).to_exception()
    assert isinstance(timeout, TaskTimeoutError)


def test_to_exception_falls_back_to_the_message_when_args_do_not_fit() -> None:
    record = TaskException(type="StrictError", module=MODULE, message="some message", args=("not", "ints"))
    rebuilt = record.to_exception()
    assert isinstance(rebuilt, t.StrictError) and rebuilt.args == ("some message",)


def test_to_exception_of_an_unknown_class_is_task_failed_error() -> None:
    record = TaskException(type="MyCustomError", module="does_not_exist_xyz", message="boom", args=("boom",),
                           traceback="fake traceback")
    rebuilt = record.to_exception()
    assert isinstance(rebuilt, TaskFailedError)
    assert rebuilt.original_type == "does_not_exist_xyz:MyCustomError"
    assert str(rebuilt) == "boom" and rebuilt.message == "boom" and rebuilt.traceback == "fake traceback"


def test_to_exception_of_something_not_an_exception_is_task_failed_error() -> None:
    rebuilt = TaskException(type="str", module="builtins", message="boom").to_exception()
    assert isinstance(rebuilt, TaskFailedError) and rebuilt.original_type == "builtins:str"


def test_to_exception_never_imports_the_module_a_record_names(tmp_path: Any) -> None:
    # A module that is importable (on sys.path) but not imported: rebuilding must not import it.
    (tmp_path / "h1_never_imported.py").write_text(
        "open(__file__ + '.imported', 'w').close()\nclass Boom(Exception):\n    pass\n"
    )
    code = (
        "import sys\n"
        f"sys.path.insert(0, {str(tmp_path)!r})\n"
        "from sheppy_core.models import TaskException\n"
        "from sheppy_core.exceptions import TaskFailedError\n"
        "record = TaskException(type='Boom', module='h1_never_imported', message='x', args=('x',))\n"
        "e = record.to_exception()\n"
        "assert isinstance(e, TaskFailedError), type(e)\n"
        "assert 'h1_never_imported' not in sys.modules\n"
        "print('ok')\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"
    assert not (tmp_path / "h1_never_imported.py.imported").exists()


def test_str_and_repr_of_task_exception() -> None:
    record = capture(ValueError("bad input"))
    assert str(record) == "ValueError: bad input"
    assert repr(record) == "TaskException(type='ValueError', message='bad input')"


def test_task_exception_is_frozen_and_round_trips() -> None:
    record = capture(KeyError("k"))
    with pytest.raises(ValidationError):
        record.message = "other"  # type: ignore[misc]
    assert TaskException.model_validate_json(record.model_dump_json()) == record


# -- on a store: exceptions round-trip -------------------------------------------------------------------


@pytest.mark.parametrize("factory", [t.raises_custom_error, t.raises_custom_error_async])
async def test_a_custom_exception_round_trips_through_the_store(
    queue: Queue, worker: Worker, factory: Any
) -> None:
    record = factory(5, detail="bad things")
    await queue.add(record)
    await work(worker, max_tasks=1)
    done = await queue.get_task(record)
    assert done is not None and done.status == "failed" and done.finished_at is not None
    exception = done.exception
    assert exception is not None
    assert exception.type == "CustomTaskError" and exception.module == MODULE
    assert exception.message == str(t.CustomTaskError("bad things", 5))
    assert exception.args == ("bad things", 5)
    assert exception.traceback is not None and "CustomTaskError" in exception.traceback
    assert Task.model_validate_json(done.model_dump_json()).exception == exception
    rebuilt = exception.to_exception()
    assert isinstance(rebuilt, t.CustomTaskError) and rebuilt.args == ("bad things", 5)


async def test_a_builtin_exception_is_captured_on_failure(queue: Queue, worker: Worker) -> None:
    record = t.raises_value_error("boom")
    await queue.add(record)
    await work(worker, max_tasks=1)
    done = await queue.get_task(record)
    assert done is not None and done.status == "failed" and done.result is None
    assert done.exception is not None
    assert done.exception.type == "ValueError" and done.exception.module == "builtins"
    assert done.exception.message == "boom"
    assert done.exception.args == ("boom",)
    assert done.exception.traceback is not None and "ValueError: boom" in done.exception.traceback
    assert "raises_value_error" in done.exception.traceback
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        assert done.error == "ValueError: boom"


async def test_a_successful_task_has_no_exception(queue: Queue, worker: Worker) -> None:
    record = t.add_sync(1, 2)
    await queue.add(record)
    await work(worker, max_tasks=1)
    done = await queue.get_task(record)
    assert done is not None and done.status == "completed" and done.result == 3 and done.exception is None


# -- 4.4 statuses ----------------------------------------------------------------------------------------


def test_status_values() -> None:
    assert set(get_args(TaskStatus)) == {
        "new", "scheduled", "pending", "processing", "retrying", "completed", "failed", "cancelled",
        "unknown", "crashed",
    }
    with pytest.raises(ValidationError):
        Task(spec=TaskSpec(func="m:f"), status="bogus")  # type: ignore[arg-type]


async def test_statuses_through_a_task_life(queue: Queue, worker: Worker) -> None:
    record = t.add_async(1, 2)
    assert record.status == "new"
    await queue.add(record)
    waiting = await queue.get_task(record)
    assert waiting is not None and waiting.status == "pending"  # §18.13: pending once queued
    later = t.add_async(3, 4)
    await queue.schedule(later, timedelta(hours=1))
    scheduled = await queue.get_task(later)
    assert scheduled is not None and scheduled.status == "scheduled" and scheduled.scheduled_at is not None
    await work(worker, max_tasks=1)
    done = await queue.get_task(record)
    assert done is not None and done.status == "completed" and done.finished_at is not None
