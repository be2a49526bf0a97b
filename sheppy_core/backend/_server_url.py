"""Reading a server URL, ``scheme://user:password@host:port/database?options``: :func:`parse_server_url`.

What every network backend's ``from_url`` does before it connects: check the scheme, split the URL,
refuse what would make a driver misread it (an unencoded ``/``, ``?``, ``#`` or ``@`` in the password),
check the options against the names the backend knows, and read their values with one wording. Every
error is a one-line ``ConfigurationError`` showing the URL only as :func:`redact_url` gives it.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Literal, TypeVar, overload
from urllib.parse import SplitResult, parse_qsl, unquote, urlsplit

from sheppy_core.backend._driver_errors import one_line
from sheppy_core.backend._url import MASK, is_secret_option, redact_secrets, redact_url, url_scheme
from sheppy_core.backend._url_options import COMMON_URL_OPTIONS, CommonOptions, parse_common_options
from sheppy_core.exceptions import ConfigurationError

__all__ = ["ServerURL", "parse_server_url"]

D = TypeVar("D")

_TRUE = frozenset({"true", "1", "yes", "on"})
_FALSE = frozenset({"false", "0", "no", "off"})
_MAX_PORT = 65535
_ENCODE = (
    "percent-encode '/', '?', '#' and '@' in a user name, password, database name or option value "
    "(%2F, %3F, %23, %40)"
)


@dataclass(frozen=True, repr=False)
class ServerURL:
    """A parsed server URL (see :func:`parse_server_url`). ``repr`` shows only :attr:`redacted`."""

    scheme: str
    """Lower-cased, one of the schemes the backend serves."""
    host: str | None
    """Percent-decoded, case kept (``%2Fvar%2Frun`` is ``/var/run``); brackets of an IPv6 address
    removed; None when the URL names none."""
    port: int | None
    """The URL's port, else ``default_port``."""
    user: str | None
    password: str | None
    """Percent-decoded. Never put it in a message: show :attr:`redacted`."""
    database: str | None
    """The path without its leading ``/``, percent-decoded; None for no path or just ``/``."""
    options: Mapping[str, str]
    """The query options as given (each name at most once), the common ones included."""
    redacted: str
    """The URL as it may be shown (password and secret option values masked)."""
    known_options: frozenset[str]
    """The option names the backend declared, and ``lease``, ``ttl``, ``error_ttl``."""
    _url: str = field(compare=False)
    _common: CommonOptions = field(compare=False)

    def __repr__(self) -> str:
        return f"ServerURL({self.redacted!r})"

    def common(self) -> CommonOptions:
        """``lease``, ``ttl`` and ``error_ttl``, as :func:`~sheppy_core.backend.parse_common_options`
        reads them (already checked by :func:`parse_server_url`)."""
        return self._common

    def _raw(self, name: str) -> str | None:
        if name not in self.known_options:
            raise KeyError(f"option {name!r} was not declared to parse_server_url(options=...)")
        return self.options.get(name)

    def _refuse(self, name: str, raw: str, wanted: str) -> ConfigurationError:
        shown = MASK if is_secret_option(name) else raw
        message = f"option {name!r} must be {wanted}, got {shown!r} in {self.redacted!r}"
        return ConfigurationError(redact_secrets(one_line(message), self._url))

    @overload
    def number(
        self, name: str, default: D, *, minimum: float | None = ..., above: float | None = ...,
        integer: Literal[False] = ...,
    ) -> float | D: ...

    @overload
    def number(
        self, name: str, default: D, *, minimum: float | None = ..., above: float | None = ...,
        integer: Literal[True],
    ) -> int | D: ...

    def number(
        self, name: str, default: D, *, minimum: float | None = None, above: float | None = None,
        integer: bool = False,
    ) -> float | D:
        """Option ``name`` as a finite number (an ``int`` with ``integer=True``), or ``default`` when the
        URL does not give it. ``minimum``: the least value allowed; ``above``: values must be greater.
        A bad value raises ``ConfigurationError``: "option 'pool' must be an integer >= 1, got 'x' in
        '<url>'"."""
        raw = self._raw(name)
        if raw is None:
            return default
        bounds = "".join(
            f" {sign} {limit:g}" for sign, limit in ((">=", minimum), (">", above)) if limit is not None
        )
        wanted = ("an integer" if integer else "a number") + bounds
        value: float
        try:
            value = int(raw) if integer else float(raw)
        except ValueError:
            raise self._refuse(name, raw, wanted) from None
        if (
            not math.isfinite(value)
            or (minimum is not None and value < minimum)
            or (above is not None and value <= above)
        ):
            raise self._refuse(name, raw, wanted)
        return value

    def flag(self, name: str, default: D) -> bool | D:
        """Option ``name`` as a bool (``true``/``false``, ``1``/``0``, ``yes``/``no``, ``on``/``off``, in
        any case), or ``default`` when the URL does not give it."""
        raw = self._raw(name)
        if raw is None:
            return default
        text = raw.strip().lower()
        if text in _TRUE:
            return True
        if text in _FALSE:
            return False
        raise self._refuse(name, raw, "true or false (or 1/0, yes/no, on/off)")

    def text(self, name: str, default: D) -> str | D:
        """Option ``name`` as given (percent-decoded), or ``default`` when the URL does not give it."""
        raw = self._raw(name)
        return default if raw is None else raw


