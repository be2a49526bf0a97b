"""Reading a ``postgresql://`` URL: sheppy's own options are taken out, the rest goes to asyncpg.

No I/O happens here, so ``PostgresBackend.from_url`` can reject a bad URL before anything connects.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from sheppy_core.backend import (
    COMMON_URL_OPTIONS,
    DEFAULT_TTL_SECONDS,
    parse_common_options,
    redact_secrets,
    redact_url,
)
from sheppy_core.exceptions import ConfigurationError

__all__ = ["DEFAULT_SCHEMA", "PostgresConfig", "PostgresOptions", "parse_url", "quote_ident"]

DEFAULT_SCHEMA = "sheppy"
DEFAULT_POOL_MIN = 1
DEFAULT_POOL_MAX = 10
DEFAULT_LEASE = 15.0
DEFAULT_TTL: float | None = DEFAULT_TTL_SECONDS  # 30 days, as every bundled backend
DEFAULT_POLL_LISTEN = 1.0
"""With LISTEN on, how often an idle ``pop``/``get_results`` re-checks anyway (a missed NOTIFY costs
at most this long)."""
DEFAULT_POLL_NO_LISTEN = 0.05
"""With ``listen=false`` (PgBouncer transaction mode), how often an idle ``pop`` polls."""
DEFAULT_PURGE_INTERVAL = 60.0

SCHEMES = ("postgresql", "postgres")

# Query options understood by asyncpg/libpq that are passed through untouched. Anything that is
# neither one of these nor one of ours is a typo, and a typo in a connection URL should not pass
# silently (asyncpg would send it to the server as a setting).
_DRIVER_OPTIONS = frozenset({
    "sslmode", "sslrootcert", "sslcert", "sslkey", "sslcrl", "sslpassword", "ssl_min_protocol_version",
    "ssl_max_protocol_version", "application_name", "connect_timeout", "target_session_attrs",
    "passfile", "krbsrvname", "gsslib", "service", "servicefile", "host", "port", "user", "password",
    "dbname", "database",
})
_SSLMODES = frozenset({"disable", "allow", "prefer", "require", "verify-ca", "verify-full"})
_OWN_OPTIONS = frozenset({
    "schema", "pool_min", "pool_max", "listen", "poll_interval", "purge_interval", "statement_cache_size",
}) | COMMON_URL_OPTIONS


@dataclass(frozen=True)
class PostgresOptions:
    """Everything a backend needs, parsed from its URL."""

    url: str
    """The URL as given (only ever shown through :func:`redact_url`)."""
    dsn: str
    """The URL without sheppy's own options: what asyncpg receives."""
    schema: str = DEFAULT_SCHEMA
    pool_min: int = DEFAULT_POOL_MIN
    pool_max: int = DEFAULT_POOL_MAX
    lease: float = DEFAULT_LEASE
    ttl: float | None = DEFAULT_TTL
    error_ttl: float | str | None = "inherit"
    listen: bool = True
    poll_interval: float = DEFAULT_POLL_LISTEN
    purge_interval: float = DEFAULT_PURGE_INTERVAL
    statement_cache_size: int = 100

    @property
    def redacted(self) -> str:
        return redact_url(self.url)


PostgresConfig = PostgresOptions
"""The name of :class:`PostgresOptions` before the plugin skeleton (kept for code importing it)."""


def quote_ident(name: str) -> str:
    """Quote ``name`` as a PostgreSQL identifier (double quotes, embedded quotes doubled)."""
    return '"' + name.replace('"', '""') + '"'


def _check_schema(name: str, shown: str) -> str:
    # The name is always quoted, so any printable text is safe in SQL; these rules only keep out names
    # PostgreSQL itself rejects or would silently truncate (63 bytes), and '$', which could end the
    # dollar-quoted function bodies of the migrations.
    if not name or len(name.encode("utf-8", "surrogatepass")) > 63:
        raise ConfigurationError(f"option 'schema' must be 1 to 63 bytes long, got {name!r} in {shown!r}")
    if any(ch in name for ch in "\x00$") or not name.isprintable():
        raise ConfigurationError(
            f"option 'schema' must be printable text without '$', got {name!r} in {shown!r}"
        )
    return name


def _number(name: str, raw: str, shown: str, *, minimum: float, integer: bool = False) -> float:
    try:
        value = float(int(raw)) if integer else float(raw)
    except ValueError:
        kind = "an integer" if integer else "a number"
        raise ConfigurationError(f"option {name!r} must be {kind}, got {raw!r} in {shown!r}") from None
    if not math.isfinite(value) or value < minimum:
        raise ConfigurationError(f"option {name!r} must be >= {minimum:g}, got {raw!r} in {shown!r}")
    return value


