"""§3 of sheppy-api.md: defining tasks with ``@task``, validation at call time, at run time and of the
result, and results coming back typed on every store."""

from __future__ import annotations

import inspect
import subprocess
import sys
import threading
import uuid
from pathlib import Path
from typing import Any

import pytest
from compat import tasks_models as t
from compat.support import work
from pydantic import ValidationError

from sheppy_core import Queue, Task, TestQueue, Worker, task
from sheppy_core.models import TaskSpec

MODULE = "compat.tasks_models"


# -- options -----------------------------------------------------------------------------------------


def test_bare_decorator_gives_the_default_config() -> None:
    config = t.add_sync(1, 2).config
    assert config.retry == 0
    assert config.retry_delay == 1.0
    assert config.timeout is None
    assert config.retry_on_timeout is False
    assert config.rate_limit is None
    assert not config.retry_on_crash  # None in sheppy-core (see the migration notes), False in sheppy
    assert config.ttl == "inherit" and config.error_ttl == "inherit"


def test_options_become_the_config() -> None:
    config = t.configured().config
    assert config.retry == 3
    assert config.retry_delay == [1.0, 5.0, 30.0]
    assert config.timeout == 10
    assert config.retry_on_timeout is True


def test_retry_delay_is_one_second_when_not_given() -> None:
    assert t.retry_only().config.retry_delay == 1.0


def test_a_constant_retry_delay_is_kept() -> None:
    @task(retry=2, retry_delay=2.5)
    def constant() -> None:
        return None

    assert constant().config.retry_delay == 2.5


def test_rate_limit_option() -> None:
    @task(rate_limit={"max_rate": 2, "rate_period": 5})
    def limited() -> None:
        return None

    limit = limited().config.rate_limit
    assert limit is not None and limit.max_rate == 2 and limit.rate_period == 5


def test_ttl_options() -> None:
    @task(ttl=60, error_ttl=None)
    def kept() -> None:
        return None

    assert kept().config.ttl == 60 and kept().config.error_ttl is None


def test_an_empty_retry_delay_list_fails_when_the_task_is_called_not_decorated() -> None:
    @task(retry=1, retry_delay=[])
    def empty_delays() -> None:
        return None

    with pytest.raises(ValidationError, match="retry_delay list cannot be empty"):
        empty_delays()


def test_an_invalid_option_value_fails_when_the_task_is_called() -> None:
    @task(retry=-1)
    def negative() -> None:
        return None

    with pytest.raises(ValidationError):
        negative()


def test_an_unknown_option_name_is_a_type_error_at_decoration() -> None:
    with pytest.raises(TypeError):
        task(retries=3)  # type: ignore[call-overload]


# -- the factory -------------------------------------------------------------------------------------


def test_the_factory_keeps_name_doc_signature_and_the_original() -> None:
    assert t.nested_factory.__name__ == "nested_factory"
    assert t.nested_factory.__doc__ == "Docstring kept by functools.wraps."
    original = t.add_sync.__wrapped__  # type: ignore[attr-defined]
    assert original(2, 3) == 5  # the plain function, callable directly
    assert inspect.signature(t.add_sync) == inspect.signature(original)


def test_both_the_factory_and_the_original_are_marked() -> None:
    assert t.add_sync.__sheppy_task__ is True  # type: ignore[attr-defined]
    assert t.add_sync.__wrapped__.__sheppy_task__ is True  # type: ignore[attr-defined]

    def plain() -> None:
        return None

    task(plain)
    assert getattr(plain, "__sheppy_task__", False) is True


def test_per_task_middleware_is_kept_on_the_factory() -> None:
    def middleware(task: Task, queue: Any):  # type: ignore[no-untyped-def]
        task, _exception = yield task
        return task

    @task(middleware=[middleware])
    def with_middleware() -> None:
        return None

    assert with_middleware.__sheppy_middleware__ == [middleware]  # type: ignore[attr-defined]
    assert t.add_sync.__sheppy_middleware__ == []  # type: ignore[attr-defined]
    assert getattr(with_middleware.__wrapped__, "__sheppy_middleware__", None) is None  # type: ignore[attr-defined]