def _host(parts: SplitResult) -> str | None:
    # Not ``parts.hostname``: it lower-cases, which breaks a socket directory given as the host.
    hostinfo = parts.netloc.rpartition("@")[2]
    host = hostinfo[1 : hostinfo.find("]")] if hostinfo.startswith("[") else hostinfo.partition(":")[0]
    return unquote(host) or None


def _unquoted(text: str | None) -> str | None:
    return None if text is None else unquote(text)


def parse_server_url(
    url: str,
    *,
    schemes: Iterable[str],
    default_port: int | None = None,
    options: Iterable[str] = (),
) -> ServerURL:
    """Split ``url`` (``scheme://[user[:password]@]host[:port][/database][?name=value&...]``) into a
    :class:`ServerURL`, without any I/O.

    ``schemes``: those the backend serves (any case). ``default_port``: the port when the URL gives
    none. ``options``: the query option names the backend takes besides ``lease``, ``ttl`` and
    ``error_ttl``, which are always known and checked here (read them with :meth:`ServerURL.common`).

    Raises ``ConfigurationError`` with one line naming the problem and showing the redacted URL (never
    the password, also not inside a quoted urllib message): a scheme not served, a URL urllib cannot
    split, a port that is not a number from 1 to 65535, an ``@`` after the host (an unencoded ``/``,
    ``?``, ``#`` or ``@`` in the user info), a ``#fragment``, an option given twice, an unknown option
    (naming the nearest known one) or a bad value of a common option.
    """
    served = tuple(dict.fromkeys(scheme.lower() for scheme in schemes))
    if not served:
        raise ValueError("parse_server_url needs at least one scheme")
    if not isinstance(url, str):
        raise ConfigurationError(f"a backend URL must be a string, got {type(url).__name__}")
    shown = one_line(redact_url(url))

    def refuse(message: str) -> ConfigurationError:
        return ConfigurationError(redact_secrets(one_line(message), url))

    accepted = " or ".join(f"'{scheme}://'" for scheme in served)
    scheme = url_scheme(url)
    if scheme not in served:
        has = f"scheme {scheme!r}" if scheme else "no scheme"
        raise refuse(f"URL {shown!r} has {has}; this backend serves {accepted}")
    try:
        parts = urlsplit(url)
    except ValueError as exc:
        raise refuse(f"cannot parse URL {shown!r}: {exc}") from None
    if "@" in parts.path + parts.query + parts.fragment:
        # Most likely an unencoded '/', '?' or '#' in the password cut the user info short: a driver
        # would take part of the password for the host or port (and print it in its errors).
        raise refuse(f"URL {shown!r} has an '@' after its host; {_ENCODE}")
    ports = f"a port is a number from 1 to {_MAX_PORT}"
    try:
        port = parts.port
    except ValueError as exc:
        raise refuse(f"URL {shown!r} has a bad port ({exc}); {ports}") from None
    if port == 0:
        raise refuse(f"URL {shown!r} has a bad port (0); {ports}")
    if parts.fragment:
        raise refuse(f"URL {shown!r} must not have a '#fragment'")

    known = frozenset(options) | COMMON_URL_OPTIONS
    given: dict[str, str] = {}
    for name, value in parse_qsl(parts.query, keep_blank_values=True):
        if name in given:
            raise refuse(f"option {name!r} is given twice in {shown!r}")
        if name not in known:
            nearest = difflib.get_close_matches(name, sorted(known), n=1)
            listed = ", ".join(sorted(known))
            hint = f"did you mean {nearest[0]!r}?" if nearest else f"known options: {listed}"
            raise refuse(f"unknown option {name!r} in {shown!r}; {hint}")
        given[name] = value
    common = parse_common_options(given, shown)

    path = parts.path[1:] if parts.path.startswith("/") else parts.path
    return ServerURL(
        scheme=scheme,
        host=_host(parts),
        port=default_port if port is None else port,
        user=_unquoted(parts.username),
        password=_unquoted(parts.password),
        database=unquote(path) or None,
        options=MappingProxyType(given),
        redacted=shown,
        known_options=known,
        _url=url,
        _common=common,
    )
