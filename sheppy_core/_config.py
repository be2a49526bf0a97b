"""Where settings come from: an explicit value, then ``SHEPPY_*`` environment variables, then
``[tool.sheppy]`` in ``./pyproject.toml``, then defaults. Read when asked, never at import."""

from __future__ import annotations

import difflib
import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

from sheppy_core.exceptions import ConfigurationError

__all__ = [
    "DEFAULT_BACKEND_URL",
    "DEFAULT_QUEUE",
    "TOOL_SHEPPY_KEYS",
    "check_known_keys",
    "pyproject_settings",
    "resolve_backend_url",
    "resolve_queue",
]

DEFAULT_BACKEND_URL = "sqlite:///sheppy.db"
DEFAULT_QUEUE = "default"

TOOL_SHEPPY_KEYS: Final = frozenset(
    {
        "backend",
        "queue",
        "max_concurrent_tasks",
        "shutdown_timeout",
        "log_level",
        "prestart",
        "tasks",
        "cron",
        "processes",
    }
)
"""Every key ``[tool.sheppy]`` may hold (docs/cli.md): anything else is a typo, and a typo that is
ignored is worse than an error (``backend_url = ...`` used to leave the CLI on the SQLite default)."""


def check_known_keys(table: Mapping[str, Any], origin: str = "[tool.sheppy]") -> None:
    """Raise ``ConfigurationError`` naming the first unknown key of ``table`` and the nearest known one."""
    for key in table:
        if key in TOOL_SHEPPY_KEYS:
            continue
        nearest = difflib.get_close_matches(str(key), sorted(TOOL_SHEPPY_KEYS), n=1, cutoff=0.6)
        known = ", ".join(sorted(TOOL_SHEPPY_KEYS))
        hint = f"did you mean {nearest[0]!r}?" if nearest else f"known keys: {known}"
        raise ConfigurationError(f"unknown key {key!r} in {origin}; {hint}")


def pyproject_settings(path: Path | None = None) -> dict[str, Any]:
    """The ``[tool.sheppy]`` table of ``./pyproject.toml`` (empty when there is none)."""
    file = path or Path.cwd() / "pyproject.toml"
    if not file.is_file():
        return {}
    try:
        data = tomllib.loads(file.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigurationError(f"cannot read [tool.sheppy] from {file}: {exc}") from exc
    table = data.get("tool", {}).get("sheppy", {})
    if not isinstance(table, dict):
        raise ConfigurationError(f"[tool.sheppy] in {file} must be a table")
    check_known_keys(table, f"[tool.sheppy] of {file}")
    return table


def resolve_backend_url(explicit: str | None = None) -> str:
    """The backend URL to use: ``explicit``, ``SHEPPY_BACKEND_URL``, ``[tool.sheppy] backend``, or
    ``sqlite:///sheppy.db``."""
    if explicit:
        return explicit
    from_env = os.environ.get("SHEPPY_BACKEND_URL")
    if from_env:
        return from_env
    configured = pyproject_settings().get("backend")
    if configured is not None:
        if not isinstance(configured, str) or not configured:
            raise ConfigurationError("[tool.sheppy] backend must be a non-empty URL string")
        return configured
    return DEFAULT_BACKEND_URL


def resolve_queue(explicit: str | None = None) -> str:
    """The queue name: ``explicit``, the raw ``SHEPPY_QUEUE`` value, ``[tool.sheppy] queue``, or
    ``"default"``."""
    if explicit:
        return explicit
    return os.environ.get("SHEPPY_QUEUE") or str(pyproject_settings().get("queue") or DEFAULT_QUEUE)