def test_calling_returns_a_new_task_and_runs_nothing() -> None:
    record = t.add_sync(1, 2)
    assert isinstance(record, Task)
    assert record.status == "new"
    assert isinstance(record.id, uuid.UUID) and record.id.version == 4
    assert record.spec.func == f"{MODULE}:add_sync"
    assert record.spec.args == (1, 2) and record.spec.kwargs == {}
    assert record.result is None and record.finished_at is None


def test_each_call_gets_a_fresh_id_and_the_same_spec() -> None:
    first, second = t.add_async(1, 2), t.add_async(1, 2)
    assert first.id != second.id and first != second
    assert first.spec == second.spec and first.config == second.config


def test_keyword_arguments_are_stored_as_keywords() -> None:
    record = t.add_sync(1, y=2)
    assert record.spec.args == (1,) and record.spec.kwargs == {"y": 2}


@pytest.mark.parametrize("how", ["script", "module"])
def test_a_task_in_the_executed_script_is_named_after_its_path(tmp_path: Path, how: str) -> None:
    app = tmp_path / "app"
    app.mkdir()
    (app / "__init__.py").write_text("")
    (app / "main.py").write_text(
        "from sheppy_core import task\n\n"
        "@task\n"
        "def job(x: int) -> int:\n"
        "    return x\n\n"
        "if __name__ == '__main__':\n"
        "    print(job(1).spec.func)\n"
    )
    command = [sys.executable, "app/main.py"] if how == "script" else [sys.executable, "-m", "app.main"]
    done = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=60, check=True)
    assert done.stdout.strip() == "app.main:job"


# -- argument validation at call time --------------------------------------------------------------------


def test_lax_validation_converts_strings_to_ints() -> None:
    assert t.add_sync("1", 2).spec.args == (1, 2)
    assert t.add_sync("1", y="2").spec.kwargs == {"y": 2}


def test_a_value_that_does_not_fit_raises() -> None:
    with pytest.raises(ValidationError, match="unable to parse string as an integer"):
        t.add_sync("a", 2)


@pytest.mark.parametrize(
    "value",
    [t.Status(code=200, message="OK"), {"code": 200, "message": "OK"}, {"code": "200", "message": "OK"}],
)
def test_a_dict_or_model_becomes_the_annotated_model(value: Any) -> None:
    record = t.takes_status(value)
    assert t.Status.model_validate(record.spec.args[0]) == t.Status(code=200, message="OK")
    queue = TestQueue()
    queue.add(record)
    done = queue.process_next()
    assert done is not None and done.status == "completed" and done.result == 200


def test_a_missing_argument_names_the_parameter() -> None:
    with pytest.raises(ValidationError, match="No value provided for parameter 'y'") as info:
        t.add_sync(1)
    assert [e["type"] for e in info.value.errors()] == ["missing_argument"]
    assert info.value.errors()[0]["loc"] == ("y",)


def test_a_missing_argument_is_reported_when_another_is_given_twice() -> None:
    with pytest.raises(ValidationError, match="No value provided for parameter 'y'"):
        t.add_sync(2, x=1)


def test_a_missing_keyword_only_argument_names_the_parameter() -> None:
    with pytest.raises(ValidationError, match="No value provided for parameter 'k'"):
        t.keyword_only()


def test_surplus_positional_arguments_raise() -> None:
    with pytest.raises(ValidationError, match="Too many positional arguments"):
        t.add_sync(1, 2, 3)


def test_an_unknown_keyword_raises() -> None:
    with pytest.raises(ValidationError, match="Unexpected keyword arguments: z"):
        t.add_sync(1, 2, z=3)


def test_a_keyword_for_a_positional_only_parameter_raises() -> None:
    assert t.positional_only(1, 2).spec.args == (1, 2)
    assert t.positional_only(1, b=2).spec.kwargs == {"b": 2}
    with pytest.raises(ValidationError, match="positional-only"):
        t.positional_only(a=1)


def test_current_task_and_depends_parameters_are_not_stored() -> None:
    record = t.with_current(5)
    assert record.spec.args == (5,) and record.spec.kwargs == {}
    assert t.with_depends(1).spec.kwargs == {} and t.with_depends(1).spec.args == (1,)
    assert t.with_annotated_depends(x=1).spec.kwargs == {"x": 1}


def test_supplying_the_current_task_is_an_error() -> None:
    with pytest.raises(ValidationError, match="current"):
        t.with_current(5, current="me")


