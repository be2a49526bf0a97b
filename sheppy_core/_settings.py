"""The operator settings of the ``sheppy`` command: one object, four sources.

Each setting is taken from the first source that has it:

1. a command-line flag (``-u/--backend-url``, ``-q/--queue``, ``-c/--max-concurrent``, ...);
2. a ``SHEPPY_*`` environment variable (sheppy's names, see :data:`ENV`);
3. the ``[tool.sheppy]`` table of ``./pyproject.toml``;
4. the default.

An invalid value raises :class:`~sheppy_core.exceptions.ConfigurationError` whose message names where it
came from (``SHEPPY_MAX_CONCURRENT_TASKS='0' must be an integer >= 1``), so the command line can print
one line instead of a traceback. Nothing is read at import: :func:`load_settings` reads when called.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Any, Final, TypeVar

from sheppy_core._config import DEFAULT_BACKEND_URL, DEFAULT_QUEUE, check_known_keys, pyproject_settings
from sheppy_core.backend._url import redact_url
from sheppy_core.exceptions import ConfigurationError

__all__ = ["ENV", "LOG_LEVELS", "Settings", "load_settings"]

T = TypeVar("T")

LOG_LEVELS: Final = ("debug", "info", "warning", "error")

ENV: Final[dict[str, str]] = {
    "backend_url": "SHEPPY_BACKEND_URL",
    "queues": "SHEPPY_QUEUE",
    "max_concurrent_tasks": "SHEPPY_MAX_CONCURRENT_TASKS",
    "shutdown_timeout": "SHEPPY_SHUTDOWN_TIMEOUT",
    "log_level": "SHEPPY_LOG_LEVEL",
    "prestart": "SHEPPY_PRESTART",
    "processes": "SHEPPY_PROCESSES",
}
"""Setting name -> environment variable (sheppy's names)."""

PYPROJECT_KEYS: Final[dict[str, str]] = {
    "backend_url": "backend",
    "queues": "queue",
    "max_concurrent_tasks": "max_concurrent_tasks",
    "shutdown_timeout": "shutdown_timeout",
    "log_level": "log_level",
    "prestart": "prestart",
    "tasks": "tasks",
    "processes": "processes",
}
"""Setting name -> key of ``[tool.sheppy]``."""


@dataclass(frozen=True)
class Settings:
    """Everything the ``sheppy`` command is configured with, validated.

    ``sources`` tells, per setting, where its value came from: ``"flag"``, the environment variable's
    name, ``"[tool.sheppy] KEY"`` or ``"default"``.
    """

    backend_url: str = DEFAULT_BACKEND_URL
    queues: tuple[str, ...] = (DEFAULT_QUEUE,)
    max_concurrent_tasks: int = 10
    shutdown_timeout: float = 30.0
    log_level: str = "info"
    prestart: str | None = None
    tasks: tuple[str, ...] = ()
    processes: int = 1
    sources: Mapping[str, str] = field(default_factory=dict, compare=False)

    def __repr__(self) -> str:
        # The URL's secrets stay out of every repr (logs, tracebacks); ``backend_url`` itself is intact.
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        values["backend_url"] = redact_url(self.backend_url)
        return f"Settings({', '.join(f'{name}={value!r}' for name, value in values.items())})"

    @property
    def queue(self) -> str:
        """The first queue: what single-queue commands (``task list``, ``cron list``) act on."""
        return self.queues[0]


# -- parsers: raw value (str from the environment, any TOML value from pyproject) -> typed value -------


def _url(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError("must be a non-empty URL such as sqlite:///sheppy.db")
    return value.strip()


def _queues(value: Any) -> tuple[str, ...]:
    items: list[Any]
    if isinstance(value, str):
        items = value.split(",")
    elif isinstance(value, list):
        items = value
    else:
        raise ValueError("must be a queue name or a comma-separated list of names")
    names = [item.strip() for item in items if isinstance(item, str) and item.strip()]
    if len(names) != len(items) and not isinstance(value, str):
        raise ValueError("must be a list of non-empty queue names")
    if not names:
        raise ValueError("must name at least one queue")
    return tuple(dict.fromkeys(names))


def _positive_int(value: Any) -> int:
    if isinstance(value, bool):
        raise ValueError("must be an integer >= 1")
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise ValueError("must be an integer >= 1") from None
    if number < 1 or (isinstance(value, float) and not value.is_integer()):
        raise ValueError("must be an integer >= 1")
    return number


def _processes(value: Any) -> int:
    """Worker processes of ``sheppy work``: an integer >= 1, or ``auto`` for one per CPU core."""
    if isinstance(value, str) and value.strip().lower() == "auto":
        return os.cpu_count() or 1
    try:
        return _positive_int(value.strip() if isinstance(value, str) else value)
    except ValueError:
        raise ValueError("must be an integer >= 1 or 'auto'") from None


def _non_negative_float(value: Any) -> float:
    if isinstance(value, bool):
        raise ValueError("must be a number of seconds >= 0")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError("must be a number of seconds >= 0") from None
    if not number >= 0 or number == float("inf"):
        raise ValueError("must be a number of seconds >= 0")
    return number


def _log_level(value: Any) -> str:
    level = str(value).strip().lower() if isinstance(value, str) else ""
    if level not in LOG_LEVELS:
        raise ValueError(f"must be one of {', '.join(LOG_LEVELS)}")
    return level


def _function_name(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError("must look like 'module:function'")
    module, sep, name = value.strip().partition(":")
    if not sep or not module or not name:
        raise ValueError("must look like 'module:function'")
    return value.strip()


def _modules(value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        value = value.split(",")
    if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
        raise ValueError("must be a list of module names")
    return tuple(v.strip() for v in value)


def _pick(
    name: str,
    flag: Any,
    flag_label: str,
    parse: Callable[[Any], T],
    default: T,
    environ: Mapping[str, str],
    table: Mapping[str, Any],
    sources: dict[str, str],
) -> T:
    """The value of setting ``name`` from the first source that has it."""
    candidates: list[tuple[str, Any]] = []
    if flag is not None and flag != () and flag != []:
        candidates.append((flag_label, flag))
    env_name = ENV.get(name)
    if env_name is not None and environ.get(env_name, "") != "":
        candidates.append((env_name, environ[env_name]))
    key = PYPROJECT_KEYS.get(name)
    if key is not None and key in table:
        candidates.append((f"[tool.sheppy] {key}", table[key]))
    if not candidates:
        sources[name] = "default"
        return default
    origin, raw = candidates[0]
    try:
        value = parse(raw)
    except ValueError as exc:
        if name == "backend_url":  # never echo what may hold a password
            raw = redact_url(raw) if isinstance(raw, str) else f"<{type(raw).__name__}>"
        if origin.startswith("--"):
            label = f"{origin} {raw!r}"
        elif origin.startswith("[tool"):
            label = f"{origin} = {raw!r} (pyproject.toml)"
        else:
            label = f"{origin}={raw!r}"
        raise ConfigurationError(f"{label} {exc}") from None
    sources[name] = "flag" if origin.startswith("--") else origin
    return value


def load_settings(
    *,
    backend_url: str | None = None,
    queues: Sequence[str] | None = None,
    max_concurrent_tasks: int | None = None,
    shutdown_timeout: float | None = None,
    log_level: str | None = None,
    prestart: str | None = None,
    tasks: Sequence[str] | None = None,
    processes: int | str | None = None,
    environ: Mapping[str, str] | None = None,
    pyproject: Mapping[str, Any] | None = None,
) -> Settings:
    """Resolve every setting: flags (the keyword arguments), then ``environ`` (default
    ``os.environ``), then ``pyproject`` (default ``[tool.sheppy]`` of ``./pyproject.toml``), then
    defaults. Raises ``ConfigurationError`` naming the source of an invalid value."""
    env = os.environ if environ is None else environ
    table = pyproject_settings() if pyproject is None else pyproject
    check_known_keys(table)
    sources: dict[str, str] = {}
    flag_queues = list(queues) if queues else None
    return Settings(
        backend_url=_pick(
            "backend_url", backend_url, "--backend-url", _url, DEFAULT_BACKEND_URL, env, table, sources
        ),
        queues=_pick("queues", flag_queues, "--queue", _queues, (DEFAULT_QUEUE,), env, table, sources),
        max_concurrent_tasks=_pick(
            "max_concurrent_tasks",
            max_concurrent_tasks,
            "--max-concurrent",
            _positive_int,
            10,
            env,
            table,
            sources,
        ),
        shutdown_timeout=_pick(
            "shutdown_timeout",
            shutdown_timeout,
            "--shutdown-timeout",
            _non_negative_float,
            30.0,
            env,
            table,
            sources,
        ),
        log_level=_pick("log_level", log_level, "--log-level", _log_level, "info", env, table, sources),
        prestart=_pick("prestart", prestart, "--prestart", _function_name, None, env, table, sources),
        tasks=_pick("tasks", list(tasks) if tasks else None, "--import", _modules, (), env, table, sources),
        processes=_pick("processes", processes, "--processes", _processes, 1, env, table, sources),
        sources=sources,
    )
