"""§2 of sheppy-api.md: the names a sheppy user imports, under ``sheppy_core``.

Each name is checked for what it is, not only that it exists: a sheppy user's code calls them.
"""

from __future__ import annotations

import importlib

import pytest

import sheppy_core


def test_top_level_names_are_the_public_objects() -> None:
    from sheppy_core import (
        CURRENT_TASK,
        Backend,
        BackendError,
        Depends,
        MemoryBackend,
        Queue,
        Task,
        TestQueue,
        Worker,
        models,
        task,
    )
    from sheppy_core.backend import Backend as ContractBackend

    assert isinstance(Queue, type) and isinstance(Worker, type) and isinstance(TestQueue, type)
    assert Task is models.Task
    assert CURRENT_TASK is models.CURRENT_TASK
    assert callable(task) and callable(Depends)
    assert Backend is ContractBackend
    assert issubclass(MemoryBackend, Backend)
    assert issubclass(BackendError, Exception)


def test_version_is_a_version_string() -> None:
    # Deliberate difference: sheppy's __version__ is "0.0.7"; sheppy-core reports its own version.
    version = sheppy_core.__version__
    assert isinstance(version, str)
    assert all(part.isdigit() for part in version.split(".")[:3])


def test_0_0_7_top_level_workflow_names() -> None:
    from sheppy_core import Workflow, workflow
    from sheppy_core.experimental import Workflow as ExperimentalWorkflow
    from sheppy_core.experimental import workflow as experimental_workflow

    assert Workflow is ExperimentalWorkflow
    assert workflow is experimental_workflow


def test_redis_backend_is_the_class_serving_redis_urls() -> None:
    from sheppy_core import RedisBackend
    from sheppy_core._plugins import backend_class_for_scheme

    assert RedisBackend is backend_class_for_scheme("redis")
    assert issubclass(RedisBackend, sheppy_core.Backend)


def test_an_unknown_top_level_name_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError):
        _ = sheppy_core.NoSuchName  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("module", "names"),
    [
        (
            "sheppy_core.models",
            [
                "Task",
                "TaskSpec",
                "TaskConfig",
                "TaskCron",
                "TaskStatus",
                "RateLimit",
                "CURRENT_TASK",
                "TaskException",
                "TTLValue",
            ],
        ),
        (
            "sheppy_core.exceptions",
            [
                "TaskTimeoutError",
                "MiddlewareError",
                "WorkflowError",
                "WorkerCrashedError",
                "TaskCancellationError",
                "TaskFailedError",
            ],
        ),
        ("sheppy_core.experimental", ["workflow", "Workflow", "WorkflowResult", "SyncQueue"]),
        ("sheppy_core.fastapi", ["create_router"]),
    ],
)
def test_submodule_names(module: str, names: list[str]) -> None:
    imported = importlib.import_module(module)
    missing = [name for name in names if not hasattr(imported, name)]
    assert missing == []


def test_exception_classes() -> None:
    from sheppy_core import exceptions

    assert issubclass(exceptions.TaskTimeoutError, TimeoutError)
    for name in (
        "MiddlewareError",
        "WorkflowError",
        "WorkerCrashedError",
        "TaskCancellationError",
        "TaskFailedError",
    ):
        assert issubclass(getattr(exceptions, name), Exception), name


def test_models_are_pydantic_models() -> None:
    from pydantic import BaseModel

    from sheppy_core.models import Task, TaskConfig, TaskCron, TaskException, TaskSpec

    for model in (Task, TaskSpec, TaskConfig, TaskCron, TaskException):
        assert issubclass(model, BaseModel), model


def test_backend_package_is_importable() -> None:
    # 0.0.7 had a public `backend` package holding the backend classes.
    from sheppy_core.backend import Backend, MemoryBackend

    assert issubclass(MemoryBackend, Backend)
