"""The URL options every backend takes: ``lease``, ``ttl`` and ``error_ttl``.

A backend's ``from_url`` splits off its own options and hands these three to
:func:`parse_common_options`, so ``?lease=5&ttl=none&error_ttl=inherit`` means the same on every
scheme and a bad value is refused with the same words.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

from sheppy_core.backend._records import DEFAULT_TTL_SECONDS
from sheppy_core.exceptions import ConfigurationError

__all__ = ["COMMON_URL_OPTIONS", "COMMON_URL_OPTION_HELP", "CommonOptions", "parse_common_options"]

COMMON_URL_OPTION_HELP: Final[dict[str, str]] = {
    "lease": "default claim lease in seconds (> 0)",
    "ttl": "retention of finished records in seconds (> 0), or 'none' to keep them (default 30 days)",
    "error_ttl": "retention of failed/cancelled/crashed records: seconds, 'none' or 'inherit' (default)",
}
"""Each common option with a one-line description, for a backend's own option help."""

COMMON_URL_OPTIONS: Final = frozenset(COMMON_URL_OPTION_HELP)

_KEEP_FOR_EVER = ("none", "forever")
_INHERIT = "inherit"


@dataclass(frozen=True)
class CommonOptions:
    """The common options of a URL, parsed. ``lease`` None: not given (use the backend's default);
    ``ttl_given`` tells a ``ttl=none`` in the URL from no ``ttl`` at all."""

    lease: float | None = None
    ttl: float | None = DEFAULT_TTL_SECONDS
    error_ttl: float | str | None = _INHERIT
    ttl_given: bool = False


def _seconds(name: str, raw: str, shown_url: str, *, may_keep: bool) -> float | None:
    text = raw.strip().lower()
    if may_keep and text in _KEEP_FOR_EVER:
        return None
    try:
        seconds = float(text)
    except ValueError:
        seconds = math.nan
    if not math.isfinite(seconds) or seconds <= 0:
        wanted = "seconds > 0 or 'none'" if may_keep else "seconds > 0"
        raise ConfigurationError(f"option {name!r} must be {wanted}, got {raw!r} in {shown_url!r}")
    return seconds


def parse_common_options(options: Mapping[str, str], shown_url: str) -> CommonOptions:
    """Parse ``lease``, ``ttl`` and ``error_ttl`` out of ``options`` (a URL's query options; other
    names are ignored). ``shown_url`` is the URL as it may appear in a message (see
    :func:`~sheppy_core.backend.redact_url`). A bad value raises ``ConfigurationError`` naming it.

    ``lease``: finite seconds > 0. ``ttl``: finite seconds > 0, or ``none``/``forever`` to keep
    finished records for ever. ``error_ttl``: the same, or ``inherit`` (the default: use ``ttl``).
    """
    lease = options.get("lease")
    ttl = options.get("ttl")
    error_ttl = options.get("error_ttl")
    return CommonOptions(
        lease=None if lease is None else _seconds("lease", lease, shown_url, may_keep=False),
        ttl=DEFAULT_TTL_SECONDS if ttl is None else _seconds("ttl", ttl, shown_url, may_keep=True),
        error_ttl=(
            _INHERIT
            if error_ttl is None or error_ttl.strip().lower() == _INHERIT
            else _seconds("error_ttl", error_ttl, shown_url, may_keep=True)
        ),
        ttl_given=ttl is not None,
    )
