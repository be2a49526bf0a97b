"""URL helpers shared by the registry and backends.

:func:`redact_url` is the only form in which a URL may appear in a log line, repr, title, summary or
error message; :func:`redact_secrets` scrubs the same secrets out of text that may quote parts of the
URL (a driver's error message, for instance).
"""

from __future__ import annotations

import re
from urllib.parse import unquote, unquote_plus

__all__ = ["MASK", "is_secret_option", "redact_secrets", "redact_url", "url_scheme"]

MASK = "***"
"""What a hidden secret is shown as."""

_SECRET_NAMES = frozenset({"password", "passwd", "pwd", "secret", "token", "auth"})
_SECRET_PARTS = ("password", "secret", "token")
_AUTHORITY_END = re.compile(r"[/?#]")
_PIECE_SEPARATORS = re.compile(r"[/?#@:&=;+\s]+")
_MIN_PIECE = 2  # shorter fragments of an unreadable user info are not worth scrubbing from a message


def url_scheme(url: str) -> str:
    scheme, sep, _ = url.partition("://")
    return scheme.lower() if sep else ""


def is_secret_option(name: str) -> bool:
    """True for a query option whose value is a credential: ``password``, ``passwd``, ``pwd``,
    ``secret``, ``token``, ``auth``, or any name containing ``password``, ``secret`` or ``token``
    (``sslpassword``, ``api_token``), in any case and percent-encoding."""
    key = unquote_plus(name).strip().lower()
    return key in _SECRET_NAMES or any(part in key for part in _SECRET_PARTS)


def _mask_pair(pair: str) -> str:
    key, eq, _ = pair.partition("=")
    return f"{key}={MASK}" if eq and is_secret_option(key) else pair


def _redact_tail(tail: str) -> str:
    # ``host[:port][/path][?query][#fragment]`` without user info. A secret value runs to the next '&'
    # (a '#' inside it does not end it: an unencoded '#' in a password must not show its second half).
    before, question, query = tail.partition("?")
    if not question:
        return tail
    return before + "?" + "&".join(_mask_pair(pair) for pair in query.split("&"))


def _split(url: str) -> tuple[str, str, int]:
    """``(scheme://, rest, at)``: ``at`` is the index in ``rest`` of the ``@`` ending the user info,
    -1 for none, or -2 when it cannot be told (the last '@' comes after a '/', '?' or '#')."""
    scheme, sep, rest = url.partition("://")
    head = scheme + sep
    if not sep:
        head, rest = "", url
    at = rest.rfind("@")
    if at < 0:
        return head, rest, -1
    end = _AUTHORITY_END.search(rest)
    if end is None or at < end.start():
        return head, rest, at
    return head, rest, -2


def _in_secret_value(rest: str, position: int) -> bool:
    # Read as a query string, does ``position`` fall inside the value of a secret option?
    question = rest.find("?")
    if question < 0 or question > position:
        return False
    offset = question + 1
    for pair in rest[question + 1 :].split("&"):
        end = offset + len(pair)
        key, eq, _ = pair.partition("=")
        if eq and offset + len(key) < position < end:
            return is_secret_option(key)
        offset = end + 1
    return False


def redact_url(url: str) -> str:
    """``url`` as it may be shown: the user info's password and the values of secret query options
    (see :func:`is_secret_option`) replaced by ``***``.

    A URL whose user info cannot be read (an unencoded ``/``, ``?``, ``#`` or ``@`` in the password
    puts its last ``@`` after the host) comes out with everything from ``scheme://`` to that ``@``
    replaced: ``redis://u:pa/ss@host/0`` -> ``redis://***@host/0``. The raw text is never returned.
    """
    head, rest, at = _split(url)
    if at == -1:
        return head + _redact_tail(rest)
    if at >= 0:
        user, colon, _ = rest[:at].partition(":")
        shown = f"{user}:{MASK}@" if colon else rest[: at + 1]
        return head + shown + _redact_tail(rest[at + 1 :])
    last = rest.rfind("@")
    if _in_secret_value(rest, last):
        # Either the '@' ends a broken user info or it is inside a secret query value: hide it all.
        return head + MASK
    return head + MASK + "@" + _redact_tail(rest[last + 1 :])


def _secrets(url: str) -> set[str]:
    _, rest, at = _split(url)
    found: set[str] = set()
    if at >= 0:
        _, colon, password = rest[:at].partition(":")
        if colon:
            found.add(password)
    elif at == -2:
        found.add(rest[: rest.rfind("@")])
    question = rest.find("?")
    if question >= 0:
        for pair in rest[question + 1 :].split("&"):
            key, eq, value = pair.partition("=")
            if eq and is_secret_option(key):
                found.add(value)
    found |= {unquote(text) for text in found} | {unquote_plus(text) for text in found}
    pieces = {piece for text in found for piece in _PIECE_SEPARATORS.split(text) if len(piece) >= _MIN_PIECE}
    return {text for text in found | pieces if text}


def redact_secrets(text: str, url: str) -> str:
    """``text`` with every secret of ``url`` (the user info password, secret query values, a user info
    that :func:`redact_url` could not read, and their pieces of two or more characters between
    ``/?#@:&=;+`` or spaces), raw or percent-decoded, replaced by ``***``.

    For messages that may quote parts of the URL: ``redact_secrets(str(driver_error), url)``.
    """
    for secret in sorted(_secrets(url), key=len, reverse=True):
        text = text.replace(secret, MASK)
    return text
