"""The operator settings object: flags, then SHEPPY_* variables, then [tool.sheppy], then defaults."""

from __future__ import annotations

from pathlib import Path

import pytest

from sheppy_core._settings import Settings, load_settings
from sheppy_core.exceptions import ConfigurationError


def test_defaults_when_nothing_is_configured() -> None:
    settings = load_settings(environ={}, pyproject={})
    assert settings == Settings()
    assert settings.backend_url == "sqlite:///sheppy.db" and settings.queues == ("default",)
    assert settings.max_concurrent_tasks == 10 and settings.shutdown_timeout == 30.0
    assert settings.log_level == "info" and settings.prestart is None
    assert set(settings.sources.values()) == {"default"}


def test_flags_beat_environment_beat_pyproject() -> None:
    env = {"SHEPPY_BACKEND_URL": "memory://", "SHEPPY_QUEUE": "a, b", "SHEPPY_MAX_CONCURRENT_TASKS": "3"}
    table = {"backend": "sqlite:///x.db", "queue": "p", "max_concurrent_tasks": 7, "shutdown_timeout": 4}
    from_env = load_settings(environ=env, pyproject=table)
    assert from_env.backend_url == "memory://" and from_env.queues == ("a", "b")
    assert from_env.max_concurrent_tasks == 3 and from_env.shutdown_timeout == 4.0
    assert from_env.sources["backend_url"] == "SHEPPY_BACKEND_URL"
    assert from_env.sources["shutdown_timeout"] == "[tool.sheppy] shutdown_timeout"
    flagged = load_settings(
        backend_url="sqlite:///flag.db", queues=["f"], max_concurrent_tasks=2, environ=env, pyproject=table
    )
    assert flagged.backend_url == "sqlite:///flag.db" and flagged.queues == ("f",)
    assert flagged.max_concurrent_tasks == 2 and flagged.sources["queues"] == "flag"
    assert flagged.queue == "f"


def test_pyproject_is_read_from_the_current_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "pyproject.toml").write_text(
        '[tool.sheppy]\nbackend = "memory://"\nqueue = ["x", "y"]\nlog_level = "WARNING"\n'
        'tasks = ["jobs"]\nprestart = "jobs:setup"\n'
    )
    monkeypatch.chdir(tmp_path)
    settings = load_settings(environ={})
    assert settings.backend_url == "memory://" and settings.queues == ("x", "y")
    assert (
        settings.log_level == "warning" and settings.tasks == ("jobs",) and settings.prestart == "jobs:setup"
    )


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"SHEPPY_MAX_CONCURRENT_TASKS": "many"}, "SHEPPY_MAX_CONCURRENT_TASKS='many'"),
        ({"SHEPPY_MAX_CONCURRENT_TASKS": "0"}, "SHEPPY_MAX_CONCURRENT_TASKS='0'"),
        ({"SHEPPY_SHUTDOWN_TIMEOUT": "-1"}, "SHEPPY_SHUTDOWN_TIMEOUT='-1'"),
        ({"SHEPPY_SHUTDOWN_TIMEOUT": "nan"}, "SHEPPY_SHUTDOWN_TIMEOUT='nan'"),
        ({"SHEPPY_LOG_LEVEL": "loud"}, "SHEPPY_LOG_LEVEL='loud'"),
        ({"SHEPPY_PRESTART": "no_colon"}, "SHEPPY_PRESTART='no_colon'"),
        ({"SHEPPY_QUEUE": " , "}, "SHEPPY_QUEUE=' , '"),
    ],
)
def test_an_invalid_variable_is_one_line_naming_it(env: dict[str, str], named: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        load_settings(environ=env, pyproject={})
    message = str(caught.value)
    assert message.startswith(named) and "\n" not in message


def test_invalid_pyproject_and_flag_values_name_their_source() -> None:
    with pytest.raises(ConfigurationError, match=r"^\[tool.sheppy\] max_concurrent_tasks = 'x'"):
        load_settings(environ={}, pyproject={"max_concurrent_tasks": "x"})
    with pytest.raises(ConfigurationError, match=r"^--max-concurrent 0 must be an integer >= 1"):
        load_settings(max_concurrent_tasks=0, environ={}, pyproject={})
    with pytest.raises(ConfigurationError, match=r"^\[tool.sheppy\] tasks"):
        load_settings(environ={}, pyproject={"tasks": [1]})


def test_log_level_is_case_insensitive_and_empty_variables_are_unset() -> None:
    settings = load_settings(environ={"SHEPPY_LOG_LEVEL": "DEBUG", "SHEPPY_QUEUE": ""}, pyproject={})
    assert settings.log_level == "debug" and settings.queues == ("default",)
