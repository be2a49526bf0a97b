"""``sqlite://`` URLs and the backend's options, checked without touching the file system.

URL forms (as SQLAlchemy writes them)::

    sqlite:///relative/path.db         relative to the working directory at connect time
    sqlite:////absolute/path.db        absolute
    sqlite:///queue.db?busy_timeout=5000&journal_mode=wal&lease=15

Query options: see :data:`OPTION_HELP`. A bad or unknown option raises ``ConfigurationError`` naming it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import parse_qsl, unquote, urlsplit

from sheppy_core.backend import (
    COMMON_URL_OPTION_HELP,
    COMMON_URL_OPTIONS,
    DEFAULT_TTL_SECONDS,
    parse_common_options,
    redact_secrets,
    redact_url,
)
from sheppy_core.exceptions import ConfigurationError

__all__ = [
    "DEFAULT_BUSY_TIMEOUT_MS",
    "DEFAULT_POLL_INTERVAL",
    "JOURNAL_MODES",
    "OPTION_HELP",
    "SYNCHRONOUS_MODES",
    "SQLiteOptions",
    "parse_url",
]

DEFAULT_BUSY_TIMEOUT_MS: Final = 5000
"""How long a call waits for another connection's write lock before giving up with ``BackendError``."""

DEFAULT_POLL_INTERVAL: Final = 0.01
"""The longest gap, in seconds, between two looks for changes made by other processes while waiting."""

JOURNAL_MODES: Final = ("wal", "delete", "truncate", "persist")
SYNCHRONOUS_MODES: Final = ("off", "normal", "full", "extra")

OPTION_HELP: Final[dict[str, str]] = {
    "busy_timeout": "milliseconds to wait for a locked database (default 5000)",
    "journal_mode": f"one of {', '.join(JOURNAL_MODES)} (default wal)",
    "synchronous": f"one of {', '.join(SYNCHRONOUS_MODES)} (default normal)",
    **COMMON_URL_OPTION_HELP,
    "poll_interval": "longest pause in seconds between looks for other processes' changes (default 0.01)",
    "purge_interval": "seconds between purges of expired records (default 60)",
    "fast_path": "true/false: run non-waiting statements on the event loop (default true)",
}


@dataclass(frozen=True)
class SQLiteOptions:
    """Everything a ``SQLiteBackend`` is configured with, validated."""

    path: str
    busy_timeout: int = DEFAULT_BUSY_TIMEOUT_MS
    journal_mode: str = "wal"
    synchronous: str = "normal"
    lease: float | None = None
    ttl: float | None = DEFAULT_TTL_SECONDS
    error_ttl: float | str | None = "inherit"
    poll_interval: float = DEFAULT_POLL_INTERVAL
    purge_interval: float = 60.0
    fast_path: bool = True

    def __post_init__(self) -> None:
        if not isinstance(self.path, str) or not self.path:
            raise ConfigurationError("SQLiteBackend needs a database file path")
        if self.path == ":memory:" or self.path.startswith("file:"):
            raise ConfigurationError(
                f"SQLiteBackend needs a database file, not {self.path!r}: an in-memory SQLite database "
                "cannot be shared between connections (use memory:// for an in-process queue)"
            )
        if isinstance(self.busy_timeout, bool) or not isinstance(self.busy_timeout, int) \
                or self.busy_timeout < 0:
            raise ConfigurationError(f"busy_timeout must be an integer >= 0 (ms), got {self.busy_timeout!r}")
        if self.journal_mode not in JOURNAL_MODES:
            raise ConfigurationError(
                f"journal_mode must be one of {JOURNAL_MODES}, got {self.journal_mode!r}"
            )
        if self.synchronous not in SYNCHRONOUS_MODES:
            raise ConfigurationError(
                f"synchronous must be one of {SYNCHRONOUS_MODES}, got {self.synchronous!r}"
            )
        _check_positive("lease", self.lease, allow_none=True)
        _check_positive("ttl", self.ttl, allow_none=True)
        if self.error_ttl != "inherit":
            _check_positive("error_ttl", self.error_ttl, allow_none=True)
        _check_positive("poll_interval", self.poll_interval)
        _check_positive("purge_interval", self.purge_interval)
        if not isinstance(self.fast_path, bool):
            raise ConfigurationError(f"fast_path must be True or False, got {self.fast_path!r}")


