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
