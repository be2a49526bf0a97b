"""A worker runs only registered @task functions; nothing a message names is imported or called."""

from __future__ import annotations

import sys
import uuid
from pathlib import Path

import pytest
import tasks_for_tests as t

from sheppy_core import MemoryBackend, Queue, Worker
from sheppy_core._registry import import_task_modules
from sheppy_core.exceptions import ConfigurationError
from sheppy_core.models import Task, TaskSpec


async def _run_raw(backend: MemoryBackend, func: str, args: list[object]) -> Task:
    record = Task(spec=TaskSpec(func=func, args=tuple(args))).model_dump(mode="json")
    await backend.append("q", [record])
    # unregistered=None: fail at once rather than hand back for another worker (the default, tested
    # in tests/faults/test_unregistered_tasks.py), so one pass shows the outcome.
    worker = Worker("q", backend, enable_scheduler=False, enable_cron_manager=False, unregistered=None)
    await worker.work(oneshot=True, register_signal_handlers=False)
    stored = await Queue(backend, "q").get_task(record["id"])
    assert stored is not None
    return stored


async def test_os_system_is_never_run(backend: MemoryBackend, tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    stored = await _run_raw(backend, "os:system", [f"touch {marker}"])
    assert not marker.exists()
    assert stored.status == "failed"
    assert stored.exception is not None and stored.exception.type == "TaskNotRegisteredError"
    assert "os:system" in stored.exception.message


async def test_plain_function_is_never_run(backend: MemoryBackend) -> None:
    before = t.calls["plain_function"]
    stored = await _run_raw(backend, "tasks_for_tests:plain_function", [])
    assert t.calls["plain_function"] == before
    assert stored.status == "failed" and stored.exception is not None
    assert stored.exception.type == "TaskNotRegisteredError"


async def test_missing_module_is_never_imported(backend: MemoryBackend) -> None:
    name = f"module_{uuid.uuid4().hex}"
    stored = await _run_raw(backend, f"{name}:f", [])
    assert name not in sys.modules
    assert stored.status == "failed"


async def test_unregistered_task_is_a_permanent_failure(backend: MemoryBackend) -> None:
    record = Task(spec=TaskSpec(func="os:getcwd")).model_dump(mode="json")
    record["config"] = {"retry": 3}
    await backend.append("q", [record])
    worker = Worker("q", backend, enable_scheduler=False, enable_cron_manager=False, unregistered=None)
    await worker.work(oneshot=True, register_signal_handlers=False)
    stored = await Queue(backend, "q").get_task(record["id"])
    assert stored is not None and stored.status == "failed" and stored.retry_count == 0


def test_task_modules_allow_list() -> None:
    with pytest.raises(ConfigurationError, match="allow-list"):
        import_task_modules(["os"], allow=["app"])
    with pytest.raises(ConfigurationError, match="cannot import"):
        import_task_modules([f"nope_{uuid.uuid4().hex}"])


def test_worker_imports_its_task_modules(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "my_jobs.py").write_text(
        "from sheppy_core import task\n@task\ndef job() -> int:\n    return 1\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    assert import_task_modules(["my_jobs"], allow=["my_jobs"]) == ["my_jobs:job"]
