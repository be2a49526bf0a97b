"""§16 Configuration: the ``SHEPPY_*`` environment variables and how ``Queue()`` resolves its backend
and name from them.

sheppy reads the variables once, at import; sheppy-core reads them when a ``Queue`` is built or a
command starts (so a variable set after import counts, and a bad value fails that command, not the
import). With neither a backend nor ``SHEPPY_BACKEND_URL``, sheppy raises ``ValueError``; sheppy-core
uses its documented default ``sqlite:///sheppy.db`` (README "Backends"). Both are deliberate.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from sheppy_core import MemoryBackend, Queue
from sheppy_core._settings import ENV, load_settings
from sheppy_core.exceptions import ConfigurationError

ALL_VARIABLES = (
    "SHEPPY_BACKEND_URL",
    "SHEPPY_QUEUE",
    "SHEPPY_MAX_CONCURRENT_TASKS",
    "SHEPPY_SHUTDOWN_TIMEOUT",
    "SHEPPY_LOG_LEVEL",
    "SHEPPY_PRESTART",
)
SHEPPY_CORE_ADDITIONS = ("SHEPPY_PROCESSES",)
"""Read by sheppy-core only (``sheppy work --processes``); docs/migrating-from-sheppy.md lists them."""


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No ``SHEPPY_*`` variable set and a working directory without ``pyproject.toml``."""
    for name in ALL_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)


def test_the_variables_read_are_sheppys_and_the_documented_additions() -> None:
    assert sorted(ENV.values()) == sorted(ALL_VARIABLES + SHEPPY_CORE_ADDITIONS)
    guide = (Path(__file__).parents[2] / "docs" / "migrating-from-sheppy.md").read_text()
    assert all(f"`{name}`" in guide for name in SHEPPY_CORE_ADDITIONS)


# -- Queue() ----------------------------------------------------------------------------------------


def test_queue_takes_its_backend_from_sheppy_backend_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SHEPPY_BACKEND_URL", "memory://")
    queue = Queue()
    assert isinstance(queue.backend, MemoryBackend)
    assert queue.name == "default"


def test_queue_takes_its_name_from_sheppy_queue(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SHEPPY_BACKEND_URL", "memory://")
    monkeypatch.setenv("SHEPPY_QUEUE", "myqueue")
    assert Queue().name == "myqueue"


def test_queue_name_is_the_raw_value_not_split_on_commas(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SHEPPY_QUEUE", "q1,q2")
    assert Queue("memory://").name == "q1,q2"


def test_explicit_name_and_backend_win_over_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SHEPPY_BACKEND_URL", "redis://should-not-be-used:6379")
    monkeypatch.setenv("SHEPPY_QUEUE", "envqueue")
    queue = Queue(backend="memory://", name="explicit")
    assert isinstance(queue.backend, MemoryBackend)
    assert queue.name == "explicit"
    backend = MemoryBackend()
    assert Queue(backend).backend is backend


def test_an_invalid_sheppy_backend_url_is_a_value_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SHEPPY_BACKEND_URL", "unknown://localhost")
    with pytest.raises(ValueError, match="Unsupported backend protocol"):
        Queue()


def test_without_any_backend_the_default_is_sqlite_sheppy_db(tmp_path: Path) -> None:
    # Deliberate: sheppy raises ValueError("No backend provided ...") here.
    queue = Queue()
    assert type(queue.backend).__name__ == "SQLiteBackend"
    assert "sheppy.db" in repr(queue)
    assert not (tmp_path / "sheppy.db").exists()  # built, not connected: nothing is created yet


def test_variables_are_read_when_the_queue_is_built(monkeypatch: pytest.MonkeyPatch) -> None:
    # sheppy would still use what was set at import; sheppy-core sees the current value.
    monkeypatch.setenv("SHEPPY_BACKEND_URL", "memory://")
    monkeypatch.setenv("SHEPPY_QUEUE", "first")
    assert Queue().name == "first"
    monkeypatch.setenv("SHEPPY_QUEUE", "second")
    assert Queue().name == "second"


def test_a_bad_value_does_not_break_the_import() -> None:
    environment = {**os.environ, "SHEPPY_MAX_CONCURRENT_TASKS": "invalid", "SHEPPY_LOG_LEVEL": "loud"}
    imported = subprocess.run(
        [sys.executable, "-c", "import sheppy_core, sheppy_core.cli; print('ok')"],
        env=environment, capture_output=True, text=True, timeout=120, check=False,
    )
    assert imported.returncode == 0 and imported.stdout.strip() == "ok", imported.stderr


# -- the command line's settings --------------------------------------------------------------------


def test_settings_from_the_environment() -> None:
    settings = load_settings(
        environ={
            "SHEPPY_BACKEND_URL": "redis://test:6379",
            "SHEPPY_QUEUE": "testqueue",
            "SHEPPY_MAX_CONCURRENT_TASKS": "5",
            "SHEPPY_SHUTDOWN_TIMEOUT": "15.5",
            "SHEPPY_LOG_LEVEL": "warning",
            "SHEPPY_PRESTART": "app.hooks:prepare",
        },
        pyproject={},
    )
    assert settings.backend_url == "redis://test:6379"
    assert settings.queues == ("testqueue",)
    assert settings.max_concurrent_tasks == 5
    assert settings.shutdown_timeout == 15.5
    assert settings.log_level == "warning"
    assert settings.prestart == "app.hooks:prepare"


def test_settings_defaults() -> None:
    settings = load_settings(environ={}, pyproject={})
    assert settings.queues == ("default",)
    assert settings.max_concurrent_tasks == 10
    assert settings.shutdown_timeout == 30.0
    assert settings.log_level == "info"
    assert settings.prestart is None
    assert settings.backend_url == "sqlite:///sheppy.db"  # sheppy: unset (its CLI then uses Redis)


@pytest.mark.parametrize(
    ("raw", "queues"), [("q1", ("q1",)), ("q1,q2,q3", ("q1", "q2", "q3")), ("q1,,q2", ("q1", "q2"))]
)
def test_sheppy_queue_is_a_comma_list_for_work(raw: str, queues: tuple[str, ...]) -> None:
    assert load_settings(environ={"SHEPPY_QUEUE": raw}, pyproject={}).queues == queues


def test_log_level_is_case_insensitive() -> None:
    assert load_settings(environ={"SHEPPY_LOG_LEVEL": "DEBUG"}, pyproject={}).log_level == "debug"


def test_shutdown_timeout_zero_is_allowed() -> None:
    assert load_settings(environ={"SHEPPY_SHUTDOWN_TIMEOUT": "0"}, pyproject={}).shutdown_timeout == 0.0


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("SHEPPY_MAX_CONCURRENT_TASKS", "0"),
        ("SHEPPY_MAX_CONCURRENT_TASKS", "-1"),
        ("SHEPPY_MAX_CONCURRENT_TASKS", "invalid"),
        ("SHEPPY_SHUTDOWN_TIMEOUT", "-1"),
        ("SHEPPY_LOG_LEVEL", "invalid"),
    ],
)
def test_invalid_values_are_refused_naming_the_variable(name: str, value: str) -> None:
    with pytest.raises(ConfigurationError, match=name) as info:
        load_settings(environ={name: value}, pyproject={})
    assert isinstance(info.value, ValueError)
