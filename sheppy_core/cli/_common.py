"""What every ``sheppy`` command shares: consoles, options, settings, errors as one line, backends.

Errors an operator can fix (a bad URL, an unreachable server, an unknown function, bad JSON) are printed
as one line on stderr and exit with status 1; passwords in URLs are always redacted.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Sequence
from enum import StrEnum
from typing import Annotated, Any, NoReturn, TypeVar

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.markup import escape

from sheppy_core._queue import Queue
from sheppy_core._settings import Settings, load_settings
from sheppy_core._task import MAX_NESTING
from sheppy_core.backend import Backend, redact_secrets, redact_url
from sheppy_core.exceptions import BackendConnectionError, SheppyError

__all__ = [
    "Format",
    "FormatOption",
    "QueueOption",
    "UrlOption",
    "connected",
    "console",
    "errors",
    "fail",
    "one_line",
    "parse_json_args",
    "print_json",
    "propagate",
    "propagated_line",
    "run",
    "settings_from",
]

T = TypeVar("T")

console = Console()
errors = Console(stderr=True)


class Format(StrEnum):
    """Output format of listing commands."""

    table = "table"
    json = "json"


def flag(*names: str, **options: Any) -> Any:
    """A boolean option: ``typer.Option`` shown in ``--help`` without a ``<bool>`` type column."""
    return typer.Option(*names, metavar="", **options)


QueueOption = Annotated[
    list[str] | None,
    typer.Option(
        "-q",
        "--queue",
        help="Queue name; repeat for several. Env: SHEPPY_QUEUE (comma-separated); "
        "[tool.sheppy] queue; default 'default'.",
        show_default=False,
    ),
]
UrlOption = Annotated[
    str | None,
    typer.Option(
        "-u",
        "--backend-url",
        help="Backend URL. Env: SHEPPY_BACKEND_URL; [tool.sheppy] backend; default sqlite:///sheppy.db.",
        show_default=False,
    ),
]
FormatOption = Annotated[Format, typer.Option("-f", "--format", help="Output format: table or json.")]


def one_line(text: object) -> str:
    """Collapse a message onto one line (tracebacks and multi-line driver errors stay out)."""
    return " ".join(str(text).split())


def _redact_everywhere(message: str, url: str | None) -> str:
    # A backend should never put a secret of its URL into a message; if one slips through, hide it anyway.
    return redact_secrets(message, url) if url else message


def fail(message: str, url: str | None = None, *, code: int = 1) -> NoReturn:
    """Print ``error: message`` on stderr and exit with ``code`` (1; 2 for a bad option value)."""
    errors.print(
        f"[bold red]error:[/] {escape(_redact_everywhere(one_line(message), url))}",
        highlight=False,
        markup=True,
        soft_wrap=True,
        emoji=False,
    )
    raise typer.Exit(code)


def validation_line(exc: ValidationError) -> str:
    """``pydantic.ValidationError`` as one line: ``invalid arguments for f: x: Input should be ...``."""
    problems = []
    for error in exc.errors():
        where = ".".join(str(part) for part in error["loc"]) or "(arguments)"
        problems.append(f"{where}: {error['msg']}")
    return f"invalid arguments for {exc.title}: " + "; ".join(problems)


def settings_from(
    backend_url: str | None = None, queue: Sequence[str] | None = None, **flags: Any
) -> Settings:
    """The resolved settings for one command, or exit with the one-line reason."""
    try:
        return load_settings(backend_url=backend_url, queues=queue, **flags)
    except SheppyError as exc:
        fail(str(exc))


SETTLE_SECONDS = 0.1


async def _settled(coroutine: Coroutine[Any, Any, T]) -> T:
    try:
        return await coroutine
    except BackendConnectionError:
        # A driver whose connect failed may still complete a future on this loop from its own thread
        # (aiosqlite does); closing the loop first makes that thread print a traceback at exit.
        await asyncio.sleep(SETTLE_SECONDS)
        raise


PROPAGATE_NOTE = "sheppy: "


def propagate(exc: BaseException, line: str) -> BaseException:
    """Mark ``exc`` to leave the command unchanged (sheppy lets a failing prestart hook's exception
    propagate); the console entry point :func:`sheppy_core.cli.main` shows it as ``error: line``."""
    exc.add_note(f"{PROPAGATE_NOTE}{line}")
    return exc


def propagated_line(exc: BaseException) -> str | None:
    """The one line :func:`propagate` attached to ``exc``, or None."""
    for note in getattr(exc, "__notes__", ()):
        if isinstance(note, str) and note.startswith(PROPAGATE_NOTE):
            return note[len(PROPAGATE_NOTE) :]
    return None


def run(coroutine: Coroutine[Any, Any, T], url: str | None = None) -> T:
    """Run ``coroutine``; any error an operator can fix becomes one line and exit status 1."""
    try:
        return asyncio.run(_settled(coroutine))
    except Exception as exc:
        if propagated_line(exc) is not None:
            raise
        if isinstance(exc, BackendConnectionError):
            fail(f"cannot reach the backend at {redact_url(url or '')}: {exc}", url)
        if isinstance(exc, ValidationError):
            fail(validation_line(exc), url)
        if isinstance(exc, (SheppyError, ValueError, TimeoutError, TypeError)):
            fail(str(exc) or type(exc).__name__, url)
        raise


def make_backend(url: str) -> Backend:
    """Build (not connect) the backend for ``url``; plugin and URL problems raise ``SheppyError``."""
    from sheppy_core._plugins import backend_from_url

    return backend_from_url(url)


@contextlib.asynccontextmanager
async def connected(url: str) -> AsyncIterator[Backend]:
    """A connected backend for ``url``, disconnected afterwards."""
    backend = make_backend(url)
    await backend.connect()
    try:
        yield backend
    finally:
        with contextlib.suppress(Exception):
            await backend.disconnect()


def on_queue(url: str, queue: str, operation: Callable[[Queue], Awaitable[T]]) -> T:
    """Connect to ``url``, run one ``Queue`` operation on ``queue``, disconnect; errors as in :func:`run`.

    ``on_queue(url, "default", lambda q: q.cancel(task_id))``
    """

    async def call() -> T:
        async with connected(url) as backend:
            return await operation(Queue(backend, queue))

    return run(call(), url)


def parse_json_args(args: str | None, kwargs: str | None) -> tuple[list[Any], dict[str, Any]]:
    """``-a '[1, 2]'`` and ``-k '{"x": 1}'`` as Python values, or exit with the reason."""
    positional: list[Any] = []
    keywords: dict[str, Any] = {}
    if args is not None:
        try:
            positional_value = json.loads(args)
        except json.JSONDecodeError as exc:
            fail(f"--args is not valid JSON ({exc}); expected an array such as '[1, \"a\"]'")
        except RecursionError:
            fail(f"--args is nested too deeply (more than {MAX_NESTING} levels)")
        if not isinstance(positional_value, list):
            fail(f"--args must be a JSON array such as '[1, \"a\"]', got {type(positional_value).__name__}")
        positional = positional_value
    if kwargs is not None:
        try:
            keyword_value = json.loads(kwargs)
        except RecursionError:
            fail(f"--kwargs is nested too deeply (more than {MAX_NESTING} levels)")
        except json.JSONDecodeError as exc:
            fail(f"--kwargs is not valid JSON ({exc}); expected an object such as '{{\"x\": 1}}'")
        if not isinstance(keyword_value, dict):
            fail(f"--kwargs must be a JSON object such as '{{\"x\": 1}}', got {type(keyword_value).__name__}")
        keywords = keyword_value
    return positional, keywords


def print_json(data: Any) -> None:
    """Plain JSON on stdout (no colours, no wrapping), for scripts."""
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")
    sys.stdout.flush()