def _bool(name: str, raw: str, shown: str) -> bool:
    lowered = raw.lower()
    if lowered in ("true", "1", "yes", "on"):
        return True
    if lowered in ("false", "0", "no", "off"):
        return False
    raise ConfigurationError(f"option {name!r} must be true or false, got {raw!r} in {shown!r}")


def parse_url(url: str) -> PostgresOptions:
    """Split ``url`` into sheppy's options and the DSN handed to asyncpg.

    Raises ``ConfigurationError`` naming the offending part; the password never appears in a message.
    """
    shown = redact_url(url)
    try:
        parts = urlsplit(url)
    except ValueError as exc:
        detail = redact_secrets(str(exc), url)
        raise ConfigurationError(f"cannot parse PostgreSQL URL {shown!r}: {detail}") from None
    if "@" in parts.path + parts.fragment:
        # Most likely an unencoded '/' or '#' in the password cut the user info short: asyncpg would take
        # part of the password for the host or port (and print it in its errors).
        raise ConfigurationError(
            f"URL {shown!r} has an '@' after its host; percent-encode '/', '?', '#' and '@' in a user name, "
            "password or database name (%2F, %3F, %23, %40)"
        )
    try:
        _ = parts.port  # raises ValueError for a non-numeric port
    except ValueError as exc:
        detail = redact_secrets(str(exc), url)
        raise ConfigurationError(f"cannot parse PostgreSQL URL {shown!r}: {detail}") from None
    if parts.scheme.lower() not in SCHEMES:
        raise ConfigurationError(
            f"URL {shown!r} has scheme {parts.scheme!r}; the PostgreSQL backend serves "
            + " and ".join(f"'{s}://'" for s in SCHEMES)
        )
    if parts.fragment:
        raise ConfigurationError(f"URL {shown!r} must not have a '#fragment'")

    own: dict[str, str] = {}
    passed: list[tuple[str, str]] = []
    for key, value in parse_qsl(parts.query, keep_blank_values=True):
        if key in _OWN_OPTIONS:
            if key in own:
                raise ConfigurationError(f"option {key!r} is given twice in {shown!r}")
            own[key] = value
        elif key in _DRIVER_OPTIONS:
            if key == "sslmode" and value not in _SSLMODES:
                raise ConfigurationError(
                    f"option 'sslmode' must be one of {', '.join(sorted(_SSLMODES))}; "
                    f"got {value!r} in {shown!r}"
                )
            passed.append((key, value))
        else:
            known = ", ".join(sorted(_OWN_OPTIONS | {"sslmode", "application_name"}))
            # (an unencoded '?' in the password makes part of it look like an option name)
            raise ConfigurationError(
                redact_secrets(f"unknown option {key!r} in {shown!r}; known options include: {known}", url)
            )

    listen = _bool("listen", own["listen"], shown) if "listen" in own else True
    pool_min = int(_number("pool_min", own.get("pool_min", str(DEFAULT_POOL_MIN)), shown, minimum=0,
                           integer=True))
    pool_max = int(_number("pool_max", own.get("pool_max", str(DEFAULT_POOL_MAX)), shown, minimum=1,
                           integer=True))
    if pool_min > pool_max:
        raise ConfigurationError(
            f"option 'pool_min' ({pool_min}) exceeds 'pool_max' ({pool_max}) in {shown!r}"
        )
    default_poll = DEFAULT_POLL_LISTEN if listen else DEFAULT_POLL_NO_LISTEN
    common = parse_common_options(own, shown)

    dsn = urlunsplit(parts._replace(scheme="postgresql", query=urlencode(passed)))
    return PostgresOptions(
        url=url,
        dsn=dsn,
        schema=_check_schema(own.get("schema", DEFAULT_SCHEMA), shown),
        pool_min=pool_min,
        pool_max=pool_max,
        lease=DEFAULT_LEASE if common.lease is None else common.lease,
        ttl=common.ttl,
        error_ttl=common.error_ttl,
        listen=listen,
        poll_interval=_positive("poll_interval", own, default_poll, shown),
        purge_interval=_positive("purge_interval", own, DEFAULT_PURGE_INTERVAL, shown),
        statement_cache_size=int(_number("statement_cache_size", own.get("statement_cache_size", "100"),
                                         shown, minimum=0, integer=True)),
    )


def _positive(name: str, own: dict[str, str], default: float, shown: str) -> float:
    if name not in own:
        return default
    value = _number(name, own[name], shown, minimum=0)
    if value <= 0:
        raise ConfigurationError(f"option {name!r} must be > 0, got {own[name]!r} in {shown!r}")
    return value
