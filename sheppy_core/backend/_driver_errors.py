"""Turning a driver's exceptions into the contract's: :func:`translate_errors`.

The contract lets no driver exception out of a backend: a lost server is ``BackendConnectionError``
(retry later), refused input is ``BackendInputError`` (change the call). Every backend writes the same
``try``/``except`` around its driver calls; the driver's exception classes are the only difference.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager

from sheppy_core.backend._url import redact_secrets, redact_url
from sheppy_core.exceptions import BackendConnectionError, BackendError, BackendInputError, SheppyError

__all__ = ["ExceptionTypes", "one_line", "translate_errors"]

ExceptionTypes = tuple[type[Exception], ...]

_LINE_BREAKS = re.compile(r"\s*[\r\n]+\s*")


def one_line(text: str) -> str:
    """``text`` with its line breaks (and the spaces around them) turned into single spaces."""
    return _LINE_BREAKS.sub(" ", text).strip()


def _detail(exc: Exception, url: str) -> str:
    return redact_secrets(one_line(str(exc)), url) or type(exc).__name__


@contextmanager
def translate_errors(
    operation: str,
    url: str,
    *,
    connection: ExceptionTypes = (),
    invalid_input: ExceptionTypes = (),
    timeouts: ExceptionTypes = (),
    chain: bool = True,
) -> Iterator[None]:
    """Raise the contract's errors for the driver's inside the ``with`` block (sync or around awaits).

    - an instance of ``invalid_input`` becomes ``BackendInputError``;
    - an instance of ``timeouts`` or ``connection`` becomes ``BackendConnectionError`` (a timeout says
      "timed out" first);
    - sheppy-core's own errors (a ``TaskStateError`` raised inside the block, ...) and everything not
      listed pass through unchanged, as do ``CancelledError`` and other ``BaseException``\\ s.

    The message is one line, ``"<operation> on <redacted url>: <driver message>"``, with every secret of
    ``url`` (the raw URL the backend was given) scrubbed from the driver's message by
    :func:`~sheppy_core.backend.redact_secrets`. The driver's exception is chained as ``__cause__``;
    ``chain=False`` drops it (``raise ... from None``) for a driver whose messages or attributes may
    hold secrets that a printed traceback would show.

    The built-in ``TimeoutError`` or a subclass (what ``get_results`` raises when time is up) passes
    through unless ``timeouts`` lists it, although it is an ``OSError``: ``connection=(OSError,)`` around a
    :func:`~sheppy_core.backend.wait_for_finished` keeps the contract's error. A driver that raises it
    for its own timeouts (asyncpg's connect) needs ``timeouts=(TimeoutError,)`` around those calls only.

    ::

        with translate_errors("pop", self.url, connection=(OSError, asyncpg.PostgresConnectionError),
                              invalid_input=(asyncpg.DataError,)):
            rows = await connection.fetch(query, queue_name, limit)
    """
    try:
        yield
    except SheppyError:
        raise
    except Exception as exc:
        error = _translated(exc, operation, url, connection, invalid_input, timeouts)
        if error is None:
            raise
        if chain:
            raise error from exc
        raise error from None


def _translated(
    exc: Exception,
    operation: str,
    url: str,
    connection: ExceptionTypes,
    invalid_input: ExceptionTypes,
    timeouts: ExceptionTypes,
) -> BackendError | None:
    """The contract's error for ``exc``, or None to let it through."""
    shown = one_line(redact_url(url))
    if isinstance(exc, invalid_input):
        return BackendInputError(f"{operation} on {shown}: {_detail(exc, url)}")
    if isinstance(exc, timeouts):
        detail = redact_secrets(one_line(str(exc)), url)
        what = f"timed out: {detail}" if detail else "timed out"
        return BackendConnectionError(f"{operation} on {shown}: {what}")
    if isinstance(exc, connection) and not isinstance(exc, TimeoutError):
        return BackendConnectionError(f"{operation} on {shown}: {_detail(exc, url)}")
    return None