def test_var_args_and_var_kwargs_pass_through_unvalidated() -> None:
    record = t.with_var_args("1", "two", 3, flag=True, name="x")
    assert record.spec.args == (1, "two", 3)
    assert record.spec.kwargs == {"flag": True, "name": "x"}


def test_unannotated_parameters_take_anything() -> None:
    assert t.untyped({"any": ["thing"]}).spec.args == ({"any": ["thing"]},)


# -- on a store: run-time validation, return validation, typed results ----------------------------------


async def test_the_worker_validates_stored_arguments_again(queue: Queue, worker: Worker) -> None:
    # A record written by hand (or another client) with strings: the worker converts them again.
    record = Task(spec=TaskSpec(func=f"{MODULE}:add_sync", args=("5", "6")))
    await queue.add(record)
    await work(worker, max_tasks=1)
    done = await queue.get_task(record)
    assert done is not None and done.status == "completed" and done.result == 11


async def test_a_result_that_does_not_fit_the_return_annotation_fails_the_attempt(
    queue: Queue, worker: Worker
) -> None:
    record = t.returns_wrong_type()
    await queue.add(record)
    await work(worker, max_tasks=1)
    done = await queue.get_task(record)
    assert done is not None and done.status == "failed" and done.result is None
    assert done.exception is not None and done.exception.type == "ValidationError"
    assert done.finished_at is not None


@pytest.mark.parametrize(
    "factory", [t.returns_status, t.returns_status_as_dict, lambda: t.returns_status_async(200)]
)
async def test_a_model_result_comes_back_as_the_model(queue: Queue, worker: Worker, factory: Any) -> None:
    record = factory()
    await queue.add(record)
    await work(worker, max_tasks=1)

    fetched = await queue.get_task(record)
    assert fetched is not None and isinstance(fetched.result, t.Status)
    listed = await queue.get_task([record])
    assert isinstance(listed[record.id].result, t.Status)
    waited = await queue.wait_for(record, timeout=10)
    assert waited is not None and isinstance(waited.result, t.Status)
    waited_many = await queue.wait_for([record], timeout=10)
    assert isinstance(waited_many[record.id].result, t.Status)
    assert fetched.result.code in (200, 201)


async def test_a_scheduled_run_gives_a_typed_result(queue: Queue, worker: Worker) -> None:
    from datetime import timedelta

    record = t.returns_status()
    await queue.schedule(record, timedelta(milliseconds=50))
    await work(worker, max_tasks=1)
    done = await queue.wait_for(record, timeout=10)
    assert done is not None and done.status == "completed" and isinstance(done.result, t.Status)


async def test_an_unannotated_result_stays_json(queue: Queue, worker: Worker) -> None:
    record = t.returns_unannotated_dict()
    await queue.add(record)
    await work(worker, max_tasks=1)
    done = await queue.get_task(record)
    assert done is not None and done.result == {"code": 200, "message": "OK"}
    assert isinstance(done.result, dict)


def test_testqueue_results_are_typed() -> None:
    queue = TestQueue()
    queue.add(t.returns_status())
    done = queue.process_next()
    assert done is not None and isinstance(done.result, t.Status)
    queue.add([t.returns_status_as_dict(), t.returns_status()])
    results = queue.process_all()
    assert [type(r.result) for r in results] == [t.Status, t.Status]
    assert all(isinstance(r.result, t.Status) for r in queue.processed_tasks)


def test_reading_a_record_coerces_its_result_through_the_annotation() -> None:
    data = t.returns_status().model_dump(mode="json") | {"result": {"code": 200, "message": "OK"}}
    assert Task.model_validate(data).result == t.Status(code=200, message="OK")
    plain = t.returns_unannotated_dict().model_dump(mode="json") | {"result": {"code": 200, "message": "OK"}}
    assert Task.model_validate(plain).result == {"code": 200, "message": "OK"}


# -- where tasks run -------------------------------------------------------------------------------------


async def test_sync_tasks_run_in_a_thread_async_ones_on_the_loop(queue: Queue, worker: Worker) -> None:
    sync_record, async_record = t.which_thread(), t.which_thread_async()
    await queue.add([sync_record, async_record])
    await work(worker, max_tasks=2)
    done = await queue.get_task([sync_record, async_record])
    loop_thread = threading.current_thread().name
    assert done[async_record.id].result == loop_thread
    assert done[sync_record.id].result not in (None, loop_thread)
