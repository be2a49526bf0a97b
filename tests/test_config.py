from __future__ import annotations

from pathlib import Path

import pytest

from sheppy_core._config import DEFAULT_BACKEND_URL, resolve_backend_url, resolve_queue
from sheppy_core.backend import redact_url
from sheppy_core.exceptions import ConfigurationError


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("SHEPPY_BACKEND_URL", raising=False)
    monkeypatch.delenv("SHEPPY_QUEUE", raising=False)
    return tmp_path


def test_resolution_order(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert resolve_backend_url() == DEFAULT_BACKEND_URL == "sqlite:///sheppy.db"
    (project / "pyproject.toml").write_text('[tool.sheppy]\nbackend = "memory://"\nqueue = "jobs"\n')
    assert resolve_backend_url() == "memory://" and resolve_queue() == "jobs"
    monkeypatch.setenv("SHEPPY_BACKEND_URL", "redis://env")
    monkeypatch.setenv("SHEPPY_QUEUE", "a,b")
    assert resolve_backend_url() == "redis://env" and resolve_queue() == "a,b"
    assert resolve_backend_url("dummy://explicit") == "dummy://explicit" and resolve_queue("x") == "x"


def test_bad_pyproject_is_a_clear_error(project: Path) -> None:
    (project / "pyproject.toml").write_text("[tool.sheppy]\nbackend = 3\n")
    with pytest.raises(ConfigurationError, match="backend must be"):
        resolve_backend_url()
    (project / "pyproject.toml").write_text("not toml = = =")
    with pytest.raises(ConfigurationError, match="cannot read"):
        resolve_backend_url()


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("redis://:pw@host:6379/0", "redis://:***@host:6379/0"),
        ("postgresql://me:p%40ss@db/app", "postgresql://me:***@db/app"),
        ("sqlite:///jobs.db", "sqlite:///jobs.db"),
        ("redis://host", "redis://host"),
    ],
)
def test_redact_url(url: str, shown: str) -> None:
    assert redact_url(url) == shown


@pytest.mark.parametrize(
    ("key", "suggestion"),
    [("backend_url", "backend"), ("queues", "queue"), ("max_concurrent", "max_concurrent_tasks"),
     ("loglevel", "log_level"), ("crons", "cron")],
)
def test_a_mistyped_key_is_an_error_naming_the_nearest_key(project: Path, key: str, suggestion: str) -> None:
    # A typo used to be ignored: the CLI then fell back to sqlite:///sheppy.db without a word.
    (project / "pyproject.toml").write_text(f'[tool.sheppy]\n{key} = "memory://"\n')
    with pytest.raises(ConfigurationError) as info:
        resolve_backend_url()
    message = str(info.value)
    assert "\n" not in message
    assert f"unknown key {key!r} in [tool.sheppy]" in message
    assert f"did you mean {suggestion!r}?" in message
    assert str(project / "pyproject.toml") in message
    with pytest.raises(ConfigurationError, match=f"unknown key {key!r}"):
        resolve_queue()


def test_an_unknown_key_far_from_every_key_lists_the_known_ones(project: Path) -> None:
    (project / "pyproject.toml").write_text('[tool.sheppy]\nzzz = 1\n')
    known = r"unknown key 'zzz' in \[tool.sheppy\].*known keys: backend, cron"
    with pytest.raises(ConfigurationError, match=known):
        resolve_backend_url()


def test_every_documented_key_is_accepted(project: Path) -> None:
    (project / "pyproject.toml").write_text(
        '[tool.sheppy]\nbackend = "memory://"\nqueue = "jobs"\nmax_concurrent_tasks = 2\n'
        'shutdown_timeout = 1\n'
        'log_level = "debug"\nprestart = "m:f"\ntasks = ["m"]\n'
        '[[tool.sheppy.cron]]\ntask = "m:f"\nexpression = "* * * * *"\n'
    )
    assert resolve_backend_url() == "memory://"


def test_the_cli_settings_refuse_a_mistyped_key() -> None:
    from sheppy_core._settings import load_settings

    with pytest.raises(ConfigurationError, match=r"unknown key 'backend_url'.*did you mean 'backend'"):
        load_settings(environ={}, pyproject={"backend_url": "redis://x"})
