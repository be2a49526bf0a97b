"""``jsonfile://`` URLs and the backend's options, checked without touching the file system.

``jsonfile:///absolute/path/store.json`` or ``jsonfile://relative/path.json``; query options are the
common ones every backend takes (``lease``, ``ttl``, ``error_ttl``), parsed by the backend kit.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import parse_qsl, unquote, urlsplit

from sheppy_core.backend import (
    COMMON_URL_OPTIONS,
    DEFAULT_TTL_SECONDS,
    ConfigurationError,
    parse_common_options,
    redact_url,
)

__all__ = ["JsonFileOptions", "parse_url"]


@dataclass(frozen=True)
class JsonFileOptions:
    """What a ``jsonfile://`` URL says: the store file and the common options."""

    path: str
    lease: float | None = None
    ttl: float | None = DEFAULT_TTL_SECONDS
    error_ttl: float | str | None = "inherit"


def parse_url(url: str) -> JsonFileOptions:
    """Turn a ``jsonfile://`` URL into options; no I/O. Raises ``ConfigurationError`` naming the problem."""
    parts = urlsplit(url)
    if parts.scheme != "jsonfile":
        raise ConfigurationError(f"JsonFileBackend serves jsonfile:// URLs, not {parts.scheme}://")
    path = unquote(parts.netloc + parts.path)
    if not path or path.endswith("/"):
        raise ConfigurationError(
            f"jsonfile URL {redact_url(url)!r} names no file; use jsonfile:///path/to/store.json"
        )
    options = dict(parse_qsl(parts.query, keep_blank_values=True))
    unknown = sorted(set(options) - COMMON_URL_OPTIONS)
    if unknown:
        known = sorted(COMMON_URL_OPTIONS)
        raise ConfigurationError(f"unknown jsonfile:// option(s) {unknown}; known: {known}")
    common = parse_common_options(options, redact_url(url))
    return JsonFileOptions(path, lease=common.lease, ttl=common.ttl, error_ttl=common.error_ttl)
