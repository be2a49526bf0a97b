from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import tasks_for_tests as t
from pydantic import ValidationError

from sheppy_core import Task, task
from sheppy_core._registry import get_definition


def test_calling_a_task_runs_nothing_and_returns_a_record() -> None:
    before = t.calls["add"]
    record = t.add(1, "2")  # lax mode: "2" becomes 2
    assert isinstance(record, Task)
    assert t.calls["add"] == before
    assert record.status == "new"
    assert record.spec.func == "tasks_for_tests:add"
    assert record.spec.args == (1, 2)
    assert t.add.__name__ == "add" and t.add.__wrapped__ is not None  # type: ignore[attr-defined]
    assert t.add.__sheppy_task__ is True  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("args", "kwargs", "error_type"),
    [
        ((1,), {}, "missing_argument"),
        ((1, 2, 3), {}, "unexpected_positional_argument"),
        ((1, 2), {"z": 3}, "unexpected_keyword_argument"),
        ((1,), {"x": 1}, "multiple_argument_values"),
        (("one", 2), {}, "int_parsing"),
    ],
)
def test_bad_arguments_raise_validation_error(
    args: tuple[object, ...], kwargs: dict[str, object], error_type: str
) -> None:
    with pytest.raises(ValidationError) as info:
        t.add(*args, **kwargs)
    assert error_type in {e["type"] for e in info.value.errors()}


def test_models_are_stored_as_json_and_revalidated() -> None:
    record = t.move(t.Point(x=1, y=2), dx=3)
    assert record.spec.args == ({"x": 1, "y": 2},)
    assert record.spec.kwargs == {"dx": 3}
    record_from_dict = t.move({"x": 1, "y": 2})
    assert record_from_dict.spec.args == ({"x": 1, "y": 2},)


def test_injected_parameters_are_not_stored_and_cannot_be_supplied() -> None:
    assert t.whoami().spec.args == () and t.whoami().spec.kwargs == {}
    with pytest.raises(ValidationError):
        t.whoami(current="x")
    assert t.uses_dependency(5).spec.kwargs == {} and t.uses_dependency(5).spec.args == (5,)


def test_options_become_config_and_are_validated_when_called() -> None:
    assert t.fails_once("k").config.retry == 2
    assert t.limited(1).config.rate_limit is not None
    # As in sheppy: decorating succeeds, calling the task raises; an unknown option name fails at once.
    for options in ({"retry": -1}, {"rate_limit": {"max_rate": 0, "rate_period": 1}}):
        factory = task(**options)(lambda: None)
        with pytest.raises(ValidationError):
            factory()
    with pytest.raises(TypeError):
        task(retries=1)  # type: ignore[call-overload]


def test_positional_only_parameter_refuses_keyword() -> None:
    @task
    def positional(a: int, /) -> int:
        return a

    assert positional(1).spec.args == (1,)
    with pytest.raises(ValidationError) as info:
        positional(a=1)
    assert "unexpected_keyword_argument" in {e["type"] for e in info.value.errors()}


def test_return_annotation_is_kept_for_result_validation() -> None:
    assert get_definition("tasks_for_tests:add").return_adapter is not None
    assert get_definition("tasks_for_tests:add").is_async
    assert not get_definition("tasks_for_tests:sync_mul").is_async


def test_task_defined_in_a_script_is_named_after_its_path(tmp_path: Path) -> None:
    app = tmp_path / "app"
    app.mkdir()
    (app / "main.py").write_text(
        "from sheppy_core import task\n"
        "@task\n"
        "def hello(name: str) -> str:\n"
        "    return name\n"
        "print(hello('x').spec.func)\n"
    )
    out = subprocess.run(
        [sys.executable, "app/main.py"], cwd=tmp_path, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "app.main:hello"
