"""Reading a ``postgresql://`` URL: sheppy's own options are taken out, the rest goes to asyncpg.

No I/O happens here, so ``PostgresBackend.from_url`` can reject a bad URL before anything connects.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlencode, urlsplit, urlunsplit

from sheppy_core.backend import (
    COMMON_URL_OPTIONS,
    DEFAULT_TTL_SECONDS,
    parse_server_url,
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


def parse_url(url: str) -> PostgresOptions:
    """Split ``url`` into sheppy's options and the DSN handed to asyncpg.

    Raises ``ConfigurationError`` naming the offending part; the password never appears in a message.
    """
    # The kit checks the scheme, the user info (an unencoded '/', '?', '#' or '@' in the password),
    # the port, a fragment, repeated and unknown options, and the common options.
    parsed = parse_server_url(url, schemes=SCHEMES, options=_OWN_OPTIONS | _DRIVER_OPTIONS)
    shown = parsed.redacted
    own = {key: value for key, value in parsed.options.items() if key in _OWN_OPTIONS}
    passed = [(key, value) for key, value in parsed.options.items() if key in _DRIVER_OPTIONS]
    sslmode = parsed.options.get("sslmode")
    if sslmode is not None and sslmode not in _SSLMODES:
        raise ConfigurationError(
            f"option 'sslmode' must be one of {', '.join(sorted(_SSLMODES))}; got {sslmode!r} in {shown!r}"
        )

    listen = parsed.flag("listen", True)
    pool_min = parsed.number("pool_min", DEFAULT_POOL_MIN, minimum=0, integer=True)
    pool_max = parsed.number("pool_max", DEFAULT_POOL_MAX, minimum=1, integer=True)
    if pool_min > pool_max:
        raise ConfigurationError(
            f"option 'pool_min' ({pool_min}) exceeds 'pool_max' ({pool_max}) in {shown!r}"
        )
    default_poll = DEFAULT_POLL_LISTEN if listen else DEFAULT_POLL_NO_LISTEN
    common = parsed.common()

    dsn = urlunsplit(urlsplit(url)._replace(scheme="postgresql", query=urlencode(passed)))
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
        poll_interval=parsed.number("poll_interval", default_poll, above=0),
        purge_interval=parsed.number("purge_interval", DEFAULT_PURGE_INTERVAL, above=0),
        statement_cache_size=parsed.number("statement_cache_size", 100, minimum=0, integer=True),
    )