def _check_positive(name: str, value: Any, *, allow_none: bool = False) -> None:
    if value is None and allow_none:
        return
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) \
            or value <= 0:
        raise ConfigurationError(f"{name} must be a number > 0, got {value!r}")


def _seconds(name: str, raw: str) -> float:
    try:
        value = float(raw.strip())
    except ValueError:
        raise ConfigurationError(f"sqlite:// option {name}={raw!r} is not a number of seconds") from None
    _check_positive(name, value)
    return value


def parse_url(url: str) -> SQLiteOptions:
    """Turn a ``sqlite://`` URL into options; no I/O. Raises ``ConfigurationError`` naming the problem."""
    if not isinstance(url, str):
        raise ConfigurationError(f"expected a sqlite:// URL string, got {url!r}")
    try:
        parts = urlsplit(url)
    except ValueError as exc:
        raise ConfigurationError(
            f"cannot parse sqlite URL {redact_url(url)!r}: {redact_secrets(str(exc), url)}"
        ) from None
    shown = redact_url(url)  # the only form of a URL that may appear in a message
    if parts.scheme.lower() != "sqlite":
        raise ConfigurationError(f"not a sqlite:// URL: {shown!r}")
    if parts.netloc:
        raise ConfigurationError(
            f"sqlite URL {shown!r} names a host ({parts.hostname!r}); use sqlite:///relative.db or "
            "sqlite:////absolute/path.db"
        )
    if parts.fragment:
        raise ConfigurationError(f"sqlite URL {shown!r} has a fragment (#...); remove it")
    # urlsplit keeps the leading "/" of the path: "/relative.db" or "//absolute/path.db".
    path = unquote(parts.path)
    if not path.startswith("/") or len(path) < 2:
        raise ConfigurationError(
            f"sqlite URL {shown!r} has no database path; use sqlite:///relative.db or sqlite:////absolute/path.db"
        )
    path = path[1:]
    if path.endswith("/"):
        raise ConfigurationError(f"sqlite URL {shown!r} names a directory, not a database file")

    options: dict[str, Any] = {"path": path}
    common: dict[str, str] = {}
    seen: set[str] = set()
    for name, raw in parse_qsl(parts.query, keep_blank_values=True, strict_parsing=False):
        if name in seen:
            raise ConfigurationError(f"sqlite:// option {name!r} is given twice")
        seen.add(name)
        if name not in OPTION_HELP:
            known = ", ".join(sorted(OPTION_HELP))
            raise ConfigurationError(f"unknown sqlite:// option {name!r}; known options: {known}")
        if name == "busy_timeout":
            try:
                options[name] = int(raw)
            except ValueError:
                raise ConfigurationError(
                    f"sqlite:// option busy_timeout={raw!r} is not a whole number of milliseconds"
                ) from None
        elif name == "fast_path":
            flag = raw.strip().lower()
            if flag not in ("1", "true", "yes", "on", "0", "false", "no", "off"):
                raise ConfigurationError(f"sqlite:// option fast_path={raw!r} must be true or false")
            options[name] = flag in ("1", "true", "yes", "on")
        elif name in ("journal_mode", "synchronous"):
            options[name] = raw.strip().lower()
        elif name in COMMON_URL_OPTIONS:
            common[name] = raw
        else:
            options[name] = _seconds(name, raw)
    parsed = parse_common_options(common, shown)
    options.update(lease=parsed.lease, ttl=parsed.ttl, error_ttl=parsed.error_ttl)
    try:
        return SQLiteOptions(**options)
    except ConfigurationError as exc:
        raise ConfigurationError(f"sqlite URL {shown!r}: {exc}") from None
